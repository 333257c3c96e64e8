#include "common/transport/sim_transport.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace dctk::transport {

const absl::Time SimTransport::kEpoch = absl::FromUnixSeconds(1577836800);

bool SimTransport::Match::Matches(const Address& f, const Address& t,
                                  const Envelope& msg) const {
  return (!type_id || *type_id == msg.type_id()) && (!from || *from == f) &&
         (!to || *to == t);
}

uint64_t SimTransport::Stats::total_dropped() const {
  uint64_t n = 0;
  for (uint64_t d : dropped) n += d;
  return n;
}

SimTransport::SimTransport(uint64_t seed, absl::Duration one_way_latency)
    : latency_(one_way_latency), rng_(seed) {}

SimTransport::~SimTransport() = default;

double SimTransport::RandomUnit() {
  // 53 random bits: the same value on every platform (std distributions are not).
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

uint64_t SimTransport::RandomBelow(uint64_t n) {
  CHECK_GT(n, 0u);
  return rng_() % n;
}

absl::StatusOr<Address> SimTransport::Register(TransportReceiver* receiver,
                                               const Address& addr,
                                               const EndpointOptions& options) {
  if (endpoints_.contains(receiver)) {
    return absl::AlreadyExistsError(absl::StrCat(
        "SimTransport::Register: receiver already registered at ",
        endpoints_[receiver].addr.ToString()));
  }
  if (addr.is_multicast()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SimTransport::Register: ", addr.ToString(), " is a multicast address"));
  }
  Address bound = addr;
  if (addr.port() == 0) {
    uint16_t port = 10000;
    while (receivers_.contains(Address(addr.ip(), port))) {
      if (++port == 0) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "SimTransport::Register: no free port on ", addr.ToString()));
      }
    }
    bound = Address(addr.ip(), port);
  } else if (receivers_.contains(addr)) {
    return absl::AlreadyExistsError(absl::StrCat(
        "SimTransport::Register: ", addr.ToString(), " is already in use"));
  }
  endpoints_[receiver] = Endpoint{bound, options};
  receivers_[bound] = receiver;
  return bound;
}

void SimTransport::Unregister(TransportReceiver* receiver) {
  auto it = endpoints_.find(receiver);
  if (it == endpoints_.end()) return;
  for (auto& [group, members] : groups_) members.erase(it->second.addr);
  receivers_.erase(it->second.addr);
  endpoints_.erase(it);
}

absl::Status SimTransport::JoinGroup(TransportReceiver* receiver, const Address& group) {
  auto it = endpoints_.find(receiver);
  if (it == endpoints_.end()) {
    return absl::FailedPreconditionError("SimTransport::JoinGroup: receiver not registered");
  }
  if (!group.is_multicast()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SimTransport::JoinGroup: ", group.ToString(), " is not a multicast address"));
  }
  groups_[group].insert(it->second.addr);
  return absl::OkStatus();
}

absl::Status SimTransport::LeaveGroup(TransportReceiver* receiver, const Address& group) {
  auto it = endpoints_.find(receiver);
  auto g = groups_.find(group);
  if (it == endpoints_.end() || g == groups_.end() || g->second.erase(it->second.addr) == 0) {
    return absl::NotFoundError(absl::StrCat("SimTransport::LeaveGroup: receiver is not in ",
                                            group.ToString()));
  }
  return absl::OkStatus();
}

absl::Status SimTransport::SendRaw(TransportReceiver* sender, const Address& to,
                                   uint32_t type_id, absl::string_view payload) {
  auto it = endpoints_.find(sender);
  if (it == endpoints_.end()) {
    return absl::FailedPreconditionError("SimTransport::SendRaw: sender not registered");
  }
  if (payload.size() > kMaxPayloadSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SimTransport::SendRaw: payload of ", payload.size(), " bytes to ", to.ToString(),
        " exceeds the maximum of ", kMaxPayloadSize));
  }
  ++stats_.sent;
  const Endpoint& from = it->second;
  if (crashed_.contains(from.addr)) {
    Drop(SimDropReason::kCrashed);
    return absl::OkStatus();
  }
  if (!to.is_multicast()) {
    SendCopy(from.addr, to, type_id, payload);
    return absl::OkStatus();
  }
  auto g = groups_.find(to);
  bool any = false;
  if (g != groups_.end()) {
    for (const Address& member : g->second) {
      if (member == from.addr && !from.options.multicast_loopback) continue;
      SendCopy(from.addr, member, type_id, payload);
      any = true;
    }
  }
  if (!any) Drop(SimDropReason::kNoMembers);
  return absl::OkStatus();
}

void SimTransport::SendCopy(const Address& from, const Address& to, uint32_t type_id,
                            absl::string_view payload) {
  Envelope env(type_id, payload);
  absl::Duration delay = latency_;
  duplicates_requested_ = 0;
  duplicate_spread_ = absl::ZeroDuration();
  for (auto& [id, filter] : filters_) {
    if (!filter(from, to, env, &delay)) {
      Drop(SimDropReason::kFilter);
      return;
    }
  }
  int copies = 1 + duplicates_requested_;
  stats_.duplicated += duplicates_requested_;
  for (int i = 0; i < copies; ++i) {
    absl::Duration extra =
        i == 0 ? absl::ZeroDuration() : duplicate_spread_ * RandomUnit();
    Push(Event{now_ + delay + extra, 0, EventKind::kMessage, 0, from, to, type_id,
               std::string(payload)});
  }
}

void SimTransport::Push(Event e) {
  e.seq = next_seq_++;
  if (e.kind != EventKind::kTimer) ++pending_messages_;
  queue_.push_back(std::move(e));
  std::push_heap(queue_.begin(), queue_.end(), Later());
}

TimerId SimTransport::Timer(absl::Duration delay, std::function<void()> cb) {
  TimerId id = next_timer_++;
  timers_.emplace(id, std::move(cb));
  Push(Event{now_ + std::max(delay, absl::ZeroDuration()), 0, EventKind::kTimer, id, {},
             {}, 0, {}});
  return id;
}

bool SimTransport::CancelTimer(TimerId id) { return timers_.erase(id) > 0; }

void SimTransport::Post(std::function<void()> cb) {
  std::lock_guard<std::mutex> lock(posts_mu_);
  posts_.push_back(std::move(cb));
  has_posts_.store(true, std::memory_order_release);
}

void SimTransport::DrainPosts() {
  if (!has_posts_.load(std::memory_order_acquire)) return;
  std::vector<std::function<void()>> posts;
  {
    std::lock_guard<std::mutex> lock(posts_mu_);
    posts.swap(posts_);
    has_posts_.store(false, std::memory_order_relaxed);
  }
  for (auto& cb : posts) {
    TimerId id = next_timer_++;
    timers_.emplace(id, std::move(cb));
    Push(Event{now_, 0, EventKind::kPost, id, {}, {}, 0, {}});
  }
}

bool SimTransport::Step() {
  DrainPosts();
  if (queue_.empty()) return false;
  std::pop_heap(queue_.begin(), queue_.end(), Later());
  Event e = std::move(queue_.back());
  queue_.pop_back();
  now_ = std::max(now_, e.at);
  if (e.kind != EventKind::kTimer) --pending_messages_;
  if (e.kind == EventKind::kMessage) {
    Deliver(e);
    return true;
  }
  auto it = timers_.find(e.timer);
  if (it == timers_.end()) return true;  // cancelled
  std::function<void()> cb = std::move(it->second);
  timers_.erase(it);
  cb();
  return true;
}

void SimTransport::Deliver(Event& e) {
  if (crashed_.contains(e.to)) {
    Drop(SimDropReason::kCrashed);
    return;
  }
  auto it = receivers_.find(e.to);
  if (it == receivers_.end()) {
    Drop(SimDropReason::kNoReceiver);
    return;
  }
  ++stats_.delivered;
  Envelope env(e.type_id, e.payload,
               &stats_.malformed[static_cast<int>(MalformedReason::kBadPayload)]);
  it->second->ReceiveMessage(e.from, env);
}

void SimTransport::Run() {
  while (!stop_.load(std::memory_order_acquire) && Step()) {
  }
  stop_.store(false, std::memory_order_release);
}

void SimTransport::Stop() { stop_.store(true, std::memory_order_release); }

void SimTransport::RunFor(absl::Duration d) {
  absl::Time deadline = now_ + d;
  for (;;) {
    DrainPosts();
    if (queue_.empty() || queue_.front().at > deadline) break;
    Step();
  }
  now_ = std::max(now_, deadline);
}

bool SimTransport::RunUntil(std::function<bool()> done, absl::Duration limit) {
  absl::Time deadline = now_ + limit;
  for (;;) {
    if (done()) return true;
    DrainPosts();
    if (queue_.empty() || queue_.front().at > deadline) break;
    Step();
  }
  now_ = std::max(now_, deadline);
  return done();
}

void SimTransport::RunUntilIdle() {
  for (;;) {
    DrainPosts();
    if (pending_messages_ == 0) return;
    Step();
  }
}

void SimTransport::AddFilter(int id, Filter f) { filters_[id] = std::move(f); }

void SimTransport::RemoveFilter(int id) { filters_.erase(id); }

void SimTransport::Crash(const Address& addr) { crashed_.insert(addr); }

void SimTransport::Restart(const Address& addr) { crashed_.erase(addr); }

}  // namespace dctk::transport
