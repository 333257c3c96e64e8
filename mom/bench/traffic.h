// UDP traffic for data-plane benchmarks: a sender that blasts or paces
// datagrams from one socket, and a sink that counts what a socket receives
// and records one-way latency.
//
// Every datagram starts with a BenchHeader (send time on CLOCK_MONOTONIC,
// which all network namespaces of a machine share, and a flow number), so a
// sink can tell a measured flow from background traffic arriving at the same
// port and compute latency without clock sync. Blasts (rate 0) send batches
// with sendmmsg as fast as the socket takes them; paced flows send each
// datagram at its scheduled time (clock_nanosleep, catching up in batches if
// late), stamping the time just before the send.
//
// Example:
//   Sink sink(rx_fd, /*latency_flow=*/0);          // starts receiving now
//   SendResult sent = SendFlow({.fd = tx_fd, .dst = dst, .payload_bytes = 64,
//                               .rate_pps = 5000, .duration = absl::Seconds(1)});
//   SinkResult got = sink.Stop(absl::Milliseconds(200));
//   got.latency_ns.ValueAtQuantile(0.99);
#ifndef DCTK_MOM_BENCH_TRAFFIC_H_
#define DCTK_MOM_BENCH_TRAFFIC_H_

#include <netinet/in.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <thread>

#include "absl/time/time.h"
#include "common/metrics/histogram.h"

namespace dctk::mom {

struct BenchHeader {
  uint64_t send_ns;  // CLOCK_MONOTONIC
  uint32_t flow;
  uint32_t seq;
};

// Flows a sink tells apart (flow numbers 0 .. kMaxFlows-1).
inline constexpr int kMaxFlows = 2;

// UDP payload size that makes an Ethernet frame of `frame_bytes` (no FCS).
inline constexpr size_t PayloadForFrame(size_t frame_bytes) { return frame_bytes - 42; }

uint64_t MonotonicNs();

struct FlowSpec {
  int fd = -1;
  sockaddr_in dst{};
  size_t payload_bytes = 64;  // at least sizeof(BenchHeader)
  double rate_pps = 0;        // 0: as fast as possible
  absl::Duration duration = absl::Seconds(1);
  uint32_t flow = 0;
};

struct SendResult {
  uint64_t packets = 0;
  double seconds = 0;
};

// Sends until `spec.duration` has passed. Datagrams the socket refuses
// (ENOBUFS, EAGAIN) are not counted.
SendResult SendFlow(const FlowSpec& spec);

struct SinkResult {
  std::array<uint64_t, kMaxFlows> packets{};
  std::array<uint64_t, kMaxFlows> bytes{};  // UDP payload bytes
  metrics::Histogram latency_ns;                    // of latency_flow only
};

// Receives on `fd` (bound, and joined to any groups, by the caller) on its
// own thread until Stop().
class Sink {
 public:
  // `latency_flow`: the flow whose latency is recorded (-1: none).
  Sink(int fd, int latency_flow);
  ~Sink();
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;

  // Keeps receiving until nothing arrived for `quiet` (datagrams still in
  // flight), then returns what arrived.
  SinkResult Stop(absl::Duration quiet);

 private:
  void Run();

  const int fd_;
  const int latency_flow_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> quiet_ns_{0};
  SinkResult result_;
  std::thread thread_;
};

}  // namespace dctk::mom

#endif  // DCTK_MOM_BENCH_TRAFFIC_H_
