#include "speculative_paxos/tools/process_metrics.h"

#include <numeric>

namespace dctk::spaxos {
namespace {

void Add(prometheus::Counter& c, uint64_t now, uint64_t* last) {
  if (now > *last) c.Increment(static_cast<double>(now - *last));
  *last = now;
}

uint64_t Sum(const std::array<uint64_t, kNumRejects>& a) {
  return std::accumulate(a.begin(), a.end(), uint64_t{0});
}

}  // namespace

void ReplicaExporter::Export(const Replica& r) {
  const ReplicaStats& s = r.stats();
  Add(m_.requests_total, s.requests, &last_.requests);
  Add(m_.replies_total, s.replies, &last_.replies);
  Add(m_.commits_total, s.commits, &last_.commits);
  Add(m_.reconciliations_total, s.reconciliations, &last_.reconciliations);
  Add(m_.view_changes_total, s.view_changes, &last_.view_changes);
  Add(m_.logs_installed_total, s.logs_installed, &last_.logs_installed);
  Add(m_.rolled_back_total, s.rolled_back, &last_.rolled_back);
  Add(m_.transfers_total, s.transfers, &last_.transfers);
  Add(m_.checkpoints_total, s.checkpoints, &last_.checkpoints);
  Add(m_.snapshots_installed_total, s.snapshots_installed, &last_.snapshots_installed);
  uint64_t rejected = Sum(last_.rejected);
  Add(m_.rejected_total, Sum(s.rejected), &rejected);
  last_.rejected = s.rejected;
  m_.commit_point.Set(static_cast<double>(r.commit_point()));
  m_.view.Set(static_cast<double>(r.stamp().view));
  m_.log_entries.Set(static_cast<double>(r.log().size()));
  m_.checkpoint_bytes.Set(static_cast<double>(r.checkpoint_bytes()));
}

}  // namespace dctk::spaxos
