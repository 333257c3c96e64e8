// Synchronization: the leader's periodic SyncPrepare makes a prefix of its log
// confirmed by the replicas that hold it with the same hash; once f+1 have, the
// prefix is committed and the app is told. A replica whose log does not hold a
// committed prefix copies it by state transfer. Also: clients' reconciliation
// requests, which the leader answers with a new epoch.
#include <algorithm>
#include <functional>

#include "glog/logging.h"
#include "speculative_paxos/replica.h"

namespace dctk::spaxos {

void Replica::OnSyncTimer() {
  if (status_ != ReplicaStatus::kNormal || !IsLeader()) {
    sync_timer_.Stop();
    return;
  }
  // No commit progress for kStallTicks ticks while a prepared prefix waits:
  // f+1 replicas do not come to hold our log (we lost requests they have, or
  // they lost ours). Reconcile. (Contradicting logs are caught sooner, in
  // HandleSyncReply.)
  constexpr int kStallTicks = 5;
  if (log_.committed() > commit_at_last_tick_ || log_.committed() >= sync_point_) {
    stalled_ticks_ = 0;
  } else if (++stalled_ticks_ >= kStallTicks) {
    VLOG(1) << "replica " << index_ << ": commit stalled at " << log_.committed();
    BeginChange(stamp_.NextEpoch());
    return;
  }
  commit_at_last_tick_ = log_.committed();
  SendSyncPrepare();
}

void Replica::SendSyncPrepare() {
  if (log_.end() != sync_point_) std::fill(diverged_.begin(), diverged_.end(), false);
  sync_point_ = log_.end();
  confirmed_[index_] = sync_point_;
  SyncPrepare m;
  stamp_.ToProto(m.mutable_stamp());
  m.set_slot(sync_point_);
  m.set_hash(log_.HashAt(sync_point_));
  m.set_commit(log_.committed());
  m.set_commit_hash(log_.HashAt(log_.committed()));
  AddOrder(&m);
  SendToAll(m);
  MaybeAdvanceCommit();
}

void Replica::HandleSyncPrepare(const SyncPrepare& m) {
  const Stamp s = Stamp::FromProto(m.stamp());
  if (s < stamp_) {
    Count(Reject::kStaleStamp);
    HintNewerStamp(LeaderOf(s));
    return;
  }
  if (s > stamp_ || status_ != ReplicaStatus::kNormal) {
    if (s == stamp_ && status_ == ReplicaStatus::kTransfer) {
      HeardFromLeader();
    } else if (MayJoin(s)) {
      BeginTransfer(s, m.slot());
    }
    return;
  }
  if (IsLeader()) return;
  HeardFromLeader();
  bool match = log_.Holds(m.slot(), m.hash());
  bool lacking = false;
  // Without a full match: adopt the leader's order (f = 1) and acknowledge
  // the longest prefix of it we hold.
  uint64_t partial = 0;
  if (!match && m.order_clients_size() > 0) {
    partial = AdoptLeaderOrder(m, &lacking);
    match = partial == m.slot() && log_.Holds(m.slot(), m.hash());
  }
  if (match) sync_point_ = std::max(sync_point_, m.slot());
  SyncReply reply;
  stamp_.ToProto(reply.mutable_stamp());
  reply.set_replica(index_);
  reply.set_slot(m.slot());
  reply.set_match(match);
  reply.set_behind(m.slot() > log_.end() || lacking);
  if (!match && partial > m.commit() && partial < m.slot()) {
    reply.set_slot(partial);
    reply.set_match(true);
    reply.set_hash(log_.HashAt(partial));
  }
  SendTo(LeaderOf(s), reply);
  SyncCommit commit;
  *commit.mutable_stamp() = m.stamp();
  commit.set_slot(m.commit());
  commit.set_hash(m.commit_hash());
  ApplyCommit(commit, /*heartbeat=*/true);
}

void Replica::HandleSyncReply(const SyncReply& m) {
  if (Stamp::FromProto(m.stamp()) != stamp_ || status_ != ReplicaStatus::kNormal ||
      !IsLeader() || m.replica() >= n()) {
    return;
  }
  if (!m.match()) {
    // A log that contradicts ours at the prepared slot will not come to match
    // it; once too many do, no prefix past the commit point can commit.
    if (m.behind() || m.slot() != sync_point_ || sync_point_ <= log_.committed()) return;
    diverged_[m.replica()] = true;
    const int contradicting = std::count(diverged_.begin(), diverged_.end(), true);
    if (static_cast<int>(n()) - contradicting < config_.f() + 1) {
      VLOG(1) << "replica " << index_ << ": " << contradicting << " logs contradict slot "
              << sync_point_;
      BeginChange(stamp_.NextEpoch());
    }
    return;
  }
  // A partial acknowledgement counts once its hash is ours at that slot.
  if (!m.hash().empty() && !log_.Holds(m.slot(), m.hash())) return;
  confirmed_[m.replica()] = std::max(confirmed_[m.replica()], m.slot());
  MaybeAdvanceCommit();
}

void Replica::MaybeAdvanceCommit() {
  std::vector<uint64_t> sorted = confirmed_;
  std::sort(sorted.begin(), sorted.end(), std::greater<>());
  const uint64_t slot = std::min(sorted[config_.f()], log_.end());
  if (slot <= log_.committed()) return;
  CommitUpTo(slot);
  SyncCommit m;
  stamp_.ToProto(m.mutable_stamp());
  m.set_slot(slot);
  m.set_hash(log_.HashAt(slot));
  SendToAll(m);
}

void Replica::HandleSyncCommit(const SyncCommit& m) { ApplyCommit(m, /*heartbeat=*/false); }

void Replica::ApplyCommit(const SyncCommit& m, bool heartbeat) {
  const Stamp s = Stamp::FromProto(m.stamp());
  if (s < stamp_) {
    Count(Reject::kStaleStamp);
    return;
  }
  if (s > stamp_ || status_ != ReplicaStatus::kNormal) {
    if (MayJoin(s) && !(s == stamp_ && status_ == ReplicaStatus::kTransfer)) {
      BeginTransfer(s, m.slot());
    }
    return;
  }
  if (IsLeader() || m.slot() <= log_.committed()) return;
  HeardFromLeader();
  if (m.slot() > log_.end()) {
    // Behind: the requests are probably in flight. If they do not come, copy
    // the leader's log.
    constexpr int kBehindTicks = 5;
    if (heartbeat && ++behind_ticks_ >= kBehindTicks) BeginTransfer(s, m.slot());
    return;
  }
  behind_ticks_ = 0;
  if (log_.Holds(m.slot(), m.hash())) {
    sync_point_ = std::max(sync_point_, m.slot());
    CommitUpTo(m.slot());
  } else {
    // Our log contradicts a committed prefix: copy the leader's.
    BeginTransfer(s, m.slot());
  }
}

void Replica::HandleReconcileRequest(const transport::Address& from,
                                     const ReconcileRequest& m) {
  const Stamp s = Stamp::FromProto(m.stamp());
  if (s < stamp_) {
    Count(Reject::kStaleStamp);
    return;
  }
  if (s != stamp_ || status_ != ReplicaStatus::kNormal || !IsLeader()) return;
  if (m.client_id() != 0) {
    if (const LogEntry* e = log_.Find(m.client_id(), m.request_id())) {
      if (e->slot <= log_.committed()) {
        ReplyTo(*e);  // already final: one committed reply completes it
        return;
      }
      // We hold it: try to commit it with a sync now; the client gets a
      // committed reply then. If f+1 replicas do not hold our log, the sync
      // stalls or is contradicted, and we reconcile (HandleSyncReply, OnSyncTimer).
      const bool fresh = notify_slots_.empty() || *notify_slots_.rbegin() < e->slot;
      notify_slots_.insert(e->slot);
      if (fresh || sync_point_ < e->slot) SendSyncPrepare();
      return;
    }
  }
  VLOG(1) << "replica " << index_ << ": client " << m.client_id() << " request "
          << m.request_id() << " asks to reconcile";
  BeginChange(stamp_.NextEpoch());
}

void Replica::HintNewerStamp(uint32_t replica) {
  if (replica == index_ || replica >= n() || status_ == ReplicaStatus::kRecovering) return;
  StartChange hint;
  stamp_.ToProto(hint.mutable_stamp());
  hint.set_replica(index_);
  SendTo(replica, hint);
}

}  // namespace dctk::spaxos
