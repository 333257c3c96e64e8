#include "speculative_paxos/fast_paxos_replica.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/transport/framing.h"
#include "glog/logging.h"

namespace dctk::spaxos {

FastPaxosReplica::FastPaxosReplica(transport::Transport* transport, FastPaxosConfig config,
                                   uint32_t index, App* app)
    : transport_(transport),
      config_(std::move(config)),
      index_(index),
      app_(app),
      replies_(transport, this),
      heartbeat_(transport, config_.heartbeat, [this] { OnHeartbeat(); }) {}

FastPaxosReplica::~FastPaxosReplica() { transport_->Unregister(this); }

absl::Status FastPaxosReplica::Start() {
  if (config_.replicas.size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FastPaxosConfig.replicas: the Fast Paxos baseline runs 3 replicas, got ",
        config_.replicas.size()));
  }
  if (index_ >= n() || config_.fetch_chunk <= 0 || config_.heartbeat <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FastPaxosReplica: index ", index_, " of 3, fetch_chunk and heartbeat must be positive"));
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
  if (IsCoordinator()) heartbeat_.Start();
  return absl::OkStatus();
}

void FastPaxosReplica::ReceiveMessage(const transport::Address& from,
                                      const transport::Envelope& msg) {
  ReplyBatcher::Hold hold(&replies_);
  Dispatch(from, msg);
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
#undef DCTK_FP_DISPATCH
}

void FastPaxosReplica::FlushVotes() {
  if (votes_out_.entries_size() == 0) return;
  votes_out_.set_replica(index_);
  SendTo(0, votes_out_);
  votes_out_.clear_entries();
}

void FastPaxosReplica::HandleRequest(const transport::Address& from, const Request& req) {
  if (const LogEntry* done = log_.Find(req.client_id(), req.request_id())) {
    if (IsCoordinator()) {
      Reply reply;
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
  const uint64_t slot = next_slot_++;
  e.set_slot(slot);
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

void FastPaxosReplica::Choose(const Entry& chosen) {
  const Entry e = chosen;  // `chosen` may live in accepted_ or known_
  const RequestId id = IdOf(e);
  const uint64_t slot = log_.end() + 1;
  // Whatever we accepted at this slot, and this request wherever we
  // accepted it, are settled now.
  if (auto it = accepted_.find(slot); it != accepted_.end()) {
    accepted_at_.erase(IdOf(it->second));
    accepted_.erase(it);
  }
  if (auto it = accepted_at_.find(id); it != accepted_at_.end()) {
    accepted_.erase(it->second);
    accepted_at_.erase(it);
  }
  known_.erase(id);
  CHECK_GT(e.request_id(), log_.LatestRequest(e.client_id()))
      << "replica " << index_ << ": client " << e.client_id() << " request " << e.request_id()
      << " chosen twice or out of order at slot " << slot;
  std::string result = app_->Execute(slot, e.op());
  LogEntry& le =
      log_.Append(e.client_id(), e.request_id(), e.op(), transport::Address(e.client_ip(), e.client_port()));
  le.result = std::move(result);
  log_.Commit(slot);
  app_->Commit(slot);
  ++stats_.executed;
  if (IsCoordinator()) {
    Reply reply;
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

void FastPaxosReplica::OnHeartbeat() {
  FpCommit commit;
  commit.set_commit(log_.end());
  commit.set_hash(log_.HashAt(log_.end()));
  for (uint32_t r = 1; r < n(); ++r) SendTo(r, commit);
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
  if (!IsCoordinator() || m.replica() == 0 || m.replica() >= n()) return;
  for (const Entry& e : m.entries()) HandleOneVote(m.replica(), e);
  TryDecide();
}

void FastPaxosReplica::HandleOneVote(uint32_t replica, const Entry& e) {
  if (e.request_id() <= log_.LatestRequest(e.client_id())) return;  // chosen or stale
  known_.try_emplace(IdOf(e), e);
  max_vote_[replica] = std::max(max_vote_[replica], e.slot());
  if (e.slot() > log_.end() && e.slot() > classic_end_) votes_[e.slot()][replica] = IdOf(e);
}

void FastPaxosReplica::TryDecide() {
  while (!classic_pending_) {
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
  // One FpAccept per round, within the datagram budget: requests that do not
  // fit wait for the next round (they stay known; we vote for them again).
  std::vector<Entry> later;
  size_t bytes = 16;  // FpAccept's first_slot, with room to spare
  for (size_t i = 0; i < batch.size(); ++i) {
    batch[i].set_slot(first + i);
    const size_t b = EntryBytes(batch[i]);
    if (i > 0 && bytes + b > PayloadBudget(config_.max_datagram)) {
      later.assign(std::make_move_iterator(batch.begin() + i),
                   std::make_move_iterator(batch.end()));
      batch.resize(i);
      break;
    }
    bytes += b;
  }
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
  classic_end_ = first + batch.size() - 1;
  next_slot_ = classic_end_ + 1;
  // Acceptors vote again from classic_end_ + 1 once they take the round.
  for (uint64_t& m : max_vote_) m = std::min(m, classic_end_);
  votes_.erase(votes_.begin(), votes_.upper_bound(classic_end_));
  classic_pending_ = true;
  VLOG(1) << "fast paxos: classic round for slots " << first << ".." << classic_end_;
  for (Entry& e : later) Vote(std::move(e));
  SendAccept();
}

void FastPaxosReplica::SendAccept() {
  FpAccept m;
  m.set_first_slot(log_.end() + 1);
  for (auto it = accepted_.lower_bound(log_.end() + 1);
       it != accepted_.end() && it->first <= classic_end_; ++it) {
    *m.add_entries() = it->second;
  }
  for (uint32_t r = 1; r < n(); ++r) SendTo(r, m);
}

void FastPaxosReplica::HandleAccepted(const FpAccepted& m) {
  if (!IsCoordinator() || !classic_pending_ || m.end() != classic_end_) return;
  classic_pending_ = false;
  while (log_.end() < classic_end_) {
    ++stats_.classic_entries;
    Choose(accepted_.at(log_.end() + 1));
  }
  TryDecide();
}

void FastPaxosReplica::HandleFetch(const FpFetch& m) {
  if (!IsCoordinator() || m.replica() >= n()) return;
  FpEntries reply;
  log_.Export(m.from_slot(), m.from_slot() + config_.fetch_chunk - 1, reply.mutable_entries());
  // In pieces within the datagram budget, a window of them; the follower
  // fetches again from where they end.
  std::vector<FpEntries> pieces =
      SplitEntries(std::move(reply), PayloadBudget(config_.max_datagram));
  for (size_t i = 0; i < pieces.size() && i < kPieceWindow; ++i) SendTo(m.replica(), pieces[i]);
}

void FastPaxosReplica::HandleAccept(const FpAccept& m) {
  if (IsCoordinator() || m.entries_size() == 0) return;
  const uint64_t end = m.first_slot() + m.entries_size() - 1;
  FpAccepted ack;
  ack.set_replica(index_);
  ack.set_end(end);
  if (end <= last_accept_end_) {
    // A resend, or an older round arriving late: taken already (or
    // superseded); taking it again would move our later votes.
    SendTo(0, ack);
    return;
  }
  last_accept_end_ = end;
  std::vector<Entry> displaced;
  for (int i = 0; i < m.entries_size(); ++i) {
    const uint64_t slot = m.first_slot() + i;
    if (slot <= log_.end()) continue;
    const Entry& e = m.entries(i);
    if (auto it = accepted_.find(slot); it != accepted_.end()) {
      if (IdOf(it->second) == IdOf(e)) continue;
      accepted_at_.erase(IdOf(it->second));
      displaced.push_back(std::move(it->second));
      accepted_.erase(it);
    }
    if (auto it = accepted_at_.find(IdOf(e)); it != accepted_at_.end()) {
      accepted_.erase(it->second);
      accepted_at_.erase(it);
    }
    accepted_[slot] = e;
    accepted_[slot].set_slot(slot);
    accepted_at_[IdOf(e)] = slot;
  }
  // Requests we voted for after the round's slots go after them too, after
  // the ones that lost their slot.
  for (auto it = accepted_.upper_bound(end); it != accepted_.end();) {
    accepted_at_.erase(IdOf(it->second));
    displaced.push_back(std::move(it->second));
    it = accepted_.erase(it);
  }
  next_slot_ = std::max(end, log_.end()) + 1;
  for (Entry& e : displaced) {
    if (e.request_id() > log_.LatestRequest(e.client_id()) && !accepted_at_.contains(IdOf(e))) {
      Vote(std::move(e));
    }
  }
  SendTo(0, ack);
}

void FastPaxosReplica::HandleCommit(const FpCommit& m) {
  if (IsCoordinator() || m.commit() <= log_.end()) return;
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
  SendTo(0, fetch);
}

void FastPaxosReplica::HandleEntries(const FpEntries& m) {
  if (IsCoordinator()) return;
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
  for (Entry& e : displaced) {
    if (e.request_id() > log_.LatestRequest(e.client_id()) && !accepted_at_.contains(IdOf(e))) {
      Vote(std::move(e));
    }
  }
}

}  // namespace dctk::spaxos
