// Per-packet cost of the Bastion enforcement program (BPF_PROG_TEST_RUN, ns/packet as the
// kernel reports it) with 10, 1,000 and 10,000 policies installed, next to a baseline
// program that only returns TC_ACT_OK, all in the same run. Needs root.
//
//   bazel run //bastion/bpf:datapath_benchmark [-- REPEAT]
//
// Each cell is the median of 5 runs of REPEAT (default 200000) repetitions on one frame.
// The drop path runs with the event ring buffer full after its first few thousand events
// (as under a flood), so it measures a failed reserve, not a delivered event. ARP answers
// are not measured: the kernel reruns the program on the rewritten frame (now a reply).
#include <linux/pkt_cls.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "absl/strings/str_format.h"
#include "bastion/bpf/baseline.skel.h"
#include "bastion/bpf/testing/packets.h"
#include "bastion/datapath/bpf_datapath.h"
#include "glog/logging.h"

namespace dctk::bastion {
namespace {

using testing::Frame;

// glog has no CHECK for absl::Status; the benchmark cannot go on after a setup error.
#define BENCH_CHECK_OK(expr)                        \
  do {                                              \
    absl::Status s_ = (expr);                       \
    CHECK(s_.ok()) << #expr << ": " << s_.ToString(); \
  } while (0)
using testing::Mac;

constexpr uint32_t kA = 1, kB = 2;
const uint32_t kIpA = Ipv4(10, 9, 0, 2), kIpB = Ipv4(10, 9, 0, 3), kIpC = Ipv4(10, 9, 0, 4);

// Installs `n` exact-port policies and `n` port-range policies (4 LPM prefixes each)
// between many container pairs; A -> B TCP 80 and UDP 5000-5999 are among them.
void Install(BpfDatapath& dp, int n) {
  BENCH_CHECK_OK(dp.UpsertEndpoint(kIpA, {kA, Mac(0xa), 1}));
  BENCH_CHECK_OK(dp.UpsertEndpoint(kIpB, {kB, Mac(0xb), 1002}));
  BENCH_CHECK_OK(dp.UpsertEndpoint(kIpC, {3, Mac(0xc), 1003}));
  BENCH_CHECK_OK(dp.BindInterface(1, {kA, kIpA, Mac(0xa)}));
  BENCH_CHECK_OK(dp.AddDependency(kA, kB, 0));
  BENCH_CHECK_OK(dp.UpsertPolicy({.src_id = kA, .dst_id = kB, .proto = kTcp, .first_port = 80,
                            .last_port = 80}));
  BENCH_CHECK_OK(dp.UpsertPolicy({.src_id = kA, .dst_id = kB, .proto = kUdp, .first_port = 5000,
                            .last_port = 5999}));
  for (int i = 1; i < n; ++i) {
    uint32_t src = 100 + i / 50, dst = 10000 + i % 50;
    BENCH_CHECK_OK(dp.AddDependency(src, dst, 0));
    BENCH_CHECK_OK(dp.UpsertPolicy({.src_id = src, .dst_id = dst, .proto = kTcp,
                              .first_port = static_cast<uint16_t>(1000 + i),
                              .last_port = static_cast<uint16_t>(1000 + i)}));
    BENCH_CHECK_OK(dp.UpsertPolicy({.src_id = src, .dst_id = dst, .proto = kUdp,
                              .first_port = static_cast<uint16_t>(16 * (i % 4000) + 1),
                              .last_port = static_cast<uint16_t>(16 * (i % 4000) + 8)}));
  }
}

double MedianNs(int fd, const Frame& frame, int repeat, int want_action) {
  std::vector<uint32_t> runs;
  for (int i = 0; i < 5; ++i) {
    auto r = testing::RunProgram(fd, frame, repeat);
    BENCH_CHECK_OK(r.status());
    CHECK_EQ(r->action, want_action) << "benchmark frame took an unexpected path";
    runs.push_back(r->duration_ns);
  }
  std::sort(runs.begin(), runs.end());
  return runs[runs.size() / 2];
}

struct Path {
  const char* name;
  Frame frame;
  int action;
};

int Main(int repeat) {
  if (geteuid() != 0) {
    std::printf("datapath_benchmark: needs root (loads BPF programs); skipped\n");
    return 0;
  }
  std::unique_ptr<baseline, void (*)(baseline*)> base(baseline__open_and_load(),
                                                      baseline__destroy);
  CHECK(base) << "loading the baseline program";
  const MacAddress a = Mac(0xa), b = Mac(0xb);
  std::vector<Path> paths = {
      {"allowed, exact port (hash), forwarded",
       testing::Ipv4Frame({.src_mac = a, .dst_mac = b, .saddr = kIpA, .daddr = kIpB,
                           .proto = kTcp, .dport = 80}),
       TC_ACT_REDIRECT},
      {"allowed, port range (LPM), forwarded",
       testing::Ipv4Frame({.src_mac = a, .dst_mac = b, .saddr = kIpA, .daddr = kIpB,
                           .proto = kUdp, .dport = 5555}),
       TC_ACT_REDIRECT},
      {"denied, wrong port (hash+LPM miss)",
       testing::Ipv4Frame({.src_mac = a, .dst_mac = b, .saddr = kIpA, .daddr = kIpB,
                           .proto = kTcp, .dport = 81}),
       TC_ACT_SHOT},
      {"denied, no dependency",
       testing::Ipv4Frame({.src_mac = a, .dst_mac = b, .saddr = kIpA, .daddr = kIpC,
                           .proto = kTcp, .dport = 80}),
       TC_ACT_SHOT},
  };

  const int sizes[] = {10, 1000, 10000};
  std::vector<std::vector<double>> ns(paths.size());
  std::vector<double> baseline_ns;
  for (int n : sizes) {
    auto dp = BpfDatapath::Create({});
    BENCH_CHECK_OK(dp.status());
    Install(**dp, n);
    for (size_t p = 0; p < paths.size(); ++p) {
      ns[p].push_back(MedianNs((*dp)->from_container_fd(), paths[p].frame, repeat,
                               paths[p].action));
    }
    baseline_ns.push_back(
        MedianNs(bpf_program__fd(base->progs.baseline_pass), paths[0].frame, repeat, TC_ACT_OK));
  }

  std::printf("Bastion tc program, ns/packet (BPF_PROG_TEST_RUN, repeat %d, median of 5)\n",
              repeat);
  std::printf("%-42s %10s %10s %10s %12s\n", "path \\ policies installed", "10", "1000",
              "10000", "10k vs 10");
  std::printf("%-42s %10.0f %10.0f %10.0f %12s\n", "baseline (return TC_ACT_OK)",
              baseline_ns[0], baseline_ns[1], baseline_ns[2], "");
  for (size_t p = 0; p < paths.size(); ++p) {
    std::printf("%-42s %10.0f %10.0f %10.0f %+11.1f%%\n", paths[p].name, ns[p][0], ns[p][1],
                ns[p][2], 100.0 * (ns[p][2] - ns[p][0]) / ns[p][0]);
  }
  return 0;
}

}  // namespace
}  // namespace dctk::bastion

int main(int argc, char** argv) {
  int repeat = argc > 1 ? std::atoi(argv[1]) : 200000;
  if (repeat <= 0) {
    std::fprintf(stderr, "usage: datapath_benchmark [REPEAT>0]\n");
    return 2;
  }
  return dctk::bastion::Main(repeat);
}
