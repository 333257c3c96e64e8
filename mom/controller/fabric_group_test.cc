// FabricGroupConfig on a k=4 fat tree: naive gives every sender its own
// channel, topology-aware senders share their root's; ids must match senders.
#include "mom/controller/fabric_group.h"

#include <set>

#include "gtest/gtest.h"
#include "mom/controller/switch_config.h"

namespace dctk::mom {
namespace {

GroupRoutes Routes(Design design) {
  Topology t = *Topology::FatTree(4);
  const std::vector<int> h = t.hosts();
  absl::StatusOr<GroupRoutes> r = ComputeRoutes(
      t, GroupSpec{.group_id = 12, .senders = {h[0], h[5], h[10]},
                   .receivers = {h[1], h[6], h[11], h[15]}, .design = design});
  EXPECT_TRUE(r.ok()) << r.status();
  return *r;
}

TEST(FabricGroupTest, EachSenderSendsToItsChannel) {
  for (Design design : {Design::kNaive, Design::kTopologyAware, Design::kSerialized}) {
    SCOPED_TRACE(DesignName(design));
    const GroupRoutes r = Routes(design);
    absl::StatusOr<GroupConfig> g = FabricGroupConfig(r, 7000, {101, 102, 103});
    ASSERT_TRUE(g.ok()) << g.status();
    EXPECT_EQ(g->group_id, 12u);
    EXPECT_EQ(g->design, design);
    EXPECT_EQ(g->group_address, transport::Address(ChannelGroupIp(12, 0), 7000));
    std::set<uint32_t> channels;
    for (int i = 0; i < 3; ++i) {
      const transport::Address a = g->sender_addresses.at(101 + i);
      EXPECT_EQ(a, transport::Address(SenderChannelIp(r, i), 7000));
      channels.insert(a.ip());
    }
    EXPECT_EQ(channels.size(), r.channels.size());
    if (design == Design::kNaive) EXPECT_EQ(channels.size(), 3u);
    if (design == Design::kSerialized) EXPECT_EQ(channels.size(), 1u);
  }
}

TEST(FabricGroupTest, SenderIdsMustMatchSenders) {
  const GroupRoutes r = Routes(Design::kNaive);
  EXPECT_FALSE(FabricGroupConfig(r, 7000, {1, 2}).ok());
  EXPECT_FALSE(FabricGroupConfig(r, 7000, {1, 2, 1}).ok());
}

}  // namespace
}  // namespace dctk::mom
