#include "mom/bench/traffic.h"

#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "glog/logging.h"

namespace dctk::mom {
namespace {

constexpr int kBatch = 32;
constexpr size_t kMaxDatagram = 2048;

void SleepUntilNs(uint64_t deadline_ns) {
  timespec ts{static_cast<time_t>(deadline_ns / 1'000'000'000),
              static_cast<long>(deadline_ns % 1'000'000'000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) != 0) {
  }
}

}  // namespace

uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

SendResult SendFlow(const FlowSpec& spec) {
  CHECK_GE(spec.payload_bytes, sizeof(BenchHeader));
  CHECK_LE(spec.payload_bytes, kMaxDatagram);
  std::vector<std::vector<uint8_t>> buffers(kBatch, std::vector<uint8_t>(spec.payload_bytes, 0));
  iovec iov[kBatch];
  mmsghdr msgs[kBatch];
  sockaddr_in dst = spec.dst;
  for (int i = 0; i < kBatch; ++i) {
    iov[i] = {buffers[i].data(), spec.payload_bytes};
    msgs[i] = {};
    msgs[i].msg_hdr.msg_name = &dst;
    msgs[i].msg_hdr.msg_namelen = sizeof(dst);
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  const uint64_t start = MonotonicNs();
  const uint64_t end = start + absl::ToInt64Nanoseconds(spec.duration);
  const double interval_ns = spec.rate_pps > 0 ? 1e9 / spec.rate_pps : 0;
  uint64_t sent = 0;
  uint32_t seq = 0;
  for (;;) {
    uint64_t now = MonotonicNs();
    if (now >= end) break;
    int n = kBatch;
    if (interval_ns > 0) {
      // Datagrams whose time has come (a batch at most), else sleep to the next.
      const uint64_t due = static_cast<uint64_t>((now - start) / interval_ns) + 1;
      if (due <= seq) {
        SleepUntilNs(start + static_cast<uint64_t>(seq * interval_ns));
        now = MonotonicNs();
        continue;
      }
      n = static_cast<int>(std::min<uint64_t>(kBatch, due - seq));
    }
    for (int i = 0; i < n; ++i) {
      BenchHeader h{now, spec.flow, seq++};
      std::memcpy(buffers[i].data(), &h, sizeof(h));
    }
    const int r = sendmmsg(spec.fd, msgs, n, 0);
    if (r > 0) sent += r;
  }
  return SendResult{sent, (MonotonicNs() - start) / 1e9};
}

Sink::Sink(int fd, int latency_flow) : fd_(fd), latency_flow_(latency_flow) {
  timeval poll{0, 10000};  // wake every 10 ms to check for Stop()
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &poll, sizeof(poll));
  const int size = 8 << 20;
  setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
  thread_ = std::thread([this] { Run(); });
}

Sink::~Sink() {
  if (thread_.joinable()) Stop(absl::ZeroDuration());
}

SinkResult Sink::Stop(absl::Duration quiet) {
  quiet_ns_.store(absl::ToInt64Nanoseconds(quiet), std::memory_order_relaxed);
  stopping_.store(true, std::memory_order_release);
  thread_.join();
  return std::move(result_);
}

void Sink::Run() {
  std::vector<std::vector<uint8_t>> buffers(kBatch * 2, std::vector<uint8_t>(kMaxDatagram));
  std::vector<iovec> iov(buffers.size());
  std::vector<mmsghdr> msgs(buffers.size());
  for (size_t i = 0; i < buffers.size(); ++i) {
    iov[i] = {buffers[i].data(), kMaxDatagram};
    msgs[i] = {};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  uint64_t last_rx = MonotonicNs();
  for (;;) {
    const int n = recvmmsg(fd_, msgs.data(), static_cast<unsigned>(msgs.size()), MSG_WAITFORONE,
                           nullptr);
    const uint64_t now = MonotonicNs();
    if (n <= 0) {
      if (stopping_.load(std::memory_order_acquire) &&
          now - last_rx >= static_cast<uint64_t>(quiet_ns_.load(std::memory_order_relaxed))) {
        return;
      }
      continue;
    }
    last_rx = now;
    for (int i = 0; i < n; ++i) {
      if (msgs[i].msg_len < sizeof(BenchHeader)) continue;
      BenchHeader h;
      std::memcpy(&h, buffers[i].data(), sizeof(h));
      if (h.flow >= kMaxFlows) continue;
      ++result_.packets[h.flow];
      result_.bytes[h.flow] += msgs[i].msg_len;
      if (static_cast<int>(h.flow) == latency_flow_ && now >= h.send_ns) {
        result_.latency_ns.Record(now - h.send_ns);
      }
    }
    if (stopping_.load(std::memory_order_acquire) &&
        quiet_ns_.load(std::memory_order_relaxed) == 0) {
      return;
    }
  }
}

}  // namespace dctk::mom
