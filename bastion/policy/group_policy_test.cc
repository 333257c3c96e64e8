// Multicast groups in the policy: parsing (and file:line errors), compiling (group
// entries with their members, sender -> group dependencies, the member limit), and
// keeping them right when members come and go (container slices, policy updates, apply).
#include <string>
#include <vector>

#include "bastion/datapath/testing/fake_datapath.h"
#include "bastion/policy/apply.h"
#include "bastion/policy/compiler.h"
#include "bastion/policy/incremental.h"
#include "bastion/policy/policy.h"
#include "bastion/policy/test_container.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::bastion {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kPolicy[] = R"(version: 1
groups:
  - name: cm
    address: 239.7.0.1
    port: 7000
    members: {labels: {role: cm}}
  - name: raw
    address: 239.7.0.2
    port: 7001
    sequenced: false
    members: {names: [cm-1]}
services:
  - name: cm
    select: {labels: {role: cm}}
    depends_on:
      - group: cm
  - name: client
    select: {names: ["client*"]}
    depends_on:
      - group: cm
      - service: cm
        ports: [udp/7100]
)";

Policy Parse(const std::string& text) {
  absl::StatusOr<Policy> p = ParsePolicy(text, "g.yaml");
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : Policy{};
}

std::vector<ContainerInfo> Cluster() {
  return {TestContainer(1, "cm-1", {{"role", "cm"}}), TestContainer(2, "cm-2", {{"role", "cm"}}),
          TestContainer(3, "cm-3", {{"role", "cm"}}), TestContainer(4, "client-1"),
          TestContainer(5, "other")};
}

std::vector<uint32_t> MemberIds(const Group& g) {
  std::vector<uint32_t> ids;
  for (const GroupMember& m : g.members) ids.push_back(m.container_id);
  return ids;
}

TEST(GroupPolicyTest, ParsesGroupsAndGroupDependencies) {
  Policy p = Parse(kPolicy);
  ASSERT_EQ(p.groups.size(), 2u);
  EXPECT_EQ(p.groups[0].name, "cm");
  EXPECT_EQ(p.groups[0].address, Ipv4(239, 7, 0, 1));
  EXPECT_EQ(p.groups[0].port, 7000);
  EXPECT_TRUE(p.groups[0].sequenced);
  EXPECT_EQ(p.groups[0].members.labels.at("role"), "cm");
  EXPECT_EQ(p.groups[0].line, 3);
  EXPECT_FALSE(p.groups[1].sequenced);
  ASSERT_EQ(p.services[1].depends_on.size(), 2u);
  EXPECT_EQ(p.services[1].depends_on[0].kind, Peer::Kind::kGroup);
  EXPECT_EQ(p.services[1].depends_on[0].name, "cm");
}

TEST(GroupPolicyTest, RejectsBadGroupsWithFileLineAndReason) {
  const std::string svc = "services:\n  - name: a\n    select: {names: [a]}\n";
  auto group = [](const std::string& body) { return "version: 1\ngroups:\n  - " + body + "\n"; };
  const std::pair<std::string, std::string> cases[] = {
      {group("{name: g, address: 10.0.0.1, port: 7000, members: {names: [a]}}") + svc,
       "g.yaml:3:24: group 'g': address 10.0.0.1 is not multicast (224.0.0.0/4)"},
      {group("{name: g, address: 239.1.1.1, members: {names: [a]}}") + svc,
       "g.yaml:3:5: group 'g' has no port"},
      {group("{name: g, address: 239.1.1.1, port: 0, members: {names: [a]}}") + svc,
       "g.yaml:3:41: group 'g': port must be a UDP port 1-65535"},
      {group("{name: g, address: 239.1.1.1, port: 7000}") + svc, "group 'g' has no members"},
      {group("{name: g, address: 239.1.1.1, port: 7000, members: {}}") + svc,
       "select needs names or labels"},
      {group("{name: g, address: 239.1.1.1, port: 7000, members: {names: [a]}, ttl: 3}") + svc,
       "unknown key 'ttl' in group"},
      {group("{name: g, address: 239.1.1.1, port: 7000, members: {names: [a]}}\n"
             "  - {name: g, address: 239.1.1.2, port: 7000, members: {names: [a]}}") +
           svc,
       "g.yaml:4:12: group 'g' defined twice"},
      {group("{name: g, address: 239.1.1.1, port: 7000, members: {names: [a]}}\n"
             "  - {name: h, address: 239.1.1.1, port: 7001, members: {names: [a]}}") +
           svc,
       "g.yaml:4:24: group 'h': address 239.1.1.1 used by another group"},
      {"version: 1\n" + svc + "    depends_on:\n      - group: nope\n",
       "g.yaml:6:9: service 'a' depends on undefined group 'nope'"},
      {group("{name: g, address: 239.1.1.1, port: 7000, members: {names: [a]}}") + svc +
           "    depends_on:\n      - {group: g, ports: [udp/7000]}\n",
       "g.yaml:8:27: a group dependency takes no ports"},
      {group("{name: g, address: 239.1.1.1, port: 7000, members: {names: [a]}}") + svc +
           "    depends_on:\n      - {group: g, service: a}\n",
       "names exactly one of service, host, world, group"},
      {group("{name: g, address: 239.1.1.1, port: 7000, members: {names: [a]}}") + svc +
           "    accepts:\n      - {group: g}\n",
       "unknown key 'group' in accepts entry"},
  };
  for (const auto& [text, want] : cases) {
    absl::StatusOr<Policy> p = ParsePolicy(text, "g.yaml");
    ASSERT_FALSE(p.ok()) << text;
    EXPECT_THAT(std::string(p.status().message()), HasSubstr(want)) << text;
  }
}

TEST(GroupPolicyTest, CompilesGroupEntriesAndSenderDependencies) {
  absl::StatusOr<DatapathState> s = CompilePolicy(Parse(kPolicy), Cluster());
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->groups.size(), 2u);
  const Group& cm = s->groups.at(Ipv4(239, 7, 0, 1));
  EXPECT_EQ(cm.id, GroupId(0));
  EXPECT_EQ(cm.port, 7000);
  EXPECT_TRUE(cm.sequenced);
  EXPECT_THAT(MemberIds(cm), ElementsAre(1, 2, 3));
  EXPECT_EQ(cm.members[1].host_ifindex, 102);
  EXPECT_EQ(cm.members[1].mac, TestContainer(2, "").mac);
  const Group& raw = s->groups.at(Ipv4(239, 7, 0, 2));
  EXPECT_EQ(raw.id, GroupId(1));
  EXPECT_FALSE(raw.sequenced);
  EXPECT_THAT(MemberIds(raw), ElementsAre(1));
  // Every cm member and the client may send to cm; nobody to raw; `other` to nothing.
  for (uint32_t sender : {1u, 2u, 3u, 4u}) {
    EXPECT_TRUE(s->dependencies.count({sender, GroupId(0)})) << sender;
  }
  EXPECT_FALSE(s->dependencies.count({5, GroupId(0)}));
  for (const auto& [src, dst] : s->dependencies) EXPECT_NE(dst, GroupId(1));
  // No port rules for group edges: the group's own port is the rule.
  for (const RuleBlock& r : s->rules) EXPECT_LT(r.dst_id, kGroupIdFirst);
  // On the datapath: groups are written like hosts (both generations).
  testing::FakeDatapath dp;
  ASSERT_TRUE(ApplyState(dp, {}, *s).ok());
  EXPECT_EQ(dp.groups(0), s->groups);
  EXPECT_EQ(dp.groups(1), s->groups);
  EXPECT_THAT(DiffStates({}, *s).lines,
              ::testing::Contains("+ group 239.7.0.1:7000 as 4293918720 sequenced members 1,2,3"));
}

TEST(GroupPolicyTest, MoreMembersThanAGroupHoldsIsACompileError) {
  std::vector<ContainerInfo> cs;
  for (uint32_t id = 1; id <= kMaxGroupMembers + 1; ++id) {
    cs.push_back(TestContainer(id, "cm", {{"role", "cm"}}));
  }
  absl::StatusOr<DatapathState> s = CompilePolicy(Parse(kPolicy), cs);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("g.yaml:3: group 'cm' selects 17 containers; a group holds at most 16"));
  cs.pop_back();
  EXPECT_TRUE(CompilePolicy(Parse(kPolicy), cs).ok());
}

// A container event patches the running state as the manager does (its slice, with all
// groups); the result equals a full compile as members join and leave.
TEST(GroupPolicyTest, MembersComingAndGoingFollowContainerEvents) {
  const Policy policy = Parse(kPolicy);
  std::vector<ContainerInfo> cs = Cluster();
  absl::StatusOr<DatapathState> running = CompilePolicy(policy, cs);
  ASSERT_TRUE(running.ok());
  testing::FakeDatapath dp;
  ASSERT_TRUE(ApplyState(dp, {}, *running).ok());
  auto event = [&](const std::set<uint32_t>& ids) {
    absl::StatusOr<DatapathState> slice = CompileSlice(policy, cs, ids);
    ASSERT_TRUE(slice.ok()) << slice.status();
    DatapathState old_slice = SliceOf(*running, ids);
    old_slice.hosts = running->hosts;
    old_slice.groups = running->groups;
    ASSERT_TRUE(ApplyState(dp, old_slice, *slice).ok());
    *running = Union(Minus(*running, old_slice), *slice);
    absl::StatusOr<DatapathState> full = CompilePolicy(policy, cs);
    ASSERT_TRUE(full.ok());
    EXPECT_EQ(running->groups, full->groups);
    EXPECT_EQ(running->dependencies, full->dependencies);
    EXPECT_EQ(dp.groups(), full->groups);
    EXPECT_EQ(dp.groups(0), dp.groups(1));
  };
  cs.push_back(TestContainer(6, "cm-4", {{"role", "cm"}}));  // joins
  event({6});
  EXPECT_THAT(MemberIds(running->groups.at(Ipv4(239, 7, 0, 1))), ElementsAre(1, 2, 3, 6));
  EXPECT_TRUE(running->dependencies.count({6, GroupId(0)}));
  cs.erase(cs.begin() + 1);  // cm-2 goes
  event({2});
  EXPECT_THAT(MemberIds(running->groups.at(Ipv4(239, 7, 0, 1))), ElementsAre(1, 3, 6));
  EXPECT_FALSE(running->dependencies.count({2, GroupId(0)}));
  cs[0].labels.clear();  // cm-1 relabelled: leaves cm, still the only member of raw
  event({1});
  EXPECT_THAT(MemberIds(running->groups.at(Ipv4(239, 7, 0, 1))), ElementsAre(3, 6));
  EXPECT_THAT(MemberIds(running->groups.at(Ipv4(239, 7, 0, 2))), ElementsAre(1));
}

// Policy changes: a group's members or port change (groups whole), a service gains a
// group dependency (its members touched), groups reordered (ids change: the senders are
// touched); each update equals the full compile.
TEST(GroupPolicyTest, PolicyUpdatesEqualTheFullCompile) {
  const std::vector<ContainerInfo> cs = Cluster();
  ContainerIndex index(cs);
  const Policy from = Parse(kPolicy);
  auto check = [&](const Policy& to, const std::set<uint32_t>& touched) {
    absl::StatusOr<DatapathState> running = CompilePolicy(from, cs);
    absl::StatusOr<DatapathState> want = CompilePolicy(to, cs);
    ASSERT_TRUE(running.ok() && want.ok());
    absl::StatusOr<PolicyUpdate> u = CompilePolicyUpdate(from, *running, to, index, 1.0);
    ASSERT_TRUE(u.ok()) << u.status();
    EXPECT_EQ(u->touched, touched);
    u->ApplyTo(*running);
    EXPECT_EQ(running->groups, want->groups);
    EXPECT_EQ(running->dependencies, want->dependencies);
    EXPECT_EQ(running->rules, want->rules);
  };
  Policy members = from;
  members.groups[0].members = Selector{.names = {"cm-1", "other"}};
  members.groups[0].port = 7005;
  check(members, {});  // group entries only
  Policy depends = from;
  depends.services[0].depends_on.push_back({.kind = Peer::Kind::kGroup, .name = "raw"});
  check(depends, {1, 2, 3});
  Policy reordered = from;
  std::swap(reordered.groups[0], reordered.groups[1]);
  check(reordered, {1, 2, 3, 4});
}

}  // namespace
}  // namespace dctk::bastion
