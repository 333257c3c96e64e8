// The manager's incremental paths (container events and policy changes as slices,
// journalled) against from-scratch compiles: random sequences of events, policy changes
// and restarts; crashes around a journalled policy change; host-network containers.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bastion/datapath/testing/fake_datapath.h"
#include "bastion/manager/manager.h"
#include "bastion/manager/state_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::bastion {
namespace {

using ::testing::HasSubstr;
using testing::FakeDatapath;

class ListSource : public ContainerSource {
 public:
  explicit ListSource(std::vector<ContainerInfo>* world) : world_(world) {}
  std::string name() const override { return "list"; }
  absl::StatusOr<std::vector<ContainerInfo>> List() override { return *world_; }
  bool WaitForChange(absl::Duration) override { return true; }
  absl::StatusOr<std::string> HostNetworkCgroup(const std::string& runtime_id) const override {
    return "/cg/" + runtime_id;
  }

 private:
  std::vector<ContainerInfo>* world_;
};

class NullHostNetwork : public HostNetworkDatapath {
 public:
  absl::Status AttachCgroup(const std::string&, uint32_t) override { return absl::OkStatus(); }
  absl::Status DetachCgroup(const std::string&) override { return absl::OkStatus(); }
  absl::Status DetachUnclaimed() override { return absl::OkStatus(); }
};

// Container `i` (of 24) with role `role`; `moved` re-addresses it.
ContainerInfo Container(int i, const std::string& role, bool moved = false) {
  ContainerInfo c;
  c.name = absl::StrCat(role == "farm" && i % 2 ? "farm-" : "c", i);
  c.runtime_id = absl::StrCat("rt", i);
  if (!role.empty()) c.labels = {{"role", role}};
  c.ip = Ipv4(10, 0, moved ? 1 : 0, static_cast<uint8_t>(10 + i));
  c.mac.bytes = {2, 0, 0, 0, static_cast<uint8_t>(moved), static_cast<uint8_t>(i)};
  c.host_ifindex = 100 + i;
  c.gateway = Ipv4(10, 0, moved ? 1 : 0, 1);
  return c;
}

// One of 16 policies: ports, a dependency and a service present or not, a selector by
// names or labels, a multicast group its members follow, a host group.
std::string PolicyText(int v) {
  std::string s = "version: 1\n";
  if (v & 8) s += "hosts:\n  - {name: dns, addresses: [192.0.2.53]}\n";
  if (v & 4) s += "groups:\n  - {name: cm, address: 239.7.0.1, port: 7000, members: {labels: {role: farm}}}\n";
  s += "services:\n  - name: client\n    select: {labels: {role: client}}\n    depends_on:\n";
  s += absl::StrCat("      - {service: farm, ports: [", v & 1 ? "tcp/9000-9003" : "tcp/9000", "]}\n");
  if (v & 4) s += "      - {group: cm}\n";
  if (v & 8) s += "      - {host: dns, ports: [udp/53]}\n";
  s += absl::StrCat("  - name: farm\n    select: ", v & 2 ? "{names: [\"farm-*\"]}" : "{labels: {role: farm}}",
                    "\n    depends_on: [{host: gateway, ports: [icmp]}",
                    v % 3 ? ", {service: db, ports: [tcp/5432]}" : "", "]\n");
  s += "  - name: db\n    select: {labels: {role: db}}\n    accepts: [{world: true, ports: [tcp/443]}]\n";
  if (v % 5 == 1) s += "  - name: all\n    select: {names: [\"c*\"]}\n    depends_on: [{host: gateway, ports: [udp/67]}]\n";
  return s;
}

Policy Parse(const std::string& text) {
  absl::StatusOr<Policy> p = ParsePolicy(text, "policy.yaml");
  EXPECT_TRUE(p.ok()) << p.status() << "\n" << text;
  return p.ok() ? *p : Policy{};
}

std::set<FakeDatapath::RuleKey> RuleKeys(const DatapathState& s) {
  std::set<FakeDatapath::RuleKey> out;
  for (const RuleBlock& r : s.rules) out.insert(r.Tie());
  return out;
}

// The manager's running state and the fake maps equal a from-scratch compile of
// `policy` over the manager's containers.
void ExpectFreshCompile(const Manager& m, const FakeDatapath& dp, const std::string& policy,
                        const std::string& where) {
  absl::StatusOr<DatapathState> full = CompilePolicy(Parse(policy), m.Containers());
  ASSERT_TRUE(full.ok()) << full.status() << " " << where;
  const DatapathState running = m.Running();
  EXPECT_EQ(running.dependencies, full->dependencies) << where;
  EXPECT_EQ(running.rules, full->rules) << where;
  EXPECT_EQ(running.hosts, full->hosts) << where;
  EXPECT_EQ(running.groups, full->groups) << where;
  EXPECT_EQ(running.endpoints.size(), full->endpoints.size()) << where;
  EXPECT_EQ(running.bindings.size(), full->bindings.size()) << where;
  std::map<uint32_t, uint32_t> endpoints;
  for (const auto& [ip, e] : full->endpoints) endpoints[ip] = e.container_id;
  EXPECT_EQ(dp.endpoints(), endpoints) << where;
  EXPECT_EQ(dp.dependencies(), full->dependencies) << where;
  EXPECT_EQ(dp.rules(), RuleKeys(*full)) << where;
  EXPECT_EQ(dp.hosts(), full->hosts) << where;
  EXPECT_EQ(dp.groups(), full->groups) << where;
  // Both generations hold the same policy once a change is done.
  EXPECT_EQ(dp.rules(0), dp.rules(1)) << where;
  EXPECT_EQ(dp.dependencies(0), dp.dependencies(1)) << where;
  EXPECT_EQ(m.PolicyText(), policy) << where;
}

class ManagerIncrementalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_file_ = absl::StrCat(::testing::TempDir(), "/inc-state-", getpid(), "-",
                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
    Clean();
  }
  void TearDown() override { Clean(); }
  void Clean() {
    std::remove(state_file_.c_str());
    std::remove((state_file_ + ".log").c_str());
  }
  std::unique_ptr<Manager> Make(HostNetworkDatapath* host_network = nullptr) {
    auto m = std::make_unique<Manager>(
        dp_.get(), Manager::Options{.state_file = state_file_, .detach_on_exit = false,
                               .host_network = host_network});
    m->AddSource(std::make_unique<ListSource>(&world_));
    return m;
  }

  std::unique_ptr<FakeDatapath> dp_ = std::make_unique<FakeDatapath>();
  std::vector<ContainerInfo> world_;
  std::string state_file_;
};

// Random container events (come, go, relabel, re-address; one or several per round),
// policy changes and restarts (kill: the maps stay, the state file and journal are
// adopted): after every step the maps equal a from-scratch compile.
TEST_F(ManagerIncrementalTest, RandomEventsPolicyChangesAndRestartsEqualAFreshCompile) {
  const std::vector<std::string> roles = {"farm", "client", "db", ""};
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    std::mt19937 rng(seed);
    Clean();
    dp_ = std::make_unique<FakeDatapath>();
    world_.clear();
    std::map<int, ContainerInfo> alive;  // index -> container
    for (int i = 0; i < 12; ++i) alive[i] = Container(i, roles[rng() % roles.size()]);
    auto publish = [&] {
      world_.clear();
      for (const auto& [i, c] : alive) world_.push_back(c);
    };
    publish();
    std::string policy = PolicyText(rng() % 16);
    std::unique_ptr<Manager> m = Make();
    ASSERT_TRUE(m->Start().ok());
    ASSERT_TRUE(m->SetPolicy(Parse(policy), policy).ok());
    ASSERT_TRUE(m->Reconcile().errors.empty());
    for (int step = 0; step < 60; ++step) {
      const std::string where = absl::StrCat("seed ", seed, " step ", step);
      const int what = rng() % 10;
      if (what < 5) {
        for (int k = 1 + rng() % 2; k > 0; --k) {  // one or two containers change
          const int i = rng() % 24;
          switch (rng() % 3) {
            case 0: alive.erase(i); break;
            case 1: alive[i] = Container(i, roles[rng() % roles.size()]); break;
            default: alive[i] = Container(i, alive.count(i) ? alive[i].labels["role"] : "",
                                          /*moved=*/rng() % 2);
          }
        }
        publish();
        ReconcileReport r = m->Reconcile();
        ASSERT_TRUE(r.errors.empty()) << where << ": " << r.errors[0];
      } else if (what < 9) {
        const std::string next = PolicyText(rng() % 16);
        absl::StatusOr<StateDiff> diff = m->DiffPolicy(Parse(next));
        ASSERT_TRUE(diff.ok()) << diff.status();
        ASSERT_TRUE(m->SetPolicy(Parse(next), next).ok()) << where;
        policy = next;
      } else {
        m.reset();  // killed: maps untouched, state file and journal as they are
        m = Make();
        absl::StatusOr<std::string> adopted = m->Start();
        ASSERT_TRUE(adopted.ok()) << adopted.status();
        ASSERT_THAT(*adopted, HasSubstr("adopting saved state")) << where;
        ASSERT_TRUE(m->Reconcile().errors.empty()) << where;
      }
      ExpectFreshCompile(*m, *dp_, policy, where);
      if (HasFailure()) return;
    }
  }
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A policy change goes to the journal (the snapshot is not rewritten); killed after it,
// a restarted manager adopts the new policy and writes nothing.
TEST_F(ManagerIncrementalTest, JournalledPolicyChangeIsAdoptedAfterRestart) {
  for (int i = 0; i < 10; ++i) world_.push_back(Container(i, i < 2 ? "client" : "farm"));
  const std::string before = PolicyText(0), after = PolicyText(1);
  {
    std::unique_ptr<Manager> m = Make();
    ASSERT_TRUE(m->Start().ok());
    ASSERT_TRUE(m->SetPolicy(Parse(before), before).ok());
    ASSERT_TRUE(m->Reconcile().errors.empty());
    const std::string snapshot = ReadFile(state_file_);
    ASSERT_TRUE(m->SetPolicy(Parse(after), after).ok());
    EXPECT_EQ(ReadFile(state_file_), snapshot);  // no new snapshot
    EXPECT_THAT(ReadFile(state_file_ + ".log"), HasSubstr("tcp/9000-9003"));
  }  // killed
  absl::StatusOr<SavedState> saved = ReadStateFile(state_file_);
  ASSERT_TRUE(saved.ok()) << saved.status();
  EXPECT_EQ(saved->policy_text, after);
  EXPECT_FALSE(saved->pending.has_value());
  std::unique_ptr<Manager> m = Make();
  ASSERT_TRUE(m->Start().ok());
  const size_t writes = dp_->writes().size();
  ASSERT_TRUE(m->Reconcile().errors.empty());
  ExpectFreshCompile(*m, *dp_, after, "after restart");
  // Adoption rewrites every entry (what the maps hold is uncertain), removes nothing.
  for (size_t i = writes; i < dp_->writes().size(); ++i) {
    EXPECT_NE(dp_->writes()[i][0], '-') << dp_->writes()[i];
  }
}

// Killed between a policy change's journal record and its "done": the maps may hold any
// mix of both policies. The change never returned, so the restarted manager enforces the
// policy before it, exactly, removing what the new one had added.
TEST_F(ManagerIncrementalTest, CrashBetweenPolicyDeltaAndDoneRestoresThePolicyBefore) {
  for (int i = 0; i < 10; ++i) world_.push_back(Container(i, i < 2 ? "client" : "farm"));
  const std::string before = PolicyText(0), after = PolicyText(1 | 8);
  {
    std::unique_ptr<Manager> m = Make();
    ASSERT_TRUE(m->Start().ok());
    ASSERT_TRUE(m->SetPolicy(Parse(before), before).ok());
    ASSERT_TRUE(m->Reconcile().errors.empty());
    ASSERT_TRUE(m->SetPolicy(Parse(after), after).ok());
  }  // killed
  // Drop the last record ("done"): as if killed after the writes, before the record.
  std::string log = ReadFile(state_file_ + ".log");
  ASSERT_THAT(log, ::testing::EndsWith("{\"done\":true}\n"));
  log.resize(log.size() - std::string("{\"done\":true}\n").size());
  std::ofstream(state_file_ + ".log", std::ios::trunc) << log;
  absl::StatusOr<SavedState> saved = ReadStateFile(state_file_);
  ASSERT_TRUE(saved.ok()) << saved.status();
  EXPECT_EQ(saved->policy_text, before);
  ASSERT_TRUE(saved->pending.has_value());
  EXPECT_GT(saved->pending->rules.size(), saved->applied.rules.size());

  std::unique_ptr<Manager> m = Make();
  absl::StatusOr<std::string> adopted = m->Start();
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  EXPECT_THAT(*adopted, HasSubstr("an apply was interrupted"));
  ASSERT_TRUE(m->Reconcile().errors.empty());
  ExpectFreshCompile(*m, *dp_, before, "after restart");
  EXPECT_TRUE(dp_->hosts().count(Ipv4(192, 0, 2, 53)) == 0);  // the new policy's host group went
  // And the policy can change again from there.
  ASSERT_TRUE(m->SetPolicy(Parse(after), after).ok());
  ExpectFreshCompile(*m, *dp_, after, "changed again");
}

// With host-network containers a policy change is compiled whole (their gateway mirrors
// are in no slice): the mirror follows the new ports.
TEST_F(ManagerIncrementalTest, PolicyChangeWithHostNetworkContainersUpdatesTheMirrors) {
  NullHostNetwork hn;
  ContainerInfo farm = Container(3, "farm");
  ContainerInfo client;  // host network: no address, no veth
  client.name = "client";
  client.runtime_id = "rt-client";
  client.network_mode = "host";
  client.labels = {{"role", "farm"}};
  world_ = {Container(1, "client"), farm, client};
  const std::string before = PolicyText(0), after = PolicyText(1);
  std::unique_ptr<Manager> m = Make(&hn);
  ASSERT_TRUE(m->Start().ok());
  ASSERT_TRUE(m->SetPolicy(Parse(before), before).ok());
  ASSERT_TRUE(m->Reconcile().errors.empty());
  auto mirrors = [&] {  // tcp port blocks from containers to the gateway
    std::set<std::pair<uint16_t, uint16_t>> ports;
    for (const auto& [src, dst, proto, first, last] : dp_->rules()) {
      if (dst == kHostIdFirst && proto == 6) ports.insert({first, last});
    }
    return ports;
  };
  using Blocks = std::set<std::pair<uint16_t, uint16_t>>;
  EXPECT_EQ(mirrors(), (Blocks{{9000, 9000}}));
  ASSERT_TRUE(m->SetPolicy(Parse(after), after).ok());
  EXPECT_EQ(mirrors(), (Blocks{{9000, 9003}}));
}

// bastiond restarted with --policy: Start, then SetPolicy before the first round. The
// containers are not listed yet, so the policy cannot be compiled over them: the maps
// keep every adopted entry until the first round applies the policy over what exists.
TEST_F(ManagerIncrementalTest, PolicySetBeforeTheFirstRoundAfterARestartRemovesNothing) {
  for (int i = 0; i < 6; ++i) world_.push_back(Container(i, i < 2 ? "client" : "farm"));
  const std::string before = PolicyText(0), after = PolicyText(1);
  {
    std::unique_ptr<Manager> m = Make();
    ASSERT_TRUE(m->Start().ok());
    ASSERT_TRUE(m->SetPolicy(Parse(before), before).ok());
    ASSERT_TRUE(m->Reconcile().errors.empty());
  }  // killed
  const auto endpoints = dp_->endpoints();
  const auto dependencies = dp_->dependencies();
  std::unique_ptr<Manager> m = Make();
  ASSERT_TRUE(m->Start().ok());
  for (const std::string& policy : {before, after}) {
    ASSERT_TRUE(m->SetPolicy(Parse(policy), policy).ok());
    EXPECT_EQ(dp_->endpoints(), endpoints);
    EXPECT_EQ(dp_->dependencies(), dependencies);
  }
  // A policy the compiler refuses is refused already (checked over no containers).
  const std::string invalid = after + "hosts:\n  - {name: a, addresses: [192.0.2.1]}\n" +
                              "  - {name: b, addresses: [192.0.2.1]}\n";
  EXPECT_FALSE(m->SetPolicy(Parse(invalid), invalid).ok());
  ASSERT_TRUE(m->Reconcile().errors.empty());
  ExpectFreshCompile(*m, *dp_, after, "first round");
}

}  // namespace
}  // namespace dctk::bastion
