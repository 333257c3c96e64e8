#include "mom/controller/routes.h"

#include <set>

#include "gtest/gtest.h"

namespace dctk::mom {
namespace {

class RoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<Topology> t = Topology::FatTree(4);
    ASSERT_TRUE(t.ok());
    topo_ = *std::move(t);
  }
  int N(const std::string& name) { return *topo_.FindNode(name); }
  // Receivers in three pods; senders near some receivers and far from others.
  GroupSpec Spec(Design d) {
    return GroupSpec{
        .group_id = 3,
        .senders = {N("host0_0_0"), N("host1_1_1"), N("host2_0_1"), N("host3_1_0")},
        .receivers = {N("host0_0_1"), N("host0_1_0"), N("host2_0_0"), N("host3_1_1"),
                      N("host1_1_1")},
        .design = d};
  }
  std::set<size_t> PathLengths(const GroupRoutes& r, int sender_index) {
    std::set<size_t> lengths;
    for (int recv : r.spec.receivers) {
      if (recv == r.senders[sender_index].sender && r.spec.design == Design::kNaive) continue;
      absl::StatusOr<std::vector<int>> p = TracePath(topo_, r, sender_index, recv);
      EXPECT_TRUE(p.ok()) << p.status();
      if (!p.ok()) continue;
      // Loop-free on links: no directed link is used twice by one copy.
      std::set<std::pair<int, int>> hops;
      for (size_t i = 1; i < p->size(); ++i) {
        EXPECT_TRUE(hops.insert({(*p)[i - 1], (*p)[i]}).second) << "link reused";
      }
      lengths.insert(p->size() - 1);
    }
    return lengths;
  }

  Topology topo_;
};

TEST_F(RoutesTest, EveryDesignGivesVerifiedLoopFreeRoutes) {
  for (Design d : kAllDesigns) {
    absl::StatusOr<GroupRoutes> r = ComputeRoutes(topo_, Spec(d));
    ASSERT_TRUE(r.ok()) << DesignName(d) << ": " << r.status();
    EXPECT_TRUE(VerifyRoutes(topo_, *r).ok()) << DesignName(d) << ": " << VerifyRoutes(topo_, *r);
    EXPECT_EQ(r->high_priority, HighPriority(d));
    // Down trees are trees: following parents from any node reaches the source.
    for (const Channel& ch : r->channels) {
      for (int v = 0; v < topo_.num_nodes(); ++v) {
        int steps = 0;
        for (int u = v; ch.parent[u] >= 0; u = ch.parent[u]) ASSERT_LT(++steps, 10);
      }
    }
  }
}

TEST_F(RoutesTest, NaivePathsHaveDifferentLengths) {
  absl::StatusOr<GroupRoutes> r = ComputeRoutes(topo_, Spec(Design::kNaive));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->channels.size(), 4u);  // one per sender
  EXPECT_EQ(PathLengths(*r, 0), (std::set<size_t>{2, 4, 6}));
}

TEST_F(RoutesTest, TopologyAwarePathsHaveEqualLengthThroughACore) {
  for (Design d : {Design::kTopologyAware, Design::kTopologyAwareQos, Design::kSerialized}) {
    absl::StatusOr<GroupRoutes> r = ComputeRoutes(topo_, Spec(d));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->eligible_roots.size(), 4u);  // all four cores
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(PathLengths(*r, i), (std::set<size_t>{6})) << DesignName(d) << " sender " << i;
      EXPECT_EQ(topo_.node(r->senders[i].up_path.back()).tier, 3);
    }
  }
}

TEST_F(RoutesTest, SerializedUsesOneRootThatStamps) {
  absl::StatusOr<GroupRoutes> r = ComputeRoutes(topo_, Spec(Design::kSerialized));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->channels.size(), 1u);
  EXPECT_EQ(r->sequencer, r->channels[0].source);
  int stamping = 0;
  for (const ForwardingRule& rule : r->rules) {
    if (rule.stamp) {
      ++stamping;
      EXPECT_EQ(rule.node, r->sequencer);
    }
  }
  EXPECT_GT(stamping, 0);
  for (const SenderRoute& s : r->senders) EXPECT_EQ(s.up_path.back(), r->sequencer);
}

TEST_F(RoutesTest, TopologyAwareSpreadsSendersOverRoots) {
  GroupSpec spec = Spec(Design::kTopologyAware);
  spec.senders = topo_.hosts();
  absl::StatusOr<GroupRoutes> r = ComputeRoutes(topo_, spec);
  ASSERT_TRUE(r.ok());
  EXPECT_GT(r->channels.size(), 1u);
  EXPECT_TRUE(VerifyRoutes(topo_, *r).ok()) << VerifyRoutes(topo_, *r);
}

TEST_F(RoutesTest, RootIsTheLowestEquidistantSwitch) {
  GroupSpec spec = Spec(Design::kTopologyAware);
  spec.receivers = {N("host1_0_0"), N("host1_1_0")};  // one pod: an aggregation switch
  absl::StatusOr<GroupRoutes> r = ComputeRoutes(topo_, spec);
  ASSERT_TRUE(r.ok());
  for (int root : r->eligible_roots) {
    EXPECT_EQ(topo_.node(root).tier, 2);
    EXPECT_EQ(topo_.node(root).pod, 1);
  }
  EXPECT_TRUE(VerifyRoutes(topo_, *r).ok()) << VerifyRoutes(topo_, *r);
  spec.receivers = {N("host2_1_0"), N("host2_1_1")};  // one edge switch
  r = ComputeRoutes(topo_, spec);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->eligible_roots.size(), 1u);
  EXPECT_EQ(topo_.node(r->eligible_roots[0]).name, "edge2_1");
  EXPECT_TRUE(VerifyRoutes(topo_, *r).ok()) << VerifyRoutes(topo_, *r);
}

TEST_F(RoutesTest, FailedRootIsAvoided) {
  absl::StatusOr<GroupRoutes> before = ComputeRoutes(topo_, Spec(Design::kSerialized));
  ASSERT_TRUE(before.ok());
  const int root = before->sequencer;
  topo_.FailNode(root);
  absl::StatusOr<GroupRoutes> after = ComputeRoutes(topo_, Spec(Design::kSerialized));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_NE(after->sequencer, root);
  EXPECT_EQ(after->eligible_roots.size(), 3u);
  EXPECT_TRUE(VerifyRoutes(topo_, *after).ok()) << VerifyRoutes(topo_, *after);
}

TEST_F(RoutesTest, RootThatLostItsOnlyPathToAReceiverIsBlacklisted) {
  // core1 reaches pod 2 only through agg2_0; cut that link and core1 could
  // reach host2_0_0 only by a detour: it must not be a root.
  const int core1 = N("core1");
  topo_.FailLink(topo_.ports(core1)[topo_.PortTo(core1, N("agg2_0"))].link);
  const std::vector<int> roots = EligibleRoots(topo_, Spec(Design::kNaive).receivers);
  EXPECT_EQ(roots.size(), 3u);
  for (int r : roots) EXPECT_NE(r, core1);
  for (Design d : {Design::kTopologyAware, Design::kSerialized}) {
    GroupSpec spec = Spec(d);
    spec.senders = topo_.hosts();
    absl::StatusOr<GroupRoutes> r = ComputeRoutes(topo_, spec);
    ASSERT_TRUE(r.ok());
    for (const Channel& ch : r->channels) EXPECT_NE(ch.source, core1);
    EXPECT_TRUE(VerifyRoutes(topo_, *r).ok()) << VerifyRoutes(topo_, *r);
  }
}

TEST_F(RoutesTest, ExplicitBlacklistAndNoEligibleRoot) {
  RootPolicy policy;
  for (int c = 0; c < 3; ++c) policy.blacklist.insert(N("core" + std::to_string(c)));
  absl::StatusOr<GroupRoutes> r = ComputeRoutes(topo_, Spec(Design::kTopologyAware), policy);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->eligible_roots, std::vector<int>{N("core3")});
  policy.blacklist.insert(N("core3"));
  r = ComputeRoutes(topo_, Spec(Design::kTopologyAware), policy);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("no eligible root"), std::string::npos);
}

TEST_F(RoutesTest, FailedLinkOnNaiveTreeIsRoutedAround) {
  GroupSpec spec = Spec(Design::kNaive);
  absl::StatusOr<GroupRoutes> r = ComputeRoutes(topo_, spec);
  ASSERT_TRUE(r.ok());
  // Fail one switch-to-switch link the first sender's tree uses.
  const Channel& ch = r->channels[0];
  for (int v = 0; v < topo_.num_nodes(); ++v) {
    const int p = ch.parent[v];
    if (p >= 0 && !topo_.is_host(p) && !topo_.is_host(v)) {
      topo_.FailLink(topo_.ports(v)[topo_.PortTo(v, p)].link);
      break;
    }
  }
  EXPECT_FALSE(VerifyRoutes(topo_, *r).ok());  // old routes now use a failed link
  r = ComputeRoutes(topo_, spec);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(VerifyRoutes(topo_, *r).ok()) << VerifyRoutes(topo_, *r);
}

TEST_F(RoutesTest, LeafSpineRootsAreSpines) {
  absl::StatusOr<Topology> t = Topology::LeafSpine(4, 3, 2);
  ASSERT_TRUE(t.ok());
  const std::vector<int> hosts = t->hosts();
  GroupSpec spec{.group_id = 1,
                 .senders = {hosts[0], hosts[3]},
                 .receivers = {hosts[1], hosts[2], hosts[5], hosts[7]},
                 .design = Design::kTopologyAwareQos};
  absl::StatusOr<GroupRoutes> r = ComputeRoutes(*t, spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->eligible_roots.size(), 3u);
  EXPECT_TRUE(VerifyRoutes(*t, *r).ok()) << VerifyRoutes(*t, *r);
}

TEST_F(RoutesTest, RejectsBadSpecs) {
  GroupSpec spec = Spec(Design::kNaive);
  spec.receivers.push_back(N("core0"));
  EXPECT_FALSE(ComputeRoutes(topo_, spec).ok());
  spec.receivers.clear();
  EXPECT_FALSE(ComputeRoutes(topo_, spec).ok());
}

}  // namespace
}  // namespace dctk::mom
