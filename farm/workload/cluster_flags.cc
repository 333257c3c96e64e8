#include "farm/workload/cluster_flags.h"

#include <signal.h>

#include <string>

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, cm, "",
          "the CM service's control address host:port (cm_driver or farmd --role=cm)");
ABSL_FLAG(std::string, fabric, "net", "net | shm: the cluster's fabric (shm: same host only)");
ABSL_FLAG(std::string, host, "127.0.0.1",
          "IP this client's net fabric listens on (its own address)");
ABSL_FLAG(int, fabric_port, 0,
          "net fabric port of the first thread (thread i: +i); 0: any free ports");
ABSL_FLAG(uint32_t, first_id, 100,
          "fabric id of the first client thread (ids first_id.. must be unused)");
ABSL_FLAG(int, rpc_timeout_ms, 300,
          "a coordinator gives up on a message after this long (a dead machine)");
ABSL_FLAG(int, wait_ready_s, 60, "how long to wait for the cluster to finish starting");
ABSL_FLAG(double, seconds, 0, "run length; 0: until SIGINT / SIGTERM");
ABSL_FLAG(int, report_ms, 1000, "progress line interval");
ABSL_FLAG(uint64_t, seed, 1, "random seed of the run");

namespace dctk::farm::workload {
namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop.store(true); }
}  // namespace

ClusterProgramFlags ReadClusterProgramFlags() {
  ClusterProgramFlags f;
  f.clients.cm_address = absl::GetFlag(FLAGS_cm);
  f.clients.fabric = absl::GetFlag(FLAGS_fabric);
  f.clients.host = absl::GetFlag(FLAGS_host);
  f.clients.fabric_port = absl::GetFlag(FLAGS_fabric_port);
  f.clients.first_id = absl::GetFlag(FLAGS_first_id);
  f.clients.rpc_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_rpc_timeout_ms));
  f.clients.wait_ready = absl::Seconds(absl::GetFlag(FLAGS_wait_ready_s));
  const double seconds = absl::GetFlag(FLAGS_seconds);
  f.duration = seconds > 0 ? absl::Seconds(seconds) : absl::InfiniteDuration();
  f.report_every = absl::Milliseconds(absl::GetFlag(FLAGS_report_ms));
  f.seed = absl::GetFlag(FLAGS_seed);
  return f;
}

const std::atomic<bool>& StopOnSignals() {
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  return g_stop;
}

}  // namespace dctk::farm::workload
