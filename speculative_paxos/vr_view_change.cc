// VR view change (Liskov & Cowling, "Viewstamped Replication Revisited"),
// for the leader-based baseline. Only committed entries are ever executed, so
// a view change replaces uncommitted entries without undoing anything.
#include <algorithm>
#include <tuple>

#include "glog/logging.h"
#include "speculative_paxos/vr_replica.h"

namespace dctk::spaxos {
namespace {
// Entries per StartView; the leader's resends fill in the rest.
constexpr uint64_t kMaxStartViewEntries = 256;
}  // namespace

void VrReplica::EnterNormal() {
  if (view_ != last_normal_view_) ++stats_.view_changes;
  normal_ = true;
  last_normal_view_ = view_;
  do_view_changes_.clear();
  report_pieces_.clear();
  std::fill(catch_up_end_.begin(), catch_up_end_.end(), 0);
  sent_do_view_change_ = false;
  resend_.Start();
  if (IsLeader()) {
    heartbeat_.Start();
    view_timeout_.Stop();
  } else {
    heartbeat_.Stop();
    view_timeout_.Start();
  }
}

void VrReplica::OnViewTimeout() {
  if (recovering_) {
    // The leader we copy from went silent: learn the view again.
    if (catching_up_) BeginRecovery();
    return;
  }
  if (normal_ && IsLeader()) return;
  BeginViewChange(view_ + 1);
}

void VrReplica::BeginViewChange(uint64_t view) {
  CHECK_GT(view, view_);
  VLOG(1) << "vr replica " << index_ << " begins view change " << view_ << " -> " << view;
  view_ = view;
  normal_ = false;
  do_view_changes_.clear();
  report_pieces_.clear();
  sent_do_view_change_ = false;
  heartbeat_.Stop();
  view_timeout_.Reset();
  if (IsLeader()) {
    change_base_ = executed_;
    AddOwnReport();
  }
  BroadcastStartViewChange();
  TryStartView();
}

void VrReplica::BroadcastStartViewChange() {
  for (uint32_t r = 0; r < n(); ++r) {
    if (!IsLeader() || !do_view_changes_.contains(r)) SendStartViewChange(r);
  }
}

void VrReplica::SendStartViewChange(uint32_t to) {
  VrStartViewChange m;
  m.set_view(view_);
  m.set_replica(index_);
  m.set_commit(executed_);
  if (IsLeader()) {
    // Holding part of its report: ask for the rest only.
    auto it = report_pieces_.find(to);
    if (it != report_pieces_.end() && !it->second.empty()) {
      m.set_report_from(it->second.FirstMissing());
    }
  }
  SendTo(to, m);
}

void VrReplica::SendDoViewChange(uint32_t leader, uint64_t base, uint64_t from) {
  VrDoViewChange dvc;
  dvc.set_view(view_);
  dvc.set_replica(index_);
  dvc.set_last_normal_view(last_normal_view_);
  dvc.set_commit(executed_);
  dvc.set_end(log_.end());
  dvc.set_base(base);
  if (base < log_.base()) {
    // We compacted past the new leader's commit point: it catches up to our
    // compaction point first (vr_checkpoint.cc), then asks again.
    dvc.set_checkpoint(log_.base());
    dvc.set_checkpoint_hash(log_.HashAt(log_.base()));
    SendTo(leader, dvc);
    return;
  }
  if (log_.end() > base) {
    dvc.set_base_hash(log_.HashAt(base));
    log_.Export(std::max(base + 1, from), log_.end(), dvc.mutable_entries());
  }
  // Room for window_end (2 bytes) on a window's last piece.
  std::vector<VrDoViewChange> pieces = SplitEntries(std::move(dvc), budget() - 2);
  const size_t window = std::min(pieces.size(), kPieceWindow);
  for (size_t i = 0; i < window; ++i) {
    if (i + 1 == window && window < pieces.size()) pieces[i].set_window_end(true);
    SendTo(leader, pieces[i]);
  }
}

void VrReplica::HandleStartViewChange(const VrStartViewChange& m) {
  if (recovering_) {
    (void)RecoveringAccepts(m.view());  // restarts recovery on a newer view
    return;
  }
  if (m.view() < view_ || m.replica() >= n() || m.replica() == index_) return;
  if (m.view() > view_) BeginViewChange(m.view());
  if (normal_) {
    // A straggler is still changing to our view: bring it in.
    if (IsLeader()) SendStartView(m.replica(), m.commit() + 1);
    return;
  }
  if (IsLeader() || m.replica() != LeaderOf(view_)) return;
  // The new leader asks: report our log after its commit point.
  SendDoViewChange(m.replica(), m.commit(), m.report_from());
  sent_do_view_change_ = true;
}

void VrReplica::HandleDoViewChange(VrDoViewChange m) {
  if (recovering_) {
    (void)RecoveringAccepts(m.view());  // restarts recovery on a newer view
    return;
  }
  if (m.view() < view_ || m.replica() >= n()) return;
  if (m.view() > view_) {
    BeginViewChange(m.view());  // it reports from another base; it resends on our StartViewChange
    return;
  }
  if (normal_ || !IsLeader() || m.base() != change_base_ || m.replica() == index_ ||
      do_view_changes_.contains(m.replica())) {
    return;
  }
  if (m.checkpoint() > change_base_) {
    RebaseViewChange(m);
    return;
  }
  if (m.end() > m.base()) {
    // Entries come in pieces: put the report together first.
    const bool window_end = m.window_end();
    m.clear_window_end();
    PieceAssembler& pieces = report_pieces_[m.replica()];
    if (!pieces.Add(&m)) {
      if (window_end) SendStartViewChange(m.replica());  // the next window
      return;
    }
    if (!pieces.Take(m.base_hash(), m.mutable_entries())) return;  // mixed logs: ask again
  }
  do_view_changes_[m.replica()] = std::move(m);
  TryStartView();
}

void VrReplica::TryStartView() {
  if (!IsLeader() || normal_ ||
      do_view_changes_.size() < static_cast<size_t>(config_.f() + 1)) {
    return;
  }
  // The log of the highest (last normal view, length): it holds every entry
  // committed in any earlier view.
  const VrDoViewChange* best = nullptr;
  uint64_t commit = executed_;
  for (const auto& [r, dvc] : do_view_changes_) {
    if (best == nullptr || std::make_tuple(dvc.last_normal_view(), dvc.end()) >
                               std::make_tuple(best->last_normal_view(), best->end())) {
      best = &dvc;
    }
    commit = std::max(commit, dvc.commit());
  }
  CHECK_GE(best->end(), change_base_) << "vr: the chosen log ends below the new leader's commit";
  if (best->replica() != index_) {
    log_.TruncateAfter(change_base_);
    for (const Entry& e : best->entries()) {
      log_.Append(e.client_id(), e.request_id(), e.op(),
                  transport::Address(e.client_ip(), e.client_port()));
    }
  }
  std::fill(acked_.begin(), acked_.end(), 0);
  for (const auto& [r, dvc] : do_view_changes_) acked_[r] = std::min(dvc.commit(), log_.end());
  prepared_ = log_.end();
  commit_ = std::min(commit, log_.end());
  VLOG(1) << "vr replica " << index_ << " starts view " << view_ << " with log " << log_.end()
          << " commit " << commit_ << " (from replica " << best->replica() << ")";
  const auto reports = std::move(do_view_changes_);
  EnterNormal();
  ExecuteUpTo(commit_);
  for (uint32_t r = 0; r < n(); ++r) {
    if (r == index_) continue;
    auto it = reports.find(r);
    SendStartView(r, (it != reports.end() ? it->second.commit() : change_base_) + 1);
  }
  AdvanceCommit();
}

void VrReplica::SendStartView(uint32_t to, uint64_t from_slot) {
  VrStartView m;
  m.set_view(view_);
  m.set_from_slot(from_slot);
  log_.Export(from_slot, std::min(log_.end(), from_slot + kMaxStartViewEntries - 1),
              m.mutable_entries());
  m.set_commit(commit_);
  // One datagram: the entries that fit; the rest follow as prepares once
  // the follower acknowledges (SendCatchUp).
  std::vector<VrStartView> pieces = SplitEntries(std::move(m), budget());
  SendTo(to, pieces.front());
}

void VrReplica::HandleStartView(const VrStartView& m) {
  if (recovering_) {
    (void)RecoveringAccepts(m.view());  // restarts recovery on a newer view
    return;
  }
  if (m.view() < view_ || (m.view() == view_ && normal_) || LeaderOf(m.view()) == index_) {
    return;
  }
  view_ = m.view();
  // Uncommitted entries may be stale (from an older view): keep only what is
  // committed and take the rest from the leader (now, or by its resends).
  log_.TruncateAfter(executed_);
  if (m.from_slot() <= executed_ + 1) {
    for (const Entry& e : m.entries()) {
      if (e.slot() <= log_.end()) continue;
      if (e.slot() != log_.end() + 1) break;
      log_.Append(e.client_id(), e.request_id(), e.op(),
                  transport::Address(e.client_ip(), e.client_port()));
    }
  }
  VLOG(1) << "vr replica " << index_ << " joins view " << view_ << " with log " << log_.end();
  EnterNormal();
  VrPrepareOk ok;
  ok.set_view(view_);
  ok.set_replica(index_);
  ok.set_slot(log_.end());
  SendTo(LeaderOf(view_), ok);
  commit_ = std::max(commit_, m.commit());
  ExecuteUpTo(std::min(commit_, log_.end()));
}

}  // namespace dctk::spaxos
