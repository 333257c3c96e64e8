// A short run of the switch benchmark: both fabrics deliver every kind of
// traffic, and the paced flows give latency samples. Speed is not asserted
// (it belongs to the benchmark's numbers), nor delivery through one FIFO
// under 2x overload: a tail-dropping queue that background keeps full may
// lose every copy of a short phase (seen with a switch starved of CPU on a
// loaded machine). Needs root; skipped otherwise.
#include "mom/bench/switch_bench.h"

#include <unistd.h>

#include "gtest/gtest.h"

namespace dctk::mom {
namespace {

TEST(SwitchBenchTest, BothFabricsForwardEveryTest) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for namespaces, veths, DPDK and a bridge";
  absl::StatusOr<std::vector<BenchRow>> rows =
      RunSwitchBench({.switch_binary = "mom/switch/mom_switch",
                      .phase = absl::Milliseconds(200),
                      .latency_pps = 1000});
  ASSERT_TRUE(rows.ok()) << rows.status();
  std::cout << FormatBenchTable(*rows);
  int switch_rows = 0, bridge_rows = 0;
  for (const BenchRow& r : *rows) {
    SCOPED_TRACE(r.fabric + " " + r.test);
    (r.fabric == "mom_switch" ? switch_rows : bridge_rows)++;
    EXPECT_GT(r.offered_pps, 0);
    if (r.test.find("one FIFO") != std::string::npos) continue;
    EXPECT_GT(r.delivered_pps, 0);
    if (r.test.find("paced") != std::string::npos || r.test.find("Mb/s") != std::string::npos) {
      EXPECT_GT(r.latency_samples, 0u);
    }
  }
  EXPECT_EQ(switch_rows, 9);
  EXPECT_EQ(bridge_rows, 9);
}

}  // namespace
}  // namespace dctk::mom
