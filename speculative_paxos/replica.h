// Replica: one of the 2f+1 Speculative Paxos replicas (Ports et al., NSDI 2015).
//
// Clients send each request to every replica. A replica executes it at once,
// speculatively, in arrival order, appends it to its log and replies with the
// result and its log hash; a client that sees a superquorum (ceil(3f/2)+1) of
// matching replies is done in one round trip. The leader (view mod n) syncs
// periodically: a prefix that f+1 replicas hold with the leader's hash is
// committed and handed to the app as final. When logs diverge the leader runs
// reconciliation (a new epoch); when the leader fails the others run a view
// change (a new view). Both are one log-change protocol: the new stamp's leader
// gathers f+1 LogReports, merges them (merge.h), installs the merged log and
// sends it to all; replicas roll back speculative entries that differ,
// re-execute, and answer the merged log's clients at once. A replica that
// lags (or diverged below a commit) copies the leader's confirmed log by state
// transfer; a restarted replica first learns the newest stamp from f+1 others
// and rejoins only through a log change made after its restart.
//
// The implementation is split by concern: replica.cc (setup, dispatch),
// replica_normal.cc (requests), replica_sync.cc (sync, commit),
// replica_change.cc (reconciliation / view change), replica_transfer.cc
// (state transfer, recovery), replica_repair.cc (order repair, f = 1),
// replica_checkpoint.cc (checkpoints, log compaction, snapshot transfer).
//
// Example:
//   ReplicaConfig config{.replicas = {a0, a1, a2}};
//   KvApp app;
//   Replica r(&transport, config, /*index=*/0, &app);
//   CHECK(r.Start().ok());
#ifndef DCTK_SPECULATIVE_PAXOS_REPLICA_H_
#define DCTK_SPECULATIVE_PAXOS_REPLICA_H_

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "common/transport/timeout.h"
#include "common/transport/transport.h"
#include "mom/group.h"
#include "speculative_paxos/app.h"
#include "speculative_paxos/checkpoint.h"
#include "speculative_paxos/log.h"
#include "speculative_paxos/pieces.h"
#include "speculative_paxos/reply_batcher.h"
#include "speculative_paxos/spaxos.pb.h"
#include "speculative_paxos/stamp.h"

namespace dctk::spaxos {

struct ReplicaConfig {
  // 2f+1 replicas, index = replica number; f <= 3. With f >= 4 a follower
  // outside a superquorum could acknowledge a sync prefix that contradicts a
  // speculatively completed request, which the merge cannot tell apart.
  std::vector<transport::Address> replicas;
  // Multicast group the replicas join, if clients multicast requests.
  absl::optional<transport::Address> group;
  // MOM group clients send requests through (ClientConfig.mom), if any.
  absl::optional<mom::GroupConfig> mom;
  // Socket options (DSCP, multicast interface) for the replica's endpoint.
  transport::EndpointOptions endpoint;
  // Leader's sync (and heartbeat) period.
  absl::Duration sync_interval = absl::Milliseconds(2);
  // Silence from the leader (or a stuck log change) before a view change.
  absl::Duration leader_timeout = absl::Milliseconds(40);
  // Retransmission period of log-change, transfer and recovery messages.
  absl::Duration retry_interval = absl::Milliseconds(5);
  // Speculative (uncommitted) entries a replica holds before refusing requests.
  uint64_t max_speculative = 4096;
  // Largest datagram the replica sends (our frame header and the message: the
  // UDP payload). Messages that carry log entries (LogReport, StartLog,
  // StateReply) are split into pieces that fit (pieces.h), checkpoint chunks,
  // the order in a SyncPrepare and reply batches are cut to fit, so they cross
  // networks that do not forward IP fragments (the MOM switch takes at most
  // 1472). Default: one Ethernet frame's UDP payload with room to spare. One
  // entry larger than the budget on its own still goes, alone. 256 .. 65507.
  int max_datagram = 1400;
  // At most this many entries per StateReply (and per max_datagram).
  int transfer_chunk = 256;
  // Log compaction: every `checkpoint_interval` committed entries the replica
  // snapshots the app at its commit point (a checkpoint) and drops the log up
  // to its previous checkpoint, so it holds at most about two intervals of
  // committed entries. 0: never (the log grows without bound). Also off when
  // the App has no snapshots (App::Snapshot returns Unimplemented).
  uint64_t checkpoint_interval = 4096;
  // Bytes of a serialized checkpoint per SnapshotReply.
  int snapshot_chunk = 32 * 1024;

  int f() const { return (static_cast<int>(replicas.size()) - 1) / 2; }
  absl::Status Validate() const;
};

enum class ReplicaStatus {
  kNormal,      // serving requests in stamp()
  kChanging,    // log change (reconciliation / view change) for stamp()
  kTransfer,    // copying the leader's log for transfer_stamp
  kRecovering,  // restarted: learning the newest stamp, waiting for a log change
};

// Why a replica ignored a request or message; counted in Stats::rejected.
enum class Reject : uint8_t {
  kStaleRequest = 0,   // an older request of a client that has moved on
  kLogFull,            // max_speculative uncommitted entries
  kNotNormal,          // recovering, or buffer full during a change / transfer
  kStaleStamp,         // message for an older stamp
  kMalformed,          // payload did not parse
  kMergeFailed,        // MergeLogs returned an error (a protocol bug)
};
inline constexpr int kNumRejects = 6;

struct ReplicaStats {
  uint64_t requests = 0;         // executed and appended
  uint64_t replies = 0;
  uint64_t duplicate_requests = 0;
  uint64_t commits = 0;          // commit point advances
  uint64_t reconciliations = 0;  // log changes started for a new epoch
  uint64_t view_changes = 0;     // log changes started for a new view
  uint64_t logs_installed = 0;
  uint64_t rolled_back = 0;      // entries undone by installs and transfers
  uint64_t transfers = 0;        // state transfers completed
  uint64_t order_repairs = 0;    // followers' logs reordered to the leader's (f = 1)
  uint64_t checkpoints = 0;      // checkpoints taken (app snapshot + compaction)
  uint64_t snapshots_installed = 0;  // checkpoints fetched from another replica
  uint64_t change_rebases = 0;   // log changes whose base moved up to a report's compaction point
  std::array<uint64_t, kNumRejects> rejected{};
};

class Replica : public transport::TransportReceiver {
 public:
  // `recovering`: the replica restarted without its state (it rejoins through
  // the recovery protocol).
  Replica(transport::Transport* transport, ReplicaConfig config, uint32_t index, App* app,
          bool recovering = false);
  ~Replica() override;

  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  // Registers at config.replicas[index], joins the group, arms timers.
  absl::Status Start();

  void ReceiveMessage(const transport::Address& from, const transport::Envelope& msg) override;

  uint32_t index() const { return index_; }
  Stamp stamp() const { return stamp_; }
  ReplicaStatus status() const { return status_; }
  bool IsLeader() const { return stamp_.Leader(n()) == index_; }
  const Log& log() const { return log_; }
  uint64_t commit_point() const { return log_.committed(); }
  uint64_t sync_point() const { return sync_point_; }
  // Slot and serialized size of the newest checkpoint (0, 0: none).
  uint64_t checkpoint_slot() const { return checkpoint_.slot; }
  size_t checkpoint_bytes() const { return checkpoint_.bytes.size(); }
  const ReplicaStats& stats() const { return stats_; }
  // The MOM receiver (ReplicaConfig.mom), or nullptr.
  const mom::MomReceiver* mom_receiver() const { return mom_.get(); }

 private:
  size_t n() const { return config_.replicas.size(); }
  size_t budget() const { return PayloadBudget(config_.max_datagram); }
  // What this replica may report as confirmed in log_stamp_ (see sync_point_).
  uint64_t ConfirmedPoint() const {
    return LeaderOf(log_stamp_) == index_ ? log_.committed() : sync_point_;
  }
  uint32_t LeaderOf(Stamp s) const { return s.Leader(n()); }
  template <typename M>
  void SendTo(uint32_t replica, const M& msg) {
    if (replica != index_) (void)transport_->Send(this, config_.replicas[replica], msg);
  }
  template <typename M>
  void SendToAll(const M& msg) {
    for (uint32_t r = 0; r < n(); ++r) SendTo(r, msg);
  }
  void Count(Reject r) { ++stats_.rejected[static_cast<int>(r)]; }
  // The leader of stamp_ spoke: postpone the view change.
  void HeardFromLeader() { leader_timeout_.Reset(); }
  void OnLeaderTimeout();
  void OnRetry();

  // replica_normal.cc
  void HandleRequest(const transport::Address& from, const Request& req);
  void ReplyTo(const LogEntry& e);
  // Executes and appends a request (caller checked it is new).
  const LogEntry& ExecuteAndAppend(uint64_t client_id, uint64_t request_id, std::string op,
                                   const transport::Address& client);
  // Makes log_ (and the app) equal to `entries` from `entries[0].slot` on:
  // rolls back from the first differing slot, appends and executes the rest.
  void InstallEntries(const google::protobuf::RepeatedPtrField<Entry>& entries);
  // Rolls back and drops every entry after `keep` (never a committed one).
  void TruncateTo(uint64_t keep);
  void DrainBuffered();
  // The requests of the log's entries after `slot`, with their clients (what
  // a log replacement may drop and RerunDropped runs again).
  std::vector<std::pair<transport::Address, Request>> RequestsAfter(uint64_t slot) const;
  // Queues (ahead of buffered requests) the `dropped` requests that the log
  // no longer holds, to run again once normal.
  void RerunDropped(std::vector<std::pair<transport::Address, Request>> dropped);
  void EnterNormal(Stamp s, uint64_t sync_point);
  void CommitUpTo(uint64_t slot);

  // replica_sync.cc
  void OnSyncTimer();
  // Leader: prepares the whole log now (SyncPrepare to all).
  void SendSyncPrepare();
  void HandleSyncPrepare(const SyncPrepare& m);
  void HandleSyncReply(const SyncReply& m);
  void HandleSyncCommit(const SyncCommit& m);
  // `heartbeat`: the commit point came with a SyncPrepare (once per tick).
  void ApplyCommit(const SyncCommit& m, bool heartbeat);
  void HandleReconcileRequest(const transport::Address& from, const ReconcileRequest& m);
  void MaybeAdvanceCommit();
  // A message of an older stamp from `replica`: tell it about ours.
  void HintNewerStamp(uint32_t replica);

  // replica_repair.cc
  // Leader: adds its order of the slots after the commit point.
  void AddOrder(SyncPrepare* m) const;
  // Follower: the highest slot up to which our log holds the leader's order,
  // after adopting that order where we hold the requests in another order
  // (f = 1 only; see replica_repair.cc); 0 if the prepare does not apply.
  // `lacking`: some request of the order is not here (yet).
  uint64_t AdoptLeaderOrder(const SyncPrepare& m, bool* lacking);

  // replica_change.cc
  void BeginChange(Stamp s);
  void HandleStartChange(const StartChange& m);
  // A piece of a report (leader) or of the merged log (follower): installed
  // once all its pieces are here.
  void HandleLogReport(LogReport m);
  void HandleStartLog(StartLog m);
  LogReport MakeReport(uint64_t base) const;
  // Follower: its report after `base` to the leader, a window of pieces from
  // the one holding slot `from` (at least the last one).
  void SendReport(uint64_t base, uint64_t from);
  // Leader: StartChange to `replica`, asking for its report's pieces from the
  // first slot we lack.
  void AskForReport(uint32_t replica);
  void BroadcastStartChange();
  SyncPrepare MakeSyncPrepare() const;
  void TryFinishChange();

  // replica_transfer.cc
  // May this replica (re)join stamp `s` from a message of s's leader?
  bool MayJoin(Stamp s) const;
  void BeginTransfer(Stamp s, uint64_t target);
  void SendStateRequest();
  void HandleStateRequest(const StateRequest& m);
  void HandleStateReply(const StateReply& m);
  void BeginRecovery();
  void HandleRecoveryRequest(const transport::Address& from, const RecoveryRequest& m);
  void HandleRecoveryResponse(const RecoveryResponse& m);

  // replica_checkpoint.cc
  // After a commit: takes a checkpoint every checkpoint_interval entries.
  void MaybeCheckpoint();
  // Copies a checkpoint at a slot >= min_slot from `replica`, then goes on
  // with the transfer or log change that needed it (OnFetched).
  void BeginFetch(uint32_t replica, uint64_t min_slot);
  void HandleSnapshotRequest(const SnapshotRequest& m);
  void HandleSnapshotReply(const SnapshotReply& m);
  void OnFetched();
  // Replaces app and log by the checkpoint; false if the app refused it.
  bool InstallCheckpoint(const Checkpoint& cp, std::string bytes);
  // Leader of a change: a report's log starts above our base (its entries
  // up to there are compacted). Commit up to there if we hold that prefix,
  // else fetch the reporter's checkpoint; then collect reports anew.
  void RebaseChange(const LogReport& m);
  void RestartChange();

  transport::Transport* transport_;
  const ReplicaConfig config_;
  const uint32_t index_;
  App* app_;
  ReplyBatcher replies_;
  Reply reply_scratch_;  // ReplyTo's message, reused
  // The hot messages are parsed into these, reused (a cleared message keeps
  // its repeated elements and buffers): no allocation per request datagram.
  Request request_scratch_;
  RequestBatch batch_scratch_;
  SyncPrepare prepare_scratch_;

  Stamp stamp_;
  ReplicaStatus status_ = ReplicaStatus::kNormal;
  Log log_;
  Stamp log_stamp_;          // stamp of the last log installed
  // Followers: the prefix of log_stamp_'s leader's log this replica holds and
  // acknowledged (SyncReply, or an installed log). The leader's own prepared
  // prefix is not an acknowledgement (it may contradict a superquorum the
  // leader is not in), so for the leader only its commit point counts; see
  // ConfirmedPoint().
  uint64_t sync_point_ = 0;
  // Leader of stamp_: end of the log installed when the stamp began, and the
  // merged entries whose clients get durable replies once they commit.
  uint64_t stamp_base_ = 0;
  uint64_t notify_from_ = 0, notify_to_ = 0;
  // Leader: slots whose clients asked; they get a committed reply on commit.
  std::set<uint64_t> notify_slots_;
  // False after a restart until a log change or transfer made after it is
  // installed: until then the log may lack what this replica acknowledged
  // before crashing, so it neither reports it nor counts in any quorum.
  bool has_log_ = true;

  // Leader of stamp_: sync ticks without commit progress while a prepared
  // prefix waits, the commit point at the last tick, and the followers whose
  // log contradicts the current prepare.
  int stalled_ticks_ = 0;
  uint64_t commit_at_last_tick_ = 0;
  std::vector<bool> diverged_;
  // Follower: heartbeats for which the leader's commit point was past our log.
  int behind_ticks_ = 0;
  // Leader of stamp_ in kNormal: highest slot each replica confirmed.
  std::vector<uint64_t> confirmed_;
  // Requests that arrived during a change or transfer, served once normal.
  std::vector<std::pair<transport::Address, Request>> buffered_;

  // Log change (kChanging).
  uint64_t change_base_ = 0;             // leader: reports start after this slot
  std::map<uint32_t, LogReport> reports_;  // leader: by replica
  std::map<uint32_t, PieceAssembler> report_pieces_;  // leader: reports in pieces
  bool reported_ = false;                // follower: sent a report this change
  PieceAssembler start_pieces_;          // follower: a StartLog in pieces

  // State transfer (kTransfer).
  Stamp transfer_stamp_;
  uint64_t transfer_target_ = 0;
  uint64_t transfer_next_ = 0;  // next slot to request
  std::vector<std::pair<transport::Address, Request>> transfer_dropped_;

  // Recovery (kRecovering).
  uint64_t recovery_nonce_ = 0;
  std::map<uint32_t, Stamp> recovery_responses_;
  absl::optional<Stamp> recovery_stamp_;  // newest stamp f+1 others reported

  // Newest checkpoint (a serialized Checkpoint), served to other replicas.
  struct CheckpointState {
    uint64_t slot = 0;
    std::string bytes;
  };
  CheckpointState checkpoint_;
  bool snapshots_ = true;  // false once the app said it has none
  SnapshotFetch fetch_;    // a checkpoint being copied from another replica

  std::unique_ptr<mom::MomReceiver> mom_;
  ReplicaStats stats_;
  transport::Timeout sync_timer_;
  transport::Timeout leader_timeout_;
  transport::Timeout retry_timer_;
};

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_REPLICA_H_
