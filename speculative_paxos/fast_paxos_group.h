// FastPaxosGroup: three FastPaxosReplicas (KvApp) and closed-loop KV
// clients on one SimTransport, recording the history for the
// linearizability checker (tests of the Fast Paxos baseline).
//
// Example:
//   FastPaxosGroup g(/*seed=*/1);
//   g.StartClients(/*clients=*/4, /*ops=*/25, /*keys=*/8);
//   ASSERT_TRUE(g.net.RunUntil([&] { return g.Done(); }, absl::Seconds(5)));
//   g.Crash(0);  // the coordinator of view 0
#ifndef DCTK_SPECULATIVE_PAXOS_FAST_PAXOS_GROUP_H_
#define DCTK_SPECULATIVE_PAXOS_FAST_PAXOS_GROUP_H_

#include <memory>
#include <string>
#include <vector>

#include "common/transport/sim_transport.h"
#include "speculative_paxos/client.h"
#include "speculative_paxos/client_endpoint.h"
#include "speculative_paxos/fast_paxos_replica.h"
#include "speculative_paxos/kv_app.h"
#include "speculative_paxos/lincheck.h"

namespace dctk::spaxos {

class FastPaxosGroup {
 public:
  explicit FastPaxosGroup(uint64_t seed, FastPaxosConfig config = {});

  // `clients` closed-loop clients doing `ops` random GET / PUT / CAS each
  // over `keys` keys; with `shared`, all on one ClientEndpoint (their
  // requests of one turn in one RequestBatch).
  void StartClients(int clients, int ops, int keys, bool shared = false);
  // Every client finished its operations.
  bool Done() const;
  // The live replicas are all normal in one view with equal logs, one of
  // them its coordinator.
  bool Agree() const;
  // Destroys replica i (a crash; it does not come back).
  void Crash(int i);
  // The live replica that coordinates its view (nullptr if none).
  FastPaxosReplica* Coordinator() const;
  // Every live pair of apps holds the same value for keys k0 .. k<keys-1>.
  bool SameStores(int keys) const;
  // Largest datagram a replica sent (frame header included).
  size_t largest() const { return largest_; }
  // Sums of a stat over all replicas ever created.
  uint64_t Sum(uint64_t FastPaxosStats::*field) const;

  transport::SimTransport net;
  FastPaxosConfig config;
  std::vector<std::unique_ptr<KvApp>> apps;
  std::vector<std::unique_ptr<FastPaxosReplica>> replicas;
  std::unique_ptr<ClientEndpoint> endpoint;
  std::vector<std::unique_ptr<Client>> clients;
  KvHistory history;

 private:
  void Next(int j);

  std::vector<int> remaining_;
  uint64_t counter_ = 0;
  int keys_ = 1;
  size_t largest_ = 0;
  // Stats of crashed replicas, kept for Sum().
  std::vector<FastPaxosStats> gone_;
};

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_FAST_PAXOS_GROUP_H_
