// UdpTransport's event loop: batched receive and dispatch, timers (epoll_pwait2
// timeouts), posts. The io_uring wait used while peer sockets exist is in
// udp_peer_wait.cc.
#include <arpa/inet.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <thread>
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
  loop_thread_.store(std::this_thread::get_id(), std::memory_order_release);
  // Timer deadlines are epoll_pwait2 timeouts, which the kernel lets slip by
  // the thread's timer slack (50 us by default): keep them as precise as a
  // timerfd for the loop's duration.
  const int old_slack = prctl(PR_GET_TIMERSLACK);
  prctl(PR_SET_TIMERSLACK, 1UL);
  epoll_event events[kMaxEvents];
  while (!stop_.load(std::memory_order_acquire)) {
    timespec timeout{};
    const timespec* wait = &timeout;  // zero: posts of this loop thread are waiting
    if (local_posts_.empty()) {
      const int64_t next = NextDeadline();
      if (next < 0) {
        wait = nullptr;  // no timer: sleep until an event
      } else {
        const int64_t ns = std::max<int64_t>(0, next - MonotonicNs());
        timeout.tv_sec = ns / 1'000'000'000;
        timeout.tv_nsec = ns % 1'000'000'000;
      }
    }
    int n;
    if (peer_sockets_.empty() || ring_failed_) {
      ++stats_.waits;
      n = epoll_pwait2(epoll_fd_, events, kMaxEvents, wait, nullptr);
    } else {
      n = WaitWithPeers(wait, events, kMaxEvents);
    }
    if (n < 0) {
      PCHECK(errno == EINTR) << "epoll_pwait2";
      n = 0;
    }
    for (size_t i = 0; i < ready_peers_.size(); ++i) {
      if (!ready_peers_[i]->closed) HandleReadable(ready_peers_[i]);
    }
    ready_peers_.clear();
    for (int i = 0; i < n; ++i) {
      Socket* s = static_cast<Socket*>(events[i].data.ptr);
      if (s->closed) continue;  // retired earlier in this iteration
      if (s->kind == Socket::Kind::kWake) {
        HandleWake();
      } else {
        HandleReadable(s);
      }
    }
    RunDueTimers();
    RunLocalPosts();
    FlushSends();
    retired_.clear();
  }
  FlushSends();
  in_loop_ = false;
  retired_.clear();
  StopPeerRing();  // the next Run() may be on another thread
  prctl(PR_SET_TIMERSLACK, static_cast<unsigned long>(old_slack > 0 ? old_slack : 0));
  loop_thread_.store(std::thread::id(), std::memory_order_release);
  // Posts made on the loop thread that did not run yet wait for the next Run().
  if (!local_posts_.empty()) {
    for (auto& cb : local_posts_) Post(std::move(cb));
    local_posts_.clear();
  }
  stop_.store(false, std::memory_order_release);
}

void UdpTransport::Stop() {
  stop_.store(true, std::memory_order_release);
  uint64_t one = 1;
  PCHECK(write(wake_->fd, &one, sizeof(one)) == sizeof(one) || errno == EAGAIN)
      << "eventfd write";
}

void UdpTransport::Post(std::function<void()> cb) {
  if (loop_thread_.load(std::memory_order_acquire) == std::this_thread::get_id()) {
    local_posts_.push_back(std::move(cb));  // runs at the end of this iteration
    return;
  }
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

void UdpTransport::RunLocalPosts() {
  // Only those queued so far: a post that posts again runs next iteration
  // (after the sockets are polled once more), so none can starve the loop.
  running_local_posts_.swap(local_posts_);
  for (auto& cb : running_local_posts_) cb();
  running_local_posts_.clear();
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
  return id;
}

bool UdpTransport::CancelTimer(TimerId id) {
  if (timers_.erase(id) == 0) return false;
  // Cancelled entries stay in the heap until they reach its top; compact when
  // they dominate (e.g. a Timeout reset on every message).
  if (timer_heap_.size() > 64 && timer_heap_.size() > 4 * timers_.size()) {
    std::erase_if(timer_heap_, [this](const TimerEntry& e) { return !timers_.contains(e.id); });
    std::make_heap(timer_heap_.begin(), timer_heap_.end(), std::greater<>());
  }
  return true;
}

int64_t UdpTransport::NextDeadline() {
  while (!timer_heap_.empty() && !timers_.contains(timer_heap_.front().id)) {
    std::pop_heap(timer_heap_.begin(), timer_heap_.end(), std::greater<>());
    timer_heap_.pop_back();
  }
  return timer_heap_.empty() ? -1 : timer_heap_.front().deadline_ns;
}

void UdpTransport::RunDueTimers() {
  const int64_t now = MonotonicNs();
  // Timers a callback adds are due after `now`: they run next iteration.
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
}

}  // namespace dctk::transport
