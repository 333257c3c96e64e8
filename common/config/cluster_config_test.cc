#include "common/config/cluster_config.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using transport::Address;

constexpr char kTestdata[] = "common/config/testdata";

TEST(ClusterConfigTest, LoadsGoodConfig) {
  const std::string path = std::string(kTestdata) + "/cluster.conf";
  absl::StatusOr<ClusterConfig> c = ClusterConfig::Load(path);
  ASSERT_TRUE(c.ok()) << c.status();

  EXPECT_EQ(c->nodes().size(), 6u);
  const ClusterConfig::Node* r1 = c->FindNode("r1");
  ASSERT_NE(r1, nullptr);
  EXPECT_EQ(r1->address, *Address::Parse("10.0.0.2:7000"));
  EXPECT_EQ(c->FindNode("r9"), nullptr);
  EXPECT_EQ(c->FindNodeByAddress(*Address::Parse("10.0.1.2:7100"))->name, "m1");

  const ClusterConfig::Group* shard = c->FindGroup("shard0");
  ASSERT_NE(shard, nullptr);
  EXPECT_EQ(shard->f, 1);
  EXPECT_EQ(shard->replication, ReplicaGroup::CONSENSUS);
  EXPECT_THAT(shard->members, ElementsAre("r0", "r1", "r2"));
  EXPECT_THAT(shard->addresses,
              ElementsAre(*Address::Parse("10.0.0.1:7000"), *Address::Parse("10.0.0.2:7000"),
                          *Address::Parse("10.0.0.3:7000")));
  const ClusterConfig::Group* farm = c->FindGroup("farm");
  ASSERT_NE(farm, nullptr);
  EXPECT_EQ(farm->replication, ReplicaGroup::PRIMARY_BACKUP);
  EXPECT_THAT(farm->members, ElementsAre("m0", "m1"));
  EXPECT_EQ(c->FindGroup("shard0-ordered"), nullptr);

  const ClusterConfig::Multicast* m = c->FindMulticastGroup("shard0-ordered");
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(m->address.is_multicast());
  EXPECT_EQ(m->address.ToString(), "239.1.2.3:7500");
  EXPECT_THAT(m->senders, ElementsAre("client0"));
  EXPECT_EQ(m->dscp, 46);

  // Given timeouts, and the schema's defaults for the rest.
  EXPECT_EQ(c->request_timeout(), absl::Milliseconds(50));
  EXPECT_EQ(c->view_change_timeout(), absl::Milliseconds(500));
  EXPECT_EQ(c->heartbeat_interval(), absl::Milliseconds(100));
  EXPECT_EQ(c->lease(), absl::Milliseconds(10));
}

TEST(ClusterConfigTest, EmptyConfigIsValid) {
  absl::StatusOr<ClusterConfig> c = ClusterConfig::Parse("", "empty.conf");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->nodes().empty());
}

TEST(ClusterConfigTest, ReportsEveryProblemNotJustTheFirst) {
  absl::StatusOr<ClusterConfig> c = ClusterConfig::Parse(
      "nodes { name: \"a\" address: \"1.2.3.4\" }\n"
      "groups { name: \"g\" f: 0 members: \"zz\" }\n"
      "timeouts { request_ms: 0 }\n",
      "x.conf");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("x.conf:1: nodes[0].address: address '1.2.3.4' has no ':port'"));
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("x.conf:2: groups[0].members[0]: unknown node 'zz'"));
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("x.conf:3: timeouts.request_ms: timeout is 0 ms"));
}

TEST(ClusterConfigTest, NodeWithBadAddressIsNotAlsoAnUnknownMember) {
  absl::StatusOr<ClusterConfig> c = ClusterConfig::Parse(
      "nodes { name: \"a\" address: \"1.2.3.4:99999\" }\n"
      "groups { name: \"g\" f: 0 members: \"a\" }\n",
      "x.conf");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("x.conf:1: nodes[0].address"));
  EXPECT_THAT(std::string(c.status().message()), ::testing::Not(HasSubstr("unknown node")));
}

// Each file in testdata/bad/ starts with "# error: <text>"; loading it must
// fail with a message containing "<path><text>", i.e. naming the file, the
// line and (for semantic errors) the field path.
TEST(ClusterConfigTest, BadConfigsNameFileLineAndField) {
  int cases = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(kTestdata) + "/bad")) {
    const std::string path = entry.path().string();
    SCOPED_TRACE(path);
    std::ifstream in(path);
    std::string first;
    std::getline(in, first);
    absl::string_view expected = first;
    ASSERT_TRUE(absl::ConsumePrefix(&expected, "# error: ")) << "first line: " << first;

    absl::StatusOr<ClusterConfig> c = ClusterConfig::Load(path);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(c.status().message()), HasSubstr(path + std::string(expected)));
    ++cases;
  }
  EXPECT_EQ(cases, 15);
}

}  // namespace
}  // namespace dctk::config
