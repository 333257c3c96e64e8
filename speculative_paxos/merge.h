// MergeLogs: the Speculative Paxos log merge, as a pure function.
//
// Run by the leader of a new stamp (reconciliation or view change) over the
// LogReports of at least f+1 replicas, each holding that replica's log after
// slot `base` (the leader's commit point). The merged log is built, per the
// paper, in three parts:
//  1. the confirmed prefix: the log of the report with the highest
//     (log_stamp, sync_point), up to that sync point. Everything ever committed
//     was confirmed by f+1 replicas, one of which is in any f+1 reports, and a
//     higher stamp's installed log contains the lower stamps' committed ones;
//  2. speculative entries: slot by slot, an entry whose hash at least
//     ceil(f/2)+1 reports (of the newest log stamp, agreeing with part 1) hold
//     in that slot. A request a client completed on a superquorum of
//     ceil(3f/2)+1 matching replies is in at least that many of any f+1 logs;
//     two different entries cannot both reach the threshold;
//  3. every other request in any report, once, in report order, unless the
//     merged log or the committed prefix already holds it or a newer request of
//     the same client.
// Hashes of parts 2-3 are rechained from `base_hash`. An input that breaks the
// protocol's invariants (the confirmed log missing or not extending the
// committed prefix) is an Internal error naming the report.
//
// Example:
//   MergeInput in{.f = 1, .base = 0, .base_hash = "", .reports = {r0, r1}};
//   absl::StatusOr<MergeResult> merged = MergeLogs(in);
#ifndef DCTK_SPECULATIVE_PAXOS_MERGE_H_
#define DCTK_SPECULATIVE_PAXOS_MERGE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "speculative_paxos/spaxos.pb.h"

namespace dctk::spaxos {

struct MergeInput {
  int f = 1;
  uint64_t base = 0;
  std::string base_hash;
  std::vector<LogReport> reports;
  // Highest request id of `client_id` in the leader's log at slots <= base;
  // unset means none.
  std::function<uint64_t(uint64_t client_id)> prefix_latest;
};

struct MergeResult {
  std::vector<Entry> entries;  // slots base+1 ..., hashes chained from base_hash
  uint64_t confirmed_end = 0;  // last slot of part 1
  uint64_t voted_end = 0;      // last slot of part 2
};

absl::StatusOr<MergeResult> MergeLogs(const MergeInput& in);

// ceil(f/2)+1: how many of f+1 logs must hold an entry to keep it (part 2).
inline int MergeThreshold(int f) { return (f + 1) / 2 + 1; }
// ceil(3f/2)+1: matching speculative replies that complete a request.
inline int Superquorum(int f) { return (3 * f + 1) / 2 + 1; }

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_MERGE_H_
