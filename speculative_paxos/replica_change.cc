// Log change: reconciliation (new epoch, same leader) and view change (new
// view, next leader) are one protocol. Every replica that enters stamp s stops
// serving requests and broadcasts StartChange(s); s's leader asks for LogReports
// of the entries after its commit point, merges f+1 of them (merge.h),
// installs the result and sends it as StartLog. Installing replicas roll back
// entries that differ, re-execute, confirm the new log (SyncReply) and answer
// the clients of its speculative part at once, so nobody waits for a timeout.
//
// LogReport and StartLog travel in pieces within the datagram budget
// (pieces.h). A follower sends a window of kPieceWindow pieces of its report;
// the leader asks for more from the first slot it lacks
// (StartChange.report_from) when the window's last piece arrives, and every
// retry_interval. A StartLog that fits in one window goes as pieces; a
// longer one goes without entries and the followers copy it by state transfer
// (windows on request). A follower missing pieces of the StartLog copies the
// log by state transfer once the leader's first heartbeat arrives (as one
// that missed the whole StartLog).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "speculative_paxos/merge.h"
#include "speculative_paxos/replica.h"

namespace dctk::spaxos {

void Replica::BeginChange(Stamp s) {
  VLOG(1) << "replica " << index_ << " begins change " << stamp_.ToString() << " -> "
          << s.ToString() << " (log " << log_.end() << ", commit " << log_.committed()
          << ", sync " << sync_point_ << " in " << log_stamp_.ToString() << ") t="
          << absl::FormatTime("%S.%E6f", transport_->Now(), absl::UTCTimeZone());
  if (s.view != stamp_.view) {
    ++stats_.view_changes;
  } else {
    ++stats_.reconciliations;
  }
  stamp_ = s;
  status_ = ReplicaStatus::kChanging;
  reports_.clear();
  report_pieces_.clear();
  start_pieces_.Clear();
  reported_ = false;
  fetch_.Clear();
  sync_timer_.Stop();
  leader_timeout_.Reset();
  retry_timer_.Start();
  if (IsLeader()) {
    change_base_ = log_.committed();
    if (has_log_) reports_[index_] = MakeReport(change_base_);
  }
  BroadcastStartChange();
  TryFinishChange();
}

void Replica::BroadcastStartChange() {
  StartChange m;
  stamp_.ToProto(m.mutable_stamp());
  m.set_replica(index_);
  if (IsLeader()) {
    for (uint32_t r = 0; r < n(); ++r) {
      if (!reports_.contains(r)) AskForReport(r);
    }
  } else {
    SendToAll(m);
  }
}

void Replica::AskForReport(uint32_t replica) {
  StartChange m;
  stamp_.ToProto(m.mutable_stamp());
  m.set_replica(index_);
  m.set_from_slot(change_base_ + 1);
  auto pieces = report_pieces_.find(replica);
  m.set_report_from(pieces == report_pieces_.end() ? 0 : pieces->second.FirstMissing());
  SendTo(replica, m);
}

SyncPrepare Replica::MakeSyncPrepare() const {
  SyncPrepare m;
  stamp_.ToProto(m.mutable_stamp());
  m.set_slot(sync_point_);
  m.set_hash(log_.HashAt(sync_point_));
  m.set_commit(log_.committed());
  m.set_commit_hash(log_.HashAt(log_.committed()));
  return m;
}

LogReport Replica::MakeReport(uint64_t base) const {
  LogReport r;
  stamp_.ToProto(r.mutable_stamp());
  r.set_replica(index_);
  log_stamp_.ToProto(r.mutable_log_stamp());
  r.set_sync_point(ConfirmedPoint());
  r.set_commit_point(log_.committed());
  r.set_base(base);
  r.set_end(base);
  if (base < log_.base()) {
    // Entries after `base` up to our compaction point are gone: the leader
    // moves its base up first (RebaseChange).
    r.set_log_base(log_.base());
    r.set_log_base_hash(log_.HashAt(log_.base()));
  } else if (log_.end() >= base) {
    r.set_covers_base(true);
    r.set_base_hash(log_.HashAt(base));
    r.set_end(log_.end());
    log_.Export(base + 1, log_.end(), r.mutable_entries());
  }
  return r;
}

void Replica::SendReport(uint64_t base, uint64_t from) {
  // Two bytes left for `more`.
  std::vector<LogReport> pieces = SplitEntries(MakeReport(base), budget() - 2);
  // From the piece holding slot `from` (or the last one), one window.
  size_t first = 0;
  while (first + 1 < pieces.size() && pieces[first].entries_size() > 0 &&
         pieces[first].entries(pieces[first].entries_size() - 1).slot() < from) {
    ++first;
  }
  const size_t stop = std::min(pieces.size(), first + kPieceWindow);
  if (stop < pieces.size()) pieces[stop - 1].set_more(true);
  for (size_t i = first; i < stop; ++i) SendTo(LeaderOf(stamp_), pieces[i]);
}

void Replica::HandleStartChange(const StartChange& m) {
  if (status_ == ReplicaStatus::kRecovering || m.replica() >= n()) return;
  const Stamp s = Stamp::FromProto(m.stamp());
  if (s < stamp_) {
    Count(Reject::kStaleStamp);
    HintNewerStamp(m.replica());
    return;
  }
  if (s > stamp_) BeginChange(s);
  if (status_ == ReplicaStatus::kNormal) {
    // A straggler is still changing to our stamp: our heartbeat makes it
    // copy our log.
    if (IsLeader()) SendTo(m.replica(), MakeSyncPrepare());
    return;
  }
  if (status_ != ReplicaStatus::kChanging) return;
  if (IsLeader()) {
    if (!reports_.contains(m.replica())) BroadcastStartChange();
    return;
  }
  if (m.replica() == LeaderOf(s) && m.from_slot() > 0 && has_log_) {
    SendReport(m.from_slot() - 1, m.report_from());
    reported_ = true;
  }
}

void Replica::HandleLogReport(LogReport m) {
  if (Stamp::FromProto(m.stamp()) != stamp_ || status_ != ReplicaStatus::kChanging || !IsLeader() ||
      m.base() != change_base_ || m.replica() >= n() || m.replica() == index_ || fetch_.active()) {
    return;
  }
  if (m.log_base() > change_base_) {
    RebaseChange(m);
    return;
  }
  if (reports_.contains(m.replica())) return;
  const bool more = m.more();
  m.clear_more();  // not part of the report
  PieceAssembler& pieces = report_pieces_[m.replica()];
  if (!pieces.Add(&m)) {
    if (more) AskForReport(m.replica());  // the window's end: the next one now
    return;
  }
  if (!pieces.Take(m.base_hash(), m.mutable_entries())) {
    LOG(WARNING) << "replica " << index_ << ": the pieces of replica " << m.replica()
                 << "'s report for " << stamp_.ToString()
                 << " do not chain; asking for it again";
    return;
  }
  report_pieces_.erase(m.replica());
  reports_[m.replica()] = std::move(m);
  TryFinishChange();
}

void Replica::TryFinishChange() {
  if (!IsLeader() || fetch_.active() || reports_.size() < static_cast<size_t>(config_.f() + 1)) {
    return;
  }
  MergeInput in;
  in.f = config_.f();
  in.base = change_base_;
  in.base_hash = log_.HashAt(change_base_);
  for (const auto& [r, report] : reports_) in.reports.push_back(report);
  in.prefix_latest = [this](uint64_t client) {
    return log_.LatestRequest(client, change_base_);
  };
  absl::StatusOr<MergeResult> merged = MergeLogs(in);
  if (!merged.ok()) {
    // A protocol invariant is broken; stay in the change (a view change will
    // follow) rather than install a log that may lose committed requests.
    LOG(ERROR) << "replica " << index_ << " stamp " << stamp_.ToString()
               << ": merge failed: " << merged.status();
    Count(Reject::kMergeFailed);
    return;
  }
  StartLog start;
  stamp_.ToProto(start.mutable_stamp());
  start.set_base(change_base_);
  start.set_base_hash(in.base_hash);
  for (Entry& e : merged->entries) *start.add_entries() = std::move(e);
  start.set_end(change_base_ + start.entries_size());
  VLOG(1) << "replica " << index_ << " installs merged log " << stamp_.ToString() << ": base "
          << change_base_ << " confirmed " << merged->confirmed_end << " voted "
          << merged->voted_end << " end " << start.end() << " from " << reports_.size()
          << " reports";
  InstallEntries(start.entries());
  const uint64_t end = start.end();
  TruncateTo(end);
  ++stats_.logs_installed;
  std::vector<StartLog> pieces = SplitEntries(std::move(start), budget());
  if (pieces.size() > kPieceWindow) {
    pieces.resize(1);
    pieces[0].clear_entries();
    pieces[0].set_by_transfer(true);
  }
  for (const StartLog& piece : pieces) SendToAll(piece);
  EnterNormal(stamp_, end);
  // Followers answer these clients as they install; we do once they commit.
  notify_from_ = change_base_;
  notify_to_ = end;
}

void Replica::HandleStartLog(StartLog m) {
  const Stamp s = Stamp::FromProto(m.stamp());
  if (s < stamp_) {
    Count(Reject::kStaleStamp);
    return;
  }
  if (!MayJoin(s) || LeaderOf(s) == index_) return;
  if (m.by_transfer()) {
    BeginTransfer(s, m.end());
    return;
  }
  if (!start_pieces_.Add(&m)) return;
  if (!start_pieces_.Take(m.base_hash(), m.mutable_entries())) {
    LOG(WARNING) << "replica " << index_ << ": the pieces of the StartLog for " << s.ToString()
                 << " do not chain; copying the leader's log instead";
    BeginTransfer(s, m.end());
    return;
  }
  bool applies = log_.Holds(m.base(), m.base_hash());
  if (m.base() < log_.base()) {
    // It starts below our compaction point: it must hold our committed
    // prefix there (the merge keeps every committed entry).
    const uint64_t at = log_.base() - m.base();  // 1-based index of our base
    applies = at <= static_cast<uint64_t>(m.entries_size()) &&
              m.entries(at - 1).slot() == log_.base() &&
              m.entries(at - 1).hash() == log_.HashAt(log_.base());
  }
  if (!applies) {
    // Cannot apply it to our log (we lag): copy the leader's instead.
    BeginTransfer(s, m.end());
    return;
  }
  VLOG(1) << "replica " << index_ << " installs StartLog " << s.ToString() << " end " << m.end();
  stamp_ = s;
  // Requests we executed that the merged log lacks (they arrived after the
  // leader collected the reports) run again after it, as the leader, which
  // buffered them, runs them: otherwise they would be lost here and diverge.
  std::vector<std::pair<transport::Address, Request>> dropped =
      RequestsAfter(std::max(m.base(), log_.committed()));
  InstallEntries(m.entries());
  TruncateTo(m.end());
  ++stats_.logs_installed;
  RerunDropped(std::move(dropped));
  EnterNormal(s, m.end());
  SyncReply ack;
  stamp_.ToProto(ack.mutable_stamp());
  ack.set_replica(index_);
  ack.set_slot(m.end());
  ack.set_match(true);
  SendTo(LeaderOf(s), ack);
  for (const Entry& e : m.entries()) {
    if (e.slot() > log_.base()) ReplyTo(*log_.At(e.slot()));
  }
}

}  // namespace dctk::spaxos
