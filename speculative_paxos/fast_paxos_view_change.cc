// Fast Paxos coordinator change (fast_paxos_replica.h): a replica that hears
// no coordinator for view_change_timeout moves to the next view; the new
// coordinator pulls one other replica's report, merges it with its own by
// the Fast Paxos rule (fast_paxos_merge.h) and proposes the result as the
// view's first classic round.
#include <algorithm>

#include "glog/logging.h"
#include "speculative_paxos/fast_paxos_merge.h"
#include "speculative_paxos/fast_paxos_replica.h"

namespace dctk::spaxos {

void FastPaxosReplica::OnViewTimeout() {
  if (normal_ && IsCoordinator()) return;
  BeginViewChange(view_ + 1);
}

void FastPaxosReplica::BeginViewChange(uint64_t view) {
  CHECK_GT(view, view_);
  VLOG(1) << "fast paxos replica " << index_ << " begins view change " << view_ << " -> "
          << view;
  view_ = view;
  normal_ = false;
  // Whatever we coordinated before is over; we take nothing from older views.
  votes_.clear();
  known_.clear();
  max_vote_.fill(0);
  classic_pending_ = false;
  stalled_ticks_ = 0;
  votes_out_.Clear();
  reports_.clear();
  view_timeout_.Start();  // a stuck change moves on to the next view
  FpViewChange m;
  m.set_view(view_);
  m.set_replica(index_);
  for (uint32_t r = 0; r < n(); ++r) SendTo(r, m);
  if (!IsCoordinator()) {
    heartbeat_.Stop();
    return;
  }
  // Our own report: what we accepted past our chosen log.
  change_base_ = log_.end();
  Report& mine = reports_[index_];
  mine.done = true;
  for (auto it = accepted_.upper_bound(change_base_); it != accepted_.end(); ++it) {
    mine.entries.emplace(it->first, it->second);
  }
  heartbeat_.Start();  // asks again for missing report pieces
  for (uint32_t r = 0; r < n(); ++r) {
    if (r == index_) continue;
    reports_[r].next = change_base_ + 1;
    AskReport(r);
  }
}

bool FastPaxosReplica::AcceptsView(uint64_t view, uint32_t from) {
  if (view < view_) {
    // From an older coordinator: tell it which view we are in.
    FpViewChange m;
    m.set_view(view_);
    m.set_replica(index_);
    SendTo(from, m);
    return false;
  }
  if (from == index_) return false;
  if (view > view_ || !normal_) {
    // We missed (part of) the change to `view`: its coordinator is serving.
    view_ = view;
    EnterNormal();
  }
  view_timeout_.Reset();
  return true;
}

void FastPaxosReplica::EnterNormal() {
  VLOG(1) << "fast paxos replica " << index_ << " is a follower in view " << view_;
  normal_ = true;
  ++stats_.view_changes;
  votes_.clear();
  known_.clear();
  max_vote_.fill(0);
  classic_pending_ = false;
  reports_.clear();
  heartbeat_.Stop();
  view_timeout_.Start();
}

void FastPaxosReplica::HandleViewChange(const FpViewChange& m) {
  if (m.replica() >= n() || m.replica() == index_) return;
  if (m.view() < view_) {
    if (normal_ && IsCoordinator()) {
      SendCommit(m.replica());  // brings it into our view
    } else {
      FpViewChange newer;
      newer.set_view(view_);
      newer.set_replica(index_);
      SendTo(m.replica(), newer);
    }
    return;
  }
  if (m.view() > view_) BeginViewChange(m.view());
  if (normal_) {
    // A straggler still changing to our view: our commit brings it in.
    if (IsCoordinator()) SendCommit(m.replica());
    return;
  }
  if (m.replica() == coordinator() && m.from_slot() > 0) SendReport(m.replica(), m.from_slot());
}

void FastPaxosReplica::AskReport(uint32_t replica) {
  FpViewChange m;
  m.set_view(view_);
  m.set_replica(index_);
  m.set_from_slot(reports_[replica].next);
  SendTo(replica, m);
}

void FastPaxosReplica::SendReport(uint32_t to, uint64_t from_slot) {
  FpReport m;
  m.set_view(view_);
  m.set_replica(index_);
  m.set_from_slot(from_slot);
  // Room for `next` and `done`.
  size_t bytes = m.ByteSizeLong() + 14;
  bool full = false;
  uint64_t next = from_slot;
  auto add = [&](Entry e) {
    const size_t b = EntryBytes(e);
    if (m.entries_size() > 0 && bytes + b > budget()) return false;
    bytes += b;
    next = e.slot() + 1;
    *m.add_entries() = std::move(e);
    return true;
  };
  // Chosen entries (our log), then what we accepted after it.
  for (uint64_t s = from_slot; s <= log_.end() && !full; ++s) {
    Entry e;
    ToWire(*log_.At(s), &e);
    e.clear_hash();
    e.set_ballot(kFpChosenBallot);
    full = !add(std::move(e));
  }
  for (auto it = accepted_.lower_bound(std::max(from_slot, log_.end() + 1));
       it != accepted_.end() && !full; ++it) {
    full = !add(it->second);
    if (full) next = it->first;
  }
  m.set_next(std::max(next, from_slot));
  m.set_done(!full);
  SendTo(to, m);
}

void FastPaxosReplica::HandleReport(const FpReport& m) {
  if (normal_ || !IsCoordinator() || m.view() != view_ || m.replica() >= n() ||
      m.replica() == index_) {
    return;
  }
  Report& r = reports_[m.replica()];
  if (r.done || m.from_slot() != r.next) return;  // a duplicate or a late piece
  for (const Entry& e : m.entries()) {
    if (e.slot() > change_base_) r.entries[e.slot()] = e;
  }
  r.next = m.next();
  r.done = m.done();
  if (!r.done) {
    AskReport(m.replica());
    return;
  }
  FinishViewChange();
}

void FastPaxosReplica::FinishViewChange() {
  // A classic quorum: ours and the first complete other report.
  std::vector<std::map<uint64_t, Entry>> reports;
  for (auto& [r, report] : reports_) {
    if (report.done && reports.size() < 2) reports.push_back(std::move(report.entries));
  }
  absl::StatusOr<FpMerge> merged = MergeFastPaxos(
      change_base_, reports, [this](uint64_t client) { return log_.LatestRequest(client); });
  if (!merged.ok()) {
    // Broken invariants: stay out of service (the view times out).
    LOG(ERROR) << "fast paxos replica " << index_ << " view " << view_ << ": "
               << merged.status();
    return;
  }
  stats_.installed += merged->entries.size();
  stats_.kept += merged->kept;
  stats_.noops += merged->noops;
  stats_.merge_conflicts += merged->conflicts;
  VLOG(1) << "fast paxos replica " << index_ << " starts view " << view_ << ": slots "
          << change_base_ + 1 << ".." << change_base_ + merged->entries.size() << " ("
          << merged->kept << " kept, " << merged->noops << " no-ops)";
  accepted_.clear();
  accepted_at_.clear();
  for (Entry& e : merged->entries) {
    accepted_at_[IdOf(e)] = e.slot();
    accepted_[e.slot()] = std::move(e);
  }
  normal_ = true;
  ++stats_.view_changes;
  reports_.clear();
  view_timeout_.Stop();
  heartbeat_.Start();
  // The installation is the view's first classic round; the fast ballot
  // after it votes past its last slot.
  BeginClassic(FpBallot(view_, 1), change_base_ + merged->entries.size());
  for (uint32_t r = 0; r < n(); ++r) SendCommit(r);
}

}  // namespace dctk::spaxos
