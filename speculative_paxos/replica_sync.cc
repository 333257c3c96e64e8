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
  // A prefix we prepared two ticks ago is still not committed: f+1 replicas do
  // not hold our log (it diverged, or we lost requests they have). Reconcile.
  if (log_.committed() < sync_point_) {
    if (++stalled_ticks_ >= 2) {
      BeginChange(stamp_.NextEpoch());
      return;
    }
  } else {
    stalled_ticks_ = 0;
  }
  sync_point_ = log_.end();
  confirmed_[index_] = sync_point_;
  SyncPrepare m;
  stamp_.ToProto(m.mutable_stamp());
  m.set_slot(sync_point_);
  m.set_hash(log_.HashAt(sync_point_));
  m.set_commit(log_.committed());
  m.set_commit_hash(log_.HashAt(log_.committed()));
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
  const bool match = m.slot() <= log_.end() && log_.HashAt(m.slot()) == m.hash();
  if (match) sync_point_ = std::max(sync_point_, m.slot());
  SyncReply reply;
  stamp_.ToProto(reply.mutable_stamp());
  reply.set_replica(index_);
  reply.set_slot(m.slot());
  reply.set_match(match);
  SendTo(LeaderOf(s), reply);
  SyncCommit commit;
  *commit.mutable_stamp() = m.stamp();
  commit.set_slot(m.commit());
  commit.set_hash(m.commit_hash());
  HandleSyncCommit(commit);
}

void Replica::HandleSyncReply(const SyncReply& m) {
  if (Stamp::FromProto(m.stamp()) != stamp_ || status_ != ReplicaStatus::kNormal ||
      !IsLeader() || m.replica() >= n()) {
    return;
  }
  if (!m.match()) return;
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

void Replica::HandleSyncCommit(const SyncCommit& m) {
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
  if (m.slot() <= log_.end() && log_.HashAt(m.slot()) == m.hash()) {
    sync_point_ = std::max(sync_point_, m.slot());
    CommitUpTo(m.slot());
  } else {
    // Our log misses or contradicts a committed prefix: copy the leader's.
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
    const LogEntry* e = log_.Find(m.client_id(), m.request_id());
    if (e != nullptr && e->slot <= log_.committed()) {
      ReplyTo(*e);  // already final: the client needs replies, not a new epoch
      return;
    }
  }
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
