// Speculative Paxos over every MOM design, and over replicated unicast, on
// the real software data plane: 2 leaves x 2 spines of mom_switch processes,
// 3 replica processes and 2 client processes (2 clients each) in host
// namespaces. Each client checks PUT / GET pairs on its own key. Needs root;
// skipped otherwise.
//
//   leaf0: host0_0 (r0) host0_1 (r1) host0_2 (clients)
//   leaf1: host1_0 (r2) host1_1 (clients) host1_2
#include <stdlib.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mom/controller/topology.h"
#include "mom/design.h"
#include "mom/testbed/testbed.h"
#include "speculative_paxos/over_mom/fabric_run.h"

namespace dctk::spaxos {
namespace {

constexpr int kClientsPerHost = 2;
constexpr int kVerifyOps = 20;  // 10 PUT / GET pairs per client

class OverMomSmokeTest : public ::testing::TestWithParam<absl::optional<mom::Design>> {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0) return;
    absl::StatusOr<mom::Topology> topo = mom::Topology::LeafSpine(2, 2, 3);
    ASSERT_TRUE(topo.ok());
    absl::StatusOr<std::unique_ptr<mom::Testbed>> bed =
        mom::Testbed::Create(*std::move(topo), {.switch_binary = "mom/switch/mom_switch"});
    ASSERT_TRUE(bed.ok()) << bed.status();
    bed_ = bed->release();
  }
  static void TearDownTestSuite() {
    delete bed_;
    bed_ = nullptr;
  }
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for namespaces, veths and DPDK af_packet";
    ASSERT_NE(bed_, nullptr);
  }

  static mom::Testbed* bed_;
};

mom::Testbed* OverMomSmokeTest::bed_ = nullptr;

TEST_P(OverMomSmokeTest, EveryClientCompletesWithCorrectReplies) {
  char* node = realpath("speculative_paxos/over_mom/spaxos_mom_node", nullptr);
  ASSERT_NE(node, nullptr);
  const std::string node_binary(node);
  free(node);
  const std::vector<int> h = bed_->topology().hosts();
  const char* tmp = getenv("TEST_TMPDIR");
  FabricRunConfig c{.design = GetParam(),
                    .group_id = 70 + (GetParam() ? static_cast<uint32_t>(*GetParam()) : 9),
                    .replica_hosts = {h[0], h[1], h[3]},
                    .client_hosts = {h[2], h[4]},
                    .clients_per_host = kClientsPerHost,
                    .verify_ops = kVerifyOps,
                    .node_binary = node_binary,
                    .work_dir = tmp != nullptr ? tmp : "/tmp"};
  absl::StatusOr<FabricRunResult> r = RunSpaxosOverFabric(*bed_, c);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->clients, 2 * kClientsPerHost);
  EXPECT_EQ(r->completed, static_cast<uint64_t>(r->clients * kVerifyOps));
  EXPECT_EQ(r->wrong, 0u);
  EXPECT_EQ(r->unfinished, 0);
  EXPECT_EQ(r->fast + r->slow, r->completed);
  // Every replica recorded the requests' MOM headers.
  EXPECT_GE(r->reorder.messages + r->reorder.incomplete, r->completed);
  // One sequencer: every replica sees the same order.
  if (GetParam() == mom::Design::kSerialized) EXPECT_EQ(r->reorder.reordered, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Designs, OverMomSmokeTest,
    ::testing::Values(absl::nullopt, absl::optional<mom::Design>(mom::Design::kNaive),
                      absl::optional<mom::Design>(mom::Design::kTopologyAware),
                      absl::optional<mom::Design>(mom::Design::kTopologyAwareQos),
                      absl::optional<mom::Design>(mom::Design::kSerialized)),
    [](const ::testing::TestParamInfo<absl::optional<mom::Design>>& p) {
      std::string name = p.param ? std::string(mom::DesignName(*p.param)) : "unicast";
      for (char& ch : name) {
        if (ch == '-') ch = '_';
      }
      return name;
    });

}  // namespace
}  // namespace dctk::spaxos
