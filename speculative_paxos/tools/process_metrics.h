// Prometheus metrics of the spaxos_replica process.
//
// The replica keeps plain counters (ReplicaStats) so the
// message path makes no metric calls; a process exports them by calling
// Export() on its transport's loop (a periodic timer), which adds the change
// since the last call to Prometheus counters declared once below.
//
// Example:
//   auto registry = std::make_shared<metrics::Registry>();
//   metrics::Scope scope(*registry, "spaxos_replica", {{"replica", "0"}});
//   ReplicaExporter exporter(scope);
//   exporter.Export(replica.stats());   // every 100 ms on the loop
#ifndef DCTK_SPECULATIVE_PAXOS_TOOLS_PROCESS_METRICS_H_
#define DCTK_SPECULATIVE_PAXOS_TOOLS_PROCESS_METRICS_H_

#include <cstdint>

#include "common/metrics/component_metrics.h"
#include "speculative_paxos/replica.h"

namespace dctk::spaxos {

#define DCTK_SPAXOS_REPLICA_METRICS(COUNTER, GAUGE, HISTOGRAM)                         \
  COUNTER(requests_total, "Requests executed speculatively and appended")           \
  COUNTER(replies_total, "Replies sent to clients")                                  \
  COUNTER(commits_total, "Commit point advances")                                    \
  COUNTER(reconciliations_total, "Log changes started for a new epoch")             \
  COUNTER(view_changes_total, "Log changes started for a new view")                 \
  COUNTER(logs_installed_total, "Merged logs installed")                            \
  COUNTER(rolled_back_total, "Speculative entries rolled back")                     \
  COUNTER(transfers_total, "State transfers completed")                              \
  COUNTER(rejected_total, "Requests or messages ignored, all reasons")              \
  COUNTER(checkpoints_total, "Checkpoints taken (log compactions)")                  \
  COUNTER(snapshots_installed_total, "Checkpoints copied from another replica")      \
  GAUGE(commit_point, "Highest committed slot")                                      \
  GAUGE(log_entries, "Log entries held in memory (after compaction)")               \
  GAUGE(checkpoint_bytes, "Size of the newest serialized checkpoint")               \
  GAUGE(view, "Current view")
DCTK_METRICS_STRUCT(ReplicaMetrics, DCTK_SPAXOS_REPLICA_METRICS);

class ReplicaExporter {
 public:
  explicit ReplicaExporter(metrics::Scope& scope) : m_(ReplicaMetrics::Create(scope)) {}
  void Export(const Replica& r);

 private:
  ReplicaMetrics m_;
  ReplicaStats last_;
};

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_TOOLS_PROCESS_METRICS_H_
