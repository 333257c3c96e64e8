#include "bastion/policy/apply.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "bastion/datapath/testing/fake_datapath.h"
#include "bastion/policy/compiler.h"
#include "bastion/policy/test_container.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::bastion {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using testing::FakeDatapath;

DatapathState Compile(const std::string& services, const std::vector<ContainerInfo>& containers,
                      bool audit = false) {
  absl::StatusOr<Policy> p = ParsePolicy(
      std::string("version: 1\naudit: ") + (audit ? "true" : "false") + "\nservices:\n" + services,
      "p.yaml");
  EXPECT_TRUE(p.ok()) << p.status();
  absl::StatusOr<DatapathState> s = CompilePolicy(*p, containers);
  EXPECT_TRUE(s.ok()) << s.status();
  return *s;
}

// What the fake holds, comparable as a whole (the active generation's policy entries;
// TakeAll: both generations' and which one is active).
struct Snapshot {
  std::map<uint32_t, uint32_t> endpoints;
  std::map<int, uint32_t> bindings;
  std::map<uint32_t, uint32_t> hosts;
  std::set<std::pair<uint32_t, uint32_t>> dependencies;
  std::set<FakeDatapath::RuleKey> rules;
  bool audit;
  std::map<uint32_t, uint32_t> hosts_other;
  std::set<std::pair<uint32_t, uint32_t>> dependencies_other;
  std::set<FakeDatapath::RuleKey> rules_other;
  uint32_t active = 0;
  bool operator==(const Snapshot&) const = default;
};

Snapshot Take(const FakeDatapath& dp) {
  return {dp.endpoints(), dp.bindings(), dp.hosts(), dp.dependencies(), dp.rules(), dp.audit()};
}

Snapshot TakeAll(const FakeDatapath& dp) {
  Snapshot s = Take(dp);
  const uint32_t other = 1 - dp.ActiveGeneration();
  s.hosts_other = dp.hosts(other);
  s.dependencies_other = dp.dependencies(other);
  s.rules_other = dp.rules(other);
  s.active = dp.ActiveGeneration();
  return s;
}

// Both generations hold the same policy entries (true between changes).
void ExpectCopiesEqual(const FakeDatapath& dp) {
  EXPECT_EQ(dp.hosts(0), dp.hosts(1));
  EXPECT_EQ(dp.dependencies(0), dp.dependencies(1));
  EXPECT_EQ(dp.rules(0), dp.rules(1));
}

const char kOld[] =
    "  - name: a\n    select: {names: [a]}\n"
    "    depends_on: [{service: b, ports: [tcp/8000-8003, udp/53]}, {host: gateway, ports: "
    "[icmp]}]\n"
    "  - {name: b, select: {names: [b]}}\n";
const char kNew[] =
    "  - name: a\n    select: {names: [a]}\n"
    "    depends_on: [{service: b, ports: [tcp/8000-8001, tcp/9000]}, {service: c, ports: "
    "[any]}]\n"
    "  - {name: b, select: {names: [b]}}\n  - {name: c, select: {names: [c]}}\n";

TEST(ApplyTest, FromEmptyInstallsEverything) {
  FakeDatapath dp;
  DatapathState next = Compile(kOld, {TestContainer(1, "a"), TestContainer(2, "b")});
  ASSERT_TRUE(ApplyState(dp, {}, next).ok());
  EXPECT_EQ(dp.endpoints(), (std::map<uint32_t, uint32_t>{{Ipv4(10, 0, 0, 11), 1},
                                                           {Ipv4(10, 0, 0, 12), 2}}));
  EXPECT_EQ(dp.bindings(), (std::map<int, uint32_t>{{101, 1}, {102, 2}}));
  EXPECT_EQ(dp.hosts(), (std::map<uint32_t, uint32_t>{{Ipv4(10, 0, 0, 1), kHostIdFirst}}));
  EXPECT_EQ(dp.dependencies(), (std::set<std::pair<uint32_t, uint32_t>>{{1, 2}}));
  EXPECT_EQ(dp.rules(), (std::set<FakeDatapath::RuleKey>{{1, 2, kTcp, 8000, 8003},
                                                         {1, 2, kUdp, 53, 53},
                                                         {1, kHostIdFirst, kIcmp, 0, 65535}}));
  // Applying the same state again writes nothing.
  const size_t writes = dp.writes().size();
  ASSERT_TRUE(ApplyState(dp, next, next).ok());
  EXPECT_EQ(dp.writes().size(), writes);
}

// The policy entries change in the inactive generation, then one write activates it,
// then the old generation catches up; endpoints come before the switch and go after.
TEST(ApplyTest, SwitchesGenerationsInOneWrite) {
  FakeDatapath dp;
  const std::vector<ContainerInfo> before = {TestContainer(1, "a"), TestContainer(2, "b"),
                                             TestContainer(4, "d")};
  const std::vector<ContainerInfo> after = {TestContainer(1, "a"), TestContainer(2, "b"),
                                            TestContainer(3, "c")};
  DatapathState old_state = Compile(kOld, before);
  DatapathState new_state = Compile(kNew, after);
  ASSERT_TRUE(ApplyState(dp, {}, old_state).ok());
  ASSERT_EQ(dp.ActiveGeneration(), 1u);  // from empty: also one switch
  ExpectCopiesEqual(dp);
  const size_t first = dp.writes().size();
  ASSERT_TRUE(ApplyState(dp, old_state, new_state).ok());
  EXPECT_EQ(dp.ActiveGeneration(), 0u);
  FakeDatapath fresh;
  ASSERT_TRUE(ApplyState(fresh, {}, new_state).ok());
  EXPECT_EQ(Take(dp), Take(fresh));
  ExpectCopiesEqual(dp);

  std::vector<std::string> writes = dp.writes();
  writes.erase(writes.begin(), writes.begin() + first);
  auto at = [&](const std::string& w) {
    return std::find(writes.begin(), writes.end(), w) - writes.begin();
  };
  const auto flip = at("activate 0");
  ASSERT_LT(flip, static_cast<long>(writes.size()));
  EXPECT_EQ(std::count(writes.begin(), writes.end(), "activate 0"), 1);
  for (size_t i = 0; i < writes.size(); ++i) {
    if (absl::EndsWith(writes[i], " @0")) EXPECT_LT(static_cast<long>(i), flip) << writes[i];
    if (absl::EndsWith(writes[i], " @1")) EXPECT_GT(static_cast<long>(i), flip) << writes[i];
  }
  EXPECT_LT(at("+endpoint 10.0.0.13"), flip);
  EXPECT_GT(at("-endpoint 10.0.0.14"), flip);
  EXPECT_THAT(writes, Contains("+rule 1->2 6 8000-8001 @0"));
  EXPECT_THAT(writes, Contains("-rule 1->2 6 8000-8003 @0"));
  EXPECT_THAT(writes, Contains("+dependency 1->3 @0"));
  EXPECT_THAT(writes, Contains("+rule 1->2 6 8000-8001 @1"));
}

// A failed write anywhere in the change leaves exactly the old state installed.
TEST(ApplyTest, AllOrNothingAtEveryFailurePoint) {
  const std::vector<ContainerInfo> before = {TestContainer(1, "a"), TestContainer(2, "b")};
  const std::vector<ContainerInfo> after = {TestContainer(1, "a"), TestContainer(3, "c"),
                                            TestContainer(2, "b")};
  DatapathState old_state = Compile(kOld, before);
  DatapathState new_state = Compile(kNew, after, /*audit=*/true);
  // Every write of the change, both generations and the switch included.
  FakeDatapath counting;
  ASSERT_TRUE(ApplyState(counting, {}, old_state).ok());
  const size_t before_writes = counting.writes().size();
  ASSERT_TRUE(ApplyState(counting, old_state, new_state).ok());
  const int total = static_cast<int>(counting.writes().size() - before_writes);
  ASSERT_GE(total, 15);
  for (int k = 0; k < total; ++k) {
    FakeDatapath dp;
    ASSERT_TRUE(ApplyState(dp, {}, old_state).ok());
    const Snapshot want = TakeAll(dp);
    dp.FailWriteAfter(k);
    absl::Status s = ApplyState(dp, old_state, new_state);
    ASSERT_FALSE(s.ok()) << "failure point " << k;
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(std::string(s.message()), HasSubstr("writes undone"));
    EXPECT_TRUE(TakeAll(dp) == want) << "failure point " << k << ": " << s;
  }
}

TEST(ApplyTest, AuditModeTurnsOnFirstAndOffLast) {
  FakeDatapath dp;
  const std::vector<ContainerInfo> containers = {TestContainer(1, "a"), TestContainer(2, "b"),
                                                 TestContainer(3, "c")};
  DatapathState old_state = Compile(kOld, containers);
  DatapathState audit_state = Compile(kNew, containers, /*audit=*/true);
  ASSERT_TRUE(ApplyState(dp, {}, audit_state).ok());
  EXPECT_TRUE(dp.audit());
  EXPECT_EQ(dp.writes().front(), "audit 1");
  ASSERT_TRUE(ApplyState(dp, audit_state, old_state).ok());
  EXPECT_FALSE(dp.audit());
  EXPECT_EQ(dp.writes().back(), "audit 0");
}

TEST(ApplyTest, DiffDescribesEntries) {
  const std::vector<ContainerInfo> containers = {TestContainer(1, "a"), TestContainer(2, "b"),
                                                 TestContainer(3, "c")};
  StateDiff diff = DiffStates(Compile(kOld, containers), Compile(kNew, containers),
                              [](uint32_t id) { return std::string(1, 'a' + id - 1); });
  EXPECT_THAT(diff.lines, Contains("+ dependency a -> c"));
  EXPECT_THAT(diff.lines, Contains("+ rule a -> b tcp/9000"));
  EXPECT_THAT(diff.lines, Contains("- rule a -> b udp/53"));
  EXPECT_EQ(diff.changed, 0);
  EXPECT_EQ(diff.added + diff.removed, static_cast<int>(diff.lines.size()));
}

}  // namespace
}  // namespace dctk::bastion
