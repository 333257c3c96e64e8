// HashTableWriter: inserts, overwrites and deletes in a FaRM hashtable
// (hashtable_layout.h) at the machine holding it, from any number of threads,
// while other machines look keys up lock-free with one-sided reads
// (hashtable_reader.h).
//
// Concurrency design. Readers never lock: every bucket change goes through
// the object writer protocol (lock bit, line versions, write, unlock with
// version + 1), so a one-sided read either gets a consistent bucket or
// retries. Writers exclude each other with per-bucket locks kept in the
// owner's private memory (not in the region, so readers never see them): an
// operation on a key with home bucket h locks buckets h and h+1 (its
// neighborhood; h's overflow chain is covered by h's lock), and a hopscotch
// displacement extends that to a contiguous run h..h+k, always in ascending
// order, so writers cannot deadlock. A move writes the entry's new bucket
// before clearing the old one, so an ascending neighborhood read always finds
// a moved key in one of the two. This stands in for FaRM's approach, where
// updates are transactions (farm/tx): remote writers ship puts to the owner
// (RPC CallAt) until transactions replace the per-bucket locks.
//
// Values up to 32 bytes are inline; longer ones (PutBytes, up to
// TableConfig::max_value_bytes) are written to a heap object first, then the
// slot is switched to it, then the old object is freed (its key cleared under
// its lock), so a lookup sees the old or the new value, never a mix.
//
// Example:
//   auto w = HashTableWriter::Create(region_base + offset, {.buckets = 4096});
//   absl::Status s = w->Put(key, value);       // insert or overwrite, 32 B inline
//   s = w->PutBytes(key, bytes);                // any length up to max_value_bytes
//   bool erased = *w->Erase(key);
#ifndef DCTK_FARM_KV_HASHTABLE_WRITER_H_
#define DCTK_FARM_KV_HASHTABLE_WRITER_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "farm/kv/hashtable_layout.h"
#include "farm/kv/value_heap.h"

namespace dctk::farm::kv {

class HashTableWriter {
 public:
  // Formats zeroed memory of TableBytes(config) bytes at `table` (64-byte aligned).
  static absl::StatusOr<HashTableWriter> Create(uint8_t* table, const TableConfig& config);

  // Inserts or overwrites a 32-byte value (inline). ResourceExhausted when the
  // key's neighborhood is full, no displacement helps and the overflow blocks
  // are used up. Thread-safe, as are all methods.
  absl::Status Put(const Key& key, const Value& value);
  // Inserts or overwrites a value of any length up to max_value_bytes: inline
  // up to 32 bytes, else out of line in the value heap (ResourceExhausted when
  // the heap is full).
  absl::Status PutBytes(const Key& key, absl::Span<const uint8_t> value);
  // True if the key was present.
  absl::StatusOr<bool> Erase(const Key& key);

  uint64_t size() const { return state_->size.load(std::memory_order_relaxed); }
  uint64_t capacity() const { return uint64_t{config_.buckets + 1} * kSlots; }
  uint64_t overflow_used() const { return state_->next_overflow.load(std::memory_order_relaxed); }
  uint64_t displacements() const { return state_->displacements.load(std::memory_order_relaxed); }
  uint64_t heap_bytes_in_use() const { return state_->heap.bytes_in_use(); }

 private:
  struct State {
    explicit State(const TableConfig& c);
    std::unique_ptr<std::atomic<uint8_t>[]> locks;  // one per bucket
    std::atomic<uint64_t> size{0};
    std::atomic<uint32_t> next_overflow{0};
    std::atomic<uint64_t> displacements{0};
    ValueHeap heap;
  };
  class Held;  // a locked run of buckets

  HashTableWriter(uint8_t* table, const TableConfig& config)
      : table_(table), config_(config), state_(std::make_unique<State>(config)) {}

  uint8_t* Object(uint64_t index) { return table_ + index * kBucketBytes; }
  Bucket Load(uint64_t index);
  void Store(uint64_t index, const Bucket& b);
  // Inserts or overwrites `slot` (its key) under the neighborhood's locks;
  // *replaced gets the slot it overwrote (unoccupied if none).
  absl::Status Upsert(const Bucket::Slot& slot, Bucket::Slot* replaced);
  // Frees a slot in bucket `home` or `home + 1` by hopscotch moves to the
  // right, extending `held` as it goes; returns the bucket with the free slot, or -1.
  int64_t Displace(uint32_t home, Held& held);
  // Writes an out-of-line value object; returns its block.
  absl::StatusOr<ValueHeap::Block> WriteHeapValue(const Key& key, absl::Span<const uint8_t> value);
  // Clears an out-of-line value's object and returns it to the heap.
  void FreeHeapValue(const Bucket::Slot& slot);

  uint8_t* table_;
  TableConfig config_;
  std::unique_ptr<State> state_;
};

}  // namespace dctk::farm::kv

#endif  // DCTK_FARM_KV_HASHTABLE_WRITER_H_
