#include "speculative_paxos/client_endpoint.h"

#include "absl/strings/str_cat.h"
#include "common/transport/framing.h"
#include "glog/logging.h"
#include "speculative_paxos/client.h"

namespace dctk::spaxos {

ClientEndpoint::ClientEndpoint(transport::Transport* transport, transport::Address bind,
                               transport::EndpointOptions options, int max_datagram)
    : transport_(transport),
      address_(bind),
      options_(options),
      max_datagram_(max_datagram),
      max_batch_bytes_(max_datagram > static_cast<int>(transport::kFrameHeaderSize)
                           ? max_datagram - transport::kFrameHeaderSize
                           : 1) {}

absl::Status ClientEndpoint::CheckMaxDatagram(int max_datagram) {
  constexpr size_t kMax = transport::kMaxPayloadSize + transport::kFrameHeaderSize;
  if (max_datagram < kMinMaxDatagram || static_cast<size_t>(max_datagram) > kMax) {
    return absl::InvalidArgumentError(absl::StrCat(max_datagram, " bytes, need ", kMinMaxDatagram,
                                                   " .. ", kMax, " (UDP payload)"));
  }
  return absl::OkStatus();
}

ClientEndpoint::~ClientEndpoint() {
  if (started_) transport_->Unregister(this);
}

absl::Status ClientEndpoint::Start() {
  if (absl::Status s = CheckMaxDatagram(max_datagram_); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("ClientEndpoint max_datagram: ", s.message()));
  }
  absl::StatusOr<transport::Address> bound = transport_->Register(this, address_, options_);
  if (!bound.ok()) return bound.status();
  address_ = *bound;
  started_ = true;
  return absl::OkStatus();
}

void ClientEndpoint::Attach(Client* client) {
  CHECK(clients_.emplace(client->client_id(), client).second)
      << "client id " << client->client_id() << " twice on endpoint " << address_.ToString();
}

void ClientEndpoint::Detach(Client* client) { clients_.erase(client->client_id()); }

void ClientEndpoint::ReceiveMessage(const transport::Address& from,
                                    const transport::Envelope& msg) {
  // Parsed into reused messages: no allocation per reply in steady state.
  delivering_ = true;
  if (msg.Is<Reply>()) {
    if (msg.Parse(&incoming_)) {
      ++stats_.reply_datagrams;
      Deliver(&incoming_);
    }
  } else if (msg.Is<ReplyBatch>()) {
    if (msg.Parse(&incoming_batch_)) {
      ++stats_.reply_datagrams;
      for (Reply& reply : *incoming_batch_.mutable_replies()) Deliver(&reply);
    }
  }
  delivering_ = false;
  UpdateAwait();
}

void ClientEndpoint::AwaitChanged() {
  if (!delivering_) UpdateAwait();
}

void ClientEndpoint::UpdateAwait() {
  if (options_.peers.empty()) return;
  int fewest = 0;
  for (const auto& [id, client] : clients_) {
    const int n = client->RepliesAwaited();
    if (n > 0 && (fewest == 0 || n < fewest)) fewest = n;
  }
  transport_->AwaitPeers(this, fewest);
}

void ClientEndpoint::Deliver(Reply* reply) {
  auto it = clients_.find(reply->client_id());
  if (it != clients_.end()) it->second->HandleReply(reply);
}

void ClientEndpoint::SendRequest(const transport::Address& to, const Request& req) {
  ++stats_.requests;
  if (clients_.size() <= 1) {
    ++stats_.request_datagrams;
    Send(to, req);
    return;
  }
  if (!flush_posted_) {
    flush_posted_ = true;
    transport_->Post([this, alive = std::weak_ptr<bool>(alive_)] {
      if (alive.expired()) return;
      flush_posted_ = false;
      Flush();
    });
  }
  size_t i = 0;
  while (i < used_ && !(held_[i].first == to)) ++i;
  if (i == used_) {
    // Reuse a flushed batch (its cleared requests keep their buffers).
    if (used_ == held_.size()) {
      held_.emplace_back(to, RequestBatch());
      held_bytes_.push_back(0);
    }
    held_[i].first = to;
    held_bytes_[i] = 0;
    ++used_;
  }
  // An element's tag and length prefix: at most 4 bytes.
  const size_t bytes = req.ByteSizeLong() + 4;
  if (held_bytes_[i] + bytes > max_batch_bytes_ && held_[i].second.requests_size() > 0) {
    SendOut(to, &held_[i].second);
    held_bytes_[i] = 0;
  }
  *held_[i].second.add_requests() = req;
  held_bytes_[i] += bytes;
}

void ClientEndpoint::Flush() {
  for (size_t i = 0; i < used_; ++i) SendOut(held_[i].first, &held_[i].second);
  used_ = 0;
}

void ClientEndpoint::SendOut(const transport::Address& to, RequestBatch* batch) {
  if (batch->requests_size() == 0) return;
  ++stats_.request_datagrams;
  if (batch->requests_size() == 1) {
    Send(to, batch->requests(0));
  } else {
    Send(to, *batch);
  }
  batch->Clear();
}

}  // namespace dctk::spaxos
