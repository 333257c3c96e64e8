// The MOM switch's forwarding benchmark against a Linux bridge, on the same
// veths in the same run.
//
// One switch and five host namespaces (a Testbed star): host 0 sends, hosts
// 1-3 are the multicast group's members, host 4 sends background traffic.
// First mom_switch (DPDK af_packet ports, busy polling) drives the switch-side
// veth ends; then it is stopped and a Linux bridge (linux_bridge.h) takes the
// same veths. On each:
//   - unshaped ports: throughput of unicast (host 0 -> 1) and of multicast
//     replicated to 3 members, for 64 B and 1042 B frames, the sender
//     blasting (sendmmsg); latency (p50/p99, one way) of a paced flow of
//     64 B frames, unicast and multicast, without background;
//   - host ports shaped to `shaped_mbps` with 256-packet queues per band:
//     latency of the paced multicast flow at member host 1 while host 4
//     sends `background_load` x the port rate of 1042 B frames to host 1,
//     with strict priority on (MOM switch: topology-aware+QoS rules, DSCP 46;
//     bridge: tbf + pfifo_fast, DSCP 46 mapped to band 0) and off (one FIFO
//     band per port).
// Needs root.
//
// Example:
//   absl::StatusOr<std::vector<BenchRow>> rows =
//       RunSwitchBench({.switch_binary = "bazel-bin/mom/switch/mom_switch"});
//   std::cout << FormatBenchTable(*rows);
#ifndef DCTK_MOM_BENCH_SWITCH_BENCH_H_
#define DCTK_MOM_BENCH_SWITCH_BENCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace dctk::mom {

struct SwitchBenchOptions {
  std::string switch_binary;
  absl::Duration phase = absl::Seconds(1);  // per measurement
  double latency_pps = 5000;                // the paced (measured) flow
  double shaped_mbps = 100;
  double background_load = 2;  // background offered / shaped port rate
  bool throughput = true;      // the unshaped part
  bool qos = true;             // the shaped part
};

struct BenchRow {
  std::string fabric;  // "mom_switch" or "linux_bridge"
  std::string test;
  double offered_pps = 0;    // datagrams the sender got out
  double delivered_pps = 0;  // copies received, all receivers
  double delivered_mbps = 0; // of Ethernet frames (no preamble / FCS)
  double loss_pct = 0;       // copies expected but not received
  uint64_t latency_samples = 0;
  double p50_us = 0;
  double p99_us = 0;
  // mom_switch rows: CPU time its process used during the test, and frames it
  // forwarded (before replication) per CPU-second: its rate per core when
  // saturated (loss before the switch), whatever share of a core it got.
  double switch_cpu_seconds = 0;
  double forwarded_per_cpu_second = 0;
  std::string note;
};

absl::StatusOr<std::vector<BenchRow>> RunSwitchBench(const SwitchBenchOptions& options);

// An aligned text table, one line per row.
std::string FormatBenchTable(const std::vector<BenchRow>& rows);

}  // namespace dctk::mom

#endif  // DCTK_MOM_BENCH_SWITCH_BENCH_H_
