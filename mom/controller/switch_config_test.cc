#include "mom/controller/switch_config.h"

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

}  // namespace
}  // namespace dctk::mom
