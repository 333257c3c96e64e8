// Stamp: (view, epoch), the version of the log a replica works in.
//
// The view names the leader (view mod n); the epoch counts reconciliations
// inside a view. Both a reconciliation (epoch + 1) and a view change (view + 1,
// epoch 0) are runs of one log-change protocol for a higher stamp, so stamps are
// totally ordered and every message carries one.
//
// Example:
//   Stamp s{.view = 3, .epoch = 0};
//   Stamp next = s.NextEpoch();          // {3, 1}
//   uint32_t leader = s.Leader(5);       // 3
#ifndef DCTK_SPECULATIVE_PAXOS_STAMP_H_
#define DCTK_SPECULATIVE_PAXOS_STAMP_H_

#include <compare>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "speculative_paxos/spaxos.pb.h"

namespace dctk::spaxos {

struct Stamp {
  uint64_t view = 0;
  uint64_t epoch = 0;

  auto operator<=>(const Stamp&) const = default;

  uint32_t Leader(size_t num_replicas) const { return view % num_replicas; }
  Stamp NextEpoch() const { return {view, epoch + 1}; }
  Stamp NextView() const { return {view + 1, 0}; }
  std::string ToString() const { return absl::StrCat(view, ".", epoch); }

  static Stamp FromProto(const StampMsg& p) { return {p.view(), p.epoch()}; }
  void ToProto(StampMsg* p) const {
    p->set_view(view);
    p->set_epoch(epoch);
  }
};

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_STAMP_H_
