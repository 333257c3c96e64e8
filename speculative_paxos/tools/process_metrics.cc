#include "speculative_paxos/tools/process_metrics.h"

#include <memory>
#include <numeric>
#include <string>
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

// `node`'s stats exported by an Exporter under "<prefix>_...".
template <typename Exporter, typename Node>
absl::StatusOr<ServedReplicaMetrics> Serve(const std::string& address, const char* prefix,
                                           int index, const Node& node) {
  absl::StatusOr<ServedMetrics> served =
      ServeMetrics(address, prefix, {{"replica", std::to_string(index)}});
  if (!served.ok()) return served.status();
  auto exporter = std::make_shared<Exporter>(*served->scope);
  return ServedReplicaMetrics{*std::move(served), [exporter, &node] { exporter->Export(node); }};
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

absl::StatusOr<ServedReplicaMetrics> ServeReplicaMetrics(const std::string& address, int index,
                                                         const transport::TransportReceiver& node) {
  if (const auto* r = dynamic_cast<const Replica*>(&node)) {
    return Serve<ReplicaExporter>(address, "spaxos_replica", index, *r);
  }
  if (const auto* r = dynamic_cast<const VrReplica*>(&node)) {
    return Serve<VrExporter>(address, "vr_replica", index, *r);
  }
  if (const auto* r = dynamic_cast<const FastPaxosReplica*>(&node)) {
    return Serve<FastPaxosExporter>(address, "fastpaxos_replica", index, *r);
  }
  return absl::UnimplementedError("this server keeps no stats (the unreplicated baseline)");
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

void VrExporter::Export(const VrReplica& r) {
  const VrStats& s = r.stats();
  Add(m_.requests_total, s.requests, &last_.requests);
  Add(m_.duplicates_total, s.duplicates, &last_.duplicates);
  Add(m_.prepares_total, s.prepares, &last_.prepares);
  Add(m_.executed_total, s.executed, &last_.executed);
  Add(m_.view_changes_total, s.view_changes, &last_.view_changes);
  Add(m_.recoveries_total, s.recoveries, &last_.recoveries);
  Add(m_.checkpoints_total, s.checkpoints, &last_.checkpoints);
  Add(m_.snapshots_installed_total, s.snapshots_installed, &last_.snapshots_installed);
  m_.view.Set(static_cast<double>(r.view()));
}

void FastPaxosExporter::Export(const FastPaxosReplica& r) {
  const FastPaxosStats& s = r.stats();
  Add(m_.votes_total, s.votes, &last_.votes);
  Add(m_.fast_decisions_total, s.fast_decisions, &last_.fast_decisions);
  Add(m_.classic_rounds_total, s.classic_rounds, &last_.classic_rounds);
  Add(m_.classic_entries_total, s.classic_entries, &last_.classic_entries);
  Add(m_.executed_total, s.executed, &last_.executed);
  Add(m_.fetched_total, s.fetched, &last_.fetched);
  Add(m_.view_changes_total, s.view_changes, &last_.view_changes);
  Add(m_.merge_conflicts_total, s.merge_conflicts, &last_.merge_conflicts);
  m_.view.Set(static_cast<double>(r.view()));
}

void ClientExporter::Export(const ClientStats& s) {
  Add(m_.completed_total, s.completed, &last_.completed);
  Add(m_.fast_path_total, s.fast_path, &last_.fast_path);
  Add(m_.slow_path_total, s.slow_path, &last_.slow_path);
  Add(m_.resends_total, s.resends, &last_.resends);
  Add(m_.reconcile_requests_total, s.reconcile_requests, &last_.reconcile_requests);
  Add(m_.early_commit_requests_total, s.early_commit_requests, &last_.early_commit_requests);
  m_.speculative_success_rate.Set(s.SpeculativeSuccessRate());
  metrics::Histogram since = s.latency;
  since.Subtract(last_.latency);
  m_.latency.Merge(since);
  last_.latency = s.latency;
}

}  // namespace dctk::spaxos
