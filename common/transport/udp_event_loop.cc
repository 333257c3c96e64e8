// UdpTransport's event loop: batched receive and dispatch, timers, posts.
#include <arpa/inet.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <utility>

#include "common/transport/udp_transport.h"
#include "glog/logging.h"

namespace dctk::transport {
namespace {

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

constexpr int kMaxEvents = 64;

}  // namespace

void UdpTransport::Run() {
  in_loop_ = true;
  epoll_event events[kMaxEvents];
  while (!stop_.load(std::memory_order_acquire)) {
    int n = epoll_wait(epoll_fd_, events, kMaxEvents, -1);
    if (n < 0) {
      PCHECK(errno == EINTR) << "epoll_wait";
      continue;
    }
    for (int i = 0; i < n; ++i) {
      Socket* s = static_cast<Socket*>(events[i].data.ptr);
      if (s->closed) continue;  // retired earlier in this iteration
      switch (s->kind) {
        case Socket::Kind::kWake:
          HandleWake();
          break;
        case Socket::Kind::kTimer:
          HandleTimers();
          break;
        case Socket::Kind::kUnicast:
        case Socket::Kind::kGroup:
          HandleReadable(s);
          break;
      }
    }
    FlushSends();
    retired_.clear();
  }
  FlushSends();
  in_loop_ = false;
  retired_.clear();
  stop_.store(false, std::memory_order_release);
}

void UdpTransport::Stop() {
  stop_.store(true, std::memory_order_release);
  uint64_t one = 1;
  PCHECK(write(wake_->fd, &one, sizeof(one)) == sizeof(one) || errno == EAGAIN)
      << "eventfd write";
}

void UdpTransport::Post(std::function<void()> cb) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(posts_mu_);
    was_empty = posts_.empty();
    posts_.push_back(std::move(cb));
  }
  if (was_empty) {  // the loop drains all posts per wake-up
    uint64_t one = 1;
    PCHECK(write(wake_->fd, &one, sizeof(one)) == sizeof(one) || errno == EAGAIN)
        << "eventfd write";
  }
}

void UdpTransport::HandleWake() {
  uint64_t count;
  (void)!read(wake_->fd, &count, sizeof(count));
  {
    std::lock_guard<std::mutex> lock(posts_mu_);
    running_posts_.swap(posts_);  // both vectors keep their capacity
  }
  for (auto& cb : running_posts_) cb();
  running_posts_.clear();
}

void UdpTransport::HandleReadable(Socket* s) {
  for (int i = 0; i < kRecvBatch; ++i) {
    recv_msgs_[i].msg_hdr.msg_name = &recv_from_[i];
    recv_msgs_[i].msg_hdr.msg_namelen = sizeof(recv_from_[i]);
    recv_msgs_[i].msg_hdr.msg_flags = 0;
  }
  // One batch per readiness: epoll is level-triggered, so a socket with more
  // queued datagrams comes back next iteration without starving the others.
  int n = recvmmsg(s->fd, recv_msgs_, kRecvBatch, MSG_DONTWAIT, nullptr);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ++stats_.receive_errors;
    return;
  }
  ++stats_.recv_syscalls;
  uint64_t* parse_failures = &stats_.malformed[static_cast<int>(MalformedReason::kBadPayload)];
  for (int i = 0; i < n && !s->closed; ++i) {
    const mmsghdr& m = recv_msgs_[i];
    if (m.msg_hdr.msg_flags & MSG_TRUNC) {
      ++stats_.malformed[static_cast<int>(MalformedReason::kLengthMismatch)];
      continue;
    }
    FrameDecodeResult r = DecodeFrame(
        absl::string_view(static_cast<const char*>(recv_iov_[i].iov_base), m.msg_len));
    if (!r.ok()) {
      ++stats_.malformed[static_cast<int>(r.reason())];
      continue;
    }
    ++stats_.received;
    Address from(ntohl(recv_from_[i].sin_addr.s_addr), ntohs(recv_from_[i].sin_port));
    Envelope env(r.envelope().type_id(), r.envelope().payload(), parse_failures);
    s->receiver->ReceiveMessage(from, env);
  }
}

TimerId UdpTransport::Timer(absl::Duration delay, std::function<void()> cb) {
  TimerId id = next_timer_++;
  int64_t deadline = MonotonicNs() + std::max<int64_t>(0, absl::ToInt64Nanoseconds(delay));
  timers_.emplace(id, std::move(cb));
  timer_heap_.push_back({deadline, id});
  std::push_heap(timer_heap_.begin(), timer_heap_.end(), std::greater<>());
  if (armed_ns_ == 0 || deadline < armed_ns_) ArmTimerFd();
  return id;
}

bool UdpTransport::CancelTimer(TimerId id) {
  if (timers_.erase(id) == 0) return false;
  // Cancelled entries stay in the heap until due; compact when they dominate
  // (e.g. a Timeout reset on every message).
  if (timer_heap_.size() > 64 && timer_heap_.size() > 4 * timers_.size()) {
    std::erase_if(timer_heap_, [this](const TimerEntry& e) { return !timers_.contains(e.id); });
    std::make_heap(timer_heap_.begin(), timer_heap_.end(), std::greater<>());
  }
  return true;
}

void UdpTransport::ArmTimerFd() {
  while (!timer_heap_.empty() && !timers_.contains(timer_heap_.front().id)) {
    std::pop_heap(timer_heap_.begin(), timer_heap_.end(), std::greater<>());
    timer_heap_.pop_back();
  }
  int64_t next = timer_heap_.empty() ? 0 : std::max<int64_t>(1, timer_heap_.front().deadline_ns);
  if (next == armed_ns_) return;
  itimerspec spec{};  // all zero disarms
  spec.it_value.tv_sec = next / 1'000'000'000;
  spec.it_value.tv_nsec = next % 1'000'000'000;
  PCHECK(timerfd_settime(timer_->fd, TFD_TIMER_ABSTIME, &spec, nullptr) == 0)
      << "timerfd_settime";
  armed_ns_ = next;
}

void UdpTransport::HandleTimers() {
  uint64_t expirations;
  (void)!read(timer_->fd, &expirations, sizeof(expirations));
  armed_ns_ = 0;  // the timerfd is one-shot: it is disarmed now
  int64_t now = MonotonicNs();
  while (!timer_heap_.empty() && timer_heap_.front().deadline_ns <= now) {
    TimerId id = timer_heap_.front().id;
    std::pop_heap(timer_heap_.begin(), timer_heap_.end(), std::greater<>());
    timer_heap_.pop_back();
    auto it = timers_.find(id);
    if (it == timers_.end()) continue;  // cancelled
    std::function<void()> cb = std::move(it->second);
    timers_.erase(it);
    cb();  // may add or cancel timers
  }
  ArmTimerFd();
}

}  // namespace dctk::transport
