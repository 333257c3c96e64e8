#include "mom/controller/topology.h"

#include <algorithm>

#include "gtest/gtest.h"

namespace dctk::mom {
namespace {

TEST(TopologyTest, FatTreeShape) {
  for (int k : {2, 4, 8, 16}) {
    absl::StatusOr<Topology> t = Topology::FatTree(k);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(static_cast<int>(t->hosts().size()), k * k * k / 4) << k;
    EXPECT_EQ(static_cast<int>(t->switches().size()), 5 * k * k / 4) << k;
    // Every switch has k ports; the core has no uplinks.
    for (int sw : t->switches()) EXPECT_EQ(static_cast<int>(t->ports(sw).size()), k);
  }
}

TEST(TopologyTest, FatTreeDistances) {
  absl::StatusOr<Topology> t = Topology::FatTree(4);
  ASSERT_TRUE(t.ok());
  const int h = *t->FindNode("host0_0_0");
  const std::vector<int> d = t->Distances(h);
  EXPECT_EQ(d[*t->FindNode("host0_0_1")], 2);  // same edge
  EXPECT_EQ(d[*t->FindNode("host0_1_0")], 4);  // same pod
  EXPECT_EQ(d[*t->FindNode("host3_1_1")], 6);  // other pod
  for (int c = 0; c < 4; ++c) {
    const std::vector<int> dc = t->Distances(*t->FindNode("core" + std::to_string(c)));
    for (int host : t->hosts()) EXPECT_EQ(dc[host], 3);
  }
}

TEST(TopologyTest, HostsDoNotRelay) {
  Topology t;
  const int a = t.AddNode(NodeKind::kSwitch, "a", 1);
  const int h = t.AddNode(NodeKind::kHost, "h", 0);
  const int b = t.AddNode(NodeKind::kSwitch, "b", 1);
  t.AddLink(a, h);
  t.AddLink(h, b);
  EXPECT_EQ(t.Distances(a)[b], -1);
  EXPECT_EQ(t.Distances(h)[b], 1);
}

TEST(TopologyTest, FailuresChangeDistances) {
  absl::StatusOr<Topology> t = Topology::FatTree(4);
  ASSERT_TRUE(t.ok());
  const int core0 = *t->FindNode("core0");
  const int agg1 = *t->FindNode("agg1_0");
  const int host = *t->FindNode("host1_0_0");
  EXPECT_EQ(t->Distances(core0)[host], 3);
  t->FailLink(t->ports(core0)[t->PortTo(core0, agg1)].link);
  EXPECT_GT(t->Distances(core0)[host], 3);
  EXPECT_FALSE(t->Usable(core0, agg1));
  t->RepairAll();
  EXPECT_EQ(t->Distances(core0)[host], 3);
  t->FailNode(core0);
  EXPECT_EQ(t->Distances(core0)[host], -1);
}

TEST(TopologyTest, LeafSpineAndErrors) {
  absl::StatusOr<Topology> t = Topology::LeafSpine(4, 2, 3);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->hosts().size(), 12u);
  EXPECT_EQ(t->switches().size(), 6u);
  EXPECT_FALSE(Topology::FatTree(3).ok());
  EXPECT_FALSE(Topology::LeafSpine(0, 1, 1).ok());
  EXPECT_FALSE(t->FindNode("nope").ok());
}

}  // namespace
}  // namespace dctk::mom
