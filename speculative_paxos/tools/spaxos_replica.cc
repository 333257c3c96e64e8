// spaxos_replica: one replica process (Speculative Paxos, or a baseline) on
// UdpTransport, configured from a common/config cluster file, serving the
// shipped KV store or the null app.
//
//   spaxos_replica --config=shard.conf --group=shard0 --index=1
//                  [--protocol=spaxos|vr|fastpaxos|unreplicated] [--app=kv|null]
//                  [--multicast=shard0-ordered [--mom] | --mom_fabric=shard.mom] [--batch=1]
//                  [--recover] [--checkpoint_interval=4096] [--max_datagram=1400]
//                  [--metrics=127.0.0.1:9464] [--inject_reorder=0.001 [--inject_delay=50us]]
//
// --recover (spaxos, vr): this replica restarted and lost its state; it
// rejoins through its protocol's recovery (Speculative Paxos: learns the
// newest stamp and rejoins through a newer one; VR: VR Revisited's recovery),
// copying a checkpoint if the others compacted. Fast Paxos has none (an
// acceptor that forgot its votes could vote twice in one ballot), so a
// crashed Fast Paxos replica stays down and the others change coordinator.
// --checkpoint_interval (spaxos, vr): log compaction; 0 keeps the whole log.
// --inject_reorder=<rate> (fault injection, any protocol): each client request
// datagram (Request, RequestBatch) this replica receives is, with probability
// <rate>, held back for a random time up to --inject_delay (default 50us) so
// later ones overtake it: the paper's injected reordering on real processes,
// decided independently at each replica (seed --inject_seed + index). Replica
// messages are never held. At exit it prints how many were held.
// --metrics=ip:port (port 0: any, printed on stderr as "replica N
// metrics_port=PORT") serves the replica's counters for Prometheus (spaxos:
// requests, commits, reconciliations, view changes, rollbacks, transfers,
// commit point, view; the VR and Fast Paxos baselines' own counters).
// A flag the chosen protocol would ignore is refused (exit 2, naming why).
// SIGINT / SIGTERM stop it cleanly (Speculative Paxos and Fast Paxos replicas
// print their counters).
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
