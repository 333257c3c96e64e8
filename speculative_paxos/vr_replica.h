// VrReplica: the leader-based baseline (Viewstamped Replication / Multi-Paxos,
// normal case) and UnreplicatedServer, for comparisons with Speculative Paxos
// on the same transport, client library (ClientConfig::Mode::kLeader) and app.
//
// The leader (view mod n) orders requests, sends them to the followers in
// VrPrepare messages (one per request, or up to `max_batch` requests while a
// prepare is outstanding), commits an entry once f followers acknowledged it,
// executes it and replies; followers execute up to the commit point the leader
// piggybacks (or sends on its heartbeat). Unacknowledged prepares are resent.
// Only committed entries are executed, so nothing is ever rolled back.
//
// View change (vr_view_change.cc, as in VR Revisited): a follower that hears
// nothing from the leader for `view_change_timeout` moves to the next view and
// broadcasts StartViewChange; the new leader's copy names its commit point,
// and every replica in that view change answers with a DoViewChange carrying
// its log after that point. With f+1 (its own included) the new leader takes
// the log of the highest (last normal view, length), sends it as StartView and
// serves; followers adopt it (dropping stale uncommitted entries) and
// acknowledge. Clients in leader mode try the next replica on a timeout and
// follow the view in replies.
//
// Every datagram stays within `max_datagram`: a prepare or resend of many
// entries goes as several VrPrepares (a window per resend, the next window
// as soon as the last one is acknowledged), a long DoViewChange in pieces
// that the new leader puts back together (asking again from its first
// missing slot), a StartView as one datagram whose rest follows as prepares.
//
// Recovery (vr_recovery.cc, VR Revisited 4.3): a replica restarted without
// state (`recovering`) takes part in nothing until it has learned the newest
// view from f+1 normal replicas, including that view's leader, and has copied
// the leader's log up to the leader's end at that time (the leader resends it
// from slot 1 in chunks and the replica re-executes the committed prefix);
// only then does it acknowledge in view changes, so no entry it acknowledged
// before the crash can be missing from what it reports.
//
// Example:
//   VrReplica r(&transport, {.replicas = addrs, .max_batch = 16}, /*index=*/0, &app);
//   CHECK(r.Start().ok());
#ifndef DCTK_SPECULATIVE_PAXOS_VR_REPLICA_H_
#define DCTK_SPECULATIVE_PAXOS_VR_REPLICA_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/transport/timeout.h"
#include "common/transport/transport.h"
#include "speculative_paxos/app.h"
#include "speculative_paxos/checkpoint.h"
#include "speculative_paxos/log.h"
#include "speculative_paxos/pieces.h"
#include "speculative_paxos/reply_batcher.h"
#include "speculative_paxos/spaxos.pb.h"

namespace dctk::spaxos {

struct VrConfig {
  std::vector<transport::Address> replicas;  // 2f+1; replica view % n leads
  // Requests per prepare; 1 sends each request at once.
  int max_batch = 1;
  // Leader's commit heartbeat and prepare resend period.
  absl::Duration heartbeat = absl::Milliseconds(1);
  absl::Duration resend = absl::Milliseconds(5);
  // Silence from the leader (or a stuck view change) before the next view.
  absl::Duration view_change_timeout = absl::Milliseconds(40);
  // Largest datagram a replica sends (frame header included), 256 .. 64 KiB:
  // prepares, reports and StartViews carrying many entries go in pieces
  // (pieces.h), a window (kPieceWindow) at a time.
  int max_datagram = 1400;
  // Log compaction (vr_checkpoint.cc): every `checkpoint_interval` executed
  // entries the replica snapshots the app (a checkpoint) and drops its log
  // up to its previous checkpoint; 0: off, as for an App without snapshots.
  uint64_t checkpoint_interval = 4096;
  // Bytes of a serialized checkpoint per SnapshotReply.
  int snapshot_chunk = 32 * 1024;

  int f() const { return (static_cast<int>(replicas.size()) - 1) / 2; }
};

struct VrStats {
  uint64_t requests = 0;
  uint64_t prepares = 0;
  uint64_t executed = 0;
  uint64_t duplicates = 0;
  uint64_t view_changes = 0;  // views this replica became normal in, after the first
  uint64_t recoveries = 0;    // recoveries completed
  uint64_t checkpoints = 0;   // checkpoints taken (app snapshot + compaction)
  uint64_t snapshots_installed = 0;  // checkpoints copied from another replica
  uint64_t change_rebases = 0;  // new leader: a report started above its commit point
};

class VrReplica : public transport::TransportReceiver {
 public:
  // `recovering`: restarted without state (runs the recovery protocol).
  VrReplica(transport::Transport* transport, VrConfig config, uint32_t index, App* app,
            bool recovering = false);
  ~VrReplica() override;
  VrReplica(const VrReplica&) = delete;
  VrReplica& operator=(const VrReplica&) = delete;

  absl::Status Start();
  void ReceiveMessage(const transport::Address& from, const transport::Envelope& msg) override;

  const Log& log() const { return log_; }
  uint64_t executed() const { return executed_; }
  uint64_t view() const { return view_; }
  bool normal() const { return normal_; }
  bool recovering() const { return recovering_; }
  bool IsLeader() const { return LeaderOf(view_) == index_; }
  const VrStats& stats() const { return stats_; }
  // Slot of the newest checkpoint (0: none).
  uint64_t checkpoint_slot() const { return checkpoint_slot_; }

 private:
  uint32_t n() const { return static_cast<uint32_t>(config_.replicas.size()); }
  uint32_t LeaderOf(uint64_t view) const { return view % n(); }
  template <typename M>
  void SendTo(uint32_t replica, const M& msg) {
    if (replica != index_) (void)transport_->Send(this, config_.replicas[replica], msg);
  }
  void HandleRequest(const transport::Address& from, const Request& req);
  void HandlePrepare(const VrPrepare& m);
  void HandlePrepareOk(const VrPrepareOk& m);
  void AdvanceCommit();
  // Leader: sends the entries not yet prepared, at once without batching, or
  // as one batch when no prepare is outstanding or a batch is full.
  void MaybePrepare();
  // Sends slots [first, last] as VrPrepares within the datagram budget, at
  // most a window of them; returns the last slot sent.
  uint64_t SendPrepare(uint64_t first, uint64_t last, uint32_t to_replica);
  // Leader: a window of the entries `to_replica` lacks (from acked_ on).
  void SendCatchUp(uint32_t to_replica);
  size_t budget() const;
  void SendReply(const LogEntry& e);
  void ExecuteUpTo(uint64_t slot);
  void OnHeartbeat();
  void OnResend();

  // vr_view_change.cc
  void OnViewTimeout();
  void BeginViewChange(uint64_t view);
  void BroadcastStartViewChange();
  void HandleStartViewChange(const VrStartViewChange& m);
  void HandleDoViewChange(VrDoViewChange m);
  // Sends our report (VrDoViewChange) to the new leader, in pieces, the
  // window starting at slot `from` (0: the first).
  void SendDoViewChange(uint32_t leader, uint64_t base, uint64_t from);
  void SendStartViewChange(uint32_t to);
  void TryStartView();
  void SendStartView(uint32_t to, uint64_t from_slot);
  void HandleStartView(const VrStartView& m);
  // Becomes normal in view_ with the current log (leader: prepared, acked).
  void EnterNormal();

  // vr_recovery.cc
  void BeginRecovery();
  void SendRecovery();
  void HandleRecovery(const VrRecovery& m);
  void HandleRecoveryResponse(const VrRecoveryResponse& m);
  // Recovering: a message of view `view` arrived; false if it is to be
  // ignored (restarts the recovery if the view is newer than the one we copy).
  bool RecoveringAccepts(uint64_t view);
  void MaybeFinishRecovery();

  // vr_checkpoint.cc
  // After executing: takes a checkpoint every checkpoint_interval entries.
  void MaybeCheckpoint();
  // Leader: tells `to_replica` to copy our checkpoint (it needs compacted entries).
  void SendCheckpointNotice(uint32_t to_replica);
  void BeginFetch(uint32_t replica, uint64_t min_slot);
  void HandleSnapshotRequest(const SnapshotRequest& m);
  void HandleSnapshotReply(const SnapshotReply& m);
  // Replaces app and log by the fetched checkpoint and goes on (follower:
  // acknowledges; new leader: restarts the view change from it).
  void InstallFetched();
  // New leader: a report starts above our commit point (the reporter
  // compacted entries we have not executed).
  void RebaseViewChange(const VrDoViewChange& m);
  // New leader: collects reports again from our commit point.
  void RestartViewChange();
  // Our own report for the view change we lead.
  void AddOwnReport();

  transport::Transport* transport_;
  const VrConfig config_;
  const uint32_t index_;
  App* app_;
  ReplyBatcher replies_;
  Reply reply_scratch_;  // SendReply's message, reused
  // Requests are parsed into these, reused: no allocation per datagram.
  Request request_scratch_;
  RequestBatch batch_scratch_;
  uint64_t view_ = 0;
  bool normal_ = true;
  uint64_t last_normal_view_ = 0;
  Log log_;
  uint64_t executed_ = 0;
  uint64_t commit_ = 0;  // leader: commit point; followers: what the leader told
  uint64_t prepared_ = 0;  // leader: last slot sent in a prepare
  std::vector<uint64_t> acked_;  // leader: per replica, highest slot held
  // View change: new leader's base (its commit point) and DoViewChanges by replica.
  uint64_t change_base_ = 0;
  std::map<uint32_t, VrDoViewChange> do_view_changes_;
  std::map<uint32_t, PieceAssembler> report_pieces_;  // reports in pieces, by replica
  // Leader: per replica, the last slot of a catch-up window that was cut
  // short (more to send once it is acknowledged); 0: none.
  std::vector<uint64_t> catch_up_end_;
  bool sent_do_view_change_ = false;
  // Recovery: learning the view (responses by replica), then copying the
  // leader's log up to recovery_target_ (catching_up_).
  bool recovering_ = false;
  bool catching_up_ = false;
  uint64_t recovery_nonce_ = 0;
  uint64_t recovery_target_ = 0;
  std::map<uint32_t, VrRecoveryResponse> recovery_responses_;
  // Newest checkpoint (a serialized Checkpoint), served to other replicas.
  uint64_t checkpoint_slot_ = 0;
  std::string checkpoint_bytes_;
  bool snapshots_ = true;  // false once the app said it has none
  SnapshotFetch fetch_;
  VrStats stats_;
  transport::Timeout heartbeat_;
  transport::Timeout resend_;
  transport::Timeout view_timeout_;
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
  void HandleRequest(const transport::Address& from, const Request& req);

  transport::Transport* transport_;
  transport::Address address_;
  App* app_;
  ReplyBatcher replies_;
  uint64_t slot_ = 0;
  // Latest request per client and its result, for retransmissions.
  absl::flat_hash_map<uint64_t, std::pair<uint64_t, std::string>> last_;
};

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_VR_REPLICA_H_
