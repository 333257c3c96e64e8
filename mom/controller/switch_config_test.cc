#include "mom/controller/switch_config.h"

#include <map>
#include <set>

#include "gtest/gtest.h"

namespace dctk::mom {
namespace {

TEST(SwitchConfigTest, ChannelAddresses) {
  EXPECT_EQ(ChannelGroupIp(0x0102, 3), 0xef010203u);
}

TEST(SwitchConfigTest, SerializedGroupConfiguresOneSequencer) {
  absl::StatusOr<Topology> t = Topology::FatTree(4);
  ASSERT_TRUE(t.ok());
  const std::vector<int> hosts = t->hosts();
  GroupSpec spec{.group_id = 5,
                 .senders = {hosts[0], hosts[9]},
                 .receivers = {hosts[1], hosts[6], hosts[12]},
                 .design = Design::kSerialized};
  absl::StatusOr<GroupRoutes> r = ComputeRoutes(*t, spec);
  ASSERT_TRUE(r.ok());
  std::vector<SwitchConfig> configs = SwitchConfigs(*t, *r);
  ASSERT_FALSE(configs.empty());
  size_t rules = 0;
  std::set<std::string> stampers;
  for (const SwitchConfig& c : configs) {
    for (const MulticastRule& rule : c.rules()) {
      ++rules;
      EXPECT_EQ(rule.group_ip(), ChannelGroupIp(5, 0));
      EXPECT_TRUE(rule.high_priority());
      EXPECT_GT(rule.out_ports_size(), 0);
      const int node = *t->FindNode(c.switch_name());
      EXPECT_LT(rule.in_port(), t->ports(node).size());
      for (uint32_t p : rule.out_ports()) EXPECT_LT(p, t->ports(node).size());
      if (rule.stamp_group_seq()) stampers.insert(c.switch_name());
    }
  }
  EXPECT_EQ(rules, r->rules.size());
  EXPECT_EQ(stampers, std::set<std::string>{t->node(r->sequencer).name});
}

TEST(SwitchConfigTest, UnicastRoutesReachEveryHostOnShortestPaths) {
  absl::StatusOr<Topology> t = Topology::FatTree(4);
  ASSERT_TRUE(t.ok());
  auto ip = [](int host) { return 0x0a000000u + static_cast<uint32_t>(host); };
  std::map<int, SwitchConfig> by_node;
  for (SwitchConfig& c : UnicastConfigs(*t, ip)) by_node[*t->FindNode(c.switch_name())] = c;
  for (int src : t->hosts()) {
    const std::vector<int> dist = t->Distances(src);
    for (int dst : t->hosts()) {
      if (src == dst) continue;
      int node = t->ports(src)[0].neighbor, hops = 1;
      while (!t->is_host(node) && hops <= 6) {
        int port = -1;
        for (const UnicastRoute& r : by_node[node].unicast_routes()) {
          if (r.prefix() == ip(dst)) port = static_cast<int>(r.out_port());
        }
        ASSERT_GE(port, 0) << t->node(node).name << " has no route to " << t->node(dst).name;
        node = t->ports(node)[port].neighbor;
        ++hops;
      }
      EXPECT_EQ(node, dst);
      EXPECT_EQ(hops, dist[dst]) << t->node(src).name << " -> " << t->node(dst).name;
    }
  }
}

TEST(SwitchConfigTest, SendersUseTheirChannelAddress) {
  absl::StatusOr<Topology> t = Topology::LeafSpine(2, 2, 3);
  ASSERT_TRUE(t.ok());
  const std::vector<int> h = t->hosts();
  absl::StatusOr<GroupRoutes> r = ComputeRoutes(
      *t, GroupSpec{.group_id = 9, .senders = {h[0], h[3]}, .receivers = {h[1], h[4]},
                    .design = Design::kNaive});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(ChannelIps(*r), (std::vector<uint32_t>{ChannelGroupIp(9, 0), ChannelGroupIp(9, 1)}));
  EXPECT_EQ(SenderChannelIp(*r, 1), ChannelGroupIp(9, 1));
}

}  // namespace
}  // namespace dctk::mom
