#include "mom/measure/dataplane_run.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "mom/controller/switch_config.h"
#include "mom/design.h"
#include "mom/sequence_tracker.h"
#include "mom/testbed/mom_datagram.h"

namespace dctk::mom {
namespace {

constexpr uint16_t kBackgroundPort = 7001;
constexpr size_t kBackgroundBytes = 1000;

void SleepUntil(uint64_t deadline_ns) {
  timespec ts{static_cast<time_t>(deadline_ns / 1'000'000'000),
              static_cast<long>(deadline_ns % 1'000'000'000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) != 0) {
  }
}

struct Delivered {
  std::vector<MomDatagram> order;
  std::vector<double> latency_us;
};

// queue_full and tx_full drops summed over all switches.
absl::StatusOr<std::pair<uint64_t, uint64_t>> SwitchQueueDrops(Testbed& bed) {
  std::pair<uint64_t, uint64_t> total{0, 0};
  for (int sw : bed.topology().switches()) {
    absl::StatusOr<SwitchStats> s = bed.Stats(sw);
    if (!s.ok()) return s.status();
    total.first += s->drops().at("queue_full");
    total.second += s->drops().at("tx_full");
  }
  return total;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

}  // namespace

absl::StatusOr<DataplaneRunResult> RunOnDataplane(Testbed& bed, const GroupRoutes& r,
                                                  const DataplaneRunConfig& c) {
  const GroupSpec& group = r.spec;
  if (group.senders.empty() || group.receivers.size() < 2 || c.messages_per_sender <= 0 ||
      c.rate <= 0) {
    return absl::InvalidArgumentError(
        "mom measure: need senders, >= 2 receivers, messages and a positive rate");
  }
  DataplaneRunResult result;
  result.roots = static_cast<int>(r.channels.size());
  absl::StatusOr<std::pair<uint64_t, uint64_t>> drops_before = SwitchQueueDrops(bed);
  if (!drops_before.ok()) return drops_before.status();

  std::vector<int> fds;
  absl::Cleanup close_all = [&fds] {
    for (int fd : fds) close(fd);
  };
  auto open_socket = [&](int host, uint16_t port) -> absl::StatusOr<int> {
    absl::StatusOr<int> fd = bed.UdpSocket(host);
    if (!fd.ok()) return fd.status();
    fds.push_back(*fd);
    const int size = 8 << 20;
    setsockopt(*fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
    sockaddr_in sa = Sockaddr(INADDR_ANY, port);
    if (bind(*fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      return absl::InternalError(absl::StrCat("bind port ", port, " on ", bed.netns(host)));
    }
    return *fd;
  };
  std::vector<int> receiver_fds;
  for (int host : group.receivers) {
    absl::StatusOr<int> fd = open_socket(host, kMeasurePort);
    if (!fd.ok()) return fd.status();
    for (uint32_t g : ChannelIps(r)) {
      ip_mreq mreq{};
      mreq.imr_multiaddr.s_addr = htonl(g);
      mreq.imr_interface.s_addr = htonl(bed.ip(host));
      setsockopt(*fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq));
    }
    timeval quiet{0, 500000};  // end of run: nothing for 0.5 s after the senders stopped
    setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &quiet, sizeof(quiet));
    receiver_fds.push_back(*fd);
  }
  for (const auto& [from, to] : c.background) {
    if (absl::StatusOr<int> sink = open_socket(to, kBackgroundPort); !sink.ok()) {
      return sink.status();
    }
  }
  std::vector<int> sender_fds, background_fds;
  for (int host : group.senders) {
    absl::StatusOr<int> fd = open_socket(host, 0);
    if (!fd.ok()) return fd.status();
    in_addr iface{htonl(bed.ip(host))};
    setsockopt(*fd, IPPROTO_IP, IP_MULTICAST_IF, &iface, sizeof(iface));
    const int tos = HighPriority(group.design) ? kMomDscp << 2 : 0;
    setsockopt(*fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
    sender_fds.push_back(*fd);
  }
  for (const auto& [from, to] : c.background) {
    absl::StatusOr<int> fd = open_socket(from, 0);
    if (!fd.ok()) return fd.status();
    background_fds.push_back(*fd);
  }

  std::atomic<bool> senders_done{false};
  std::vector<Delivered> delivered(group.receivers.size());
  std::vector<std::thread> threads;
  const uint64_t expected = static_cast<uint64_t>(c.messages_per_sender) * group.senders.size();
  for (size_t i = 0; i < receiver_fds.size(); ++i) {
    threads.emplace_back([&, i] {
      char buf[2048];
      while (delivered[i].order.size() < expected) {
        const ssize_t len = recv(receiver_fds[i], buf, sizeof(buf), 0);
        if (len <= 0) {
          if (senders_done.load()) break;
          continue;
        }
        const uint64_t now = MonotonicNanos();
        if (absl::optional<MomDatagram> d = DecodeMomDatagram(absl::string_view(buf, len))) {
          delivered[i].order.push_back(*d);
          delivered[i].latency_us.push_back((now - d->sent_ns) / 1e3);
        }
      }
    });
  }
  std::atomic<bool> stop_background{false};
  for (size_t b = 0; b < c.background.size(); ++b) {
    threads.emplace_back([&, b] {
      const std::string filler(kBackgroundBytes, 'b');
      const sockaddr_in to = Sockaddr(bed.ip(c.background[b].second), kBackgroundPort);
      const double interval_ns = kBackgroundBytes * 8 / (c.background_mbps * 1e6) * 1e9;
      uint64_t next = MonotonicNanos();
      while (!stop_background.load()) {
        sendto(background_fds[b], filler.data(), filler.size(), 0,
               reinterpret_cast<const sockaddr*>(&to), sizeof(to));
        next += static_cast<uint64_t>(interval_ns);
        SleepUntil(next);
      }
    });
  }
  if (!c.background.empty() && c.background_mbps > 0) {
    SleepUntil(MonotonicNanos() + 50'000'000);  // let the background reach steady state
  }
  std::vector<std::thread> sender_threads;
  for (size_t s = 0; s < sender_fds.size(); ++s) {
    sender_threads.emplace_back([&, s] {
      std::mt19937_64 rng(c.seed * 1000003 + s);
      std::exponential_distribution<double> gap(c.rate);
      const sockaddr_in to = Sockaddr(SenderChannelIp(r, static_cast<int>(s)), kMeasurePort);
      uint64_t next = MonotonicNanos();
      for (int seq = 1; seq <= c.messages_per_sender; ++seq) {
        next += static_cast<uint64_t>(gap(rng) * 1e9);
        SleepUntil(next);
        const std::string d = EncodeMomDatagram(group.group_id, static_cast<uint32_t>(s + 1), seq,
                                                Serialized(group.design), MonotonicNanos());
        sendto(sender_fds[s], d.data(), d.size(), 0, reinterpret_cast<const sockaddr*>(&to),
               sizeof(to));
      }
    });
  }
  for (std::thread& t : sender_threads) t.join();
  senders_done = true;
  stop_background = true;
  for (std::thread& t : threads) t.join();

  result.messages_sent = expected;
  result.copies_expected = expected * group.receivers.size();
  ReorderMeter meter(static_cast<int>(group.receivers.size()));
  std::vector<double> latencies;
  for (size_t i = 0; i < delivered.size(); ++i) {
    SequenceTracker stamps;
    for (const MomDatagram& d : delivered[i].order) {
      meter.Record(static_cast<int>(i), MessageId{d.sender_id, d.sender_seq});
      if (d.group_seq > 0) stamps.Observe(d.group_seq);
    }
    result.copies_received += delivered[i].order.size();
    result.group_seq_gaps += stamps.missing();
    latencies.insert(latencies.end(), delivered[i].latency_us.begin(),
                     delivered[i].latency_us.end());
  }
  result.reorder = meter.Compute();
  result.latency_p50_us = Percentile(latencies, 0.5);
  result.latency_p99_us = Percentile(latencies, 0.99);
  absl::StatusOr<std::pair<uint64_t, uint64_t>> drops_after = SwitchQueueDrops(bed);
  if (!drops_after.ok()) return drops_after.status();
  result.queue_full_drops = drops_after->first - drops_before->first;
  result.tx_full_drops = drops_after->second - drops_before->second;
  return result;
}

}  // namespace dctk::mom
