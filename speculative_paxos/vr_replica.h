// VrReplica: the leader-based baseline (Viewstamped Replication / Multi-Paxos,
// normal case) and UnreplicatedServer, for comparisons with Speculative Paxos
// on the same transport, client library (ClientConfig::Mode::kLeader) and app.
//
// The leader (replica 0) orders requests, sends them to the followers in
// VrPrepare messages (one per request, or up to `max_batch` requests while a
// prepare is outstanding), commits an entry once f followers acknowledged it,
// executes it and replies; followers execute up to the commit point the leader
// piggybacks (or sends on its heartbeat). Unacknowledged prepares are resent.
// This baseline has no view change or recovery: it measures the failure-free
// cost of leader-based ordering, which is what the paper compares against.
//
// Example:
//   VrReplica r(&transport, {.replicas = addrs, .max_batch = 16}, /*index=*/0, &app);
//   CHECK(r.Start().ok());
#ifndef DCTK_SPECULATIVE_PAXOS_VR_REPLICA_H_
#define DCTK_SPECULATIVE_PAXOS_VR_REPLICA_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/transport/timeout.h"
#include "common/transport/transport.h"
#include "speculative_paxos/app.h"
#include "speculative_paxos/log.h"
#include "speculative_paxos/spaxos.pb.h"

namespace dctk::spaxos {

struct VrConfig {
  std::vector<transport::Address> replicas;  // 2f+1; replica 0 leads
  // Requests per prepare; 1 sends each request at once.
  int max_batch = 1;
  // Leader's commit heartbeat and prepare resend period.
  absl::Duration heartbeat = absl::Milliseconds(1);
  absl::Duration resend = absl::Milliseconds(5);

  int f() const { return (static_cast<int>(replicas.size()) - 1) / 2; }
};

struct VrStats {
  uint64_t requests = 0;
  uint64_t prepares = 0;
  uint64_t executed = 0;
  uint64_t duplicates = 0;
};

class VrReplica : public transport::TransportReceiver {
 public:
  VrReplica(transport::Transport* transport, VrConfig config, uint32_t index, App* app);
  ~VrReplica() override;
  VrReplica(const VrReplica&) = delete;
  VrReplica& operator=(const VrReplica&) = delete;

  absl::Status Start();
  void ReceiveMessage(const transport::Address& from, const transport::Envelope& msg) override;

  const Log& log() const { return log_; }
  uint64_t executed() const { return executed_; }
  const VrStats& stats() const { return stats_; }

 private:
  bool IsLeader() const { return index_ == 0; }
  void HandleRequest(const transport::Address& from, const Request& req);
  void HandlePrepare(const VrPrepare& m);
  void HandlePrepareOk(const VrPrepareOk& m);
  // Leader: sends the entries not yet prepared, at once without batching, or
  // as one batch when no prepare is outstanding or a batch is full.
  void MaybePrepare();
  void SendPrepare(uint64_t first, uint64_t last, uint32_t to_replica);
  void SendReply(const LogEntry& e);
  void ExecuteUpTo(uint64_t slot);
  void OnHeartbeat();
  void OnResend();

  transport::Transport* transport_;
  const VrConfig config_;
  const uint32_t index_;
  App* app_;
  Log log_;
  uint64_t executed_ = 0;
  uint64_t commit_ = 0;
  uint64_t prepared_ = 0;  // leader: last slot sent in a prepare
  std::vector<uint64_t> acked_;  // leader: per replica, highest slot held
  // Leader: latest request id per client and its slot.
  absl::flat_hash_map<uint64_t, std::pair<uint64_t, uint64_t>> client_slot_;
  VrStats stats_;
  transport::Timeout heartbeat_;
  transport::Timeout resend_;
};

// Executes every request at once and replies: the no-replication baseline.
class UnreplicatedServer : public transport::TransportReceiver {
 public:
  UnreplicatedServer(transport::Transport* transport, transport::Address address, App* app);
  ~UnreplicatedServer() override;
  absl::Status Start();
  void ReceiveMessage(const transport::Address& from, const transport::Envelope& msg) override;
  uint64_t executed() const { return slot_; }

 private:
  transport::Transport* transport_;
  transport::Address address_;
  App* app_;
  uint64_t slot_ = 0;
  // Latest request per client and its result, for retransmissions.
  absl::flat_hash_map<uint64_t, std::pair<uint64_t, std::string>> last_;
};

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_VR_REPLICA_H_
