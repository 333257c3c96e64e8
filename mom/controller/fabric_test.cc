// Fabric files: a good file resolves names to nodes; each kind of mistake is
// reported with the file, line and field.
#include "mom/controller/fabric.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::mom {
namespace {

using ::testing::HasSubstr;

constexpr char kSwitches[] = R"(
switches { name: "spine0" control: "127.0.0.1:1" }
switches { name: "spine1" control: "127.0.0.1:2" }
switches { name: "leaf0" control: "127.0.0.1:3" }
switches { name: "leaf1" control: "127.0.0.1:4" }
)";

std::string File(const std::string& rest) {
  return std::string("leaf_spine { leaves: 2 spines: 2 hosts_per_leaf: 2 }\n") + kSwitches + rest;
}

TEST(FabricTest, GoodFileResolvesNames) {
  absl::StatusOr<Fabric> f = ParseFabric(File(R"(
hosts { name: "host0_0" ip: "10.0.0.1" }
hosts { name: "host0_1" ip: "10.0.0.2" }
hosts { name: "host1_0" ip: "10.0.0.3" }
hosts { name: "host1_1" ip: "10.0.0.4" }
groups { group_id: 5 design: "serialized" senders: "host0_0"
         receivers: ["host0_1", "host1_0", "host1_1"] }
)"),
                                         "f.conf");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->control.size(), 4u);
  EXPECT_EQ(f->control.at(*f->topology.FindNode("leaf1")), "127.0.0.1:4");
  EXPECT_EQ(f->host_ips.at(*f->topology.FindNode("host1_0")), 0x0a000003u);
  ASSERT_EQ(f->groups.size(), 1u);
  EXPECT_EQ(f->groups[0].design, Design::kSerialized);
  EXPECT_EQ(f->groups[0].senders, std::vector<int>{*f->topology.FindNode("host0_0")});
  EXPECT_EQ(f->groups[0].receivers.size(), 3u);
}

// The cluster's own file as a section: its nodes give the hosts' IPs (the
// rest from `hosts`), a group takes senders and receivers from its
// multicast group.
constexpr char kCluster[] = R"(
hosts { name: "host1_1" ip: "10.0.0.4" }
cluster {
  nodes { name: "host0_0" address: "10.0.0.1:7000" }
  nodes { name: "host0_1" address: "10.0.0.2:7000" }
  nodes { name: "host1_0" address: "10.0.0.3:7000" }
  multicast_groups { name: "requests" address: "239.1.1.1:7100"
                     members: ["host0_1", "host1_0"] senders: ["host0_0"] }
}
)";

TEST(FabricTest, ClusterSectionGivesHostsAndGroupMembers) {
  absl::StatusOr<Fabric> f = ParseFabric(File(std::string(kCluster) + R"(
groups { group_id: 5 design: "topology-aware" cluster_group: "requests" }
)"),
                                         "f.conf");
  ASSERT_TRUE(f.ok()) << f.status();
  const Topology& t = f->topology;
  EXPECT_EQ(f->host_ips.size(), 4u);
  EXPECT_EQ(f->host_ips.at(*t.FindNode("host1_0")), 0x0a000003u);
  EXPECT_EQ(f->host_ips.at(*t.FindNode("host1_1")), 0x0a000004u);
  ASSERT_EQ(f->groups.size(), 1u);
  EXPECT_EQ(f->groups[0].senders, std::vector<int>{*t.FindNode("host0_0")});
  EXPECT_EQ(f->groups[0].receivers,
            (std::vector<int>{*t.FindNode("host0_1"), *t.FindNode("host1_0")}));
}

TEST(FabricTest, MistakesNameFileLineAndField) {
  struct Case {
    std::string text;
    std::string error;
  };
  const Case cases[] = {
      {"switches { name: \"spine0\" control: \"x:1\" }", "names no topology"},
      {"leaf_spine { leaves: 2 spines: 2 hosts_per_leaf: 2 }\n"
       "switches { name: \"spine0\" control: \"x:1\" }",
       "no control address for switch 'spine1'"},
      {File("groups { group_id: 5 design: \"serialized\" senders: \"h9\" receivers: \"host0_1\" }"),
       "f.conf:7: groups[0].senders[0]: unknown host 'h9'"},
      {File("groups { group_id: 5 design: \"fast\" senders: \"host0_0\" receivers: \"host0_1\" }"),
       "f.conf:7: groups[0].design"},
      {File("hosts { name: \"host0_0\" ip: \"10.0.0.1\" }"), "all or none"},
      {File("hosts { name: \"host0_0\" ip: \"ten\" }"), "bad IPv4 'ten'"},
      {File("switches { name: \"host0_0\" control: \"x:1\" }"), "unknown switch 'host0_0'"},
      {File("switches { name: \"leaf0\" control: \"x:1\" }"), "listed twice"},
      {File("cluster { nodes { name: \"r0\" address: \"10.0.0.9:1\" } }"),
       "f.conf:7: cluster.nodes[0]: unknown host 'r0'"},
      {File("cluster { nodes { name: \"host0_0\" address: \"ten:1\" } }"), "cluster.nodes[0]"},
      {File("hosts { name: \"host0_0\" ip: \"10.0.0.1\" }\n"
            "cluster { nodes { name: \"host0_0\" address: \"10.0.0.1:1\" } }"),
       "host 'host0_0' given twice"},
      {File(std::string(kCluster) +
            "groups { group_id: 5 design: \"serialized\" cluster_group: \"votes\" }"),
       "no multicast group 'votes' in the cluster section"},
      {File(std::string(kCluster) + "groups { group_id: 5 design: \"serialized\" "
                                    "cluster_group: \"requests\" senders: \"host0_0\" }"),
       "not both"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Fabric> f = ParseFabric(c.text, "f.conf");
    ASSERT_FALSE(f.ok()) << c.text;
    EXPECT_THAT(std::string(f.status().message()), HasSubstr(c.error)) << c.text;
  }
}

}  // namespace
}  // namespace dctk::mom
