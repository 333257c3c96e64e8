// State transfer and recovery. A replica that lags behind its leader, holds a
// log that contradicts a committed prefix, or missed a log change copies the
// leader's confirmed log in chunks (rolling back what differs). A restarted
// replica has lost its log: it learns the newest stamp from f+1 others, asks
// that stamp's leader for a reconciliation, and rejoins only through a stamp
// newer than any it can have served before the crash.
#include <algorithm>

#include "glog/logging.h"
#include "speculative_paxos/replica.h"

namespace dctk::spaxos {

bool Replica::MayJoin(Stamp s) const {
  if (status_ == ReplicaStatus::kRecovering) {
    return recovery_stamp_.has_value() && s > *recovery_stamp_;
  }
  return s > stamp_ || (s == stamp_ && status_ != ReplicaStatus::kNormal);
}

void Replica::BeginTransfer(Stamp s, uint64_t target) {
  if (LeaderOf(s) == index_) return;  // a stamp's leader never copies its own log
  if (status_ == ReplicaStatus::kTransfer && stamp_ == s) {
    transfer_target_ = std::max(transfer_target_, target);
    return;
  }
  VLOG(1) << "replica " << index_ << " transfers from the leader of " << s.ToString()
          << " (target " << target << ", log " << log_.end() << ", commit " << log_.committed()
          << ")";
  // Our speculative requests may be replaced by the leader's log; those it
  // lacks run again afterwards (RerunDropped), so none is lost here.
  transfer_dropped_ = RequestsAfter(log_.committed());
  fetch_.Clear();
  stamp_ = s;
  status_ = ReplicaStatus::kTransfer;
  transfer_target_ = target;
  transfer_next_ = log_.committed() + 1;
  reports_.clear();
  report_pieces_.clear();
  sync_timer_.Stop();
  leader_timeout_.Reset();
  retry_timer_.Start();
  SendStateRequest();
}

void Replica::SendStateRequest() {
  StateRequest m;
  stamp_.ToProto(m.mutable_stamp());
  m.set_replica(index_);
  m.set_from_slot(transfer_next_);
  SendTo(LeaderOf(stamp_), m);
}

void Replica::HandleStateRequest(const StateRequest& m) {
  if (Stamp::FromProto(m.stamp()) != stamp_ || status_ != ReplicaStatus::kNormal ||
      !IsLeader() || m.replica() >= n()) {
    return;
  }
  uint64_t from = std::max<uint64_t>(m.from_slot(), 1);
  StateReply reply;
  stamp_.ToProto(reply.mutable_stamp());
  reply.set_from_slot(m.from_slot());
  // Only what is committed or was installed for this stamp: copying our
  // unacknowledged speculative entries could overwrite ones a superquorum holds.
  const uint64_t end = std::max(log_.committed(), stamp_base_);
  if (from <= log_.base()) {
    // Compacted: the follower copies our checkpoint first.
    reply.set_checkpoint(checkpoint_.slot);
    reply.set_end(end);
    reply.set_commit_point(log_.committed());
    SendTo(m.replica(), reply);
    return;
  }
  reply.set_end(end);
  reply.set_end_hash(log_.HashAt(end));
  reply.set_commit_point(log_.committed());
  // A window of replies, each with as many entries as fit in one datagram
  // (at least one) and transfer_chunk.
  const uint64_t last_slot = std::min(end, log_.end());
  for (size_t k = 0; k < kPieceWindow; ++k) {
    StateReply piece = reply;
    piece.set_from_slot(from);
    const uint64_t to = std::min(last_slot, from + config_.transfer_chunk - 1);
    size_t bytes = piece.ByteSizeLong() + 2;  // and `last`
    for (uint64_t slot = from; slot <= to; ++slot) {
      Entry e;
      ToWire(*log_.At(slot), &e);
      bytes += EntryBytes(e);
      if (piece.entries_size() > 0 && bytes > budget()) break;
      *piece.add_entries() = std::move(e);
    }
    const bool done = piece.entries_size() == 0 ||
                      piece.entries(piece.entries_size() - 1).slot() >= last_slot;
    piece.set_last(done || k + 1 == kPieceWindow);
    SendTo(m.replica(), piece);
    if (done) return;
    from = piece.entries(piece.entries_size() - 1).slot() + 1;
  }
}

void Replica::HandleStateReply(const StateReply& m) {
  if (status_ != ReplicaStatus::kTransfer || Stamp::FromProto(m.stamp()) != stamp_ ||
      m.from_slot() != transfer_next_) {
    return;
  }
  HeardFromLeader();
  if (m.checkpoint() > 0 && m.entries_size() == 0) {
    if (!fetch_.active()) BeginFetch(LeaderOf(stamp_), m.checkpoint());
    return;
  }
  if (fetch_.active()) return;
  if (m.entries_size() > 0) {
    if (m.entries(0).slot() != transfer_next_ || transfer_next_ > log_.end() + 1) {
      LOG(ERROR) << "replica " << index_ << ": state reply starts at slot "
                 << m.entries(0).slot() << ", asked for " << transfer_next_;
      return;
    }
    InstallEntries(m.entries());
    transfer_next_ = m.entries(m.entries_size() - 1).slot() + 1;
  }
  if (transfer_next_ > m.end() && log_.Holds(m.end(), m.end_hash())) {
    TruncateTo(m.end());
    CommitUpTo(std::min(m.commit_point(), m.end()));
    ++stats_.transfers;
    RerunDropped(std::move(transfer_dropped_));
    transfer_dropped_.clear();
    EnterNormal(stamp_, m.end());
    return;
  }
  if (m.entries_size() == 0) {
    LOG(ERROR) << "replica " << index_ << ": leader's log ends at " << m.end()
               << " and does not match ours; restarting transfer from the commit point";
    transfer_next_ = log_.committed() + 1;
  }
  // The next window after the last reply of this one (a lost reply: retry).
  if (m.last()) SendStateRequest();
}

void Replica::BeginRecovery() {
  status_ = ReplicaStatus::kRecovering;
  has_log_ = false;
  recovery_nonce_ = static_cast<uint64_t>(absl::ToUnixNanos(transport_->Now())) ^
                    (uint64_t{index_} << 56);
  recovery_responses_.clear();
  recovery_stamp_.reset();
  retry_timer_.Start();
  RecoveryRequest m;
  m.set_replica(index_);
  m.set_nonce(recovery_nonce_);
  SendToAll(m);
}

void Replica::HandleRecoveryRequest(const transport::Address& from,
                                    const RecoveryRequest& m) {
  if (status_ == ReplicaStatus::kRecovering || m.replica() >= n()) return;
  RecoveryResponse reply;
  reply.set_replica(index_);
  reply.set_nonce(m.nonce());
  stamp_.ToProto(reply.mutable_stamp());
  SendTo(m.replica(), reply);
}

void Replica::HandleRecoveryResponse(const RecoveryResponse& m) {
  if (status_ != ReplicaStatus::kRecovering || m.nonce() != recovery_nonce_ ||
      m.replica() >= n() || recovery_stamp_) {
    return;
  }
  recovery_responses_[m.replica()] = Stamp::FromProto(m.stamp());
  if (recovery_responses_.size() < static_cast<size_t>(config_.f() + 1)) return;
  Stamp newest;
  for (const auto& [r, s] : recovery_responses_) newest = std::max(newest, s);
  recovery_stamp_ = newest;
  stamp_ = newest;
  ReconcileRequest req;
  newest.ToProto(req.mutable_stamp());
  SendTo(LeaderOf(newest), req);
}

}  // namespace dctk::spaxos
