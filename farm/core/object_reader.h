// ObjectReader: FaRM's lock-free read of one object (ReadLockFree). It copies
// the whole object with ONE one-sided fabric read and checks the snapshot
// (object.h): in the common case that is all; a locked or torn copy is read
// again, up to `max_attempts` times. Works on any Fabric backend (template),
// for objects on remote machines and, through the fabric's loopback, local ones.
//
// MultiReadLockFree reads many objects at once: it groups them by the machine
// that is primary for each and posts each machine's reads back to back (one
// batch per machine, a doorbell batch on verbs), polls them all, and re-reads
// only the copies that were locked or torn.
//
// One reader per thread: it owns a registered scratch buffer and uses the
// caller's queue and region-table cache, none of which are thread-safe.
//
// Example:
//   auto reader = ObjectReader<ShmFabric>::Create(fabric, queue.get(), &cache);
//   char value[100];
//   absl::Status s = (*reader)->ReadLockFree(addr, value, sizeof(value));
//   // reader->stats().reads == 1 unless a writer raced the read
//   std::vector<ObjectRead> batch = {{a1, buf1, 100}, {a2, buf2, 40}};
//   (*reader)->MultiReadLockFree(absl::MakeSpan(batch));  // batch[i].status each
#ifndef DCTK_FARM_CORE_OBJECT_READER_H_
#define DCTK_FARM_CORE_OBJECT_READER_H_

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
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
  uint64_t machine_batches = 0;  // per-machine batches posted by MultiReadLockFree
};

// One object of a MultiReadLockFree batch: what to read, and how it went.
struct ObjectRead {
  GlobalAddress addr;
  void* out = nullptr;
  size_t len = 0;
  absl::Status status;  // set by MultiReadLockFree, as ReadLockFree would return it
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

  // ReadLockFree of every entry, batched per primary machine (see above).
  // Each entry gets its own status; entries may repeat addresses.
  void MultiReadLockFree(absl::Span<ObjectRead> reads) {
    struct Pending {
      uint32_t index;
      fabric::RemoteAddress at;
      uint32_t bytes;
    };
    std::vector<Pending> pending;
    pending.reserve(reads.size());
    for (uint32_t i = 0; i < reads.size(); ++i) {
      ObjectRead& r = reads[i];
      const size_t bytes = ObjectBytes(r.len);
      if (bytes > kMaxObjectBytes) {
        r.status = absl::InvalidArgumentError(absl::StrCat("ReadLockFree of ", r.len, " bytes at ",
                                                           r.addr.ToString(), ": larger than 1 MB"));
        continue;
      }
      absl::StatusOr<fabric::RemoteAddress> at = cache_->ResolvePrimary(r.addr, bytes);
      if (!at.ok()) {
        r.status = at.status();
        continue;
      }
      pending.push_back({i, *at, static_cast<uint32_t>(bytes)});
    }
    std::stable_sort(pending.begin(), pending.end(),
                     [](const Pending& a, const Pending& b) { return a.at.machine < b.at.machine; });
    std::vector<uint32_t> retry;
    auto* scratch = reinterpret_cast<uint8_t*>(scratch_.data());
    for (size_t begin = 0; begin < pending.size();) {
      // A round: as many reads as fit in the scratch buffer and the queue.
      size_t end = begin, used = 0;
      std::vector<size_t> at_byte;
      while (end < pending.size() && end - begin < kMaxInFlight && used + pending[end].bytes <= kMaxObjectBytes) {
        at_byte.push_back(used);
        used += pending[end++].bytes;
      }
      size_t outstanding = 0;
      for (size_t j = begin; j < end; ++j) {
        if (j == begin || pending[j].at.machine != pending[j - 1].at.machine) ++stats_.machine_batches;
        ++stats_.reads;
        absl::Status s = queue_->PostRead(pending[j].at, scratch + at_byte[j - begin], pending[j].bytes, j - begin);
        if (s.ok()) {
          ++outstanding;
        } else {
          reads[pending[j].index].status = s;
        }
      }
      fabric::Completion done[32];
      while (outstanding > 0) {
        const int got = queue_->PollCompletions(absl::MakeSpan(done));
        for (int c = 0; c < got; ++c) {
          --outstanding;
          const Pending& p = pending[begin + done[c].wr_id];
          ObjectRead& r = reads[p.index];
          if (!done[c].ok()) {
            r.status = done[c].ToStatus();
            continue;
          }
          const uint8_t* copy = scratch + at_byte[done[c].wr_id];
          absl::Status check = CheckSnapshot(copy, p.bytes / kLineSize);
          if (check.ok()) {
            ExtractPayload(copy, r.out, r.len);
            ++stats_.objects;
            r.status = absl::OkStatus();
          } else if (absl::IsFailedPrecondition(check)) {
            r.status = absl::FailedPreconditionError(
                absl::StrCat("ReadLockFree at ", r.addr.ToString(), ": ", check.message()));
          } else {
            uint64_t header;
            std::memcpy(&header, copy, 8);
            ++(IsLocked(header) ? stats_.locked : stats_.torn);
            retry.push_back(p.index);
          }
        }
      }
      begin = end;
    }
    for (uint32_t i : retry) reads[i].status = ReadLockFree(reads[i].addr, reads[i].out, reads[i].len);
  }

  const ObjectReaderStats& stats() const { return stats_; }

 private:
  static constexpr size_t kMaxInFlight = 128;

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
