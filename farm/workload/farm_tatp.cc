// farm_tatp: TATP against a running farmd cluster (cluster_tatp.h): --threads
// coordinator threads, one FarmClient each, load --subscribers, a baseline
// (one remote object), then the standard mix for --seconds (0: until SIGINT /
// SIGTERM) with a `progress` line per --report_ms and `summary` and `phases`
// (or, with --ship, `ship`) lines at the end. Exit status 0 if transactions
// committed, 1 if none did, 2 on bad flags or when the cluster cannot be
// joined or loaded. The cluster's flags (--cm, --fabric (default net), ...):
// cluster_flags.h.
//
//   farm_tatp --cm=127.0.0.1:PORT --fabric=shm --threads=2 --subscribers=3000 --seconds=10 [--ship]
// (against `tools/dctk farm cluster`, which prints the CM address; --ship
// needs its machines started with --ship_workers=N)
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "farm/workload/cluster_flags.h"
#include "farm/workload/cluster_tatp.h"

ABSL_FLAG(int, threads, 2, "coordinator threads (one FarmClient each)");
ABSL_FLAG(int, subscribers, 3000, "TATP subscribers");
ABSL_FLAG(bool, ship, false,
          "ship read-write transactions to their subscriber's primary (farmd --ship_workers)");
ABSL_FLAG(int, baseline_ops, 2000,
          "one-remote-object transactions timed before the mix, per kind; 0: none");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  dctk::farm::workload::ClusterTatpOptions o;
  dctk::farm::workload::SetFromClusterProgramFlags(&o);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.subscribers = absl::GetFlag(FLAGS_subscribers);
  o.ship = absl::GetFlag(FLAGS_ship);
  o.baseline_ops = absl::GetFlag(FLAGS_baseline_ops);
  absl::StatusOr<dctk::farm::workload::ClusterTatpResult> r =
      dctk::farm::workload::RunClusterTatp(o, dctk::farm::workload::StopOnSignals(), stdout);
  if (!r.ok()) {
    fprintf(stderr, "farm_tatp: %s\n", r.status().ToString().c_str());
    return 2;
  }
  return r->read_only + r->read_write > 0 ? 0 : 1;
}
