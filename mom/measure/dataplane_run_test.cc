// A short real-data-plane measurement (needs root; skipped otherwise): the
// serialized design delivers every message in one order at every receiver,
// and the run accounts for every copy.
#include "mom/measure/dataplane_run.h"

#include <unistd.h>

#include "gtest/gtest.h"

namespace dctk::mom {
namespace {

TEST(DataplaneRunTest, SerializedDesignHasNoReorderingAndCountsEveryCopy) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for namespaces, veths and DPDK af_packet";
  absl::StatusOr<Topology> topo = Topology::LeafSpine(2, 2, 2);
  ASSERT_TRUE(topo.ok());
  absl::StatusOr<std::unique_ptr<Testbed>> bed =
      Testbed::Create(*std::move(topo), {.switch_binary = "mom/switch/mom_switch"});
  ASSERT_TRUE(bed.ok()) << bed.status();
  const std::vector<int> h = (*bed)->topology().hosts();
  DataplaneRunConfig c{.design = Design::kSerialized,
                       .group_id = 9,
                       .senders = {h[0], h[2]},
                       .receivers = {h[1], h[3]},
                       .messages_per_sender = 100,
                       .rate = 2000};
  absl::StatusOr<DataplaneRunResult> r = RunOnDataplane(**bed, c);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->messages_sent, 200u);
  EXPECT_EQ(r->copies_expected, 400u);
  EXPECT_EQ(r->copies_received, 400u);  // nothing loads the network: no loss
  EXPECT_EQ(r->reorder.messages, 200u);
  EXPECT_EQ(r->reorder.reordered, 0u);
  EXPECT_EQ(r->group_seq_gaps, 0u);
  EXPECT_EQ(r->roots, 1);
  EXPECT_GT(r->latency_p50_us, 0);
}

}  // namespace
}  // namespace dctk::mom
