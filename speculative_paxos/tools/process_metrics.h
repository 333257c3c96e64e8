// Prometheus metrics of the spaxos_replica and spaxos_client processes.
//
// Replicas of every protocol and clients keep plain counters (ReplicaStats,
// VrStats, FastPaxosStats, ClientStats) so the
// message path makes no metric calls; a process exports them by calling
// Export() on its transport's loop (a periodic timer), which adds the change
// since the last call to Prometheus counters declared once below (and, for a
// client process, the latencies ClientStats recorded since, to its latency
// histogram).
// ServeMetrics starts what a process's --metrics=ip:port flag asks for;
// ServeReplicaMetrics also picks the exporter of the replica's protocol.
//
// Example:
//   absl::StatusOr<ServedReplicaMetrics> served =
//       ServeReplicaMetrics("127.0.0.1:0", /*index=*/0, replica);
//   served->export_once();   // every 100 ms on the loop
#ifndef DCTK_SPECULATIVE_PAXOS_TOOLS_PROCESS_METRICS_H_
#define DCTK_SPECULATIVE_PAXOS_TOOLS_PROCESS_METRICS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/metrics/component_metrics.h"
#include "common/metrics/metrics_server.h"
#include "common/metrics/registry.h"
#include "speculative_paxos/client.h"
#include "speculative_paxos/fast_paxos_replica.h"
#include "speculative_paxos/replica.h"
#include "speculative_paxos/vr_replica.h"

namespace dctk::spaxos {

// A process's metrics served at /metrics: add them through `scope`.
struct ServedMetrics {
  std::shared_ptr<metrics::Registry> registry;
  std::unique_ptr<metrics::Scope> scope;
  std::unique_ptr<metrics::MetricsServer> server;
};

// Serves a new registry at `address` ("ip:port"; port 0 picks one), its
// metrics named "<prefix>_..." with `labels`.
absl::StatusOr<ServedMetrics> ServeMetrics(const std::string& address, std::string prefix,
                                           prometheus::Labels labels);

#define DCTK_SPAXOS_REPLICA_METRICS(COUNTER, GAUGE, HISTOGRAM)                  \
  COUNTER(requests_total, "Requests executed speculatively and appended")       \
  COUNTER(replies_total, "Replies sent to clients")                             \
  COUNTER(commits_total, "Commit point advances")                               \
  COUNTER(reconciliations_total, "Log changes started for a new epoch")         \
  COUNTER(view_changes_total, "Log changes started for a new view")             \
  COUNTER(logs_installed_total, "Merged logs installed")                        \
  COUNTER(rolled_back_total, "Speculative entries rolled back")                 \
  COUNTER(transfers_total, "State transfers completed")                         \
  COUNTER(rejected_total, "Requests or messages ignored, all reasons")          \
  COUNTER(checkpoints_total, "Checkpoints taken (log compactions)")             \
  COUNTER(snapshots_installed_total, "Checkpoints copied from another replica") \
  GAUGE(commit_point, "Highest committed slot")                                 \
  GAUGE(log_entries, "Log entries held in memory (after compaction)")           \
  GAUGE(checkpoint_bytes, "Size of the newest serialized checkpoint")           \
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

// The baselines' replicas (prefixes vr_replica, fastpaxos_replica).
#define DCTK_VR_REPLICA_METRICS(COUNTER, GAUGE, HISTOGRAM)                                  \
  COUNTER(requests_total, "Leader: new client requests appended")                           \
  COUNTER(duplicates_total, "Leader: requests already in the log (answered again if done)") \
  COUNTER(prepares_total, "Leader: prepare rounds sent (one per batch)")                    \
  COUNTER(executed_total, "Committed entries executed")                                     \
  COUNTER(view_changes_total, "Views this replica became normal in, after the first")       \
  COUNTER(recoveries_total, "Recoveries completed")                                         \
  COUNTER(checkpoints_total, "Checkpoints taken (log compactions)")                         \
  COUNTER(snapshots_installed_total, "Checkpoints copied from another replica")             \
  GAUGE(view, "Current view")
DCTK_METRICS_STRUCT(VrMetrics, DCTK_VR_REPLICA_METRICS);

class VrExporter {
 public:
  explicit VrExporter(metrics::Scope& scope) : m_(VrMetrics::Create(scope)) {}
  void Export(const VrReplica& r);

 private:
  VrMetrics m_;
  VrStats last_;
};

#define DCTK_FAST_PAXOS_REPLICA_METRICS(COUNTER, GAUGE, HISTOGRAM)                      \
  COUNTER(votes_total, "Requests this replica accepted in a fast slot")                 \
  COUNTER(fast_decisions_total, "Coordinator: slots chosen by the fast quorum's votes") \
  COUNTER(classic_rounds_total, "Coordinator: classic rounds run")                      \
  COUNTER(classic_entries_total, "Coordinator: entries chosen in classic rounds")       \
  COUNTER(executed_total, "Chosen entries executed")                                    \
  COUNTER(fetched_total, "Follower: chosen entries copied from another replica")        \
  COUNTER(view_changes_total, "Views this replica became normal in, after the first")   \
  COUNTER(merge_conflicts_total,                                                        \
          "Coordinator changes: kept values repeating a request (must be 0)")           \
  GAUGE(view, "Current view")
DCTK_METRICS_STRUCT(FastPaxosMetrics, DCTK_FAST_PAXOS_REPLICA_METRICS);

class FastPaxosExporter {
 public:
  explicit FastPaxosExporter(metrics::Scope& scope) : m_(FastPaxosMetrics::Create(scope)) {}
  void Export(const FastPaxosReplica& r);

 private:
  FastPaxosMetrics m_;
  FastPaxosStats last_;
};

// A replica's metrics served at /metrics, and the call that exports its stats.
struct ServedReplicaMetrics {
  ServedMetrics served;
  std::function<void()> export_once;  // on the replica's loop
};

// Serves `node`'s stats at `address` as spaxos_replica_*, vr_replica_* or
// fastpaxos_replica_* (label replica="<index>"): a Replica, VrReplica or
// FastPaxosReplica, which must outlive the result. Unimplemented for others
// (the unreplicated server keeps no stats).
absl::StatusOr<ServedReplicaMetrics> ServeReplicaMetrics(const std::string& address, int index,
                                                         const transport::TransportReceiver& node);

#define DCTK_SPAXOS_CLIENT_METRICS(COUNTER, GAUGE, HISTOGRAM)                               \
  COUNTER(completed_total, "Requests completed (operations)")                               \
  COUNTER(fast_path_total,                                                                  \
          "Speculative successes: completed on a superquorum of matching speculative "      \
          "replies, in one round trip")                                                     \
  COUNTER(slow_path_total,                                                                  \
          "Fallbacks: completed on the leader's committed reply or f+1 durable replies "    \
          "(every completion of a leader-based protocol)")                                  \
  COUNTER(resends_total, "Retries: requests sent again after the resend timeout")           \
  COUNTER(reconcile_requests_total, "Messages asking the leader to sync or reconcile")      \
  COUNTER(early_commit_requests_total, "Of those: sent after commit_wait")                  \
  GAUGE(speculative_success_rate, "fast_path_total / completed_total (0 before the first)") \
  HISTOGRAM(latency, "Time from a request's Invoke to its completion")
DCTK_METRICS_STRUCT(ClientMetrics, DCTK_SPAXOS_CLIENT_METRICS);

class ClientExporter {
 public:
  explicit ClientExporter(metrics::Scope& scope) : m_(ClientMetrics::Create(scope)) {}
  // `total`: the stats of every client of the process, summed (ClientStats::Add).
  void Export(const ClientStats& total);

 private:
  ClientMetrics m_;
  ClientStats last_;
};

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_TOOLS_PROCESS_METRICS_H_
