// farm_workload: the client workload of the main job against a running farmd
// cluster (cluster_workload.h): bank transfers and hashtable lookups, one
// `progress` line per --report_ms, a `summary` and an `invariant` line at the
// end (after --seconds, or at SIGINT / SIGTERM). Exit status 0 iff the
// invariant (total balance, ledger, journals, lookups) holds; 1 if not; 2 on
// bad flags or when the cluster cannot be joined.
//
//   farm_workload --cm=10.88.0.2:7101 --host=10.88.0.9 --fabric=net --fabric_port=7110 \
//                 --transfer_threads=2 --lookup_threads=1
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "farm/workload/cluster_workload.h"

ABSL_FLAG(std::string, cm, "", "the CM service's control address host:port (cm_driver or farmd --role=cm)");
ABSL_FLAG(std::string, fabric, "net", "net | shm");
ABSL_FLAG(std::string, host, "127.0.0.1", "IP this client's net fabric listens on (its own address)");
ABSL_FLAG(int, fabric_port, 0, "net fabric port of the first thread (thread i: +i); 0: any free ports");
ABSL_FLAG(uint32_t, first_id, 100, "fabric id of the first client thread (ids first_id.. must be unused)");
ABSL_FLAG(int, transfer_threads, 2, "threads making bank transfers");
ABSL_FLAG(int, lookup_threads, 1, "threads looking up hashtable keys (lock-free one-sided reads)");
ABSL_FLAG(int, accounts, 64, "bank accounts");
ABSL_FLAG(int, lookup_keys, 256, "keys in the hashtable the lookup threads read");
ABSL_FLAG(int, lookup_shards, 0, "shards of the hashtable (farm/kv TxHashTable); 0: one per FaRM machine");
ABSL_FLAG(bool, update_table, true, "each transfer writes its record into its source account's hashtable entry");
ABSL_FLAG(uint64_t, initial, 1000, "initial balance of each account");
ABSL_FLAG(double, seconds, 0, "run length; 0: until SIGINT / SIGTERM");
ABSL_FLAG(int, report_ms, 1000, "progress line interval");
ABSL_FLAG(int, rpc_timeout_ms, 300, "a coordinator gives up on a message after this long (a dead machine)");
ABSL_FLAG(int, wait_ready_s, 60, "how long to wait for the cluster to finish starting");
ABSL_FLAG(uint64_t, seed, 1, "random seed of the transfers");

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop.store(true); }
}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  dctk::farm::workload::ClusterWorkloadOptions o;
  o.cm_address = absl::GetFlag(FLAGS_cm);
  o.fabric = absl::GetFlag(FLAGS_fabric);
  o.host = absl::GetFlag(FLAGS_host);
  o.fabric_port = absl::GetFlag(FLAGS_fabric_port);
  o.first_id = absl::GetFlag(FLAGS_first_id);
  o.transfer_threads = absl::GetFlag(FLAGS_transfer_threads);
  o.lookup_threads = absl::GetFlag(FLAGS_lookup_threads);
  o.accounts = absl::GetFlag(FLAGS_accounts);
  o.lookup_keys = absl::GetFlag(FLAGS_lookup_keys);
  o.lookup_shards = absl::GetFlag(FLAGS_lookup_shards);
  o.update_table = absl::GetFlag(FLAGS_update_table);
  o.initial = absl::GetFlag(FLAGS_initial);
  if (absl::GetFlag(FLAGS_seconds) > 0) o.duration = absl::Seconds(absl::GetFlag(FLAGS_seconds));
  o.report_every = absl::Milliseconds(absl::GetFlag(FLAGS_report_ms));
  o.rpc_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_rpc_timeout_ms));
  o.wait_ready = absl::Seconds(absl::GetFlag(FLAGS_wait_ready_s));
  o.seed = absl::GetFlag(FLAGS_seed);
  absl::StatusOr<dctk::farm::workload::ClusterWorkloadResult> r =
      dctk::farm::workload::RunClusterWorkload(o, g_stop, stdout);
  if (!r.ok()) {
    fprintf(stderr, "farm_workload: %s\n", r.status().ToString().c_str());
    return 2;
  }
  return r->invariant.ok() ? 0 : 1;
}
