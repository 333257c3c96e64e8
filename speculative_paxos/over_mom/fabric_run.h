// RunSpaxosOverFabric: one Speculative Paxos run on the MOM testbed (mom/testbed:
// namespaces + mom_switch processes). Replica processes (spaxos_mom_node
// --role=replica) run in the replica hosts' namespaces; client processes (one
// per client host, several closed-loop clients each) multicast every request
// through the MOM group the controller computed for the design, or, for the
// baseline (no design), send one unicast copy per replica through the same
// switches. Optional paced best-effort UDP background between host pairs (as
// mom_measure does) loads the shaped host ports.
//
// Reported: throughput and latency of measured completions, the clients'
// speculative successes (fast path) and fallbacks, the replicas'
// reconciliations, view changes and order repairs, MOM losses the replicas
// saw, and the reorder rate (mom/measure/reorder.h) of the requests' arrival
// orders at the replicas, recorded inside the replica processes.
//
// Example:
//   FabricRunConfig c{.design = Design::kSerialized, .group_id = 31,
//                     .replica_hosts = {h0, h4, h5}, .client_hosts = {h1, h6},
//                     .node_binary = "bazel-bin/speculative_paxos/over_mom/spaxos_mom_node",
//                     .work_dir = "/tmp/run"};
//   absl::StatusOr<FabricRunResult> r = RunSpaxosOverFabric(*bed, c);
#ifndef DCTK_SPECULATIVE_PAXOS_OVER_MOM_FABRIC_RUN_H_
#define DCTK_SPECULATIVE_PAXOS_OVER_MOM_FABRIC_RUN_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/optional.h"
#include "mom/design.h"
#include "mom/measure/reorder.h"
#include "mom/testbed/testbed.h"

namespace dctk::spaxos {

struct FabricRunConfig {
  // The MOM design; nullopt: the baseline, replicated unicast (no MOM support
  // in the network; requests still carry MomPacket headers, so the replicas
  // record their arrival order the same way).
  absl::optional<mom::Design> design;
  uint32_t group_id = 30;
  std::vector<int> replica_hosts;  // 2f+1 host nodes
  std::vector<int> client_hosts;   // one client process each
  int clients_per_host = 4;
  int warmup_ms = 500;
  int duration_ms = 3000;
  // > 0: a correctness run (PUT / GET pairs checked per client) instead of load.
  int verify_ops = 0;
  // Best-effort UDP, 1000-byte datagrams, from -> to host, each at background_mbps.
  std::vector<std::pair<int, int>> background;
  double background_mbps = 0;
  int resend_timeout_ms = 10;   // clients' resend timeout
  int leader_timeout_ms = 200;  // replicas' view-change timeout
  // > 0: a third into the measured window, replica 0 (the first leader) is
  // stopped (SIGSTOP) for this long, then continued: the others change the
  // view with the log it left uncommitted, it rejoins by state transfer.
  int pause_leader_ms = 0;
  // Replicas' ReplicaConfig.max_datagram and transfer_chunk (its defaults).
  int max_datagram = 1400;
  int transfer_chunk = 256;
  std::string node_binary;  // spaxos_mom_node
  std::string work_dir;     // existing directory for the processes' files
};

struct FabricRunResult {
  int clients = 0;
  uint64_t completed = 0;  // all completions
  uint64_t measured = 0;   // completions inside the measured window
  double window_s = 0;
  double ops_per_s = 0;    // measured / window (summed over client processes)
  double p50_us = 0, p99_us = 0;  // latency of measured completions
  uint64_t fast = 0, slow = 0, resends = 0, reconcile_requests = 0, early_commit_requests = 0;
  uint64_t wrong = 0;      // verify: GETs that did not return the value just PUT
  int unfinished = 0;      // requests abandoned at the end (a stalled client)
  uint64_t reconciliations = 0, view_changes = 0;  // the most any replica started
  uint64_t order_repairs = 0, rolled_back = 0, transfers = 0;  // summed over replicas
  uint64_t mom_missing = 0, group_seq_missing = 0;  // summed over replicas
  // All switches, during the run: port queue overflows, frames the device
  // refused, frames without a route.
  uint64_t queue_full_drops = 0, tx_full_drops = 0, no_route_drops = 0;
  mom::ReorderReport reorder;  // requests' arrival orders at the replicas
  std::vector<std::string> process_lines;  // each process's "client ..." / "replica ..." line

  double fast_fraction() const {
    return completed == 0 ? 0.0 : static_cast<double>(fast) / static_cast<double>(completed);
  }
};

absl::StatusOr<FabricRunResult> RunSpaxosOverFabric(mom::Testbed& bed,
                                                    const FabricRunConfig& config);

// "naive", ..., or "unicast" for the baseline.
std::string RunName(const FabricRunConfig& config);

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_OVER_MOM_FABRIC_RUN_H_
