// spaxos_over_mom_bench: Speculative Paxos over each MOM design on the real
// software data plane, with replicated unicast (no MOM) as the same-run
// baseline. Needs root (namespaces, veths, DPDK af_packet switches).
//
//   spaxos_over_mom_bench --switch_binary=bazel-bin/mom/switch/mom_switch
//       --node_binary=bazel-bin/speculative_paxos/over_mom/spaxos_mom_node
//       [--designs=unicast,naive,topology-aware,topology-aware-qos,serialized]
//       [--runs=1] [--clients_per_host=4] [--warmup_ms=500] [--duration_ms=3000]
//       [--host_port_mbps=100] [--background_mbps=40] [--resend_timeout_ms=10]
//       [--leader_timeout_ms=200] [--pause_leader_ms=0] [--max_datagram=1400]
//       [--transfer_chunk=256]
//       [--csv=FILE] [--verbose]
//
// Testbed: 2 leaves x 2 spines, 4 hosts per leaf, 4 mom_switch processes.
// Replicas on host0_0, host0_1 (leaf 0) and host1_0 (leaf 1); client
// processes on host0_2, host0_3, host1_2, host1_3 (both leaves, so copies of
// concurrent requests take paths of different lengths under the naive
// design); each client host also sends best-effort UDP to a replica on the
// other leaf at --background_mbps (as mom_measure does). Prints one row per
// design and run, and the load average before and after.
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "mom/controller/topology.h"
#include "mom/design.h"
#include "mom/testbed/testbed.h"
#include "speculative_paxos/over_mom/fabric_run.h"

ABSL_FLAG(std::string, switch_binary, "mom/switch/mom_switch", "mom_switch binary");
ABSL_FLAG(std::string, node_binary, "speculative_paxos/over_mom/spaxos_mom_node",
          "spaxos_mom_node binary");
ABSL_FLAG(std::string, designs, "unicast,naive,topology-aware,topology-aware-qos,serialized",
          "runs in this order; unicast = the baseline without MOM");
ABSL_FLAG(int, runs, 1, "repetitions of the whole list");
ABSL_FLAG(int, clients_per_host, 4, "closed-loop clients per client host (4 hosts)");
ABSL_FLAG(int, warmup_ms, 500, "per run, not measured");
ABSL_FLAG(int, duration_ms, 3000, "per run, measured");
ABSL_FLAG(double, host_port_mbps, 100, "line rate of switch ports facing hosts (0: unshaped)");
ABSL_FLAG(double, background_mbps, 40, "best-effort UDP per client host to a remote replica");
ABSL_FLAG(int, resend_timeout_ms, 10, "clients' resend timeout");
ABSL_FLAG(int, leader_timeout_ms, 200, "replicas' view-change timeout");
ABSL_FLAG(int, pause_leader_ms, 0,
          "> 0: stop the first leader (SIGSTOP) for this long a third into each run's "
          "measured window (a view change with the log it left uncommitted)");
ABSL_FLAG(int, max_datagram, 1400,
          "replicas' largest datagram (65507: log changes unsplit, the behaviour before "
          "ReplicaConfig.max_datagram)");
ABSL_FLAG(int, transfer_chunk, 256,
          "replicas' entries per state-transfer reply");
ABSL_FLAG(std::string, csv, "", "also write the rows here");
ABSL_FLAG(bool, verbose, false, "also print every process's counters line");

namespace dctk::spaxos {
namespace {

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return absl::StrCat(a, " ", b, " ", c);
}

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (geteuid() != 0) {
    std::fprintf(stderr, "spaxos_over_mom_bench: needs root (namespaces, veths, DPDK)\n");
    return 2;
  }
  std::vector<absl::optional<mom::Design>> designs;
  for (absl::string_view name : absl::StrSplit(absl::GetFlag(FLAGS_designs), ',', absl::SkipEmpty())) {
    if (name == "unicast") {
      designs.push_back(absl::nullopt);
      continue;
    }
    absl::StatusOr<mom::Design> d = mom::ParseDesign(name);
    if (!d.ok()) {
      std::fprintf(stderr, "--designs: %s\n", d.status().ToString().c_str());
      return 2;
    }
    designs.push_back(*d);
  }
  char* node = realpath(absl::GetFlag(FLAGS_node_binary).c_str(), nullptr);
  if (node == nullptr) {
    std::fprintf(stderr, "--node_binary=%s not found\n", absl::GetFlag(FLAGS_node_binary).c_str());
    return 2;
  }
  const std::string node_binary(node);
  free(node);
  char dir_template[] = "/tmp/spaxos_over_mom_XXXXXX";
  if (mkdtemp(dir_template) == nullptr) return 2;
  const std::string work_dir = dir_template;

  absl::StatusOr<mom::Topology> topo = mom::Topology::LeafSpine(2, 2, 4);
  if (!topo.ok()) return 2;
  absl::StatusOr<std::unique_ptr<mom::Testbed>> bed = mom::Testbed::Create(
      *std::move(topo), {.switch_binary = absl::GetFlag(FLAGS_switch_binary),
                         .host_port_mbps = absl::GetFlag(FLAGS_host_port_mbps)});
  if (!bed.ok()) {
    std::fprintf(stderr, "testbed: %s\n", bed.status().ToString().c_str());
    return 1;
  }
  const std::vector<int> h = (*bed)->topology().hosts();  // leaf 0: h[0..3], leaf 1: h[4..7]
  FabricRunConfig base{.replica_hosts = {h[0], h[1], h[4]},
                       .client_hosts = {h[2], h[3], h[6], h[7]},
                       .clients_per_host = absl::GetFlag(FLAGS_clients_per_host),
                       .warmup_ms = absl::GetFlag(FLAGS_warmup_ms),
                       .duration_ms = absl::GetFlag(FLAGS_duration_ms),
                       .background = {{h[2], h[4]}, {h[3], h[4]}, {h[6], h[0]}, {h[7], h[1]}},
                       .background_mbps = absl::GetFlag(FLAGS_background_mbps),
                       .resend_timeout_ms = absl::GetFlag(FLAGS_resend_timeout_ms),
                       .leader_timeout_ms = absl::GetFlag(FLAGS_leader_timeout_ms),
                       .pause_leader_ms = absl::GetFlag(FLAGS_pause_leader_ms),
                       .max_datagram = absl::GetFlag(FLAGS_max_datagram),
                       .transfer_chunk = absl::GetFlag(FLAGS_transfer_chunk),
                       .node_binary = node_binary,
                       .work_dir = work_dir};

  std::printf("# Speculative Paxos over MOM: 3 replicas, 4 client hosts x %d clients, host ports "
              "%.0f Mb/s, background %.0f Mb/s per client host, %d+%d ms per run, resend %d ms, "
              "leader timeout %d ms, leader paused %d ms, max datagram %d, transfer chunk %d\n",
              base.clients_per_host, absl::GetFlag(FLAGS_host_port_mbps), base.background_mbps,
              base.warmup_ms, base.duration_ms, base.resend_timeout_ms, base.leader_timeout_ms,
              base.pause_leader_ms, base.max_datagram, base.transfer_chunk);
  std::printf("# load average before: %s\n", LoadAverage().c_str());
  const std::string header =
      "design,run,clients,ops_per_s,p50_us,p99_us,fast_pct,slow,resends,reconcile_requests,"
      "reconciliations,view_changes,order_repairs,reorder_pct,reordered,messages,incomplete,"
      "mom_missing,stamp_gaps,queue_full,tx_full,no_route,unfinished,wrong";
  std::printf("%s\n", header.c_str());
  FILE* csv = nullptr;
  if (const std::string path = absl::GetFlag(FLAGS_csv); !path.empty()) {
    csv = std::fopen(path.c_str(), "w");
    if (csv != nullptr) std::fprintf(csv, "%s\n", header.c_str());
  }
  int failures = 0;
  for (int run = 1; run <= absl::GetFlag(FLAGS_runs); ++run) {
    for (size_t i = 0; i < designs.size(); ++i) {
      FabricRunConfig c = base;
      c.design = designs[i];
      c.group_id = static_cast<uint32_t>(30 + 10 * run + i);
      absl::StatusOr<FabricRunResult> r = RunSpaxosOverFabric(**bed, c);
      if (!r.ok()) {
        std::printf("%s,%d,FAILED: %s\n", RunName(c).c_str(), run, r.status().ToString().c_str());
        ++failures;
        continue;
      }
      const std::string row = absl::StrFormat(
          "%s,%d,%d,%.0f,%.0f,%.0f,%.2f,%lu,%lu,%lu,%lu,%lu,%lu,%.3f,%lu,%lu,%lu,%lu,%lu,%lu,%lu,%lu,%d,%lu",
          RunName(c), run, r->clients, r->ops_per_s, r->p50_us, r->p99_us,
          100 * r->fast_fraction(), r->slow, r->resends, r->reconcile_requests,
          r->reconciliations, r->view_changes, r->order_repairs, 100 * r->reorder.reorder_rate(),
          r->reorder.reordered, r->reorder.messages, r->reorder.incomplete, r->mom_missing,
          r->group_seq_missing, r->queue_full_drops, r->tx_full_drops, r->no_route_drops,
          r->unfinished, r->wrong);
      std::printf("%s\n", row.c_str());
      if (absl::GetFlag(FLAGS_verbose)) {
        for (const std::string& line : r->process_lines) std::printf("#   %s\n", line.c_str());
      }
      std::fflush(stdout);
      if (csv != nullptr) std::fprintf(csv, "%s\n", row.c_str());
    }
  }
  std::printf("# load average after: %s\n", LoadAverage().c_str());
  if (csv != nullptr) std::fclose(csv);
  std::string rm = "rm -rf " + work_dir;
  if (std::system(rm.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", work_dir.c_str());
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace dctk::spaxos

int main(int argc, char** argv) { return dctk::spaxos::Main(argc, argv); }
