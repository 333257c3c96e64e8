#include "speculative_paxos/tools/mom_fabric.h"

#include <string>

#include "gtest/gtest.h"

namespace dctk::spaxos {
namespace {

using transport::Address;

constexpr char kCluster[] = R"(
nodes { name: "r0" address: "10.201.0.1:7100" }
nodes { name: "r1" address: "10.201.0.2:7100" }
nodes { name: "r2" address: "10.201.1.1:7100" }
nodes { name: "client0" address: "10.201.0.3:7000" }
nodes { name: "client1" address: "10.201.1.3:7000" }
groups { name: "shard0" f: 1 members: ["r0", "r1", "r2"] }
multicast_groups {
  name: "shard0-mom"
  address: "239.1.30.0:7200"
  members: ["r0", "r1", "r2"]
  senders: ["client0", "client1"]
}
)";

constexpr char kFabric[] = R"(
multicast: "shard0-mom"
group_id: 30
design: "topology-aware-qos"
channels { sender: "client0" address: "239.1.30.1:7200" }
channels { sender: "client1" address: "239.1.30.2:7200" }
)";

absl::StatusOr<MomFabric> Parse(const std::string& fabric) {
  return ParseMomFabric(fabric, "shard.mom", kCluster, "shard.conf");
}

Address A(const char* text) { return *Address::Parse(text); }

TEST(MomFabricTest, ReplicasJoinEveryChannel) {
  absl::StatusOr<MomFabric> f = Parse(kFabric);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->group.group_id, 30u);
  EXPECT_EQ(f->group.design, mom::Design::kTopologyAwareQos);
  EXPECT_EQ(f->group.delivery, mom::Delivery::kIpMulticast);
  EXPECT_EQ(f->group.group_address, A("239.1.30.0:7200"));
  EXPECT_EQ(f->group.members,
            (std::vector<Address>{A("10.201.0.1:7100"), A("10.201.0.2:7100"),
                                  A("10.201.1.1:7100")}));
  ASSERT_EQ(f->group.sender_addresses.size(), 2u);
  std::vector<Address> joined;
  for (const auto& [id, a] : f->group.sender_addresses) joined.push_back(a);
  std::sort(joined.begin(), joined.end());
  EXPECT_EQ(joined, (std::vector<Address>{A("239.1.30.1:7200"), A("239.1.30.2:7200")}));
  EXPECT_EQ(f->nodes.at("client1"), A("10.201.1.3:7000"));
  EXPECT_TRUE(mom::ValidateGroupConfig(f->group).ok());
}

TEST(MomFabricTest, ClientsSendToTheirNodesChannel) {
  absl::StatusOr<MomFabric> f = Parse(kFabric);
  ASSERT_TRUE(f.ok()) << f.status();
  absl::StatusOr<mom::GroupConfig> g = f->ForSender("client1", {7, 8});
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_EQ(g->sender_addresses.size(), 2u);
  EXPECT_EQ(g->sender_addresses.at(7), A("239.1.30.2:7200"));
  EXPECT_EQ(g->sender_addresses.at(8), A("239.1.30.2:7200"));
  EXPECT_EQ(g->group_address, A("239.1.30.0:7200"));
  EXPECT_FALSE(f->ForSender("r0", {7}).ok());  // not a sender
}

TEST(MomFabricTest, SenderWithoutChannelUsesTheGroupAddress) {
  absl::StatusOr<MomFabric> f = Parse(R"(
multicast: "shard0-mom"
group_id: 4
)");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->group.design, mom::Design::kNaive);
  absl::StatusOr<mom::GroupConfig> g = f->ForSender("client0", {7});
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(g->sender_addresses.empty());
}

TEST(MomFabricTest, ReplicatedUnicastBaseline) {
  absl::StatusOr<MomFabric> f = Parse(R"(
multicast: "shard0-mom"
group_id: 5
replicated_unicast: true
)");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->group.delivery, mom::Delivery::kReplicatedUnicast);
  EXPECT_EQ(f->group.members.size(), 3u);
}

TEST(MomFabricTest, ErrorsNameFileLineAndField) {
  struct Case {
    std::string text, want;
  };
  const Case cases[] = {
      {"multicast: \"nope\" group_id: 1", "shard.mom:1: multicast: no multicast group 'nope'"},
      {"multicast: \"shard0-mom\"", "group_id: must be > 0"},
      {"multicast: \"shard0-mom\" group_id: 1\ndesign: \"fancy\"", "shard.mom:2: design:"},
      {"multicast: \"shard0-mom\" group_id: 1\nchannels { sender: \"r0\" address: "
       "\"239.1.1.1:1\" }",
       "shard.mom:2: channels[0].sender: 'r0' is not a sender of multicast group 'shard0-mom'"},
      {"multicast: \"shard0-mom\" group_id: 1\nchannels { sender: \"client0\" address: "
       "\"10.1.1.1:1\" }",
       "channels[0].address: 10.1.1.1:1 is not in 224.0.0.0/4"},
      {"multicast: \"shard0-mom\" group_id: 1\nchannels { sender: \"client0\" address: "
       "\"239.1.1.1:1\" }\nchannels { sender: \"client0\" address: \"239.1.1.2:1\" }",
       "shard.mom:3: channels[1].sender: 'client0' has two channels"},
      {"multicast: \"shard0-mom\" group_id: 1 bogus: 3", "shard.mom:1"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<MomFabric> f = Parse(c.text);
    ASSERT_FALSE(f.ok()) << c.text;
    EXPECT_NE(std::string(f.status().message()).find(c.want), std::string::npos)
        << f.status() << "\nwant: " << c.want;
  }
}

}  // namespace
}  // namespace dctk::spaxos
