// Fast Paxos baseline: the fast round, classic rounds and followers' commits.
// The coordinator change is in fast_paxos_view_change.cc.
#include "speculative_paxos/fast_paxos_replica.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/transport/framing.h"
#include "glog/logging.h"
#include "speculative_paxos/fast_paxos_merge.h"

namespace dctk::spaxos {

FastPaxosReplica::FastPaxosReplica(transport::Transport* transport, FastPaxosConfig config,
                                   uint32_t index, App* app)
    : transport_(transport),
      config_(std::move(config)),
      index_(index),
      app_(app),
      replies_(transport, this, PayloadBudget(config_.max_datagram)),
      heartbeat_(transport, config_.heartbeat, [this] { OnHeartbeat(); }),
      view_timeout_(transport, config_.view_change_timeout, [this] { OnViewTimeout(); }) {}

FastPaxosReplica::~FastPaxosReplica() { transport_->Unregister(this); }

absl::Status FastPaxosReplica::Start() {
  if (config_.replicas.size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FastPaxosConfig.replicas: the Fast Paxos baseline runs 3 replicas, got ",
        config_.replicas.size()));
  }
  if (index_ >= n() || config_.fetch_chunk <= 0 || config_.heartbeat <= absl::ZeroDuration() ||
      config_.view_change_timeout <= 2 * config_.heartbeat) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FastPaxosReplica: index ", index_,
        " of 3, fetch_chunk and heartbeat must be positive and view_change_timeout more "
        "than two heartbeats"));
  }
  if (config_.max_datagram < 256 ||
      static_cast<size_t>(config_.max_datagram) >
          transport::kMaxPayloadSize + transport::kFrameHeaderSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FastPaxosConfig.max_datagram: ", config_.max_datagram, " bytes, need 256 .. ",
        transport::kMaxPayloadSize + transport::kFrameHeaderSize));
  }
  absl::StatusOr<transport::Address> bound =
      transport_->Register(this, config_.replicas[index_], {});
  if (!bound.ok()) return bound.status();
  if (IsCoordinator()) {
    heartbeat_.Start();
  } else {
    view_timeout_.Start();
  }
  return absl::OkStatus();
}

void FastPaxosReplica::ReceiveMessage(const transport::Address& from,
                                      const transport::Envelope& msg) {
  ReplyBatcher::Hold hold(&replies_);
  Dispatch(from, msg);
  if (voting() && !held_.empty()) {
    // A coordinator change ended: the requests that came during it.
    std::vector<std::pair<transport::Address, Request>> held = std::move(held_);
    held_.clear();
    for (const auto& [client, req] : held) HandleRequest(client, req);
  }
  FlushVotes();
}

void FastPaxosReplica::Dispatch(const transport::Address& from, const transport::Envelope& msg) {
#define DCTK_FP_DISPATCH(Type, Handler) \
  if (msg.Is<Type>()) {                 \
    Type m;                             \
    if (msg.Parse(&m)) Handler;         \
    return;                             \
  }
  DCTK_FP_DISPATCH(Request, HandleRequest(from, m));
  DCTK_FP_DISPATCH(RequestBatch, for (const Request& r : m.requests()) HandleRequest(from, r));
  DCTK_FP_DISPATCH(FpVote, HandleVote(m));
  DCTK_FP_DISPATCH(FpAccept, HandleAccept(m));
  DCTK_FP_DISPATCH(FpAccepted, HandleAccepted(m));
  DCTK_FP_DISPATCH(FpCommit, HandleCommit(m));
  DCTK_FP_DISPATCH(FpFetch, HandleFetch(m));
  DCTK_FP_DISPATCH(FpEntries, HandleEntries(m));
  DCTK_FP_DISPATCH(FpViewChange, HandleViewChange(m));
  DCTK_FP_DISPATCH(FpReport, HandleReport(m));
#undef DCTK_FP_DISPATCH
}

void FastPaxosReplica::FlushVotes() {
  if (votes_out_.entries_size() == 0) return;
  votes_out_.set_replica(index_);
  // A RequestBatch makes as many votes as it has requests: in pieces within
  // the datagram budget (all of them: they are the fast round itself).
  for (const FpVote& piece : SplitEntries(std::move(votes_out_), budget())) {
    SendTo(coordinator(), piece);
  }
  votes_out_.Clear();
}

void FastPaxosReplica::HandleRequest(const transport::Address& from, const Request& req) {
  if (req.client_id() == kFpNoOpClient) return;
  if (!voting()) {
    // During a coordinator change: voted for once it ends (bounded; clients resend).
    if (held_.size() < 4096) held_.emplace_back(from, req);
    return;
  }
  if (const LogEntry* done = log_.Find(req.client_id(), req.request_id())) {
    if (IsCoordinator()) {
      Reply reply;
      reply.mutable_stamp()->set_view(view_);
      reply.set_replica(index_);
      reply.set_client_id(done->client_id);
      reply.set_request_id(done->request_id);
      reply.set_slot(done->slot);
      reply.set_hash(done->hash);
      reply.set_result(done->result);
      reply.set_durable(true);
      reply.set_committed(true);
      replies_.Send(done->client, &reply);
    }
    return;
  }
  if (req.request_id() <= log_.LatestRequest(req.client_id())) return;  // stale
  const RequestId id{req.client_id(), req.request_id()};
  if (auto it = accepted_at_.find(id); it != accepted_at_.end()) {
    // A resend: our vote may have been lost.
    if (!IsCoordinator()) *votes_out_.add_entries() = accepted_.at(it->second);
    return;
  }
  Entry e;
  e.set_client_id(req.client_id());
  e.set_request_id(req.request_id());
  e.set_op(req.op());
  e.set_client_ip(from.ip());
  e.set_client_port(from.port());
  Vote(std::move(e));
}

void FastPaxosReplica::Vote(Entry e) {
  while (accepted_.contains(next_slot_)) ++next_slot_;
  const uint64_t slot = next_slot_++;
  e.set_slot(slot);
  e.set_ballot(fast_ballot_);
  const RequestId id = IdOf(e);
  accepted_at_[id] = slot;
  ++stats_.votes;
  if (IsCoordinator()) {
    known_.try_emplace(id, e);
    accepted_[slot] = std::move(e);
    votes_[slot][index_] = id;
    TryDecide();
    return;
  }
  *votes_out_.add_entries() = e;
  accepted_[slot] = std::move(e);
}

Entry FastPaxosReplica::TakeAccepted(std::map<uint64_t, Entry>::iterator it) {
  Entry e = std::move(it->second);
  if (auto at = accepted_at_.find(IdOf(e)); at != accepted_at_.end() && at->second == it->first) {
    accepted_at_.erase(at);
  }
  accepted_.erase(it);
  return e;
}

void FastPaxosReplica::VoteAgain(std::vector<Entry> displaced) {
  if (!voting()) return;  // clients resend; they are voted for after the change
  for (Entry& e : displaced) {
    if (e.client_id() != kFpNoOpClient &&
        e.request_id() > log_.LatestRequest(e.client_id()) && !accepted_at_.contains(IdOf(e))) {
      Vote(std::move(e));
    }
  }
}

void FastPaxosReplica::Choose(const Entry& chosen) {
  const Entry e = chosen;  // `chosen` may live in accepted_ or known_
  const RequestId id = IdOf(e);
  const uint64_t slot = log_.end() + 1;
  // Whatever we accepted at this slot, and this request wherever we
  // accepted it, are settled now.
  if (auto it = accepted_.find(slot); it != accepted_.end()) TakeAccepted(it);
  if (auto it = accepted_at_.find(id); it != accepted_at_.end()) {
    accepted_.erase(it->second);
    accepted_at_.erase(it);
  }
  known_.erase(id);
  CHECK_GT(e.request_id(), log_.LatestRequest(e.client_id()))
      << "replica " << index_ << ": client " << e.client_id() << " request " << e.request_id()
      << " chosen twice or out of order at slot " << slot;
  if (e.client_id() == kFpNoOpClient) {
    // A free slot of a coordinator change: nothing runs, nobody is answered.
    log_.Append(e.client_id(), e.request_id(), "", transport::Address());
    log_.Commit(slot);
    app_->Commit(slot);
    return;
  }
  std::string result = app_->Execute(slot, e.op());
  LogEntry& le = log_.Append(e.client_id(), e.request_id(), e.op(),
                             transport::Address(e.client_ip(), e.client_port()));
  le.result = std::move(result);
  log_.Commit(slot);
  app_->Commit(slot);
  ++stats_.executed;
  if (IsCoordinator()) {
    Reply reply;
    reply.mutable_stamp()->set_view(view_);
    reply.set_replica(index_);
    reply.set_client_id(le.client_id);
    reply.set_request_id(le.request_id);
    reply.set_slot(slot);
    reply.set_hash(le.hash);
    reply.set_result(le.result);
    reply.set_durable(true);
    reply.set_committed(true);
    replies_.Send(le.client, &reply);
  }
}

void FastPaxosReplica::SendCommit(uint32_t to) {
  FpCommit commit;
  commit.set_view(view_);
  commit.set_commit(log_.end());
  commit.set_hash(log_.HashAt(log_.end()));
  commit.set_ballot(fast_ballot_);
  commit.set_fast_from(fast_from_);
  SendTo(to, commit);
}

void FastPaxosReplica::OnHeartbeat() {
  if (!IsCoordinator()) return;
  if (!normal_) {
    // A new coordinator collecting reports: ask again where they stopped.
    for (const auto& [r, report] : reports_) {
      if (!report.done) AskReport(r);
    }
    return;
  }
  for (uint32_t r = 0; r < n(); ++r) SendCommit(r);
  if (classic_pending_) {
    SendAccept();
  } else if ((!votes_.empty() || !known_.empty()) && log_.end() == chosen_at_last_tick_) {
    // No decision for two ticks while requests wait: a vote or request was lost.
    if (++stalled_ticks_ >= 2) {
      stalled_ticks_ = 0;
      StartClassic();
    }
  } else {
    stalled_ticks_ = 0;
  }
  chosen_at_last_tick_ = log_.end();
}

void FastPaxosReplica::HandleVote(const FpVote& m) {
  if (!normal_ || !IsCoordinator() || m.replica() >= n() || m.replica() == index_) return;
  for (const Entry& e : m.entries()) HandleOneVote(m.replica(), e);
  TryDecide();
}

void FastPaxosReplica::HandleOneVote(uint32_t replica, const Entry& e) {
  if (e.client_id() == kFpNoOpClient) return;
  if (e.request_id() <= log_.LatestRequest(e.client_id())) return;  // chosen or stale
  known_.try_emplace(IdOf(e), e);
  // Only votes of our current fast ballot count: an older one may have been
  // replaced since (the acceptor took a classic round and voted again).
  if (e.ballot() != fast_ballot_ || e.slot() < fast_from_) return;
  max_vote_[replica] = std::max(max_vote_[replica], e.slot());
  if (e.slot() > log_.end() && e.slot() > classic_end_) votes_[e.slot()][replica] = IdOf(e);
}

void FastPaxosReplica::TryDecide() {
  while (normal_ && !classic_pending_) {
    auto it = votes_.find(log_.end() + 1);
    if (it == votes_.end()) return;
    const auto& v = it->second;
    absl::optional<RequestId> first;
    bool all = true;
    for (uint32_t r = 0; r < n(); ++r) {
      const auto& vote = v[r];
      if (!vote) {
        if (r != index_ && max_vote_[r] > it->first) {
          StartClassic();  // it skipped this slot: no fast decision here
          return;
        }
        all = false;
      } else if (!first) {
        first = vote;
      } else if (*vote != *first) {
        StartClassic();  // a collision: requests reordered between replicas
        return;
      }
    }
    if (!all) return;
    auto k = known_.find(*first);
    if (k == known_.end()) {  // votes for a request chosen meanwhile
      votes_.erase(it);
      return;
    }
    votes_.erase(it);
    ++stats_.fast_decisions;
    Choose(k->second);
  }
}

void FastPaxosReplica::StartClassic() {
  if (classic_pending_) return;
  const uint64_t first = log_.end() + 1;
  // Our accepted requests in slot order, then the ones only others voted for;
  // one client's request ids must rise along the log.
  std::vector<Entry> batch;
  std::set<RequestId> in_batch;
  absl::flat_hash_map<uint64_t, uint64_t> latest;
  auto add = [&](const Entry& e) {
    const RequestId id = IdOf(e);
    if (in_batch.contains(id)) return;
    uint64_t& last =
        latest.try_emplace(e.client_id(), log_.LatestRequest(e.client_id())).first->second;
    if (e.request_id() <= last) return;
    last = e.request_id();
    in_batch.insert(id);
    batch.push_back(e);
  };
  for (const auto& [slot, e] : accepted_) add(e);
  for (const auto& [id, e] : known_) add(e);
  // Requests already chosen (or older than a chosen one) wait for nothing.
  for (auto it = known_.begin(); it != known_.end();) {
    it = in_batch.contains(it->first) ? std::next(it) : known_.erase(it);
  }
  if (batch.empty()) {
    votes_.clear();  // they all name chosen requests
    return;
  }
  ++stats_.classic_rounds;
  accepted_.clear();
  accepted_at_.clear();
  for (Entry& e : batch) {
    e.set_slot(first + accepted_.size());
    accepted_at_[IdOf(e)] = e.slot();
    accepted_[e.slot()] = std::move(e);
  }
  VLOG(1) << "fast paxos: classic round for slots " << first << ".." << first + batch.size() - 1;
  BeginClassic(fast_ballot_ + 1, first + batch.size() - 1);
}

void FastPaxosReplica::BeginClassic(uint64_t ballot, uint64_t end) {
  for (auto it = accepted_.upper_bound(log_.end()); it != accepted_.end() && it->first <= end;
       ++it) {
    it->second.set_ballot(ballot);
  }
  classic_ballot_ = ballot;
  classic_end_ = end;
  classic_pending_ = end > log_.end();
  // The next fast ballot votes after the round; votes of the old one are void.
  fast_ballot_ = ballot + 1;
  fast_from_ = end + 1;
  next_slot_ = end + 1;
  votes_.clear();
  max_vote_.fill(0);
  stalled_ticks_ = 0;
  if (classic_pending_) SendAccept();
}

void FastPaxosReplica::SendAccept() {
  FpAccept m;
  m.set_first_slot(log_.end() + 1);
  m.set_ballot(classic_ballot_);
  m.set_round_end(classic_end_);
  // One piece within the datagram budget; the next once it is acknowledged.
  size_t bytes = m.ByteSizeLong();
  for (auto it = accepted_.lower_bound(log_.end() + 1);
       it != accepted_.end() && it->first <= classic_end_; ++it) {
    const size_t b = EntryBytes(it->second);
    if (m.entries_size() > 0 && bytes + b > budget()) break;
    bytes += b;
    *m.add_entries() = it->second;
  }
  for (uint32_t r = 0; r < n(); ++r) SendTo(r, m);
}

void FastPaxosReplica::HandleAccepted(const FpAccepted& m) {
  if (!normal_ || !IsCoordinator() || !classic_pending_ || m.ballot() != classic_ballot_) return;
  const uint64_t end = std::min(m.end(), classic_end_);
  if (end <= log_.end()) return;  // an earlier piece's
  while (log_.end() < end) {
    ++stats_.classic_entries;
    Choose(accepted_.at(log_.end() + 1));
  }
  if (log_.end() < classic_end_) {
    SendAccept();
    return;
  }
  classic_pending_ = false;
  TryDecide();
}

void FastPaxosReplica::HandleFetch(const FpFetch& m) {
  // Chosen entries are chosen whoever serves them.
  if (m.replica() >= n() || m.replica() == index_) return;
  FpEntries reply;
  log_.Export(m.from_slot(), m.from_slot() + config_.fetch_chunk - 1, reply.mutable_entries());
  if (reply.entries_size() == 0) return;
  // In pieces within the datagram budget, a window of them; the follower
  // fetches again from where they end.
  std::vector<FpEntries> pieces = SplitEntries(std::move(reply), budget());
  for (size_t i = 0; i < pieces.size() && i < kPieceWindow; ++i) SendTo(m.replica(), pieces[i]);
}

void FastPaxosReplica::HandleAccept(const FpAccept& m) {
  if (m.entries_size() == 0 ||
      !AcceptsView(FpBallotView(m.ballot()), CoordinatorOf(FpBallotView(m.ballot())))) {
    return;
  }
  if (FpIsFastBallot(m.ballot()) || m.ballot() < accept_ballot_) return;  // an older round
  const uint64_t end = m.first_slot() + m.entries_size() - 1;
  FpAccepted ack;
  ack.set_replica(index_);
  ack.set_end(end);
  ack.set_ballot(m.ballot());
  if (m.ballot() == accept_ballot_ && end <= last_accept_end_) {
    SendTo(coordinator(), ack);  // a resend, or a late copy: taken already
    return;
  }
  accept_ballot_ = m.ballot();
  last_accept_end_ = end;
  std::vector<Entry> displaced;
  for (int i = 0; i < m.entries_size(); ++i) {
    const uint64_t slot = m.first_slot() + i;
    if (slot <= log_.end()) continue;
    const Entry& e = m.entries(i);
    if (auto it = accepted_.find(slot); it != accepted_.end()) {
      if (IdOf(it->second) == IdOf(e)) {
        it->second.set_ballot(m.ballot());
        continue;
      }
      displaced.push_back(TakeAccepted(it));
    }
    if (auto it = accepted_at_.find(IdOf(e)); it != accepted_at_.end()) {
      accepted_.erase(it->second);
      accepted_at_.erase(it);
    }
    Entry& taken = accepted_[slot] = e;
    taken.set_slot(slot);
    taken.set_ballot(m.ballot());
    accepted_at_[IdOf(e)] = slot;
  }
  // Requests we voted for after the round go after it, in the next fast ballot.
  Realign(m.round_end() + 1, m.ballot() + 1, &displaced);
  VoteAgain(std::move(displaced));
  SendTo(coordinator(), ack);
}

void FastPaxosReplica::Realign(uint64_t fast_from, uint64_t ballot,
                               std::vector<Entry>* displaced) {
  if (ballot < fast_ballot_) return;
  if (ballot > fast_ballot_) {
    fast_ballot_ = ballot;
    fast_from_ = fast_from;
    next_slot_ = fast_from;
  }
  for (auto it = accepted_.lower_bound(fast_from_); it != accepted_.end();) {
    if (it->second.ballot() < fast_ballot_) {
      auto next = std::next(it);
      displaced->push_back(TakeAccepted(it));
      it = next;
    } else {
      ++it;
    }
  }
  next_slot_ = std::max(next_slot_, log_.end() + 1);
}

void FastPaxosReplica::HandleCommit(const FpCommit& m) {
  if (!AcceptsView(m.view(), CoordinatorOf(m.view()))) return;
  std::vector<Entry> displaced;
  Realign(m.fast_from(), m.ballot(), &displaced);
  VoteAgain(std::move(displaced));
  if (m.commit() <= log_.end()) return;
  // Our accepted entries up to the commit point, if they chain to its hash.
  std::string hash = log_.HashAt(log_.end());
  bool held = true;
  for (uint64_t slot = log_.end() + 1; slot <= m.commit() && held; ++slot) {
    auto it = accepted_.find(slot);
    if (it == accepted_.end()) {
      held = false;
    } else {
      hash = ChainHash(hash, it->second.client_id(), it->second.request_id(), it->second.op());
    }
  }
  if (held && hash == m.hash()) {
    while (log_.end() < m.commit()) Choose(accepted_.at(log_.end() + 1));
    return;
  }
  FpFetch fetch;
  fetch.set_replica(index_);
  fetch.set_from_slot(log_.end() + 1);
  SendTo(coordinator(), fetch);
}

void FastPaxosReplica::HandleEntries(const FpEntries& m) {
  // A coordinator takes nothing; a replica in a change reports a fixed state.
  if (IsCoordinator() || !normal_) return;
  // Requests we accepted at slots chosen for others vote again, after.
  std::vector<Entry> displaced;
  for (const Entry& e : m.entries()) {
    if (e.slot() != log_.end() + 1) continue;
    if (auto it = accepted_.find(e.slot()); it != accepted_.end() && IdOf(it->second) != IdOf(e)) {
      displaced.push_back(it->second);
    }
    Choose(e);
    ++stats_.fetched;
  }
  next_slot_ = std::max(next_slot_, log_.end() + 1);
  VoteAgain(std::move(displaced));
}

}  // namespace dctk::spaxos
