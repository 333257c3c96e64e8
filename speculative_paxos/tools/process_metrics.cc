#include "speculative_paxos/tools/process_metrics.h"

#include <numeric>
#include <utility>

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

absl::StatusOr<ServedMetrics> ServeMetrics(const std::string& address, std::string prefix,
                                           prometheus::Labels labels) {
  ServedMetrics m;
  m.registry = std::make_shared<metrics::Registry>();
  m.scope = std::make_unique<metrics::Scope>(*m.registry, std::move(prefix), std::move(labels));
  absl::StatusOr<std::unique_ptr<metrics::MetricsServer>> server =
      metrics::MetricsServer::Start(m.registry, address);
  if (!server.ok()) return server.status();
  m.server = *std::move(server);
  return m;
}

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

void ClientExporter::Export(const ClientStats& s) {
  Add(m_.completed_total, s.completed, &last_.completed);
  Add(m_.fast_path_total, s.fast_path, &last_.fast_path);
  Add(m_.slow_path_total, s.slow_path, &last_.slow_path);
  Add(m_.resends_total, s.resends, &last_.resends);
  Add(m_.reconcile_requests_total, s.reconcile_requests, &last_.reconcile_requests);
  Add(m_.early_commit_requests_total, s.early_commit_requests, &last_.early_commit_requests);
  m_.speculative_success_rate.Set(s.SpeculativeSuccessRate());
}

}  // namespace dctk::spaxos
