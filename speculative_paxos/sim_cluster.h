// SimCluster: 2f+1 Speculative Paxos replicas (KV app) and clients on a
// SimTransport, for tests. It records every client operation as a KvHistory
// for the linearizability checker, and crashes / restarts replicas (a restart
// builds a fresh replica object and app: all state is lost).
//
// Example:
//   SimCluster c({.seed = 7, .num_clients = 2});
//   c.Put(0, "k", "v");
//   ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(1)));
//   EXPECT_OK(CheckLinearizable(c.history()));
#ifndef DCTK_SPECULATIVE_PAXOS_SIM_CLUSTER_H_
#define DCTK_SPECULATIVE_PAXOS_SIM_CLUSTER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/transport/sim_transport.h"
#include "common/transport/timeout.h"
#include "speculative_paxos/client.h"
#include "speculative_paxos/kv_app.h"
#include "speculative_paxos/lincheck.h"
#include "speculative_paxos/replica.h"

namespace dctk::spaxos {

struct SimClusterOptions {
  uint64_t seed = 1;
  int num_replicas = 3;
  int num_clients = 1;
  bool multicast = false;
  // Clients send requests through a MOM group (IP multicast delivery).
  bool mom = false;
  // Clients share one ClientEndpoint (requests batched per replica); not with mom.
  bool shared_endpoint = false;
  ReplicaConfig replica;  // `replicas` and `group` are filled in
  absl::Duration resend_timeout = absl::Milliseconds(10);
};

class SimCluster {
 public:
  explicit SimCluster(SimClusterOptions options);
  ~SimCluster();

  transport::SimTransport& net() { return net_; }
  int num_replicas() const { return static_cast<int>(replicas_.size()); }
  int num_clients() const { return static_cast<int>(clients_.size()); }
  // nullptr while crashed.
  Replica* replica(int i) { return replicas_[i].get(); }
  KvApp* app(int i) { return apps_[i].get(); }
  Client& client(int j) { return *clients_[j]; }
  // The shared endpoint (options.shared_endpoint), or nullptr.
  ClientEndpoint* endpoint() { return endpoint_.get(); }
  const transport::Address& replica_address(int i) const { return config_.replicas[i]; }
  const KvHistory& history() const { return history_; }

  // Issues an op on client j and records it; `done` (optional) sees the result.
  void Invoke(int j, const std::string& op, std::function<void(const KvResult&)> done = {});
  bool ClientsIdle() const;
  // Runs until every client is idle (and `extra` holds, if given).
  bool RunUntilIdleClients(absl::Duration limit, std::function<bool()> extra = {});

  void Crash(int i);
  void Restart(int i);

  // Compares every running replica's committed prefix with what any replica
  // ever committed (slot -> hash); returns the first disagreement. Runs every
  // millisecond of virtual time on its own; call it at the end too.
  absl::Status CheckCommitted();
  const absl::Status& commit_violation() const { return commit_violation_; }

  // Drives every client in a closed loop for `ops_per_client` random
  // GET/PUT/CAS operations over `num_keys` keys (choices from the net's RNG).
  void StartClosedLoop(int ops_per_client, int num_keys);

  // Datagrams the replicas sent (every copy, counted before any filter):
  // how many of one message type, and the largest (frame header included).
  uint64_t replica_datagrams(uint32_t type_id) const;
  size_t max_replica_datagram() const { return max_replica_datagram_; }

  // The current leader among running normal replicas with the newest stamp, or -1.
  int Leader() const;
  // True when every running replica is normal in the leader's stamp and has
  // committed the leader's whole log.
  bool Converged() const;

 private:
  SimClusterOptions options_;
  transport::SimTransport net_;
  ReplicaConfig config_;
  std::vector<std::unique_ptr<KvApp>> apps_;
  std::vector<std::unique_ptr<Replica>> replicas_;
  std::unique_ptr<ClientEndpoint> endpoint_;  // outlives clients_
  std::vector<std::unique_ptr<Client>> clients_;
  void IssueRandom(int j);

  KvHistory history_;
  std::vector<std::string> committed_hashes_;  // [slot - 1], "" if not seen
  std::vector<uint64_t> verified_;             // per replica: slots checked
  absl::Status commit_violation_;
  std::vector<int> remaining_ops_;
  int num_keys_ = 1;
  uint64_t value_counter_ = 0;
  std::unique_ptr<transport::Timeout> commit_checker_;
  std::map<uint32_t, uint64_t> replica_datagrams_;  // by type id
  size_t max_replica_datagram_ = 0;
};

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_SIM_CLUSTER_H_
