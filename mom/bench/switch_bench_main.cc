// switch_bench: the MOM switch (mom_switch, DPDK af_packet) against a Linux
// bridge on the same veths, in one run (see switch_bench.h). Needs root.
//
//   switch_bench --switch_binary=bazel-bin/mom/switch/mom_switch [--phase_ms=1000]
//                [--latency_pps=5000] [--shaped_mbps=100] [--background_load=2]
//
// Prints one line per fabric and test: datagrams sent/s, copies received/s,
// Mbit/s of frames, loss, one-way latency p50/p99 of paced flows.
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "mom/bench/switch_bench.h"

ABSL_FLAG(std::string, switch_binary, "mom/switch/mom_switch", "path of mom_switch");
ABSL_FLAG(int, phase_ms, 1000, "duration of each measurement");
ABSL_FLAG(double, latency_pps, 5000, "rate of the paced flow whose latency is measured");
ABSL_FLAG(double, shaped_mbps, 100, "line rate of the shaped host ports (QoS tests)");
ABSL_FLAG(double, background_load, 2, "background offered to the shaped port / its rate");
ABSL_FLAG(bool, throughput, true, "run the unshaped throughput and latency tests");
ABSL_FLAG(bool, qos, true, "run the shaped tests with background traffic");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<std::vector<dctk::mom::BenchRow>> rows = dctk::mom::RunSwitchBench({
      .switch_binary = absl::GetFlag(FLAGS_switch_binary),
      .phase = absl::Milliseconds(absl::GetFlag(FLAGS_phase_ms)),
      .latency_pps = absl::GetFlag(FLAGS_latency_pps),
      .shaped_mbps = absl::GetFlag(FLAGS_shaped_mbps),
      .background_load = absl::GetFlag(FLAGS_background_load),
      .throughput = absl::GetFlag(FLAGS_throughput),
      .qos = absl::GetFlag(FLAGS_qos),
  });
  if (!rows.ok()) {
    std::cerr << "switch_bench: " << rows.status() << "\n";
    return 1;
  }
  std::cout << dctk::mom::FormatBenchTable(*rows);
  return 0;
}
