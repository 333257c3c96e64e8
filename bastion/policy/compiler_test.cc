#include "bastion/policy/compiler.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bastion/policy/test_container.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::bastion {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

const std::vector<ContainerInfo>& Containers() {
  static const auto* containers = new std::vector<ContainerInfo>{
      TestContainer(1, "client", {{"role", "client"}}),
      TestContainer(2, "web-1", {{"role", "web"}, {"zone", "a"}}),
      TestContainer(3, "web-2", {{"role", "web"}, {"zone", "b"}}),
      TestContainer(4, "db", {{"role", "db"}}),
  };
  return *containers;
}

std::string Name(uint32_t id) {
  if (id == kWorldId) return "world";
  if (id == kHostIdFirst) return "gateway";
  if (id > kHostIdFirst) return absl::StrCat("host", id - kHostIdFirst);
  return absl::StrCat(id);
}

std::vector<std::string> Rules(const DatapathState& s) {
  std::vector<std::string> out;
  for (const RuleBlock& r : s.rules) {
    out.push_back(absl::StrCat(Name(r.src_id), "->", Name(r.dst_id), " ",
                               PortRangeToString({r.proto, r.first_port, r.last_port})));
  }
  return out;
}

std::vector<std::string> Dependencies(const DatapathState& s) {
  std::vector<std::string> out;
  for (const auto& [src, dst] : s.dependencies) out.push_back(absl::StrCat(src, "->", dst));
  return out;
}

const char kHead[] = "version: 1\nhosts:\n  - {name: dns, addresses: [192.0.2.53]}\nservices:\n";

struct Case {
  std::string name;
  std::string services;  // appended to kHead
  std::vector<std::string> dependencies;
  std::vector<std::string> rules;
};

TEST(CompilerTest, Table) {
  const Case cases[] = {
      {"nothing listed, nothing allowed", "  - {name: c, select: {names: [client]}}\n", {}, {}},
      {"one port to a service of two",
       "  - name: c\n    select: {labels: {role: client}}\n"
       "    depends_on: [{service: w, ports: [tcp/80]}]\n"
       "  - {name: w, select: {labels: {role: web}}}\n",
       {"1->2", "1->3"},
       {"1->2 tcp/80", "1->3 tcp/80"}},
      {"range becomes aligned blocks, except carved out",
       "  - name: c\n    select: {names: [client]}\n"
       "    depends_on: [{service: w, ports: [tcp/8000-8007], except: [tcp/8003]}]\n"
       "  - {name: w, select: {names: [web-1]}}\n",
       {"1->2"},
       {"1->2 tcp/8000-8001", "1->2 tcp/8002", "1->2 tcp/8004-8007"}},
      {"overlapping rules from two services merge",
       "  - name: c\n    select: {names: [client]}\n"
       "    depends_on: [{service: w, ports: [udp/8-11]}]\n"
       "  - name: c2\n    select: {labels: {role: client}}\n"
       "    depends_on: [{service: w, ports: [udp/12-15]}]\n"
       "  - {name: w, select: {names: [web-1]}}\n",
       {"1->2"},
       {"1->2 udp/8-15"}},
      {"name prefix and labels must both match",
       "  - name: w\n    select: {names: ['web-*'], labels: {zone: b}}\n"
       "    depends_on: [{service: d, ports: [any]}]\n"
       "  - {name: d, select: {names: [db]}}\n",
       {"3->4"},
       {"3->4 any"}},
      {"a service depending on itself skips self edges",
       "  - name: w\n    select: {names: ['web-*']}\n"
       "    depends_on: [{service: w, ports: [tcp/7000]}]\n",
       {"2->3", "3->2"},
       {"2->3 tcp/7000", "3->2 tcp/7000"}},
      {"hosts, gateway and world need no dependency",
       "  - name: c\n    select: {names: [client]}\n"
       "    depends_on:\n      - {host: dns, ports: [udp/53]}\n"
       "      - {host: gateway, ports: [icmp]}\n      - {world: true, ports: [tcp/443]}\n",
       {},
       {"1->gateway icmp", "1->host1 udp/53", "1->world tcp/443"}},
      {"accepts are inbound rules",
       "  - name: d\n    select: {names: [db]}\n"
       "    accepts: [{world: true, ports: [tcp/5432]}, {host: gateway, ports: [tcp/22]}]\n",
       {},
       {"gateway->4 tcp/22", "world->4 tcp/5432"}},
      {"any protocol absorbs the others",
       "  - name: c\n    select: {names: [client]}\n"
       "    depends_on: [{service: d, ports: [tcp/1, any]}]\n"
       "  - {name: d, select: {names: [db]}}\n",
       {"1->4"},
       {"1->4 any"}},
      {"everything excepted leaves no dependency",
       "  - name: c\n    select: {names: [client]}\n"
       "    depends_on: [{service: d, ports: [tcp/1-2], except: [tcp/0-10]}]\n"
       "  - {name: d, select: {names: [db]}}\n",
       {},
       {}},
      {"selector matching nobody",
       "  - name: c\n    select: {names: [nobody]}\n"
       "    depends_on: [{service: d, ports: [any]}]\n"
       "  - {name: d, select: {names: [db]}}\n",
       {},
       {}},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Policy> policy = ParsePolicy(kHead + c.services, c.name);
    ASSERT_TRUE(policy.ok()) << c.name << ": " << policy.status();
    absl::StatusOr<DatapathState> state = CompilePolicy(*policy, Containers());
    ASSERT_TRUE(state.ok()) << c.name << ": " << state.status();
    EXPECT_THAT(Dependencies(*state), ElementsAreArray(c.dependencies)) << c.name;
    EXPECT_THAT(Rules(*state), ElementsAreArray(c.rules)) << c.name;
  }
}

TEST(CompilerTest, EndpointsBindingsAndHosts) {
  absl::StatusOr<Policy> policy = ParsePolicy("version: 1\nhosts: [{name: dns, addresses: [192.0.2.53]}]\nservices: []\n",
                       "p");
  ASSERT_TRUE(policy.ok()) << policy.status();
  std::vector<ContainerInfo> containers = Containers();
  containers[3].host_ifindex = 0;  // db lives on another host: endpoint, no binding
  absl::StatusOr<DatapathState> state = CompilePolicy(*policy, containers);
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_EQ(state->endpoints.size(), 4u);
  EXPECT_EQ(state->endpoints.at(Ipv4(10, 0, 0, 12)).container_id, 2u);
  EXPECT_EQ(state->endpoints.at(Ipv4(10, 0, 0, 12)).host_ifindex, 102);
  EXPECT_EQ(state->endpoints.at(Ipv4(10, 0, 0, 14)).host_ifindex, 0);
  EXPECT_EQ(state->bindings.size(), 3u);
  EXPECT_EQ(state->bindings.at(101).ip, Ipv4(10, 0, 0, 11));
  EXPECT_EQ(state->hosts.at(Ipv4(10, 0, 0, 1)), kHostIdFirst);
  EXPECT_EQ(state->hosts.at(Ipv4(192, 0, 2, 53)), HostGroupId(0));
}

TEST(CompilerTest, RejectsConflicts) {
  absl::StatusOr<Policy> policy = ParsePolicy(
      "version: 1\nhosts: [{name: dns, addresses: [10.0.0.13]}]\nservices: []\n", "p.yaml");
  ASSERT_TRUE(policy.ok());
  absl::StatusOr<DatapathState> state = CompilePolicy(*policy, Containers());
  EXPECT_THAT(std::string(state.status().message()),
              HasSubstr("p.yaml: host 'dns' address 10.0.0.13 belongs to a container"));

  *policy = *ParsePolicy("version: 1\nservices: []\n", "p.yaml");
  std::vector<ContainerInfo> containers = Containers();
  containers[1].ip = containers[0].ip;
  EXPECT_THAT(std::string(CompilePolicy(*policy, containers).status().message()),
              HasSubstr("share address 10.0.0.11"));
  containers = Containers();
  containers[1].host_ifindex = containers[0].host_ifindex;
  EXPECT_THAT(std::string(CompilePolicy(*policy, containers).status().message()),
              HasSubstr("host interface 101 already bound"));
  containers = Containers();
  containers[2].id = kHostIdFirst;
  EXPECT_FALSE(CompilePolicy(*policy, containers).ok());
}

TEST(CompilerTest, NormalizePorts) {
  std::vector<PortRange> got = NormalizePorts(
      {{kTcp, 0, 65535}, {kUdp, 5, 9}, {kUdp, 1, 4}}, {{kTcp, 0, 0}, {kTcp, 65535, 65535}});
  EXPECT_EQ(got, (std::vector<PortRange>{{kTcp, 1, 65534}, {kUdp, 1, 9}}));
}

}  // namespace
}  // namespace dctk::bastion

namespace dctk::bastion {
namespace {

// Patching a compiled state with the slice of the containers that changed gives exactly
// the full compile of the new world, for random worlds and random changes.
TEST(CompilerTest, SliceEqualsFullCompile) {
  absl::StatusOr<Policy> policy = ParsePolicy(
      "version: 1\nhosts: [{name: dns, addresses: [192.0.2.53]}]\nservices:\n"
      "  - name: a\n    select: {labels: {g: a}}\n"
      "    depends_on: [{service: b, ports: [tcp/80, udp/1000-1100]}, {host: dns, ports: "
      "[udp/53]}]\n"
      "  - name: b\n    select: {labels: {g: b}}\n"
      "    depends_on: [{service: b, ports: [any]}]\n    accepts: [{world: true, ports: "
      "[tcp/443]}]\n",
      "p");
  ASSERT_TRUE(policy.ok()) << policy.status();
  uint32_t seed = 12345;
  auto rnd = [&seed](uint32_t n) {
    seed = seed * 1103515245 + 12345;
    return (seed >> 16) % n;
  };
  for (int round = 0; round < 200; ++round) {
    std::map<uint32_t, ContainerInfo> world;
    for (uint32_t id = 1; id <= 30; ++id) {
      if (rnd(3) == 0) continue;
      ContainerInfo c = TestContainer(id, absl::StrCat("c", id), {{"g", rnd(2) ? "a" : "b"}});
      c.gateway = Ipv4(10, 0, rnd(2), 1);
      world[id] = c;
    }
    auto list = [](const std::map<uint32_t, ContainerInfo>& w) {
      std::vector<ContainerInfo> v;
      for (const auto& [id, c] : w) v.push_back(c);
      return v;
    };
    DatapathState before = *CompilePolicy(*policy, list(world));
    std::set<uint32_t> touched;
    for (int k = 0; k < 3; ++k) {
      const uint32_t id = 1 + rnd(30);
      touched.insert(id);
      if (world.count(id) && rnd(2)) {
        world.erase(id);
      } else {
        world[id] = TestContainer(id, absl::StrCat("c", id), {{"g", rnd(2) ? "a" : "b"}});
        world[id].gateway = Ipv4(10, 0, rnd(2), 1);
      }
    }
    DatapathState full = *CompilePolicy(*policy, list(world));
    absl::StatusOr<DatapathState> slice = CompileSlice(*policy, list(world), touched);
    ASSERT_TRUE(slice.ok()) << slice.status();
    DatapathState patched = Union(Minus(before, SliceOf(before, touched)), *slice);
    patched.hosts = slice->hosts;
    ASSERT_EQ(patched.dependencies, full.dependencies) << "round " << round;
    ASSERT_EQ(patched.rules, full.rules) << "round " << round;
    ASSERT_EQ(patched.hosts, full.hosts) << "round " << round;
    ASSERT_EQ(patched.endpoints.size(), full.endpoints.size()) << "round " << round;
    ASSERT_EQ(patched.bindings.size(), full.bindings.size()) << "round " << round;
    for (const auto& [ip, e] : full.endpoints) {
      ASSERT_EQ(patched.endpoints.at(ip).container_id, e.container_id);
    }
  }
}

}  // namespace
}  // namespace dctk::bastion
