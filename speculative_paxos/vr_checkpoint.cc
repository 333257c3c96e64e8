// Log compaction for the VR baseline (checkpoint.h holds what it shares
// with Speculative Paxos). Every checkpoint_interval executed entries a
// replica snapshots the app and drops its log up to its previous
// checkpoint. Only executed (committed) entries are compacted, so a
// checkpoint never undoes anything. A replica that needs entries another
// has compacted copies that replica's checkpoint:
//  - catch-up and recovery: the leader's prepare for a follower below its
//    compaction point names its checkpoint; the follower copies it, then
//    acknowledges its new end and takes prepares from there;
//  - view change: a report whose log starts above the new leader's commit
//    point makes the leader execute up to there if its log holds that
//    prefix, or else copy the reporter's checkpoint (its own later entries
//    then go: its log did not hold the committed prefix, so they are stale),
//    and ask for reports again from its new commit point.
#include <algorithm>

#include "glog/logging.h"
#include "speculative_paxos/vr_replica.h"

namespace dctk::spaxos {

void VrReplica::MaybeCheckpoint() {
  if (config_.checkpoint_interval == 0 || !snapshots_ ||
      executed_ < checkpoint_slot_ + config_.checkpoint_interval) {
    return;
  }
  absl::StatusOr<std::string> cp = TakeCheckpoint(app_, &log_, executed_, checkpoint_slot_);
  if (!cp.ok()) {
    LOG(WARNING) << "vr replica " << index_ << ": no log compaction: " << cp.status();
    snapshots_ = false;
    return;
  }
  checkpoint_slot_ = executed_;
  checkpoint_bytes_ = *std::move(cp);
  ++stats_.checkpoints;
}

void VrReplica::SendCheckpointNotice(uint32_t r) {
  VrPrepare m;
  m.set_view(view_);
  m.set_first_slot(log_.base() + 1);
  m.set_commit(commit_);
  m.set_checkpoint(checkpoint_slot_);
  SendTo(r, m);
  catch_up_end_[r] = 0;
}

void VrReplica::BeginFetch(uint32_t replica, uint64_t min_slot) {
  VLOG(1) << "vr replica " << index_ << " copies a checkpoint >= " << min_slot << " from "
          << replica;
  fetch_.Begin(replica, min_slot);
  SendTo(replica, fetch_.Request(index_));
}

void VrReplica::HandleSnapshotRequest(const SnapshotRequest& m) {
  if (checkpoint_slot_ == 0 || m.replica() >= n() || m.replica() == index_) return;
  SendTo(m.replica(), ServeSnapshot(index_, checkpoint_slot_, checkpoint_bytes_, m,
                                    static_cast<size_t>(config_.snapshot_chunk), budget()));
}

void VrReplica::HandleSnapshotReply(const SnapshotReply& m) {
  switch (fetch_.Add(m)) {
    case SnapshotFetch::kMore:
      view_timeout_.Reset();  // progress from the leader we copy
      SendTo(fetch_.from(), fetch_.Request(index_));
      return;
    case SnapshotFetch::kDone:
      InstallFetched();
      return;
    case SnapshotFetch::kIgnored:
      return;
  }
}

void VrReplica::InstallFetched() {
  const Checkpoint& cp = fetch_.checkpoint();
  if (cp.slot() <= executed_) return;  // caught up meanwhile
  if (absl::Status s = app_->Restore(cp.slot(), cp.app_state()); !s.ok()) {
    LOG(ERROR) << "vr replica " << index_ << ": cannot install the checkpoint at slot "
               << cp.slot() << ": " << s;
    return;
  }
  VLOG(1) << "vr replica " << index_ << " installs the checkpoint at slot " << cp.slot();
  log_.Reset(cp.slot(), cp.hash(), cp.clients());
  executed_ = cp.slot();
  commit_ = std::max(commit_, cp.slot());
  checkpoint_slot_ = cp.slot();
  checkpoint_bytes_ = fetch_.TakeBytes();
  ++stats_.snapshots_installed;
  if (!normal_ && !recovering_) {
    if (IsLeader()) RestartViewChange();
    return;
  }
  // Follower or recovering: take prepares from our new end.
  VrPrepareOk ok;
  ok.set_view(view_);
  ok.set_replica(index_);
  ok.set_slot(log_.end());
  SendTo(LeaderOf(view_), ok);
  if (recovering_) MaybeFinishRecovery();
}

void VrReplica::RebaseViewChange(const VrDoViewChange& m) {
  if (fetch_.active()) return;
  ++stats_.change_rebases;
  VLOG(1) << "vr replica " << index_ << ": report of replica " << m.replica()
          << " starts at its compaction point " << m.checkpoint() << ", above our base "
          << change_base_;
  if (log_.Holds(m.checkpoint(), m.checkpoint_hash())) {
    // Our log holds that committed prefix: it is committed here too.
    ExecuteUpTo(m.checkpoint());
    RestartViewChange();
  } else {
    BeginFetch(m.replica(), m.checkpoint());
  }
}

void VrReplica::RestartViewChange() {
  change_base_ = executed_;
  do_view_changes_.clear();
  report_pieces_.clear();
  AddOwnReport();
  BroadcastStartViewChange();
  TryStartView();
}

void VrReplica::AddOwnReport() {
  VrDoViewChange mine;
  mine.set_view(view_);
  mine.set_replica(index_);
  mine.set_last_normal_view(last_normal_view_);
  mine.set_commit(executed_);
  mine.set_end(log_.end());
  mine.set_base(change_base_);
  log_.Export(change_base_ + 1, log_.end(), mine.mutable_entries());
  do_view_changes_[index_] = std::move(mine);
}

}  // namespace dctk::spaxos
