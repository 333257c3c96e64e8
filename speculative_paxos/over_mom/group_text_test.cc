#include "speculative_paxos/over_mom/group_text.h"

#include "gtest/gtest.h"

namespace dctk::spaxos {
namespace {

TEST(GroupTextTest, RoundTripsAFabricGroup) {
  mom::GroupConfig g{.group_id = 31,
                     .group_address = *transport::Address::Parse("239.0.31.0:7200"),
                     .members = {*transport::Address::Parse("10.201.0.2:7100")},
                     .delivery = mom::Delivery::kIpMulticast,
                     .design = mom::Design::kTopologyAwareQos};
  g.sender_addresses[1001] = *transport::Address::Parse("239.0.31.1:7200");
  g.sender_addresses[2001] = *transport::Address::Parse("239.0.31.0:7200");
  const std::string text = GroupToText(g);
  EXPECT_EQ(text,
            "id=31 design=topology-aware-qos delivery=multicast group=239.0.31.0:7200 "
            "senders=1001@239.0.31.1:7200,2001@239.0.31.0:7200 members=10.201.0.2:7100");
  absl::StatusOr<mom::GroupConfig> back = GroupFromText(text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(GroupToText(*back), text);
  EXPECT_EQ(back->sender_addresses.at(1001), g.sender_addresses.at(1001));
  EXPECT_EQ(back->design, mom::Design::kTopologyAwareQos);
}

TEST(GroupTextTest, RoundTripsReplicatedUnicast) {
  mom::GroupConfig g{.group_id = 2,
                     .members = {*transport::Address::Parse("10.201.0.2:7100"),
                                 *transport::Address::Parse("10.201.0.3:7100")},
                     .delivery = mom::Delivery::kReplicatedUnicast};
  absl::StatusOr<mom::GroupConfig> back = GroupFromText(GroupToText(g));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->delivery, mom::Delivery::kReplicatedUnicast);
  EXPECT_EQ(back->members, g.members);
}

TEST(GroupTextTest, ErrorsNameTheField) {
  absl::StatusOr<mom::GroupConfig> g = GroupFromText("id=1 design=fastest delivery=multicast");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("design=fastest"), std::string::npos) << g.status();
  g = GroupFromText("id=1 colour=blue");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("colour=blue"), std::string::npos) << g.status();
  // Replicated unicast without members does not validate.
  EXPECT_FALSE(GroupFromText("id=1 delivery=unicast").ok());
}

}  // namespace
}  // namespace dctk::spaxos
