// ObjectReader: FaRM's lock-free read of one object (ReadLockFree). It copies
// the whole object with ONE one-sided fabric read and checks the snapshot
// (object.h): in the common case that is all; a locked or torn copy is read
// again, up to `max_attempts` times. Works on any Fabric backend (template),
// for objects on remote machines and, through the fabric's loopback, local ones.
//
// One reader per thread: it owns a registered scratch buffer and uses the
// caller's queue and region-table cache, none of which are thread-safe.
//
// Example:
//   auto reader = ObjectReader<ShmFabric>::Create(fabric, queue.get(), &cache);
//   char value[100];
//   absl::Status s = (*reader)->ReadLockFree(addr, value, sizeof(value));
//   // reader->stats().reads == 1 unless a writer raced the read
#ifndef DCTK_FARM_CORE_OBJECT_READER_H_
#define DCTK_FARM_CORE_OBJECT_READER_H_

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "farm/core/address.h"
#include "farm/core/object.h"
#include "farm/core/region_table.h"
#include "farm/fabric/fabric.h"
#include "farm/fabric/sync.h"

namespace dctk::farm {

struct ObjectReaderStats {
  uint64_t objects = 0;  // ReadLockFree calls that returned a snapshot
  uint64_t reads = 0;    // one-sided reads issued
  uint64_t locked = 0;   // copies rejected because a writer held the lock
  uint64_t torn = 0;     // copies rejected because line versions differed
};

template <typename F>
  requires fabric::Fabric<F>
class ObjectReader {
 public:
  static constexpr size_t kMaxObjectBytes = size_t{1} << 20;

  static absl::StatusOr<std::unique_ptr<ObjectReader>> Create(F& fabric, typename F::Queue* queue,
                                                              RegionTable::Cache* cache,
                                                              uint32_t max_attempts = 10000) {
    std::unique_ptr<ObjectReader> r(new ObjectReader(queue, cache, max_attempts));
    absl::Status s = fabric.RegisterLocal(r->scratch_.data(), r->scratch_.size() * 8);
    if (!s.ok()) return s;
    return r;
  }

  // Copies the `len`-byte payload of the object at `addr` into `out`, from a
  // consistent snapshot. Errors: the address does not resolve or leaves its
  // region, no object is allocated there (FailedPrecondition), the fabric
  // failed, or every attempt found it locked or torn (Aborted).
  absl::Status ReadLockFree(GlobalAddress addr, void* out, size_t len) {
    const size_t lines = ObjectLines(len);
    const size_t bytes = lines * kLineSize;
    if (bytes > kMaxObjectBytes) {
      return absl::InvalidArgumentError(absl::StrCat("ReadLockFree of ", len, " bytes at ",
                                                     addr.ToString(), ": larger than 1 MB"));
    }
    absl::StatusOr<fabric::RemoteAddress> at = cache_->ResolvePrimary(addr, bytes);
    if (!at.ok()) return at.status();
    auto* copy = reinterpret_cast<uint8_t*>(scratch_.data());
    absl::Status last;
    for (uint32_t attempt = 0; attempt < max_attempts_; ++attempt) {
      ++stats_.reads;
      absl::Status s = fabric::SyncRead(*queue_, *at, copy, static_cast<uint32_t>(bytes));
      if (!s.ok()) return s;
      last = CheckSnapshot(copy, lines);
      if (last.ok()) {
        ExtractPayload(copy, out, len);
        ++stats_.objects;
        return absl::OkStatus();
      }
      if (absl::IsFailedPrecondition(last)) {
        return absl::FailedPreconditionError(
            absl::StrCat("ReadLockFree at ", addr.ToString(), ": ", last.message()));
      }
      uint64_t header;
      std::memcpy(&header, copy, 8);
      ++(IsLocked(header) ? stats_.locked : stats_.torn);
    }
    return absl::AbortedError(absl::StrCat("ReadLockFree at ", addr.ToString(), ": no consistent copy in ",
                                           max_attempts_, " reads; last: ", last.message()));
  }

  const ObjectReaderStats& stats() const { return stats_; }

 private:
  ObjectReader(typename F::Queue* queue, RegionTable::Cache* cache, uint32_t max_attempts)
      : queue_(queue), cache_(cache), max_attempts_(max_attempts), scratch_(kMaxObjectBytes / 8) {}

  typename F::Queue* queue_;
  RegionTable::Cache* cache_;
  uint32_t max_attempts_;
  std::vector<uint64_t> scratch_;
  ObjectReaderStats stats_;
};

}  // namespace dctk::farm

#endif  // DCTK_FARM_CORE_OBJECT_READER_H_
