// Normal case: speculative execution of client requests in arrival order, and
// the shared steps that change the log (install, commit, entering a stamp).
#include <algorithm>

#include "glog/logging.h"
#include "speculative_paxos/replica.h"

namespace dctk::spaxos {
namespace {
// Requests held during a log change or transfer; more are dropped (and counted).
constexpr size_t kMaxBuffered = 4096;
}  // namespace

void Replica::HandleRequest(const transport::Address& from, const Request& req) {
  if (status_ == ReplicaStatus::kRecovering) {
    Count(Reject::kNotNormal);
    return;
  }
  if (status_ != ReplicaStatus::kNormal) {
    if (buffered_.size() >= kMaxBuffered) {
      Count(Reject::kNotNormal);
      return;
    }
    buffered_.emplace_back(from, req);
    return;
  }
  if (const LogEntry* e = log_.Find(req.client_id(), req.request_id())) {
    ++stats_.duplicate_requests;
    ReplyTo(*e);
    return;
  }
  if (req.request_id() <= log_.LatestRequest(req.client_id())) {
    Count(Reject::kStaleRequest);
    return;
  }
  if (log_.end() - log_.committed() >= config_.max_speculative) {
    Count(Reject::kLogFull);
    return;
  }
  ReplyTo(ExecuteAndAppend(req.client_id(), req.request_id(), req.op(), from));
}

void Replica::ReplyTo(const LogEntry& e) {
  // A reused message: the batcher swaps in a cleared one, so a reply
  // allocates nothing in steady state.
  Reply& reply = reply_scratch_;
  reply.Clear();
  stamp_.ToProto(reply.mutable_stamp());
  reply.set_replica(index_);
  reply.set_client_id(e.client_id);
  reply.set_request_id(e.request_id);
  reply.set_slot(e.slot);
  reply.set_hash(e.hash);
  reply.set_result(e.result);
  reply.set_durable(log_stamp_ == stamp_ && e.slot <= ConfirmedPoint());
  reply.set_committed(e.slot <= log_.committed());
  ++stats_.replies;
  replies_.Send(e.client, &reply);
}

const LogEntry& Replica::ExecuteAndAppend(uint64_t client_id, uint64_t request_id,
                                          std::string op, const transport::Address& client) {
  std::string result = app_->Execute(log_.end() + 1, op);
  LogEntry& e = log_.Append(client_id, request_id, std::move(op), client);
  e.result = std::move(result);
  ++stats_.requests;
  return e;
}

void Replica::InstallEntries(const google::protobuf::RepeatedPtrField<Entry>& entries) {
  bool diverged = false;
  for (const Entry& e : entries) {
    // Compacted here: committed, and the caller checked our hash at base().
    if (e.slot() <= log_.base()) continue;
    CHECK_LE(e.slot(), log_.end() + 1) << "install leaves a hole at slot " << log_.end() + 1;
    if (!diverged && e.slot() <= log_.end()) {
      if (log_.Holds(e.slot(), e.hash())) continue;
      TruncateTo(e.slot() - 1);
    }
    diverged = true;
    const LogEntry& added =
        ExecuteAndAppend(e.client_id(), e.request_id(), e.op(),
                         transport::Address(e.client_ip(), e.client_port()));
    CHECK_EQ(added.hash, e.hash()) << "hash chain mismatch installing slot " << e.slot();
  }
}

void Replica::TruncateTo(uint64_t keep) {
  if (keep >= log_.end()) return;
  CHECK_GE(keep, log_.committed())
      << "replica " << index_ << ": rolling back committed slot " << keep + 1;
  stats_.rolled_back += log_.end() - keep;
  app_->Rollback(keep);
  log_.TruncateAfter(keep);
  sync_point_ = std::min(sync_point_, keep);
}

std::vector<std::pair<transport::Address, Request>> Replica::RequestsAfter(uint64_t slot) const {
  std::vector<std::pair<transport::Address, Request>> requests;
  for (uint64_t i = slot + 1; i <= log_.end(); ++i) {
    const LogEntry& e = *log_.At(i);
    Request r;
    r.set_client_id(e.client_id);
    r.set_request_id(e.request_id);
    r.set_op(e.op);
    requests.emplace_back(e.client, std::move(r));
  }
  return requests;
}

void Replica::RerunDropped(std::vector<std::pair<transport::Address, Request>> dropped) {
  std::vector<std::pair<transport::Address, Request>> rerun;
  for (auto& d : dropped) {
    if (log_.Find(d.second.client_id(), d.second.request_id()) == nullptr) {
      rerun.push_back(std::move(d));
    }
  }
  buffered_.insert(buffered_.begin(), std::make_move_iterator(rerun.begin()),
                   std::make_move_iterator(rerun.end()));
}

void Replica::DrainBuffered() {
  std::vector<std::pair<transport::Address, Request>> pending;
  pending.swap(buffered_);
  for (const auto& [from, req] : pending) HandleRequest(from, req);
}

void Replica::EnterNormal(Stamp s, uint64_t sync_point) {
  stamp_ = s;
  log_stamp_ = s;
  status_ = ReplicaStatus::kNormal;
  sync_point_ = sync_point;
  stamp_base_ = sync_point;
  notify_from_ = notify_to_ = 0;
  notify_slots_.clear();
  stalled_ticks_ = 0;
  behind_ticks_ = 0;
  commit_at_last_tick_ = log_.committed();
  std::fill(diverged_.begin(), diverged_.end(), false);
  has_log_ = true;
  reports_.clear();
  report_pieces_.clear();
  start_pieces_.Clear();
  reported_ = false;
  recovery_stamp_.reset();
  fetch_.Clear();
  retry_timer_.Stop();
  std::fill(confirmed_.begin(), confirmed_.end(), 0);
  if (IsLeader()) {
    confirmed_[index_] = sync_point;
    leader_timeout_.Stop();
    sync_timer_.Start();
  } else {
    sync_timer_.Stop();
    leader_timeout_.Reset();
  }
  DrainBuffered();
}

void Replica::CommitUpTo(uint64_t slot) {
  slot = std::min(slot, log_.end());
  const uint64_t old = log_.committed();
  if (slot <= old) return;
  log_.Commit(slot);
  app_->Commit(slot);
  ++stats_.commits;
  if (IsLeader() && status_ == ReplicaStatus::kNormal) {
    for (uint64_t s = std::max(old, notify_from_) + 1; s <= std::min(slot, notify_to_); ++s) {
      ReplyTo(*log_.At(s));
    }
    while (!notify_slots_.empty() && *notify_slots_.begin() <= slot) {
      const uint64_t s = *notify_slots_.begin();
      notify_slots_.erase(notify_slots_.begin());
      if (s > notify_to_ || s <= notify_from_) ReplyTo(*log_.At(s));
    }
  }
  MaybeCheckpoint();
}

}  // namespace dctk::spaxos
