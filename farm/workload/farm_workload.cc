// farm_workload: the client workload of the main job against a running farmd
// cluster (cluster_workload.h): bank transfers and hashtable lookups, one
// `progress` line per --report_ms, a `summary` and an `invariant` line at the
// end (after --seconds, or at SIGINT / SIGTERM). Exit status 0 iff the
// invariant (total balance, ledger, journals, lookups) holds; 1 if not; 2 on
// bad flags or when the cluster cannot be joined. The cluster's flags (--cm,
// --fabric, ...): cluster_flags.h.
//
//   farm_workload --cm=10.88.0.2:7101 --host=10.88.0.9 --fabric=net --fabric_port=7110 \
//                 --transfer_threads=2 --lookup_threads=1
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "farm/workload/cluster_flags.h"
#include "farm/workload/cluster_workload.h"

ABSL_FLAG(int, transfer_threads, 2, "threads making bank transfers");
ABSL_FLAG(int, lookup_threads, 1, "threads looking up hashtable keys (lock-free one-sided reads)");
ABSL_FLAG(int, accounts, 64, "bank accounts");
ABSL_FLAG(int, lookup_keys, 256, "keys in the hashtable the lookup threads read");
ABSL_FLAG(int, lookup_shards, 0, "shards of the hashtable (farm/kv TxHashTable); 0: one per FaRM machine");
ABSL_FLAG(bool, update_table, true, "each transfer writes its record into its source account's hashtable entry");
ABSL_FLAG(uint64_t, initial, 1000, "initial balance of each account");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  dctk::farm::workload::ClusterWorkloadOptions o;
  dctk::farm::workload::SetFromClusterProgramFlags(&o);
  o.transfer_threads = absl::GetFlag(FLAGS_transfer_threads);
  o.lookup_threads = absl::GetFlag(FLAGS_lookup_threads);
  o.accounts = absl::GetFlag(FLAGS_accounts);
  o.lookup_keys = absl::GetFlag(FLAGS_lookup_keys);
  o.lookup_shards = absl::GetFlag(FLAGS_lookup_shards);
  o.update_table = absl::GetFlag(FLAGS_update_table);
  o.initial = absl::GetFlag(FLAGS_initial);
  absl::StatusOr<dctk::farm::workload::ClusterWorkloadResult> r =
      dctk::farm::workload::RunClusterWorkload(o, dctk::farm::workload::StopOnSignals(), stdout);
  if (!r.ok()) {
    fprintf(stderr, "farm_workload: %s\n", r.status().ToString().c_str());
    return 2;
  }
  return r->invariant.ok() ? 0 : 1;
}
