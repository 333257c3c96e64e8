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
  };
  for (const Case& c : cases) {
    absl::StatusOr<Fabric> f = ParseFabric(c.text, "f.conf");
    ASSERT_FALSE(f.ok()) << c.text;
    EXPECT_THAT(std::string(f.status().message()), HasSubstr(c.error)) << c.text;
  }
}

}  // namespace
}  // namespace dctk::mom
