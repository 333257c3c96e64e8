// Edge cases of the incremental policy compile, each checked against a full compile.
#include "bastion/policy/incremental.h"

#include <string>
#include <vector>

#include "absl/strings/str_replace.h"
#include "bastion/policy/test_container.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::bastion {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<ContainerInfo> Containers() {
  return {TestContainer(1, "client", {{"role", "client"}}),
          TestContainer(2, "web-1", {{"role", "web"}}),
          TestContainer(3, "web-2", {{"role", "web"}}), TestContainer(4, "db", {{"role", "db"}}),
          TestContainer(5, "cache", {{"role", "cache"}})};
}

constexpr char kBase[] = R"(version: 1
hosts:
  - name: dns
    addresses: [192.0.2.53]
  - name: ntp
    addresses: [192.0.2.123]
services:
  - name: client
    select: {labels: {role: client}}
    depends_on:
      - service: web
        ports: [tcp/80]
      - host: dns
        ports: [udp/53]
  - name: web
    select: {names: ["web-*"]}
    depends_on:
      - service: db
        ports: [tcp/5432]
      - host: ntp
        ports: [udp/123]
    accepts:
      - world: true
        ports: [tcp/443]
  - name: db
    select: {names: [db]}
  - name: cache
    select: {labels: {role: cache}}
    depends_on:
      - service: db
        ports: [tcp/5432]
)";

Policy Parse(const std::string& text) {
  absl::StatusOr<Policy> p = ParsePolicy(text, "edge.yaml");
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : Policy{};
}

Policy Edited(const std::vector<std::pair<std::string, std::string>>& edits) {
  std::string text = kBase;
  for (const auto& [from, to] : edits) {
    EXPECT_NE(text.find(from), std::string::npos) << from;
    text = absl::StrReplaceAll(text, {{from, to}});
  }
  return Parse(text);
}

// Runs the update from kBase (never compiled whole: the slices are what is tested) to `next` and checks it against the full compile.
PolicyUpdate Update(const Policy& next, const std::vector<ContainerInfo>& cs = Containers(),
                    const Policy& from = Parse(kBase)) {
  DatapathState running = *CompilePolicy(from, cs);
  ContainerIndex index(cs);
  absl::StatusOr<PolicyUpdate> u = CompilePolicyUpdate(from, running, next, index, /*whole_above=*/1.0);
  EXPECT_TRUE(u.ok()) << u.status();
  if (!u.ok()) return {};
  absl::StatusOr<DatapathState> want = CompilePolicy(next, cs);
  EXPECT_TRUE(want.ok());
  u->ApplyTo(running);
  EXPECT_EQ(running.rules, want->rules);
  EXPECT_EQ(running.dependencies, want->dependencies);
  EXPECT_EQ(running.hosts, want->hosts);
  EXPECT_EQ(running.audit, want->audit);
  EXPECT_EQ(running.endpoints.size(), want->endpoints.size());
  return *u;
}

TEST(IncrementalTest, OneRuleChangeTouchesOnlyItsService) {
  PolicyUpdate u = Update(Edited({{"ports: [tcp/80]", "ports: [tcp/80, tcp/8080]"}}));
  EXPECT_THAT(u.touched, ElementsAre(1));
  EXPECT_FALSE(u.whole);
  // 1->2 and 1->3 gain tcp/8080; nothing else changes.
  EXPECT_THAT(u.remove.rules, IsEmpty());
  EXPECT_THAT(u.add.rules, ElementsAre(RuleBlock{1, 2, 6, 8080, 8080}, RuleBlock{1, 3, 6, 8080, 8080}));
}

TEST(IncrementalTest, RuleRemoved) {
  PolicyUpdate u = Update(Edited({{R"(    select: {labels: {role: cache}}
    depends_on:
      - service: db
        ports: [tcp/5432]
)",
                                   "    select: {labels: {role: cache}}\n"}}));
  EXPECT_THAT(u.touched, ElementsAre(5));
  EXPECT_THAT(u.remove.dependencies, ElementsAre(std::pair<uint32_t, uint32_t>{5, 4}));
  EXPECT_THAT(u.add.dependencies, IsEmpty());
  EXPECT_THAT(u.add.rules, IsEmpty());
}

TEST(IncrementalTest, ServiceRemoved) {
  PolicyUpdate removed = Update(Edited({{"      - service: web\n        ports: [tcp/80]\n", ""},
                                        {R"(  - name: web
    select: {names: ["web-*"]}
    depends_on:
      - service: db
        ports: [tcp/5432]
      - host: ntp
        ports: [udp/123]
    accepts:
      - world: true
        ports: [tcp/443]
)",
                                         ""}}));
  EXPECT_THAT(removed.touched, ElementsAre(1, 2, 3));
  EXPECT_THAT(removed.add.rules, IsEmpty());
  // The client's dns rule stays: not in the update.
  for (const RuleBlock& r : removed.remove.rules) EXPECT_NE(r.dst_id, HostGroupId(0));
  EXPECT_FALSE(removed.remove.rules.empty());
}

TEST(IncrementalTest, SelectorChangeTouchesJoinersAndLeavers) {
  PolicyUpdate u = Update(Edited({{R"(names: ["web-*"])", R"(names: ["web-1", "cache"])"}}));
  EXPECT_THAT(u.touched, ElementsAre(3, 5));  // web-2 left, cache joined; web-1 stays
}

TEST(IncrementalTest, EquivalentRewritesTouchNothing) {
  PolicyUpdate u = Update(Edited({{"ports: [tcp/80]", "ports: [tcp/80-80, tcp/80]"},
                                  {"ports: [udp/53]", "ports: [udp/53-60]\n        except: [udp/54-60]"},
                                  {R"(names: ["web-*"])", R"(names: ["web-*", "web-1"])"}}));
  EXPECT_THAT(u.touched, IsEmpty());
  EXPECT_THAT(u.add.rules, IsEmpty());
  EXPECT_THAT(u.remove.rules, IsEmpty());
}

TEST(IncrementalTest, HostAccessChanged) {
  // A host group's address: only the hosts map changes.
  PolicyUpdate address = Update(Edited({{"[192.0.2.53]", "[192.0.2.54, 192.0.2.55]"}}));
  EXPECT_THAT(address.touched, IsEmpty());
  EXPECT_EQ(address.add.hosts.count(Ipv4(192, 0, 2, 55)), 1u);
  EXPECT_EQ(address.add.hosts.count(Ipv4(192, 0, 2, 53)), 0u);
  // The ports a service may use on a host.
  PolicyUpdate ports = Update(Edited({{"ports: [udp/53]", "ports: [udp/53, tcp/53]"}}));
  EXPECT_THAT(ports.touched, ElementsAre(1));
  // Reordered groups get each other's ids: every service naming one is touched.
  PolicyUpdate order = Update(Edited({{R"(  - name: dns
    addresses: [192.0.2.53]
  - name: ntp
    addresses: [192.0.2.123]
)",
                                       R"(  - name: ntp
    addresses: [192.0.2.123]
  - name: dns
    addresses: [192.0.2.53]
)"}}));
  EXPECT_THAT(order.touched, ElementsAre(1, 2, 3));
}

TEST(IncrementalTest, AuditOnly) {
  PolicyUpdate u = Update(Edited({{"version: 1\n", "version: 1\naudit: true\n"}}));
  EXPECT_THAT(u.touched, IsEmpty());
  EXPECT_TRUE(u.add.audit);
  EXPECT_FALSE(u.remove.audit);
}

TEST(IncrementalTest, AfterContainerRenamedAndRelabelled) {
  const Policy base = Parse(kBase);
  std::vector<ContainerInfo> cs = Containers();
  DatapathState running = *CompilePolicy(base, cs);
  cs[2].name = "api-2";                  // web-2 leaves `web`
  cs[4].labels = {{"role", "client"}};  // cache becomes a client
  const std::set<uint32_t> ids = {3, 5};
  running = Union(Minus(running, SliceOf(running, ids)), *CompileSlice(base, cs, ids));
  const Policy next = Edited({{"ports: [tcp/80]", "ports: [tcp/81]"}});
  ContainerIndex index(cs);
  absl::StatusOr<PolicyUpdate> u = CompilePolicyUpdate(base, running, next, index, /*whole_above=*/1.0);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_THAT(u->touched, ElementsAre(1, 5));  // the clients, as the containers are now
  u->ApplyTo(running);
  DatapathState want = *CompilePolicy(next, cs);
  EXPECT_EQ(running.rules, want.rules);
  EXPECT_EQ(running.dependencies, want.dependencies);
}

TEST(IncrementalTest, InvalidPolicyRejectedWithFileLineAndNothingToApply) {
  // Parse errors never reach the compiler: file, line, column and reason.
  absl::StatusOr<Policy> bad =
      ParsePolicy(absl::StrReplaceAll(kBase, {{"ports: [tcp/80]", "ports: [tpc/80]"}}), "edge.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("edge.yaml:12:17: unknown protocol 'tpc'"));
  // Compile errors of the new policy are a full compile's, and no update comes back.
  const Policy base = Parse(kBase);
  const std::vector<ContainerInfo> cs = Containers();
  const DatapathState running = *CompilePolicy(base, cs);
  ContainerIndex index(cs);
  for (const auto& [address, reason] :
       std::vector<std::pair<std::string, std::string>>{
           {"10.0.0.14", "host 'ntp' address 10.0.0.14 belongs to a container"},
           {"10.0.0.1", "address 10.0.0.1 is in two host groups (ntp)"},
           {"192.0.2.53", "address 192.0.2.53 is in two host groups (ntp)"}}) {
    const Policy next = Edited({{"[192.0.2.123]", "[" + address + "]"}});
    absl::StatusOr<PolicyUpdate> u = CompilePolicyUpdate(base, running, next, index, /*whole_above=*/1.0);
    ASSERT_FALSE(u.ok()) << address;
    EXPECT_EQ(u.status(), CompilePolicy(next, cs).status());
    EXPECT_THAT(u.status().message(), HasSubstr("edge.yaml: " + reason));
  }
}

TEST(IncrementalTest, LargeChangeIsCompiledWholeWithTheSameResult) {
  const Policy base = Parse(kBase);
  const Policy next = Edited({{"ports: [tcp/5432]", "ports: [tcp/5433]"}});  // web and cache
  const std::vector<ContainerInfo> cs = Containers();
  DatapathState running = *CompilePolicy(base, cs);
  ContainerIndex index(cs);
  absl::StatusOr<PolicyUpdate> u = CompilePolicyUpdate(base, running, next, index);  // 3 of 5
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_TRUE(u->whole);
  EXPECT_THAT(u->add.endpoints, IsEmpty());  // only what differs
  EXPECT_EQ(u->add.rules.size(), 3u);
  EXPECT_EQ(u->remove.rules.size(), 3u);
  u->ApplyTo(running);
  DatapathState want = *CompilePolicy(next, cs);
  EXPECT_EQ(running.rules, want.rules);
  EXPECT_EQ(running.dependencies, want.dependencies);
}

TEST(IncrementalTest, RunningStateNotFromRunningPolicyFallsBackToFull) {
  const Policy base = Parse(kBase);
  const std::vector<ContainerInfo> cs = Containers();
  DatapathState running = *CompilePolicy(base, cs);
  running.rules.erase(running.rules.begin());  // lost an entry of container 1
  const Policy next = Edited({{"ports: [tcp/80]", "ports: [tcp/81]"}});
  ContainerIndex index(cs);
  absl::StatusOr<PolicyUpdate> u = CompilePolicyUpdate(base, running, next, index, /*whole_above=*/1.0);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_TRUE(u->whole);
  u->ApplyTo(running);
  DatapathState want = *CompilePolicy(next, cs);
  EXPECT_EQ(running.rules, want.rules);
  EXPECT_EQ(running.dependencies, want.dependencies);
  EXPECT_EQ(running.endpoints.size(), want.endpoints.size());
  EXPECT_EQ(running.bindings.size(), want.bindings.size());
}

}  // namespace
}  // namespace dctk::bastion
