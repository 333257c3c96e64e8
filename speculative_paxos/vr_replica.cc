#include "speculative_paxos/vr_replica.h"

#include <algorithm>
#include <functional>

#include "absl/strings/str_cat.h"
#include "common/transport/framing.h"
#include "glog/logging.h"

namespace dctk::spaxos {
namespace {
constexpr uint64_t kMaxResendEntries = 256;
}  // namespace

VrReplica::VrReplica(transport::Transport* transport, VrConfig config, uint32_t index,
                     App* app, bool recovering)
    : transport_(transport),
      config_(std::move(config)),
      index_(index),
      app_(app),
      replies_(transport, this, PayloadBudget(config_.max_datagram)),
      acked_(config_.replicas.size(), 0),
      catch_up_end_(config_.replicas.size(), 0),
      heartbeat_(transport, config_.heartbeat, [this] { OnHeartbeat(); }),
      resend_(transport, config_.resend, [this] { OnResend(); }),
      view_timeout_(transport, config_.view_change_timeout, [this] { OnViewTimeout(); }) {
  recovering_ = recovering;
}

VrReplica::~VrReplica() { transport_->Unregister(this); }

absl::Status VrReplica::Start() {
  if (config_.replicas.size() < 3 || config_.replicas.size() % 2 == 0 ||
      index_ >= config_.replicas.size() || config_.max_batch < 1 ||
      config_.view_change_timeout <= config_.heartbeat) {
    return absl::InvalidArgumentError(absl::StrCat(
        "VrConfig: need 2f+1 >= 3 replicas, index < replicas, max_batch >= 1 and "
        "view_change_timeout > heartbeat (got ",
        config_.replicas.size(), " replicas, index ", index_, ", max_batch ",
        config_.max_batch, ")"));
  }
  if (config_.max_datagram < 256 ||
      static_cast<size_t>(config_.max_datagram) >
          transport::kMaxPayloadSize + transport::kFrameHeaderSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "VrConfig.max_datagram: ", config_.max_datagram, " bytes, need 256 .. ",
        transport::kMaxPayloadSize + transport::kFrameHeaderSize));
  }
  absl::StatusOr<transport::Address> bound =
      transport_->Register(this, config_.replicas[index_]);
  if (!bound.ok()) return bound.status();
  if (recovering_) {
    BeginRecovery();
  } else {
    EnterNormal();
  }
  return absl::OkStatus();
}

void VrReplica::ReceiveMessage(const transport::Address& from, const transport::Envelope& msg) {
  // Replies to one address caused by this datagram leave as one datagram.
  ReplyBatcher::Hold hold(&replies_);
  if (msg.Is<Request>()) {
    if (msg.Parse(&request_scratch_)) HandleRequest(from, request_scratch_);
  } else if (msg.Is<RequestBatch>()) {
    if (msg.Parse(&batch_scratch_)) {
      for (const Request& r : batch_scratch_.requests()) HandleRequest(from, r);
    }
  } else if (msg.Is<VrPrepare>()) {
    VrPrepare m;
    if (msg.Parse(&m)) HandlePrepare(m);
  } else if (msg.Is<VrPrepareOk>()) {
    VrPrepareOk m;
    if (msg.Parse(&m)) HandlePrepareOk(m);
  } else if (msg.Is<VrStartViewChange>()) {
    VrStartViewChange m;
    if (msg.Parse(&m)) HandleStartViewChange(m);
  } else if (msg.Is<VrDoViewChange>()) {
    VrDoViewChange m;
    if (msg.Parse(&m)) HandleDoViewChange(std::move(m));
  } else if (msg.Is<VrStartView>()) {
    VrStartView m;
    if (msg.Parse(&m)) HandleStartView(m);
  } else if (msg.Is<VrRecovery>()) {
    VrRecovery m;
    if (msg.Parse(&m)) HandleRecovery(m);
  } else if (msg.Is<VrRecoveryResponse>()) {
    VrRecoveryResponse m;
    if (msg.Parse(&m)) HandleRecoveryResponse(m);
  } else if (msg.Is<SnapshotRequest>()) {
    SnapshotRequest m;
    if (msg.Parse(&m)) HandleSnapshotRequest(m);
  } else if (msg.Is<SnapshotReply>()) {
    SnapshotReply m;
    if (msg.Parse(&m)) HandleSnapshotReply(m);
  }
}

void VrReplica::HandleRequest(const transport::Address& from, const Request& req) {
  if (!normal_ || !IsLeader()) return;
  const uint64_t latest = log_.LatestRequest(req.client_id());
  if (req.request_id() <= latest) {
    ++stats_.duplicates;
    // The client's newest request, executed: answer again (from its client
    // record if compacted).
    const LogEntry* done = req.request_id() == latest
                               ? log_.Find(req.client_id(), req.request_id())
                               : nullptr;
    if (done != nullptr && done->slot <= executed_) SendReply(*done);
    return;
  }
  log_.Append(req.client_id(), req.request_id(), req.op(), from);
  ++stats_.requests;
  MaybePrepare();
}

void VrReplica::MaybePrepare() {
  while (prepared_ < log_.end()) {
    const uint64_t pending = log_.end() - prepared_;
    const bool outstanding = commit_ < prepared_;
    if (config_.max_batch > 1 && outstanding && pending < static_cast<uint64_t>(config_.max_batch)) {
      return;  // wait for the outstanding batch, or a full one
    }
    const uint64_t last = std::min(log_.end(), prepared_ + config_.max_batch);
    for (uint32_t r = 0; r < n(); ++r) {
      if (r != index_) SendPrepare(prepared_ + 1, last, r);
    }
    ++stats_.prepares;
    prepared_ = last;
    if (config_.max_batch > 1) return;
  }
}

size_t VrReplica::budget() const { return PayloadBudget(config_.max_datagram); }

uint64_t VrReplica::SendPrepare(uint64_t first, uint64_t last, uint32_t to_replica) {
  VrPrepare m;
  m.set_view(view_);
  m.set_first_slot(first);
  log_.Export(first, last, m.mutable_entries());
  m.set_commit(commit_);
  // Room for each piece's own first_slot (a varint of up to 10 bytes).
  std::vector<VrPrepare> pieces = SplitEntries(std::move(m), budget() - 10);
  uint64_t sent = first - 1;
  for (size_t i = 0; i < pieces.size() && i < kPieceWindow; ++i) {
    VrPrepare& piece = pieces[i];
    if (piece.entries_size() > 0) {
      piece.set_first_slot(piece.entries(0).slot());
      sent = piece.entries(piece.entries_size() - 1).slot();
    }
    SendTo(to_replica, piece);
  }
  return sent;
}

void VrReplica::SendCatchUp(uint32_t r) {
  if (acked_[r] < log_.base()) {
    SendCheckpointNotice(r);  // it needs entries we compacted
    return;
  }
  const uint64_t last = std::min(prepared_, acked_[r] + kMaxResendEntries);
  const uint64_t sent = SendPrepare(acked_[r] + 1, last, r);
  // Cut short by the window: send the next one once this one is acknowledged.
  catch_up_end_[r] = sent < prepared_ ? sent : 0;
}

void VrReplica::HandlePrepare(const VrPrepare& m) {
  if (recovering_) {
    if (!RecoveringAccepts(m.view())) return;
  } else {
    if (m.view() < view_) return;
    if (m.view() > view_) {
      // We missed a view change: ask to be brought into it.
      BeginViewChange(m.view());
      return;
    }
    if (!normal_ || IsLeader()) return;
  }
  view_timeout_.Reset();
  if (m.checkpoint() > log_.end() && m.first_slot() > log_.end() + 1) {
    // The leader compacted what we lack: copy its checkpoint first.
    if (!fetch_.active() || fetch_.from() != LeaderOf(view_)) {
      BeginFetch(LeaderOf(view_), m.checkpoint());
    }
    return;
  }
  if (m.first_slot() > log_.end() + 1) return;  // a gap: the leader resends
  for (const Entry& e : m.entries()) {
    if (e.slot() <= log_.end()) continue;
    if (e.slot() != log_.end() + 1) break;
    log_.Append(e.client_id(), e.request_id(), e.op(),
                transport::Address(e.client_ip(), e.client_port()));
  }
  VrPrepareOk ok;
  ok.set_view(view_);
  ok.set_replica(index_);
  ok.set_slot(log_.end());
  SendTo(LeaderOf(view_), ok);
  commit_ = std::max(commit_, m.commit());
  ExecuteUpTo(std::min(commit_, log_.end()));
  if (recovering_) MaybeFinishRecovery();
}

void VrReplica::HandlePrepareOk(const VrPrepareOk& m) {
  if (m.view() != view_ || !normal_ || !IsLeader() || m.replica() >= n()) return;
  const uint32_t r = m.replica();
  acked_[r] = std::max(acked_[r], m.slot());
  if (catch_up_end_[r] != 0 && acked_[r] >= catch_up_end_[r]) SendCatchUp(r);
  AdvanceCommit();
}

void VrReplica::AdvanceCommit() {
  acked_[index_] = log_.end();
  std::vector<uint64_t> sorted = acked_;
  std::sort(sorted.begin(), sorted.end(), std::greater<>());
  const uint64_t commit = std::min(sorted[config_.f()], log_.end());
  if (commit <= commit_) return;
  commit_ = commit;
  ExecuteUpTo(commit_);
  MaybePrepare();
}

void VrReplica::ExecuteUpTo(uint64_t slot) {
  for (uint64_t s = executed_ + 1; s <= slot; ++s) {
    LogEntry* e = log_.MutableAt(s);
    e->result = app_->Execute(s, e->op);
    app_->Commit(s);
    executed_ = s;
    ++stats_.executed;
    if (IsLeader()) SendReply(*e);
  }
  if (slot > log_.committed()) log_.Commit(slot);
  MaybeCheckpoint();
}

void VrReplica::SendReply(const LogEntry& e) {
  Reply& reply = reply_scratch_;  // reused: no allocation per reply
  reply.Clear();
  reply.mutable_stamp()->set_view(view_);
  reply.set_replica(index_);
  reply.set_client_id(e.client_id);
  reply.set_request_id(e.request_id);
  reply.set_slot(e.slot);
  reply.set_result(e.result);
  reply.set_durable(true);
  replies_.Send(e.client, &reply);
}

void VrReplica::OnHeartbeat() {
  if (!normal_ || !IsLeader()) return;
  VrPrepare m;
  m.set_view(view_);
  m.set_first_slot(prepared_ + 1);
  m.set_commit(commit_);
  for (uint32_t r = 0; r < n(); ++r) SendTo(r, m);
}

void VrReplica::OnResend() {
  if (fetch_.active()) SendTo(fetch_.from(), fetch_.Request(index_));  // a lost chunk
  if (recovering_) {
    if (!catching_up_) SendRecovery();
    return;
  }
  if (!normal_) {
    BroadcastStartViewChange();
    return;
  }
  if (!IsLeader()) return;
  for (uint32_t r = 0; r < n(); ++r) {
    if (r != index_ && acked_[r] < prepared_) SendCatchUp(r);
  }
}

UnreplicatedServer::UnreplicatedServer(transport::Transport* transport,
                                       transport::Address address, App* app)
    : transport_(transport), address_(address), app_(app), replies_(transport, this) {}

UnreplicatedServer::~UnreplicatedServer() { transport_->Unregister(this); }

absl::Status UnreplicatedServer::Start() {
  absl::StatusOr<transport::Address> bound = transport_->Register(this, address_);
  if (!bound.ok()) return bound.status();
  address_ = *bound;
  return absl::OkStatus();
}

void UnreplicatedServer::ReceiveMessage(const transport::Address& from,
                                        const transport::Envelope& msg) {
  ReplyBatcher::Hold hold(&replies_);
  if (msg.Is<RequestBatch>()) {
    RequestBatch batch;
    if (!msg.Parse(&batch)) return;
    for (const Request& r : batch.requests()) HandleRequest(from, r);
    return;
  }
  Request req;
  if (msg.Parse(&req)) HandleRequest(from, req);
}

void UnreplicatedServer::HandleRequest(const transport::Address& from, const Request& req) {
  auto& [last_id, result] = last_[req.client_id()];
  if (req.request_id() < last_id) return;
  if (req.request_id() > last_id) {
    last_id = req.request_id();
    result = app_->Execute(++slot_, req.op());
    app_->Commit(slot_);
  }
  Reply reply;
  reply.set_client_id(req.client_id());
  reply.set_request_id(req.request_id());
  reply.set_slot(slot_);
  reply.set_result(result);
  reply.set_durable(true);
  replies_.Send(from, &reply);
}

}  // namespace dctk::spaxos
