// spaxos_replica: one replica process (Speculative Paxos, or a baseline) on
// UdpTransport, configured from a common/config cluster file, serving the
// shipped KV store or the null app.
//
//   spaxos_replica --config=shard.conf --group=shard0 --index=1 [--protocol=spaxos|vr|unreplicated]
//                  [--app=kv|null] [--multicast=shard0-ordered [--mom]] [--batch=1] [--recover]
//                  [--metrics=127.0.0.1:9464] [--inject_reorder=0.001 [--inject_delay=50us]]
//
// --inject_reorder=<rate> (fault injection, any protocol): each client request
// datagram (Request, RequestBatch) this replica receives is, with probability
// <rate>, held back for a random time up to --inject_delay (default 50us) so
// later ones overtake it: the paper's injected reordering on real processes,
// decided independently at each replica (seed --inject_seed + index). Replica
// messages are never held. At exit it prints how many were held.
// --metrics=ip:port (port 0: any, printed on stderr as "replica N
// metrics_port=PORT") serves the replica's counters for Prometheus (spaxos:
// requests, commits, reconciliations, view changes, rollbacks, transfers,
// commit point, view; the VR and Fast Paxos baselines' own counters; the
// unreplicated server refuses it).
// --recover (spaxos): this replica restarted and lost its state; it rejoins
// through the recovery protocol (VR has no recovery: a crashed VR replica
// stays down, and the others change view). SIGINT / SIGTERM stop it cleanly.
// Other binaries serve their own App through ReplicaMain (replica_main.h).
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "speculative_paxos/kv_app.h"
#include "speculative_paxos/tools/replica_main.h"

ABSL_FLAG(std::string, app, "kv", "kv or null");

int main(int argc, char** argv) {
  using dctk::spaxos::App;
  return dctk::spaxos::ReplicaMain(argc, argv, []() -> absl::StatusOr<std::unique_ptr<App>> {
    const std::string app = absl::GetFlag(FLAGS_app);
    if (app == "kv") return std::make_unique<dctk::spaxos::KvApp>();
    if (app == "null") return std::make_unique<dctk::spaxos::NullApp>();
    return absl::InvalidArgumentError(absl::StrCat("--app: '", app, "' is not kv or null"));
  });
}
