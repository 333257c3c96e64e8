// Prometheus metrics of the spaxos_replica and spaxos_client processes.
//
// Replicas and clients keep plain counters (ReplicaStats, ClientStats) so the
// message path makes no metric calls; a process exports them by calling
// Export() on its transport's loop (a periodic timer), which adds the change
// since the last call to Prometheus counters declared once below. A client
// process also records each completion's latency in a histogram as it
// completes (the library's LatencyHistogram has fixed buckets only).
// ServeMetrics starts what a process's --metrics=ip:port flag asks for.
//
// Example:
//   absl::StatusOr<ServedMetrics> served =
//       ServeMetrics("127.0.0.1:0", "spaxos_replica", {{"replica", "0"}});
//   ReplicaExporter exporter(*served->scope);
//   exporter.Export(replica);   // every 100 ms on the loop
#ifndef DCTK_SPECULATIVE_PAXOS_TOOLS_PROCESS_METRICS_H_
#define DCTK_SPECULATIVE_PAXOS_TOOLS_PROCESS_METRICS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/metrics/component_metrics.h"
#include "common/metrics/metrics_server.h"
#include "common/metrics/registry.h"
#include "speculative_paxos/client.h"
#include "speculative_paxos/replica.h"

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
  // One completion (on the loop, as it completes).
  void RecordLatency(absl::Duration latency) {
    m_.latency.Record(static_cast<uint64_t>(absl::ToInt64Nanoseconds(latency)));
  }

 private:
  ClientMetrics m_;
  ClientStats last_;
};

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_TOOLS_PROCESS_METRICS_H_
