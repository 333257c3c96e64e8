// Checkpoints and log compaction. Every checkpoint_interval committed entries
// a replica snapshots the app at its commit point (App::Snapshot) together
// with the per-client records (each client's newest request up to there and
// its reply) into a serialized Checkpoint, and drops its log up to the
// previous checkpoint: memory stays bounded, and the entries between the two
// checkpoints remain for followers that lag a little.
//
// A replica that needs entries another has compacted copies that replica's
// checkpoint in chunks (SnapshotRequest / SnapshotReply; any replica serves
// its checkpoint at any time, since it is committed state), installs it
// (App::Restore, Log::Reset) and continues:
//  - state transfer: the leader's StateReply says "from the checkpoint at
//    slot c"; the follower fetches it, then asks for the entries after c;
//  - log change: a report whose log starts above the leader's base (the
//    reporter compacted entries the leader has not committed) makes the
//    leader commit up to there if its log holds that prefix (same hash), or
//    else fetch the reporter's checkpoint; either way it then asks for
//    reports from its new commit point.
#include <algorithm>

#include "glog/logging.h"
#include "speculative_paxos/replica.h"

namespace dctk::spaxos {

void Replica::MaybeCheckpoint() {
  const uint64_t commit = log_.committed();
  if (config_.checkpoint_interval == 0 || !snapshots_ ||
      commit < checkpoint_.slot + config_.checkpoint_interval) {
    return;
  }
  absl::StatusOr<std::string> cp = TakeCheckpoint(app_, &log_, commit, checkpoint_.slot);
  if (!cp.ok()) {
    LOG(WARNING) << "replica " << index_ << ": no log compaction: " << cp.status();
    snapshots_ = false;
    return;
  }
  checkpoint_.slot = commit;
  checkpoint_.bytes = *std::move(cp);
  ++stats_.checkpoints;
}

void Replica::BeginFetch(uint32_t replica, uint64_t min_slot) {
  VLOG(1) << "replica " << index_ << " fetches a checkpoint >= " << min_slot << " from "
          << replica;
  fetch_.Begin(replica, std::max(min_slot, log_.committed() + 1));
  retry_timer_.Start();
  SendTo(replica, fetch_.Request(index_));
}

void Replica::HandleSnapshotRequest(const SnapshotRequest& m) {
  if (checkpoint_.slot == 0 || m.replica() >= n()) return;
  SendTo(m.replica(), ServeSnapshot(index_, checkpoint_.slot, checkpoint_.bytes, m,
                                    static_cast<size_t>(config_.snapshot_chunk), budget()));
}

void Replica::HandleSnapshotReply(const SnapshotReply& m) {
  switch (fetch_.Add(m)) {
    case SnapshotFetch::kMore:
      leader_timeout_.Reset();  // progress: not stuck
      SendTo(fetch_.from(), fetch_.Request(index_));
      return;
    case SnapshotFetch::kDone:
      leader_timeout_.Reset();
      OnFetched();
      return;
    case SnapshotFetch::kIgnored:
      return;
  }
}

void Replica::OnFetched() {
  const Checkpoint cp = fetch_.checkpoint();
  std::string bytes = fetch_.TakeBytes();
  fetch_.Clear();
  if (status_ == ReplicaStatus::kTransfer) {
    if (!InstallCheckpoint(cp, std::move(bytes))) return;
    transfer_next_ = log_.committed() + 1;
    SendStateRequest();
    return;
  }
  if (status_ == ReplicaStatus::kChanging && IsLeader()) {
    // Our speculative requests go (our log did not hold the committed prefix
    // they follow); those the merged log lacks run again after the change.
    std::vector<std::pair<transport::Address, Request>> dropped = RequestsAfter(log_.committed());
    if (!InstallCheckpoint(cp, std::move(bytes))) return;
    RerunDropped(std::move(dropped));
    RestartChange();
  }
}

bool Replica::InstallCheckpoint(const Checkpoint& cp, std::string bytes) {
  if (cp.slot() <= log_.committed()) return true;  // nothing new
  if (absl::Status s = app_->Restore(cp.slot(), cp.app_state()); !s.ok()) {
    LOG(ERROR) << "replica " << index_ << ": cannot install the checkpoint at slot "
               << cp.slot() << ": " << s;
    return false;
  }
  VLOG(1) << "replica " << index_ << " installs the checkpoint at slot " << cp.slot()
          << " (log " << log_.end() << ", commit " << log_.committed() << ")";
  stats_.rolled_back += log_.end() - log_.committed();
  log_.Reset(cp.slot(), cp.hash(), cp.clients());
  sync_point_ = cp.slot();
  checkpoint_.slot = cp.slot();
  checkpoint_.bytes = std::move(bytes);
  ++stats_.snapshots_installed;
  return true;
}

void Replica::RebaseChange(const LogReport& m) {
  if (fetch_.active()) return;
  ++stats_.change_rebases;
  VLOG(1) << "replica " << index_ << ": report of replica " << m.replica()
          << " starts at its compaction point " << m.log_base() << ", above our base "
          << change_base_;
  if (log_.Holds(m.log_base(), m.log_base_hash())) {
    // Our log holds that committed prefix: it is committed here too.
    CommitUpTo(m.log_base());
    RestartChange();
  } else {
    BeginFetch(m.replica(), m.log_base());
  }
}

void Replica::RestartChange() {
  change_base_ = log_.committed();
  reports_.clear();
  report_pieces_.clear();
  if (has_log_) reports_[index_] = MakeReport(change_base_);
  BroadcastStartChange();
  TryFinishChange();
}

}  // namespace dctk::spaxos
