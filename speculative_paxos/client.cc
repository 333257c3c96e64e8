#include "speculative_paxos/client.h"

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "glog/logging.h"
#include "speculative_paxos/merge.h"

namespace dctk::spaxos {

Client::Client(transport::Transport* transport, ClientConfig config, uint64_t client_id,
               transport::Address bind)
    : transport_(transport),
      config_(std::move(config)),
      client_id_(client_id),
      address_(bind),
      resend_(transport, config_.resend_timeout, [this] { OnTimeout(); }),
      commit_wait_(transport, absl::Milliseconds(1), [this] { OnCommitWait(); }) {}

Client::Client(ClientEndpoint* endpoint, ClientConfig config, uint64_t client_id)
    : Client(endpoint->transport(), std::move(config), client_id, endpoint->address()) {
  endpoint_ = endpoint;
}

Client::~Client() {
  if (!started_) return;
  if (endpoint_ != nullptr) {
    endpoint_->Detach(this);
  } else {
    transport_->Unregister(this);
  }
}

void ClientStats::Add(const ClientStats& o) {
  completed += o.completed;
  fast_path += o.fast_path;
  slow_path += o.slow_path;
  resends += o.resends;
  reconcile_requests += o.reconcile_requests;
  early_commit_requests += o.early_commit_requests;
  latency.Merge(o.latency);
}

absl::Status Client::Start() {
  if (config_.replicas.empty() || config_.replicas.size() > 64) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ClientConfig.replicas: need 1 .. 64 replicas, got ", config_.replicas.size()));
  }
  replies_.resize(config_.replicas.size());
  if (endpoint_ != nullptr) {
    if (config_.mom) {
      return absl::InvalidArgumentError(
          "ClientConfig.mom: MOM requests cannot go through a shared ClientEndpoint");
    }
    address_ = endpoint_->address();
    endpoint_->Attach(this);
    started_ = true;
    return absl::OkStatus();
  }
  transport::EndpointOptions endpoint = config_.endpoint;
  if (config_.await_replies && endpoint.peers.empty()) endpoint.peers = config_.replicas;
  if (config_.mom) endpoint.dscp = std::max(endpoint.dscp, SenderEndpointOptions(*config_.mom).dscp);
  absl::StatusOr<transport::Address> bound = transport_->Register(this, address_, endpoint);
  if (!bound.ok()) return bound.status();
  address_ = *bound;
  started_ = true;
  if (config_.mom) {
    absl::StatusOr<std::unique_ptr<mom::MomSender>> sender = mom::MomSender::Create(
        transport_, this, *config_.mom, MomSenderId(client_id_),
        static_cast<uint64_t>(absl::ToUnixMicros(transport_->Now())));
    if (!sender.ok()) return sender.status();
    mom_sender_ = std::move(*sender);
  }
  return absl::OkStatus();
}

void Client::Invoke(std::string op, Callback done) {
  CHECK(!pending_) << "client " << client_id_ << " already has a request outstanding";
  pending_ = Pending{.request_id = next_request_id_++, .op = std::move(op),
                     .done = std::move(done), .sent = transport_->Now()};
  SendRequest();
  resend_.Start();
  if (config_.mode == ClientConfig::Mode::kSpeculative) {
    commit_wait_.set_duration(CommitWait());
    commit_wait_.Start();
  }
  AwaitReplies();
}

int Client::RepliesAwaited() const {
  if (!pending_ || !config_.await_replies) return 0;
  // After a reconciliation request one committed reply can complete it.
  if (pending_->reconcile_sent) return 1;
  return std::max(1, Superquorum(config_.f()) - pending_->best_match);
}

void Client::AwaitReplies() {
  if (!config_.await_replies) return;
  if (endpoint_ != nullptr) {
    endpoint_->AwaitChanged();
  } else {
    transport_->AwaitPeers(this, RepliesAwaited());
  }
}

absl::Duration Client::CommitWait() const {
  if (config_.commit_wait > absl::ZeroDuration()) return config_.commit_wait;
  return std::min(config_.resend_timeout,
                  std::max(absl::Microseconds(50), absl::Microseconds(3 * fast_latency_us_)));
}

void Client::OnCommitWait() {
  if (!pending_ || pending_->reconcile_sent) {
    commit_wait_.Stop();
    return;
  }
  // Too few answers yet: look again a period later (the resend timeout
  // covers answers that never come).
  if (pending_->num_answered < config_.f() + 1) return;
  commit_wait_.Stop();
  ++stats_.early_commit_requests;
  AskReconcile();
}

void Client::Cancel() {
  pending_.reset();
  resend_.Stop();
  commit_wait_.Stop();
  AwaitReplies();
}

void Client::SendRequest() {
  Request req;
  req.set_client_id(client_id_);
  req.set_request_id(pending_->request_id);
  req.set_op(pending_->op);
  if (config_.mode == ClientConfig::Mode::kLeader) {
    SendRequestTo(config_.replicas[leader_], req);
  } else if (mom_sender_) {
    (void)mom_sender_->Multicast(req);
  } else if (config_.group) {
    SendRequestTo(*config_.group, req);
  } else {
    // The leader's copy last. A sender is often preempted right after its
    // first copy (the woken replica runs), and another client's request then
    // overtakes the rest; the first recipient is then the odd one out. A
    // misordered follower is repaired alone by the leader's next sync
    // (replica_repair.cc); a misordered leader sends every follower into
    // repair.
    const size_t n = config_.replicas.size();
    const size_t leader = newest_stamp_.Leader(n);
    for (size_t i = 1; i <= n; ++i) SendRequestTo(config_.replicas[(leader + i) % n], req);
  }
}

void Client::SendRequestTo(const transport::Address& to, const Request& req) {
  if (endpoint_ != nullptr) {
    endpoint_->SendRequest(to, req);
  } else {
    (void)transport_->Send(this, to, req);
  }
}

void Client::OnTimeout() {
  if (!pending_) {
    resend_.Stop();
    return;
  }
  ++stats_.resends;
  if (config_.mode == ClientConfig::Mode::kLeader) {
    // The leader may have changed: try the next replica.
    leader_ = (leader_ + 1) % config_.replicas.size();
  } else if (pending_->num_answered > 0) {
    AskReconcile();
  }
  SendRequest();
}

void Client::AskReconcile() {
  ReconcileRequest req;
  newest_stamp_.ToProto(req.mutable_stamp());
  req.set_client_id(client_id_);
  req.set_request_id(pending_->request_id);
  ++stats_.reconcile_requests;
  pending_->reconcile_sent = true;
  AwaitReplies();
  const transport::Address& leader =
      config_.replicas[newest_stamp_.Leader(config_.replicas.size())];
  if (endpoint_ != nullptr) {
    endpoint_->Send(leader, req);
  } else {
    (void)transport_->Send(this, leader, req);
  }
}

void Client::ReceiveMessage(const transport::Address& from, const transport::Envelope& msg) {
  // Parsed into reused messages: no allocation per reply in steady state.
  if (msg.Is<Reply>()) {
    if (msg.Parse(&incoming_)) HandleReply(&incoming_);
  } else if (msg.Is<ReplyBatch>()) {
    if (!msg.Parse(&incoming_batch_)) return;
    for (Reply& reply : *incoming_batch_.mutable_replies()) {
      if (reply.client_id() == client_id_) HandleReply(&reply);
    }
  }
}

void Client::HandleReply(Reply* reply) {
  if (!pending_ || reply->request_id() != pending_->request_id ||
      reply->replica() >= config_.replicas.size()) {
    return;
  }
  const Stamp stamp = Stamp::FromProto(reply->stamp());
  newest_stamp_ = std::max(newest_stamp_, stamp);
  if (config_.mode == ClientConfig::Mode::kLeader) leader_ = reply->replica();
  if (config_.mode == ClientConfig::Mode::kLeader || reply->committed()) {
    Complete(reply->result(), false);
    return;
  }
  const uint32_t from = reply->replica();
  const uint64_t bit = uint64_t{1} << from;
  if (pending_->answered & bit) {
    const Reply& prev = replies_[from];
    const Stamp old = Stamp::FromProto(prev.stamp());
    if (stamp < old || (stamp == old && !reply->durable() && prev.durable())) return;
  } else {
    pending_->answered |= bit;
    ++pending_->num_answered;
  }
  replies_[from].Swap(reply);  // takes the reply without copying or allocating
  // Count matching replies by (stamp, slot, hash); n <= 7, so pairwise
  // comparison without building keys (no allocation per reply).
  auto same = [](const Reply& x, const Reply& y) {
    return x.slot() == y.slot() && x.stamp().view() == y.stamp().view() &&
           x.stamp().epoch() == y.stamp().epoch() && x.hash() == y.hash();
  };
  const uint32_t n = static_cast<uint32_t>(config_.replicas.size());
  int best = 0;
  for (uint32_t r = 0; r < n; ++r) {
    if (!(pending_->answered >> r & 1)) continue;
    const Reply& rep = replies_[r];
    int matching = 0, durable = 0;
    for (uint32_t r2 = 0; r2 < n; ++r2) {
      if (!(pending_->answered >> r2 & 1) || !same(rep, replies_[r2])) continue;
      ++matching;
      if (replies_[r2].durable()) ++durable;
    }
    best = std::max(best, matching);
    if (matching >= Superquorum(config_.f())) {
      VLOG(1) << "client " << client_id_ << " request " << rep.request_id() << " fast at "
              << rep.stamp().view() << "." << rep.stamp().epoch() << " slot " << rep.slot() << " t="
              << absl::FormatTime("%S.%E6f", transport_->Now(), absl::UTCTimeZone());
      Complete(rep.result(), true);
      return;
    }
    if (durable >= config_.f() + 1) {
      VLOG(1) << "client " << client_id_ << " request " << rep.request_id() << " durable at "
              << rep.stamp().view() << "." << rep.stamp().epoch() << " slot " << rep.slot() << " t="
              << absl::FormatTime("%S.%E6f", transport_->Now(), absl::UTCTimeZone());
      Complete(rep.result(), false);
      return;
    }
  }
  pending_->best_match = best;
  const int missing = static_cast<int>(n) - pending_->num_answered;
  if (best + missing < Superquorum(config_.f()) && !pending_->reconcile_sent) {
    if (VLOG_IS_ON(1)) {
      std::string seen;
      for (uint32_t r = 0; r < n; ++r) {
        if (!(pending_->answered >> r & 1)) continue;
        const Reply& rep = replies_[r];
        absl::StrAppend(&seen, " r", r, "@", rep.stamp().view(), ".", rep.stamp().epoch(), "/",
                        rep.slot(), rep.durable() ? "d" : "");
      }
      VLOG(1) << "client " << client_id_ << " request " << pending_->request_id
              << " replies cannot reach a superquorum:" << seen;
    }
    AskReconcile();
    return;  // it awaits one reply now
  }
  AwaitReplies();
}

void Client::Complete(const std::string& reply_result, bool fast) {
  const std::string result = reply_result;  // it lives in pending_, reset below
  Callback done = std::move(pending_->done);
  const absl::Duration latency = transport_->Now() - pending_->sent;
  stats_.latency.Record(
      static_cast<uint64_t>(std::max<int64_t>(0, absl::ToInt64Nanoseconds(latency))));
  if (fast) {
    const double us = absl::ToDoubleMicroseconds(latency);
    fast_latency_us_ = fast_latency_us_ == 0 ? us : 0.9 * fast_latency_us_ + 0.1 * us;
  }
  pending_.reset();
  resend_.Stop();
  commit_wait_.Stop();
  AwaitReplies();
  ++stats_.completed;
  ++(fast ? stats_.fast_path : stats_.slow_path);
  done(result);
}

absl::StatusOr<std::string> InvokeAndWait(transport::Transport* transport, Client* client,
                                          std::string op, absl::Duration timeout) {
  struct State {
    absl::Notification done;
    std::string result;
  };
  auto state = std::make_shared<State>();
  transport->Post([client, state, op = std::move(op)]() mutable {
    client->Invoke(std::move(op), [state](const std::string& result) {
      state->result = result;
      state->done.Notify();
    });
  });
  if (!state->done.WaitForNotificationWithTimeout(timeout)) {
    return absl::DeadlineExceededError(absl::StrCat("client ", client->client_id(),
                                                    ": no result within ",
                                                    absl::FormatDuration(timeout)));
  }
  return state->result;
}

}  // namespace dctk::spaxos
