// HashTableReader: lock-free lookups in a FaRM hashtable (hashtable_layout.h)
// from any machine. A lookup reads the key's neighborhood (home bucket and
// the next one, contiguous) with ONE one-sided READ, checks each bucket's
// snapshot (object.h) and retries torn or locked copies; only a key pushed
// into its home bucket's overflow chain costs further reads. Counts reads and
// lookups so reads per lookup can be reported.
//
// Example:
//   auto r = HashTableReader<ShmFabric>::Create(fabric, queue, {2, key, offset}, config);
//   absl::StatusOr<absl::optional<Value>> v = (*r)->Lookup(k);
#ifndef DCTK_FARM_KV_HASHTABLE_READER_H_
#define DCTK_FARM_KV_HASHTABLE_READER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/optional.h"
#include "farm/core/object.h"
#include "farm/fabric/fabric.h"
#include "farm/fabric/sync.h"
#include "farm/kv/hashtable_layout.h"

namespace dctk::farm::kv {

template <typename F>
  requires fabric::Fabric<F>
class HashTableReader {
 public:
  static absl::StatusOr<std::unique_ptr<HashTableReader>> Create(F& fabric, typename F::Queue* queue,
                                                                 fabric::RemoteAddress table,
                                                                 const TableConfig& config) {
    std::unique_ptr<HashTableReader> r(new HashTableReader(queue, table, config));
    absl::Status s = fabric.RegisterLocal(r->buf_.data(), r->buf_.size() * 8);
    if (!s.ok()) return s;
    return r;
  }

  absl::StatusOr<absl::optional<Value>> Lookup(const Key& key) {
    ++lookups_;
    const uint32_t home = HomeBucket(key, config_.buckets);
    Bucket buckets[2];
    absl::Status s = ReadObjects(uint64_t{home} * kBucketBytes, 2, buckets);
    if (!s.ok()) return s;
    for (const Bucket& b : buckets) {
      if (int i = b.Find(key); i >= 0) return b.slots[i].value;
    }
    uint32_t hops = 0;
    for (uint64_t link = buckets[0].overflow; link != 0; link = buckets[0].overflow) {
      if (++hops > config_.overflow_blocks) {
        return absl::DataLossError(absl::StrCat("hashtable: overflow chain of bucket ", home, " loops"));
      }
      s = ReadObjects(link, 1, buckets);
      if (!s.ok()) return s;
      if (int i = buckets[0].Find(key); i >= 0) return buckets[0].slots[i].value;
    }
    return absl::optional<Value>();
  }

  uint64_t lookups() const { return lookups_; }
  uint64_t reads() const { return reads_; }

 private:
  static constexpr int kMaxAttempts = 100000;

  HashTableReader(typename F::Queue* queue, fabric::RemoteAddress table, const TableConfig& config)
      : queue_(queue), table_(table), config_(config), buf_(2 * kBucketBytes / 8) {}

  // Reads `count` adjacent objects at table offset `offset` in one READ until
  // every one is a consistent snapshot, and decodes them.
  absl::Status ReadObjects(uint64_t offset, int count, Bucket* out) {
    auto* bytes = reinterpret_cast<uint8_t*>(buf_.data());
    const fabric::RemoteAddress at{table_.machine, table_.key, table_.offset + offset};
    for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
      ++reads_;
      absl::Status s = fabric::SyncRead(*queue_, at, bytes, static_cast<uint32_t>(count * kBucketBytes));
      if (!s.ok()) return s;
      bool consistent = true;
      for (int i = 0; i < count && consistent; ++i) {
        consistent = CheckSnapshot(bytes + i * kBucketBytes, ObjectLines(kBucketPayload)).ok();
      }
      if (!consistent) continue;
      for (int i = 0; i < count; ++i) {
        uint8_t payload[kBucketPayload];
        ExtractPayload(bytes + i * kBucketBytes, payload, kBucketPayload);
        out[i].Decode(payload);
      }
      return absl::OkStatus();
    }
    return absl::AbortedError(absl::StrCat("hashtable: no consistent read at offset ", offset));
  }

  typename F::Queue* queue_;
  const fabric::RemoteAddress table_;
  const TableConfig config_;
  std::vector<uint64_t> buf_;
  uint64_t lookups_ = 0;
  uint64_t reads_ = 0;
};

}  // namespace dctk::farm::kv

#endif  // DCTK_FARM_KV_HASHTABLE_READER_H_
