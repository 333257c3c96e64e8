// mom_measure's path end to end (needs root; skipped otherwise): a 2x2x2
// testbed of mom_switch processes, a fabric file naming the measured hosts in
// its cluster section, the mom_controller process configuring the switches
// from it, and runs over the routes it installed. The serialized design
// delivers every message in one order at every receiver and accounts for
// every copy; then, as mom_measure does for the next design, the controller
// is replaced by one with another file, whose topology-aware groups (one per
// seed) deliver every copy too. Nothing configures the switches but the
// controller.
#include "mom/measure/dataplane_run.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mom/measure/controlled_fabric.h"
#include "mom/testbed/testbed_suite.h"

namespace dctk::mom {
namespace {

// Probes of a switch starved of CPU by parallel runs arrive late; only a
// dead link should move groups during these runs.
const std::vector<std::string> kControllerFlags = {"--interval_ms=100", "--probe_miss_ms=10000"};

class DataplaneRunTest : public TestbedSuite<> {
 protected:
  static void SetUpTestSuite() { StartTestbed(Topology::LeafSpine(2, 2, 2)); }
  void SetUp() override {
    TestbedSuite::SetUp();
    shape_.set_leaves(2);
    shape_.set_spines(2);
    shape_.set_hosts_per_leaf(2);
  }

  // Writes the fabric file for `groups` and starts mom_controller on it.
  std::unique_ptr<ControlledFabric> Control(const MeasuredGroups& groups) {
    absl::StatusOr<std::string> text = MeasureFabricText(*bed_, shape_, groups);
    EXPECT_TRUE(text.ok()) << text.status();
    if (!text.ok()) return nullptr;
    const char* dir = std::getenv("TEST_TMPDIR");
    const std::string path =
        absl::StrCat(dir ? dir : "/tmp", "/measure_", getpid(), "_", groups.group_ids[0], ".conf");
    std::ofstream(path) << *text;
    absl::StatusOr<std::unique_ptr<ControlledFabric>> f =
        ControlledFabric::Start("mom/controller/mom_controller", path, kControllerFlags);
    EXPECT_TRUE(f.ok()) << f.status();
    return f.ok() ? *std::move(f) : nullptr;
  }

  LeafSpineSpec shape_;
};

TEST_F(DataplaneRunTest, RunsThroughTheControllerAccountForEveryCopy) {
  const std::vector<int>& h = hosts_;
  std::unique_ptr<ControlledFabric> serialized = Control({.design = Design::kSerialized,
                                                          .group_ids = {9},
                                                          .senders = {h[0], h[2]},
                                                          .receivers = {h[1], h[3]}});
  ASSERT_NE(serialized, nullptr);
  ASSERT_EQ(serialized->routes().size(), 1u);
  // The groups measured are the file's, taken from its cluster section.
  EXPECT_EQ(serialized->routes()[0].spec.senders, (std::vector<int>{h[0], h[2]}));
  EXPECT_EQ(serialized->routes()[0].spec.receivers, (std::vector<int>{h[1], h[3]}));
  absl::StatusOr<DataplaneRunResult> r =
      RunOnDataplane(*bed_, serialized->routes()[0], {.messages_per_sender = 100, .rate = 2000});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->messages_sent, 200u);
  EXPECT_EQ(r->copies_expected, 400u);
  EXPECT_EQ(r->copies_received, 400u);  // nothing loads the network: no loss
  EXPECT_EQ(r->reorder.messages, 200u);
  EXPECT_EQ(r->reorder.reordered, 0u);
  EXPECT_EQ(r->group_seq_gaps, 0u);
  EXPECT_EQ(r->roots, 1);
  EXPECT_GT(r->latency_p50_us, 0);
  EXPECT_TRUE(serialized->Reconfigurations().empty());
  serialized.reset();  // the next design's controller takes over

  std::unique_ptr<ControlledFabric> aware = Control({.design = Design::kTopologyAware,
                                                     .group_ids = {10, 11},
                                                     .senders = {h[0], h[2]},
                                                     .receivers = {h[1], h[3]}});
  ASSERT_NE(aware, nullptr);
  ASSERT_EQ(aware->routes().size(), 2u);
  for (uint64_t seed : {1, 2}) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    r = RunOnDataplane(*bed_, aware->routes()[seed - 1],
                       {.messages_per_sender = 50, .rate = 2000, .seed = seed});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->copies_received, 200u);
    EXPECT_EQ(r->group_seq_gaps, 0u);  // not stamped
  }
  EXPECT_TRUE(aware->Reconfigurations().empty());
}

// The cluster's own file as the measured config: its multicast group's
// senders and members are measured, the file becomes the fabric file's
// cluster section with the testbed's IPs (its ports kept), and the host it
// does not name is listed beside it, so the controller has every host's
// address.
TEST_F(DataplaneRunTest, ClusterFileGivesTheMeasuredGroup) {
  constexpr char kCluster[] = R"(
    nodes { name: "host0_0" address: "192.0.2.1:7100" }
    nodes { name: "host0_1" address: "192.0.2.2:7100" }
    nodes { name: "host1_0" address: "192.0.2.3:7100" }
    multicast_groups { name: "requests" address: "239.1.1.1:7100"
                       senders: ["host0_0"] members: ["host0_1", "host1_0"] }
  )";
  absl::StatusOr<config::ClusterConfig> cluster =
      config::ClusterConfig::Parse(kCluster, "cluster.conf");
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  MeasuredGroups groups{.design = Design::kNaive, .group_ids = {12}};
  ASSERT_TRUE(UseClusterGroup(bed_->topology(), *cluster, "requests", &groups).ok());
  EXPECT_EQ(UseClusterGroup(bed_->topology(), *cluster, "replies", &groups).code(),
            absl::StatusCode::kNotFound);
  std::unique_ptr<ControlledFabric> fabric = Control(groups);
  ASSERT_NE(fabric, nullptr);
  const Topology& t = bed_->topology();
  ASSERT_EQ(fabric->routes().size(), 1u);
  EXPECT_EQ(fabric->routes()[0].spec.senders, std::vector<int>{*t.FindNode("host0_0")});
  EXPECT_EQ(fabric->routes()[0].spec.receivers,
            (std::vector<int>{*t.FindNode("host0_1"), *t.FindNode("host1_0")}));
  ASSERT_EQ(fabric->fabric().host_ips.size(), t.hosts().size());
  for (int h : t.hosts()) EXPECT_EQ(fabric->fabric().host_ips.at(h), bed_->ip(h));
  absl::StatusOr<DataplaneRunResult> r =
      RunOnDataplane(*bed_, fabric->routes()[0], {.messages_per_sender = 50, .rate = 2000});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->copies_received, 100u);
}

}  // namespace
}  // namespace dctk::mom
