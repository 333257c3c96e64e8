#include "speculative_paxos/threaded_client.h"

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/transport/udp_transport.h"

namespace dctk::spaxos {

absl::StatusOr<std::unique_ptr<ThreadedClient>> ThreadedClient::Create(
    ThreadedClientOptions options) {
  absl::StatusOr<std::unique_ptr<transport::UdpTransport>> udp =
      transport::UdpTransport::Create();
  if (!udp.ok()) return udp.status();
  return Create(std::move(options), std::move(*udp));
}

absl::StatusOr<std::unique_ptr<ThreadedClient>> ThreadedClient::Create(
    ThreadedClientOptions options, std::unique_ptr<transport::Transport> transport) {
  if (options.concurrency < 1 || options.concurrency > 256) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ThreadedClientOptions.concurrency: ", options.concurrency, " is not in 1..256"));
  }
  if (options.client_id_base == 0) {
    absl::BitGen gen;
    options.client_id_base = (absl::Uniform<uint64_t>(gen) | 1u << 8) & ~uint64_t{0xff};
  }
  std::unique_ptr<ThreadedClient> c(new ThreadedClient(std::move(options), std::move(transport)));
  if (absl::Status s = c->StartClients(); !s.ok()) return s;
  c->loop_ = std::thread([t = c->transport_.get()] { t->Run(); });
  return c;
}

ThreadedClient::ThreadedClient(ThreadedClientOptions options,
                               std::unique_ptr<transport::Transport> transport)
    : options_(std::move(options)), transport_(std::move(transport)) {}

absl::Status ThreadedClient::StartClients() {
  for (int i = 0; i < options_.concurrency; ++i) {
    clients_.push_back(std::make_unique<Client>(transport_.get(), options_.client,
                                                options_.client_id_base + i, options_.bind));
    if (absl::Status s = clients_.back()->Start(); !s.ok()) return s;
  }
  in_flight_.resize(clients_.size());
  return absl::OkStatus();
}

ThreadedClient::~ThreadedClient() {
  if (loop_.joinable()) {
    transport_->Post([this] {
      auto cancelled = absl::CancelledError("ThreadedClient destroyed");
      for (size_t i = 0; i < clients_.size(); ++i) {
        if (auto call = std::move(in_flight_[i])) {
          clients_[i]->Cancel();
          Finish(std::move(call), cancelled);
        }
      }
      while (!queue_.empty()) {
        auto call = std::move(queue_.front());
        queue_.pop_front();
        Finish(std::move(call), cancelled);
      }
      transport_->Stop();
    });
    loop_.join();
  }
  clients_.clear();  // unregisters while the loop is not running
}

void ThreadedClient::Call(std::string op, absl::Duration timeout, Callback done) {
  auto call = std::make_shared<PendingCall>();
  call->op = std::move(op);
  call->done = std::move(done);
  transport_->Post([this, call, timeout]() mutable { Enqueue(std::move(call), timeout); });
}

absl::StatusOr<std::string> ThreadedClient::CallAndWait(std::string op, absl::Duration timeout) {
  absl::Notification done;
  absl::StatusOr<std::string> result;
  Call(std::move(op), timeout, [&](absl::StatusOr<std::string> r) {
    result = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

ClientStats ThreadedClient::stats() {
  // Summed when asked, not as calls finish: a ClientStats holds a 59 KiB
  // latency histogram, too much to sum once per call.
  ClientStats total;
  auto sum = [&] {
    for (const auto& c : clients_) total.Add(c->stats());
  };
  if (std::this_thread::get_id() == loop_.get_id()) {
    sum();
    return total;
  }
  absl::Notification done;
  transport_->Post([&] {
    sum();
    done.Notify();
  });
  done.WaitForNotification();
  return total;
}

void ThreadedClient::Enqueue(std::shared_ptr<PendingCall> call, absl::Duration timeout) {
  call->id = next_call_++;
  call->timer = transport_->Timer(timeout, [this, id = call->id] { OnTimeout(id); });
  queue_.push_back(std::move(call));
  Dispatch();
}

void ThreadedClient::Dispatch() {
  for (size_t i = 0; i < clients_.size() && !queue_.empty(); ++i) {
    if (in_flight_[i]) continue;
    std::shared_ptr<PendingCall> call = std::move(queue_.front());
    queue_.pop_front();
    call->client = static_cast<int>(i);
    in_flight_[i] = call;
    clients_[i]->Invoke(call->op, [this, i](const std::string& result) {
      std::shared_ptr<PendingCall> done = std::move(in_flight_[i]);
      transport_->CancelTimer(done->timer);
      Finish(std::move(done), result);
      Dispatch();
    });
  }
}

void ThreadedClient::OnTimeout(uint64_t call_id) {
  auto expired = absl::DeadlineExceededError(
      absl::StrCat("replicated call ", call_id, ": no result within its timeout"));
  for (size_t i = 0; i < in_flight_.size(); ++i) {
    if (in_flight_[i] && in_flight_[i]->id == call_id) {
      clients_[i]->Cancel();
      Finish(std::move(in_flight_[i]), expired);
      Dispatch();
      return;
    }
  }
  auto it = std::find_if(queue_.begin(), queue_.end(),
                         [&](const auto& c) { return c->id == call_id; });
  if (it == queue_.end()) return;
  std::shared_ptr<PendingCall> call = std::move(*it);
  queue_.erase(it);
  Finish(std::move(call), expired);
}

void ThreadedClient::Finish(std::shared_ptr<PendingCall> call, absl::StatusOr<std::string> result) {
  call->done(std::move(result));
}

}  // namespace dctk::spaxos
