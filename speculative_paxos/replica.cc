// Replica setup, message dispatch and timers. Protocol logic lives in
// replica_normal.cc, replica_sync.cc, replica_change.cc, replica_transfer.cc,
// replica_repair.cc, replica_checkpoint.cc.
#include "speculative_paxos/replica.h"

#include "absl/strings/str_cat.h"
#include "common/transport/framing.h"
#include "glog/logging.h"

namespace dctk::spaxos {

absl::Status ReplicaConfig::Validate() const {
  if (replicas.size() < 3 || replicas.size() > 7 || replicas.size() % 2 == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ReplicaConfig.replicas: need 2f+1 replicas with 1 <= f <= 3, got ", replicas.size()));
  }
  if (group && !group->is_multicast()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ReplicaConfig.group: ", group->ToString(), " is not multicast"));
  }
  if (sync_interval <= absl::ZeroDuration() || leader_timeout <= sync_interval ||
      retry_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "ReplicaConfig: need 0 < sync_interval < leader_timeout and retry_interval > 0");
  }
  if (max_datagram < 256 || static_cast<size_t>(max_datagram) >
                                 transport::kMaxPayloadSize + transport::kFrameHeaderSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ReplicaConfig.max_datagram: ", max_datagram, " bytes, need 256 .. ",
        transport::kMaxPayloadSize + transport::kFrameHeaderSize));
  }
  if (transfer_chunk <= 0 || max_speculative == 0 || snapshot_chunk <= 0) {
    return absl::InvalidArgumentError(
        "ReplicaConfig: transfer_chunk, snapshot_chunk and max_speculative must be positive");
  }
  return absl::OkStatus();
}

Replica::Replica(transport::Transport* transport, ReplicaConfig config, uint32_t index,
                 App* app, bool recovering)
    : transport_(transport),
      config_(std::move(config)),
      index_(index),
      app_(app),
      replies_(transport, this, PayloadBudget(config_.max_datagram)),
      status_(recovering ? ReplicaStatus::kRecovering : ReplicaStatus::kNormal),
      confirmed_(config_.replicas.size(), 0),
      diverged_(config_.replicas.size(), false),
      sync_timer_(transport, config_.sync_interval, [this] { OnSyncTimer(); }),
      leader_timeout_(transport, config_.leader_timeout, [this] { OnLeaderTimeout(); }),
      retry_timer_(transport, config_.retry_interval, [this] { OnRetry(); }) {}

Replica::~Replica() { transport_->Unregister(this); }

absl::Status Replica::Start() {
  if (absl::Status s = config_.Validate(); !s.ok()) return s;
  if (index_ >= n()) {
    return absl::InvalidArgumentError(
        absl::StrCat("replica index ", index_, " out of range (", n(), " replicas)"));
  }
  absl::StatusOr<transport::Address> bound =
      transport_->Register(this, config_.replicas[index_], config_.endpoint);
  if (!bound.ok()) return bound.status();
  if (config_.group) {
    if (absl::Status s = transport_->JoinGroup(this, *config_.group); !s.ok()) return s;
  }
  if (config_.mom) {
    if (absl::Status s = mom::ValidateGroupConfig(*config_.mom); !s.ok()) return s;
    mom_ = std::make_unique<mom::MomReceiver>(
        transport_, this, *config_.mom,
        [this](const mom::MomDelivery& d) {
          Request req;
          if (d.message.Parse(&req)) {
            HandleRequest(d.from, req);
          } else {
            Count(Reject::kMalformed);
          }
        },
        // Retransmissions and sender-id collisions: the log detects duplicates.
        mom::MomReceiverOptions{.deliver_duplicates = true});
    if (absl::Status s = mom_->Join(); !s.ok()) return s;
  }
  if (status_ == ReplicaStatus::kRecovering) {
    BeginRecovery();
  } else if (IsLeader()) {
    sync_timer_.Start();
  } else {
    leader_timeout_.Start();
  }
  return absl::OkStatus();
}

void Replica::ReceiveMessage(const transport::Address& from, const transport::Envelope& msg) {
  // Replies to one address caused by this datagram leave as one datagram.
  ReplyBatcher::Hold hold(&replies_);
  if (mom_ && mom_->Handle(from, msg)) return;
  // Dispatch by type id without parsing, then parse once.
// Into `Target`: a fresh message, or a reused member for the hot types (no
// handler gets here again while it runs: sends are queued by every transport).
#define DCTK_SPAXOS_DISPATCH_INTO(Type, Target, Handler) \
  if (msg.Is<Type>()) {                                  \
    auto&& m = Target;                                   \
    if (!msg.Parse(&m)) {                                \
      Count(Reject::kMalformed);                         \
      return;                                            \
    }                                                    \
    Handler;                                             \
    return;                                              \
  }
#define DCTK_SPAXOS_DISPATCH(Type, Handler) DCTK_SPAXOS_DISPATCH_INTO(Type, Type(), Handler)
  DCTK_SPAXOS_DISPATCH_INTO(Request, request_scratch_, HandleRequest(from, m));
  DCTK_SPAXOS_DISPATCH_INTO(RequestBatch, batch_scratch_,
                            for (const Request& r
                                 : m.requests()) HandleRequest(from, r));
  DCTK_SPAXOS_DISPATCH_INTO(SyncPrepare, prepare_scratch_, HandleSyncPrepare(m));
  DCTK_SPAXOS_DISPATCH(SyncReply, HandleSyncReply(m));
  DCTK_SPAXOS_DISPATCH(SyncCommit, HandleSyncCommit(m));
  DCTK_SPAXOS_DISPATCH(ReconcileRequest, HandleReconcileRequest(from, m));
  DCTK_SPAXOS_DISPATCH(StartChange, HandleStartChange(m));
  DCTK_SPAXOS_DISPATCH(LogReport, HandleLogReport(std::move(m)));
  DCTK_SPAXOS_DISPATCH(StartLog, HandleStartLog(std::move(m)));
  DCTK_SPAXOS_DISPATCH(StateRequest, HandleStateRequest(m));
  DCTK_SPAXOS_DISPATCH(StateReply, HandleStateReply(m));
  DCTK_SPAXOS_DISPATCH(RecoveryRequest, HandleRecoveryRequest(from, m));
  DCTK_SPAXOS_DISPATCH(RecoveryResponse, HandleRecoveryResponse(m));
  DCTK_SPAXOS_DISPATCH(SnapshotRequest, HandleSnapshotRequest(m));
  DCTK_SPAXOS_DISPATCH(SnapshotReply, HandleSnapshotReply(m));
#undef DCTK_SPAXOS_DISPATCH
#undef DCTK_SPAXOS_DISPATCH_INTO
  Count(Reject::kMalformed);
}

void Replica::OnLeaderTimeout() {
  switch (status_) {
    case ReplicaStatus::kRecovering:
      return;
    case ReplicaStatus::kNormal:
      if (IsLeader()) return;
      [[fallthrough]];
    case ReplicaStatus::kChanging:
    case ReplicaStatus::kTransfer:
      BeginChange(stamp_.NextView());
      return;
  }
}

void Replica::OnRetry() {
  switch (status_) {
    case ReplicaStatus::kNormal:
      retry_timer_.Stop();
      return;
    case ReplicaStatus::kChanging:
      if (fetch_.active()) {
        SendTo(fetch_.from(), fetch_.Request(index_));
      } else {
        BroadcastStartChange();
      }
      return;
    case ReplicaStatus::kTransfer:
      if (fetch_.active()) {
        SendTo(fetch_.from(), fetch_.Request(index_));
      } else {
        SendStateRequest();
      }
      return;
    case ReplicaStatus::kRecovering:
      if (!recovery_stamp_) {
        RecoveryRequest req;
        req.set_replica(index_);
        req.set_nonce(recovery_nonce_);
        SendToAll(req);
      } else {
        ReconcileRequest req;
        recovery_stamp_->ToProto(req.mutable_stamp());
        SendTo(LeaderOf(*recovery_stamp_), req);
      }
      return;
  }
}

}  // namespace dctk::spaxos
