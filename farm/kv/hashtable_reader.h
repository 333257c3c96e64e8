// HashTableReader: lock-free lookups in a FaRM hashtable (hashtable_layout.h)
// from any machine. A lookup reads the key's neighborhood (home bucket and
// the next one, contiguous) with ONE one-sided READ, checks each bucket's
// snapshot (object.h) and retries torn or locked copies; only a key pushed
// into its home bucket's overflow chain, or a value stored out of line, costs
// further reads. Counts reads and lookups so reads per lookup can be reported.
//
// Batches (hashtable_client.h) use the two halves of a lookup separately:
// PostNeighborhoodRead() for many keys, poll, then FinishFromNeighborhood()
// on each copy, which completes the lookup or says it needs Lookup() (torn
// copy, overflow chain, out-of-line value).
//
// A copy found locked (a writer or a transaction's commit holds the object)
// yields the CPU before the next attempt; after 64 attempts in a row (a lock
// held across a failure, until recovery) it sleeps 250 us between attempts.
//
// One reader per thread (it owns a registered buffer and uses the caller's queue).
//
// Example:
//   auto r = HashTableReader<ShmFabric>::Create(fabric, queue, {2, key, offset}, config);
//   absl::StatusOr<absl::optional<Value>> v = (*r)->Lookup(k);          // 32-byte values
//   absl::StatusOr<absl::optional<std::string>> b = (*r)->LookupBytes(k);  // any length
#ifndef DCTK_FARM_KV_HASHTABLE_READER_H_
#define DCTK_FARM_KV_HASHTABLE_READER_H_

#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "farm/core/object.h"
#include "farm/fabric/fabric.h"
#include "farm/fabric/sync.h"
#include "farm/kv/hashtable_layout.h"

namespace dctk::farm::kv {

// Bytes one neighborhood read copies.
inline constexpr size_t kNeighborhoodBytes = 2 * kBucketBytes;

// Where a table's out-of-line value objects are: a slot's heap offset h names
// the object at remote offset `base + h` (same machine and region key as the
// table), accepted only if begin <= h and h + object bytes <= end. A table
// with its own value heap (TableHeap) counts h from the table's start; a
// transactional table's values are objects anywhere in the shard's region
// (tx_hashtable.h), h their region offset.
struct ValueArea {
  uint64_t base = 0, begin = 0, end = 0;

  static ValueArea TableHeap(const fabric::RemoteAddress& table, const TableConfig& c) {
    return {table.offset, IndexBytes(c), TableBytes(c)};
  }
  static ValueArea Region(uint64_t region_bytes) { return {0, 0, region_bytes}; }
};

template <typename F>
  requires fabric::Fabric<F>
class HashTableReader {
 public:
  // `values` defaults to the table's own value heap (ValueArea::TableHeap).
  static absl::StatusOr<std::unique_ptr<HashTableReader>> Create(F& fabric, typename F::Queue* queue,
                                                                 fabric::RemoteAddress table,
                                                                 const TableConfig& config,
                                                                 absl::optional<ValueArea> values = absl::nullopt) {
    std::unique_ptr<HashTableReader> r(
        new HashTableReader(queue, table, config, values ? *values : ValueArea::TableHeap(table, config)));
    absl::Status s = fabric.RegisterLocal(r->buf_.data(), r->buf_.size() * 8);
    if (!s.ok()) return s;
    return r;
  }

  // The key's 32-byte value (as stored by Put). FailedPrecondition if the key
  // holds a value of another length (use LookupBytes).
  absl::StatusOr<absl::optional<Value>> Lookup(const Key& key) {
    absl::StatusOr<absl::optional<Bucket::Slot>> slot = FindSlot(key);
    if (!slot.ok()) return slot.status();
    if (!slot->has_value()) {
      ++lookups_;
      return absl::optional<Value>();
    }
    if (!(*slot)->out_of_line() && (*slot)->inline_length() == kMaxInlineValue) {
      ++lookups_;
      return absl::optional<Value>((*slot)->value);
    }
    absl::StatusOr<absl::optional<std::string>> v = LookupBytes(key);  // counts the lookup
    if (!v.ok()) return v.status();
    return ToValue(*v);
  }

  // The key's value, of any length.
  absl::StatusOr<absl::optional<std::string>> LookupBytes(const Key& key) {
    ++lookups_;
    for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
      absl::StatusOr<absl::optional<Bucket::Slot>> slot = FindSlot(key);
      if (!slot.ok()) return slot.status();
      if (!slot->has_value()) return absl::optional<std::string>();
      if (!(*slot)->out_of_line()) {
        const Bucket::Slot& s = **slot;
        return absl::optional<std::string>(
            std::string(reinterpret_cast<const char*>(s.value.data()), s.inline_length()));
      }
      absl::StatusOr<absl::optional<std::string>> v = ReadHeapValue(**slot);
      if (!v.ok() || v->has_value()) return v;
      // The object was freed or reused after we read the slot: look again.
    }
    return absl::AbortedError("hashtable: value object kept changing under the lookup");
  }

  // Batch half 1: posts the one-sided READ of `key`'s neighborhood into
  // `copy` (kNeighborhoodBytes of registered memory) with `wr_id`.
  absl::Status PostNeighborhoodRead(const Key& key, uint8_t* copy, uint64_t wr_id) {
    ++reads_;
    const fabric::RemoteAddress at{table_.machine, table_.key,
                                   table_.offset + uint64_t{HomeBucket(key, config_.buckets)} * kBucketBytes};
    return queue_->PostRead(at, copy, static_cast<uint32_t>(kNeighborhoodBytes), wr_id);
  }
  // Batch half 2: the answer from a completed neighborhood copy, or nullopt
  // when the copy cannot answer alone (torn/locked copy, key not in the
  // neighborhood but the home bucket has an overflow chain, value out of line
  // or not 32 bytes): then call Lookup(key).
  absl::optional<absl::optional<Value>> FinishFromNeighborhood(const Key& key, const uint8_t* copy) {
    Bucket buckets[2];
    if (!DecodeConsistent(copy, 2, buckets)) return absl::nullopt;
    ++lookups_;
    for (const Bucket& b : buckets) {
      if (int i = b.Find(key); i >= 0) {
        const Bucket::Slot& s = b.slots[i];
        if (s.out_of_line() || s.inline_length() != kMaxInlineValue) {
          --lookups_;  // Lookup() will count it
          return absl::nullopt;
        }
        return absl::optional<Value>(s.value);
      }
    }
    if (buckets[0].overflow != 0) {
      --lookups_;
      return absl::nullopt;
    }
    return absl::optional<Value>();
  }

  uint64_t lookups() const { return lookups_; }
  uint64_t reads() const { return reads_; }
  const TableConfig& config() const { return config_; }

 private:
  static constexpr int kMaxAttempts = 100000;
  static constexpr int kYieldsBeforeSleep = 64;
  static constexpr absl::Duration kLockedSleep = absl::Microseconds(250);

  HashTableReader(typename F::Queue* queue, fabric::RemoteAddress table, const TableConfig& config, ValueArea values)
      : queue_(queue),
        table_(table),
        config_(config),
        values_(values),
        buf_((std::max(kNeighborhoodBytes, HeapObjectBytes(config.max_value_bytes)) + 7) / 8) {}

  static absl::StatusOr<absl::optional<Value>> ToValue(const absl::optional<std::string>& v) {
    if (!v.has_value()) return absl::optional<Value>();
    if (v->size() != kMaxInlineValue) {
      return absl::FailedPreconditionError(
          absl::StrCat("hashtable: the value of this key is ", v->size(), " bytes, not ",
                       kMaxInlineValue, ": use LookupBytes"));
    }
    Value out;
    std::memcpy(out.data(), v->data(), out.size());
    return absl::optional<Value>(out);
  }

  // The key's slot (from the neighborhood or the overflow chain), or nullopt.
  absl::StatusOr<absl::optional<Bucket::Slot>> FindSlot(const Key& key) {
    const uint32_t home = HomeBucket(key, config_.buckets);
    Bucket buckets[2];
    absl::Status s = ReadObjects(uint64_t{home} * kBucketBytes, 2, buckets);
    if (!s.ok()) return s;
    for (const Bucket& b : buckets) {
      if (int i = b.Find(key); i >= 0) return absl::optional<Bucket::Slot>(b.slots[i]);
    }
    uint32_t hops = 0;
    for (uint64_t link = buckets[0].overflow; link != 0; link = buckets[0].overflow) {
      if (++hops > config_.overflow_blocks) {
        return absl::DataLossError(absl::StrCat("hashtable: overflow chain of bucket ", home, " loops"));
      }
      s = ReadObjects(link, 1, buckets);
      if (!s.ok()) return s;
      if (int i = buckets[0].Find(key); i >= 0) return absl::optional<Bucket::Slot>(buckets[0].slots[i]);
    }
    return absl::optional<Bucket::Slot>();
  }

  // Reads the out-of-line value a slot points to; nullopt if the object no
  // longer holds this key's value of that length (freed or reused).
  absl::StatusOr<absl::optional<std::string>> ReadHeapValue(const Bucket::Slot& slot) {
    const uint64_t len = slot.heap_length();
    const uint64_t bytes = HeapObjectBytes(len);
    if (len > config_.max_value_bytes || slot.heap_offset() < values_.begin || slot.heap_offset() > values_.end ||
        bytes > values_.end - slot.heap_offset()) {
      return absl::DataLossError(absl::StrCat("hashtable: slot points to a value of ", len,
                                              " bytes at offset ", slot.heap_offset(), " outside the heap"));
    }
    auto* copy = reinterpret_cast<uint8_t*>(buf_.data());
    const fabric::RemoteAddress at{table_.machine, table_.key, values_.base + slot.heap_offset()};
    for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
      ++reads_;
      absl::Status s = fabric::SyncRead(*queue_, at, copy, static_cast<uint32_t>(bytes));
      if (!s.ok()) return s;
      s = CheckSnapshot(copy, bytes / kLineSize);
      if (absl::IsUnavailable(s)) {  // locked or torn
        WaitIfLocked(copy, 1, attempt);
        continue;
      }
      if (!s.ok()) return absl::optional<std::string>();
      std::string payload(kHeapValueHeader + len, '\0');
      ExtractPayload(copy, payload.data(), payload.size());
      uint64_t stored_len;
      std::memcpy(&stored_len, payload.data() + 16, 8);
      if (std::memcmp(payload.data(), slot.key.data(), 16) != 0 || stored_len != len) {
        return absl::optional<std::string>();
      }
      return absl::optional<std::string>(payload.substr(kHeapValueHeader));
    }
    return absl::AbortedError(absl::StrCat("hashtable: no consistent read of the value at offset ",
                                           slot.heap_offset()));
  }

  // A transaction's commit holds an object locked across messages: let its
  // threads run (on a loaded machine they may share our core) instead of
  // spinning through the attempts. A lock still there after
  // kYieldsBeforeSleep reads is most likely held across a failure (until
  // recovery decides its transaction: a lease or more), so from then on wait
  // kLockedSleep between reads instead of flooding the primary with them.
  static void WaitIfLocked(const uint8_t* copy, int count, int attempt) {
    for (int i = 0; i < count; ++i) {
      uint64_t header;
      std::memcpy(&header, copy + i * kBucketBytes, 8);
      if (IsLocked(header)) {
        if (attempt < kYieldsBeforeSleep) {
          sched_yield();
        } else {
          absl::SleepFor(kLockedSleep);
        }
        return;
      }
    }
  }

  // True (and `out` decoded) iff all `count` objects in `copy` are consistent.
  static bool DecodeConsistent(const uint8_t* copy, int count, Bucket* out) {
    for (int i = 0; i < count; ++i) {
      if (!CheckSnapshot(copy + i * kBucketBytes, ObjectLines(kBucketPayload)).ok()) return false;
    }
    for (int i = 0; i < count; ++i) {
      uint8_t payload[kBucketPayload];
      ExtractPayload(copy + i * kBucketBytes, payload, kBucketPayload);
      out[i].Decode(payload);
    }
    return true;
  }

  // Reads `count` adjacent objects at table offset `offset` in one READ until
  // every one is a consistent snapshot, and decodes them.
  absl::Status ReadObjects(uint64_t offset, int count, Bucket* out) {
    auto* bytes = reinterpret_cast<uint8_t*>(buf_.data());
    const fabric::RemoteAddress at{table_.machine, table_.key, table_.offset + offset};
    for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
      ++reads_;
      absl::Status s = fabric::SyncRead(*queue_, at, bytes, static_cast<uint32_t>(count * kBucketBytes));
      if (!s.ok()) return s;
      if (DecodeConsistent(bytes, count, out)) return absl::OkStatus();
      WaitIfLocked(bytes, count, attempt);
    }
    return absl::AbortedError(absl::StrCat("hashtable: no consistent read at offset ", offset));
  }

  typename F::Queue* queue_;
  const fabric::RemoteAddress table_;
  const TableConfig config_;
  const ValueArea values_;
  std::vector<uint64_t> buf_;
  uint64_t lookups_ = 0;
  uint64_t reads_ = 0;
};

}  // namespace dctk::farm::kv

#endif  // DCTK_FARM_KV_HASHTABLE_READER_H_
