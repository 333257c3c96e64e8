// HashTableWriter: inserts and deletes in a FaRM hashtable (hashtable_layout.h)
// at the machine holding it, one writer thread per table, while other
// machines look keys up lock-free with one-sided reads (hashtable_reader.h).
// Every bucket change goes through the object writer protocol (lock, bump
// line versions, write, unlock), and a hopscotch move writes the entry's new
// bucket before clearing the old one, so a concurrent neighborhood read
// (ascending, old bucket first) always finds a moved key in one of the two.
//
// Example:
//   auto w = HashTableWriter::Create(region_base + offset, {.buckets = 4096});
//   absl::Status s = w->Put(key, value);       // insert or overwrite
//   bool erased = *w->Erase(key);
#ifndef DCTK_FARM_KV_HASHTABLE_WRITER_H_
#define DCTK_FARM_KV_HASHTABLE_WRITER_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "farm/kv/hashtable_layout.h"

namespace dctk::farm::kv {

class HashTableWriter {
 public:
  // Formats zeroed memory of TableBytes(config) bytes at `table` (64-byte aligned).
  static absl::StatusOr<HashTableWriter> Create(uint8_t* table, const TableConfig& config);

  // Inserts or overwrites. ResourceExhausted when the key's neighborhood is
  // full, no displacement helps and the overflow blocks are used up.
  absl::Status Put(const Key& key, const Value& value);
  // True if the key was present.
  absl::StatusOr<bool> Erase(const Key& key);

  uint64_t size() const { return size_; }
  uint64_t capacity() const { return uint64_t{config_.buckets + 1} * kSlots; }
  uint64_t overflow_used() const { return next_overflow_; }
  uint64_t displacements() const { return displacements_; }

 private:
  HashTableWriter(uint8_t* table, const TableConfig& config) : table_(table), config_(config) {}

  uint8_t* Object(uint64_t index) { return table_ + index * kBucketBytes; }
  Bucket Load(uint64_t index);
  void Store(uint64_t index, const Bucket& b);
  // Frees a slot in bucket `home` or `home + 1` by hopscotch moves to the
  // right; returns the bucket with the free slot, or -1.
  int64_t Displace(uint32_t home);

  uint8_t* table_;
  TableConfig config_;
  uint64_t size_ = 0;
  uint32_t next_overflow_ = 0;
  uint64_t displacements_ = 0;
};

}  // namespace dctk::farm::kv

#endif  // DCTK_FARM_KV_HASHTABLE_WRITER_H_
