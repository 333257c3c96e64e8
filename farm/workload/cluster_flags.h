// What a client program of a farmd cluster (farm_workload, farm_tatp) shares
// on its command line: the cluster's flags (--cm, --fabric, --host,
// --fabric_port, --first_id, --rpc_timeout_ms, --wait_ready_s), the run's
// (--seconds: 0 runs until SIGINT / SIGTERM, --report_ms, --seed), and the
// stop flag those signals set. Link this library and read the flags after
// absl::ParseCommandLine.
//
// Example:
//   absl::ParseCommandLine(argc, argv);
//   ClusterTatpOptions o;
//   SetFromClusterProgramFlags(&o);
//   RunClusterTatp(o, StopOnSignals(), stdout);
#ifndef DCTK_FARM_WORKLOAD_CLUSTER_FLAGS_H_
#define DCTK_FARM_WORKLOAD_CLUSTER_FLAGS_H_

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"
#include "farm/workload/cluster_clients.h"

namespace dctk::farm::workload {

struct ClusterProgramFlags {
  ClusterClientOptions clients;
  absl::Duration duration;      // --seconds; 0: InfiniteDuration (until a signal)
  absl::Duration report_every;  // --report_ms
  uint64_t seed;                // --seed
};
ClusterProgramFlags ReadClusterProgramFlags();

// Sets a run's options (ClusterWorkloadOptions, ClusterTatpOptions: clients,
// duration, report_every, seed) from the flags.
template <typename RunOptions>
void SetFromClusterProgramFlags(RunOptions* o) {
  const ClusterProgramFlags f = ReadClusterProgramFlags();
  o->clients = f.clients;
  o->duration = f.duration;
  o->report_every = f.report_every;
  o->seed = f.seed;
}

// Installs SIGINT and SIGTERM handlers that set the returned flag.
const std::atomic<bool>& StopOnSignals();

}  // namespace dctk::farm::workload

#endif  // DCTK_FARM_WORKLOAD_CLUSTER_FLAGS_H_
