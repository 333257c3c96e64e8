// CopyReader<F>: reads one machine's copy of a region with one-sided reads
// over fabric F (the cluster's: shm or net), from a fabric machine of its own,
// following no configuration: what a client that has not learned of a
// removal would read. shm reads need no CPU at the target, so on shm this
// works while that machine is paused (SIGSTOP); net reads are served by the
// target's progress thread. It fails once the machine fenced itself
// (deregistered its regions). For farmd tests.
//
// Example:
//   auto reader = CopyReader<ShmFabric>::Connect(60, config, config.regions(0), /*replica=*/0);
//   uint64_t header;
//   absl::Status s = (*reader)->Read(0, &header, 8);
#ifndef DCTK_FARM_SERVER_COPY_READER_H_
#define DCTK_FARM_SERVER_COPY_READER_H_

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "farm/cm/cm.pb.h"
#include "farm/fabric/fabric.h"
#include "farm/fabric/sync.h"

namespace dctk::farm::server {

template <typename F>
  requires fabric::Fabric<F>
class CopyReader {
 public:
  // A fabric machine `self` connected to the machine holding `region`'s
  // replica number `replica` (0: the primary) in configuration `c`.
  static absl::StatusOr<std::unique_ptr<CopyReader>> Connect(fabric::MachineId self,
                                                             const cm::Configuration& c,
                                                             const cm::Region& region,
                                                             int replica) {
    if (replica < 0 || replica >= region.replicas_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("CopyReader: region ", region.id(), " has no replica ", replica));
    }
    const cm::Replica& rep = region.replicas(replica);
    std::unique_ptr<CopyReader> r(new CopyReader({rep.machine(), rep.key(), 0}));
    absl::StatusOr<std::unique_ptr<F>> f = F::Create({.machine_id = self});
    if (!f.ok()) return f.status();
    r->fabric_ = std::move(*f);
    absl::Status s = absl::NotFoundError(
        absl::StrCat("CopyReader: machine ", rep.machine(), " is not in configuration ", c.id()));
    for (const cm::Machine& m : c.machines()) {
      if (m.id() == rep.machine()) s = r->fabric_->Connect(m.id(), m.endpoint());
    }
    if (!s.ok()) return s;
    absl::StatusOr<std::unique_ptr<typename F::Queue>> q = r->fabric_->CreateQueue();
    if (!q.ok()) return q.status();
    r->queue_ = std::move(*q);
    return r;
  }

  // `len` bytes of the copy from `offset` on.
  absl::Status Read(uint64_t offset, void* out, uint32_t len) {
    return fabric::SyncRead(*queue_, {copy_.machine, copy_.key, offset}, out, len);
  }

 private:
  explicit CopyReader(fabric::RemoteAddress copy) : copy_(copy) {}

  fabric::RemoteAddress copy_;
  std::unique_ptr<F> fabric_;
  std::unique_ptr<typename F::Queue> queue_;  // destroyed before fabric_
};

}  // namespace dctk::farm::server

#endif  // DCTK_FARM_SERVER_COPY_READER_H_
