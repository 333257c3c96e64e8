#include "bastion/manager/manager.h"

#include <sys/stat.h>

#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bastion/datapath/testing/fake_datapath.h"
#include "bastion/manager/state_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::bastion {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
using testing::FakeDatapath;

class FakeSource : public ContainerSource {
 public:
  explicit FakeSource(std::string name = "fake") : name_(std::move(name)) {}
  std::string name() const override { return name_; }
  absl::StatusOr<std::vector<ContainerInfo>> List() override {
    if (!error.ok()) return error;
    return containers;
  }
  bool WaitForChange(absl::Duration) override { return true; }

  void Add(const std::string& name, int n, std::map<std::string, std::string> labels = {}) {
    ContainerInfo c;
    c.name = name;
    c.runtime_id = "rt-" + name;
    c.labels = std::move(labels);
    c.ip = Ipv4(10, 0, 0, static_cast<uint8_t>(n));
    c.mac.bytes = {2, 0, 0, 0, 0, static_cast<uint8_t>(n)};
    c.host_ifindex = 100 + n;
    c.gateway = Ipv4(10, 0, 0, 1);
    containers.push_back(c);
  }
  void Remove(const std::string& name) {
    std::erase_if(containers, [&](const ContainerInfo& c) { return c.name == name; });
  }

  // A host-network container: no address or veth; its processes in cgroup `cgroup`
  // (empty: the source cannot tell).
  void AddHostNetwork(const std::string& name, const std::string& cgroup,
                      std::map<std::string, std::string> labels = {}) {
    ContainerInfo c;
    c.name = name;
    c.runtime_id = "rt-" + name;
    c.labels = std::move(labels);
    c.network_mode = "host";
    containers.push_back(c);
    if (!cgroup.empty()) cgroups["rt-" + name] = cgroup;
  }
  absl::StatusOr<std::string> HostNetworkCgroup(const std::string& runtime_id) const override {
    auto it = cgroups.find(runtime_id);
    if (it == cgroups.end()) return absl::NotFoundError("no cgroup for " + runtime_id);
    return it->second;
  }

  std::vector<ContainerInfo> containers;
  std::map<std::string, std::string> cgroups;  // runtime id -> cgroup path
  absl::Status error;

 private:
  std::string name_;
};

// Records cgroup attachments (path -> container id).
class FakeHostNetwork : public HostNetworkDatapath {
 public:
  absl::Status AttachCgroup(const std::string& path, uint32_t id) override {
    ++attach_calls;
    attached[path] = id;
    return absl::OkStatus();
  }
  absl::Status DetachCgroup(const std::string& path) override {
    if (!attached.erase(path)) return absl::NotFoundError(path);
    return absl::OkStatus();
  }
  absl::Status DetachUnclaimed() override {
    ++unclaimed_calls;
    return absl::OkStatus();
  }
  std::map<std::string, uint32_t> attached;
  int attach_calls = 0;
  int unclaimed_calls = 0;
};

const char kPolicy[] =
    "version: 1\nservices:\n"
    "  - name: client\n    select: {names: [client]}\n"
    "    depends_on: [{service: farm, ports: [tcp/9000]}]\n"
    "  - name: farm\n    select: {labels: {role: farm}}\n"
    "    depends_on: [{service: farm, ports: [tcp/9000-9001]}]\n";

Policy Parse(const std::string& text) {
  absl::StatusOr<Policy> p = ParsePolicy(text, "policy.yaml");
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

class ManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_file_ = absl::StrCat(::testing::TempDir(), "/state-", getpid(), "-",
                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::remove(state_file_.c_str());
    std::remove((state_file_ + ".log").c_str());
  }
  void TearDown() override {
    std::remove(state_file_.c_str());
    std::remove((state_file_ + ".log").c_str());
  }
  std::unique_ptr<Manager> Make(bool detach_on_exit = true,
                                HostNetworkDatapath* host_network = nullptr) {
    auto source = std::make_unique<FakeSource>();
    source_ = source.get();
    auto m = std::make_unique<Manager>(&dp_, Manager::Options{.state_file = state_file_,
                                                              .detach_on_exit = detach_on_exit,
                                                              .host_network = host_network});
    m->AddSource(std::move(source));
    return m;
  }
  uint32_t IdOf(const Manager& m, const std::string& name) {
    for (const ContainerInfo& c : m.Containers()) {
      if (c.name == name) return c.id;
    }
    return 0;
  }

  FakeDatapath dp_;
  FakeSource* source_ = nullptr;
  std::string state_file_;
};

TEST_F(ManagerTest, DiscoversInstallsAndRemoves) {
  std::unique_ptr<Manager> m = Make();
  ASSERT_TRUE(m->Start().ok());
  source_->Add("client", 2);
  source_->Add("farm-1", 3, {{"role", "farm"}});
  ReconcileReport r = m->Reconcile();
  EXPECT_THAT(r.added, UnorderedElementsAre("client", "farm-1"));
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(dp_.attached(), (std::set<int>{102, 103}));
  EXPECT_EQ(dp_.endpoints().size(), 2u);
  EXPECT_EQ(dp_.hosts().at(Ipv4(10, 0, 0, 1)), kHostIdFirst);
  EXPECT_TRUE(dp_.dependencies().empty());  // no policy yet: everything denied

  ASSERT_TRUE(m->SetPolicy(Parse(kPolicy), kPolicy).ok());
  const uint32_t client = IdOf(*m, "client"), farm1 = IdOf(*m, "farm-1");
  EXPECT_EQ(dp_.dependencies(), (std::set<std::pair<uint32_t, uint32_t>>{{client, farm1}}));

  source_->Add("farm-2", 4, {{"role", "farm"}});
  r = m->Reconcile();
  EXPECT_THAT(r.added, ElementsAre("farm-2"));
  const uint32_t farm2 = IdOf(*m, "farm-2");
  EXPECT_EQ(IdOf(*m, "client"), client);  // ids are stable
  EXPECT_EQ(dp_.dependencies().size(), 4u);  // client->farm1, client->farm2, farm1<->farm2
  EXPECT_TRUE(dp_.rules().count({farm1, farm2, kTcp, 9000, 9001}));

  // Nothing changed: nothing written.
  const size_t writes = dp_.writes().size();
  EXPECT_TRUE(m->Reconcile().added.empty());
  EXPECT_EQ(dp_.writes().size(), writes);

  source_->Remove("farm-1");
  r = m->Reconcile();
  EXPECT_THAT(r.removed, ElementsAre("farm-1"));
  EXPECT_EQ(dp_.attached(), (std::set<int>{102, 104}));
  EXPECT_EQ(dp_.dependencies(), (std::set<std::pair<uint32_t, uint32_t>>{{client, farm2}}));
  EXPECT_EQ(dp_.bindings().size(), 2u);
  EXPECT_FALSE(dp_.endpoints().count(Ipv4(10, 0, 0, 3)));
  m.reset();
  EXPECT_TRUE(dp_.attached().empty());  // detach_on_exit
}

TEST_F(ManagerTest, InvalidPolicyKeepsTheRunningOne) {
  std::unique_ptr<Manager> m = Make();
  source_->Add("client", 2);
  source_->Add("farm-1", 3, {{"role", "farm"}});
  m->Reconcile();
  ASSERT_TRUE(m->SetPolicy(Parse(kPolicy), kPolicy).ok());
  const auto deps = dp_.dependencies();
  const std::string bad = "version: 1\nhosts: [{name: h, addresses: [10.0.0.3]}]\nservices: []\n";
  absl::Status s = m->SetPolicy(Parse(bad), bad);
  EXPECT_THAT(std::string(s.message()), HasSubstr("belongs to a container"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("running policy stays"));
  EXPECT_EQ(m->PolicyText(), kPolicy);
  EXPECT_EQ(dp_.dependencies(), deps);

  // A datapath failure mid-apply also keeps it (and the maps are rolled back).
  dp_.FailWriteAfter(1);
  const std::string other = "version: 1\nservices: []\n";
  EXPECT_FALSE(m->SetPolicy(Parse(other), other).ok());
  EXPECT_EQ(dp_.dependencies(), deps);
  EXPECT_EQ(m->PolicyText(), kPolicy);
}

TEST_F(ManagerTest, FailedListingIsNotADisappearance) {
  std::unique_ptr<Manager> m = Make();
  source_->Add("client", 2);
  m->Reconcile();
  source_->error = absl::UnavailableError("socket gone");
  ReconcileReport r = m->Reconcile();
  EXPECT_THAT(r.errors, ElementsAre(HasSubstr("socket gone")));
  EXPECT_TRUE(r.removed.empty());
  EXPECT_EQ(m->Containers().size(), 1u);
  EXPECT_EQ(dp_.attached().size(), 1u);
}

TEST_F(ManagerTest, FailedApplyLeavesContainersAsTheyWere) {
  std::unique_ptr<Manager> m = Make();
  source_->Add("client", 2);
  m->Reconcile();
  source_->Add("farm-1", 3);
  dp_.FailWriteAfter(0);
  ReconcileReport r = m->Reconcile();
  EXPECT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(m->Containers().size(), 1u);
  EXPECT_EQ(dp_.endpoints().size(), 1u);
  EXPECT_EQ(m->Reconcile().added.size(), 1u);  // the next round succeeds
  EXPECT_EQ(dp_.endpoints().size(), 2u);
}

// A restarted manager adopts the saved state: same ids, containers that came and went
// while it was down are installed/removed, and the maps end up exactly as a fresh
// install of the current world.
TEST_F(ManagerTest, RestartAdoptsSavedStateAndReconciles) {
  std::vector<ContainerInfo> world;
  uint32_t client = 0;
  {
    std::unique_ptr<Manager> m = Make(/*detach_on_exit=*/false);
    source_->Add("client", 2);
    source_->Add("farm-1", 3, {{"role", "farm"}});
    source_->Add("farm-2", 4, {{"role", "farm"}});
    m->Reconcile();
    ASSERT_TRUE(m->SetPolicy(Parse(kPolicy), kPolicy).ok());
    client = IdOf(*m, "client");
    world = source_->containers;
  }  // "killed": nothing detached, maps untouched
  EXPECT_EQ(dp_.attached().size(), 3u);

  std::unique_ptr<Manager> m = Make();
  source_->containers = world;
  source_->Remove("farm-2");          // went away while bastiond was down
  source_->Add("farm-3", 5, {{"role", "farm"}});  // came while it was down
  absl::StatusOr<std::string> adopted = m->Start();
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  EXPECT_THAT(*adopted, HasSubstr("adopting saved state: 3 containers"));
  m->Reconcile();
  EXPECT_EQ(m->PolicyText(), kPolicy);
  EXPECT_EQ(IdOf(*m, "client"), client);

  FakeDatapath fresh;
  {
    Manager f(&fresh, {});
    auto src = std::make_unique<FakeSource>();
    src->containers = source_->containers;
    f.AddSource(std::move(src));
    f.Reconcile();
    ASSERT_TRUE(f.SetPolicy(Parse(kPolicy), kPolicy).ok());
    // Same ids as the adopted manager, so the maps are comparable entry by entry.
    ASSERT_EQ(f.Running().dependencies.size(), m->Running().dependencies.size());
  }
  EXPECT_EQ(dp_.endpoints().size(), 3u);
  EXPECT_EQ(dp_.bindings().size(), 3u);
  EXPECT_EQ(dp_.dependencies().size(), fresh.dependencies().size());
  EXPECT_EQ(dp_.rules().size(), fresh.rules().size());
  EXPECT_EQ(dp_.dependencies(), m->Running().dependencies);
  EXPECT_FALSE(dp_.endpoints().count(Ipv4(10, 0, 0, 4)));
  EXPECT_TRUE(dp_.attached().count(105));
}

// With a state file, container events go to the journal (not a new snapshot), and a
// restarted manager replays it: same ids, and maps equal to a full compile.
TEST_F(ManagerTest, JournalledContainerEventsAreAdoptedAfterRestart) {
  uint32_t farm9 = 0;
  std::vector<ContainerInfo> world;
  {
    std::unique_ptr<Manager> m = Make(/*detach_on_exit=*/false);
    for (int i = 0; i < 8; ++i) source_->Add(absl::StrCat("farm-", i), 10 + i, {{"role", "farm"}});
    source_->Add("client", 2);
    m->Reconcile();
    ASSERT_TRUE(m->SetPolicy(Parse(kPolicy), kPolicy).ok());
    struct stat before;
    ASSERT_EQ(stat(state_file_.c_str(), &before), 0);
    source_->Remove("farm-3");
    source_->Add("farm-9", 40, {{"role", "farm"}});
    m->Reconcile();  // 2 of 9 touched: the slice path, journalled
    struct stat after, log;
    ASSERT_EQ(stat(state_file_.c_str(), &after), 0);
    EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);  // no new snapshot
    ASSERT_EQ(stat((state_file_ + ".log").c_str(), &log), 0);
    EXPECT_GT(log.st_size, 0);
    farm9 = IdOf(*m, "farm-9");
    world = source_->containers;
  }
  std::unique_ptr<Manager> m = Make();
  source_->containers = world;
  absl::StatusOr<std::string> adopted = m->Start();
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  EXPECT_THAT(*adopted, HasSubstr("adopting saved state: 9 containers"));
  m->Reconcile();
  EXPECT_EQ(IdOf(*m, "farm-9"), farm9);
  absl::StatusOr<DatapathState> full = CompilePolicy(Parse(kPolicy), m->Containers());
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(dp_.dependencies(), full->dependencies);
  EXPECT_EQ(dp_.rules().size(), full->rules.size());
  EXPECT_EQ(dp_.endpoints().size(), full->endpoints.size());
}

// Multicast groups under bastiond: members follow container events (the slice path,
// journalled), and a restarted manager adopts the groups from the state file.
TEST_F(ManagerTest, GroupMembersFollowContainerEventsAndSurviveRestart) {
  const std::string policy = std::string(kPolicy) +
                             "groups:\n  - {name: cm, address: 239.7.0.1, port: 7000, "
                             "members: {labels: {role: farm}}}\n";
  std::string with_sender = policy;
  with_sender.replace(with_sender.find("depends_on: [{service: farm, ports: [tcp/9000]}]"),
                      std::string("depends_on: [{service: farm, ports: [tcp/9000]}]").size(),
                      "depends_on: [{service: farm, ports: [tcp/9000]}, {group: cm}]");
  auto full = [&](const Manager& m) {
    absl::StatusOr<DatapathState> f = CompilePolicy(Parse(with_sender), m.Containers());
    EXPECT_TRUE(f.ok()) << f.status();
    return f.ok() ? *f : DatapathState{};
  };
  std::vector<ContainerInfo> world;
  {
    std::unique_ptr<Manager> m = Make(/*detach_on_exit=*/false);
    for (int i = 0; i < 8; ++i) source_->Add(absl::StrCat("farm-", i), 10 + i, {{"role", "farm"}});
    source_->Add("client", 2);
    m->Reconcile();
    ASSERT_TRUE(m->SetPolicy(Parse(with_sender), with_sender).ok());
    ASSERT_EQ(dp_.groups().size(), 1u);
    EXPECT_EQ(dp_.groups().at(Ipv4(239, 7, 0, 1)).members.size(), 8u);
    EXPECT_TRUE(dp_.dependencies().count({IdOf(*m, "client"), kGroupIdFirst}));
    source_->Remove("farm-3");
    source_->Add("farm-9", 40, {{"role", "farm"}});
    source_->containers[0].labels.clear();  // farm-0 leaves the group
    m->Reconcile();  // 3 of 9 touched: the slice path, journalled
    DatapathState want = full(*m);
    EXPECT_EQ(m->Running().groups, want.groups);
    EXPECT_EQ(dp_.groups(), want.groups);
    EXPECT_EQ(dp_.groups(0), dp_.groups(1));
    EXPECT_EQ(want.groups.at(Ipv4(239, 7, 0, 1)).members.size(), 7u);
    EXPECT_EQ(dp_.dependencies(), want.dependencies);
    world = source_->containers;
  }  // "killed": maps untouched
  // The state file (snapshot + the journalled slice) holds the groups as they were.
  absl::StatusOr<SavedState> saved = ReadStateFile(state_file_);
  ASSERT_TRUE(saved.ok()) << saved.status();
  EXPECT_EQ(saved->applied.groups, dp_.groups());
  std::unique_ptr<Manager> m = Make();
  source_->containers = world;
  source_->Add("farm-10", 41, {{"role", "farm"}});  // came while it was down
  absl::StatusOr<std::string> adopted = m->Start();
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  m->Reconcile();
  DatapathState want = full(*m);
  EXPECT_EQ(m->Running().groups, want.groups);
  EXPECT_EQ(dp_.groups(), want.groups);
  EXPECT_EQ(want.groups.at(Ipv4(239, 7, 0, 1)).members.size(), 8u);
  EXPECT_EQ(dp_.dependencies(), want.dependencies);
  EXPECT_EQ(m->Describe(kGroupIdFirst), "group:cm");
}

// Without a state file, a container change recompiles only the containers it touches;
// the maps must still end exactly as a full compile of the new world.
TEST_F(ManagerTest, IncrementalChangesEqualAFullCompile) {
  auto source = std::make_unique<FakeSource>();
  FakeSource* src = source.get();
  Manager m(&dp_, {});
  m.AddSource(std::move(source));
  for (int i = 0; i < 8; ++i) {
    src->Add(absl::StrCat("farm-", i), 10 + i, {{"role", "farm"}});
  }
  src->Add("client", 2);
  m.Reconcile();
  ASSERT_TRUE(m.SetPolicy(Parse(kPolicy), kPolicy).ok());
  src->Remove("farm-3");
  src->Add("farm-9", 40, {{"role", "farm"}});
  m.Reconcile();  // 2 of 9 touched: the incremental path
  src->containers[0].ip = Ipv4(10, 0, 0, 50);  // farm-0 re-addressed
  m.Reconcile();

  absl::StatusOr<DatapathState> full = CompilePolicy(Parse(kPolicy), m.Containers());
  ASSERT_TRUE(full.ok()) << full.status();
  DatapathState running = m.Running();
  EXPECT_EQ(running.dependencies, full->dependencies);
  EXPECT_EQ(running.rules, full->rules);
  EXPECT_EQ(running.hosts, full->hosts);
  EXPECT_EQ(running.endpoints.size(), full->endpoints.size());
  EXPECT_EQ(dp_.dependencies(), full->dependencies);
  EXPECT_EQ(dp_.rules().size(), full->rules.size());
  EXPECT_EQ(dp_.endpoints().size(), full->endpoints.size());
  EXPECT_TRUE(dp_.endpoints().count(Ipv4(10, 0, 0, 50)));
  EXPECT_FALSE(dp_.endpoints().count(Ipv4(10, 0, 0, 10)));
}

TEST_F(ManagerTest, PolicyChangeRewritesOnlyWhatChanged) {
  std::unique_ptr<Manager> m = Make(/*detach_on_exit=*/false);
  ASSERT_TRUE(m->Start().ok());
  for (int i = 0; i < 10; ++i) source_->Add(absl::StrCat("farm-", i), 10 + i, {{"role", "farm"}});
  source_->Add("client", 2);
  ASSERT_TRUE(m->SetPolicy(Parse(kPolicy), kPolicy).ok());
  m->Reconcile();
  // One rule changes: the client may also use tcp/9500 on each of the 10 farms.
  std::string next = kPolicy;
  next.replace(next.find("ports: [tcp/9000]"), 17, "ports: [tcp/9000, tcp/9500]");
  absl::StatusOr<StateDiff> diff = m->DiffPolicy(Parse(next));
  ASSERT_TRUE(diff.ok()) << diff.status();
  EXPECT_EQ(diff->added, 10);
  EXPECT_EQ(diff->changed + diff->removed, 0);
  const size_t writes = dp_.writes().size();
  ASSERT_TRUE(m->SetPolicy(Parse(next), next).ok());
  // The 10 new rule blocks in each generation and one activation; nothing else rewritten.
  EXPECT_EQ(dp_.writes().size() - writes, 2 * 10 + 1);

  absl::StatusOr<DatapathState> full = CompilePolicy(Parse(next), m->Containers());
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(m->Running().rules, full->rules);
  EXPECT_EQ(m->Running().dependencies, full->dependencies);
  FakeDatapath fresh;
  ASSERT_TRUE(ApplyState(fresh, {}, *full).ok());
  EXPECT_EQ(dp_.rules(), fresh.rules());
  EXPECT_EQ(dp_.dependencies(), fresh.dependencies());
  EXPECT_EQ(dp_.hosts(), fresh.hosts());
  EXPECT_EQ(dp_.endpoints(), fresh.endpoints());

  // The change is in the saved state: a restarted manager adopts it and writes nothing new.
  const std::vector<ContainerInfo> listed = source_->containers;
  m.reset();
  std::unique_ptr<Manager> again = Make(/*detach_on_exit=*/false);
  source_->containers = listed;
  ASSERT_TRUE(again->Start().ok());
  EXPECT_EQ(again->PolicyText(), next);
  again->Reconcile();
  EXPECT_EQ(again->Running().rules, full->rules);
  EXPECT_EQ(dp_.rules(), fresh.rules());
}

TEST_F(ManagerTest, EventsAreNamedAndUncoveredFlowsCounted) {
  std::unique_ptr<Manager> m = Make();
  source_->Add("client", 2);
  source_->Add("attacker", 6);
  m->Reconcile();
  std::unique_ptr<EventSubscription> sub = m->Subscribe();
  VerdictEvent e;
  e.container_id = IdOf(*m, "attacker");
  e.saddr = Ipv4(10, 0, 0, 6);
  e.daddr = Ipv4(10, 0, 0, 2);
  e.proto = kTcp;
  e.dport = 9000;
  e.reason = BASTION_DROP_NO_DEPENDENCY;
  dp_.PushEvent(e);
  dp_.PushEvent(e);
  EXPECT_EQ(m->PumpEvents(absl::Seconds(1)), 2);
  std::vector<NamedEvent> got = sub->Next(absl::Seconds(1));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].container, "attacker");
  EXPECT_EQ(got[0].src, "attacker");
  EXPECT_EQ(got[0].dst, "client");
  std::vector<UncoveredFlow> uncovered = m->Uncovered();
  ASSERT_EQ(uncovered.size(), 1u);
  EXPECT_EQ(uncovered[0].count, 2u);
  EXPECT_EQ(uncovered[0].dport, 9000);
}

const char kHostNetworkPolicy[] =
    "version: 1\nservices:\n"
    "  - name: monitor\n    select: {labels: {role: monitor}}\n"
    "  - name: agent\n    select: {labels: {role: agent}}\n"
    "    depends_on: [{service: farm, ports: [tcp/9000]}]\n"
    "  - name: farm\n    select: {labels: {role: farm}}\n"
    "    depends_on: [{service: agent, ports: [tcp/9100]}]\n";

TEST_F(ManagerTest, HostNetworkContainersAreAttachedByCgroupAndUnderPolicy) {
  FakeHostNetwork hn;
  std::unique_ptr<Manager> m = Make(/*detach_on_exit=*/true, &hn);
  ASSERT_TRUE(m->Start().ok());
  ASSERT_TRUE(m->SetPolicy(Parse(kHostNetworkPolicy), kHostNetworkPolicy).ok());
  source_->Add("farm-1", 3, {{"role", "farm"}});
  source_->AddHostNetwork("monitor", "/cg/monitor", {{"role", "monitor"}});
  source_->AddHostNetwork("agent", "/cg/agent", {{"role", "agent"}});
  ReconcileReport r = m->Reconcile();
  EXPECT_TRUE(r.errors.empty()) << r.errors[0];
  const uint32_t farm = IdOf(*m, "farm-1"), monitor = IdOf(*m, "monitor"),
                 agent = IdOf(*m, "agent");
  EXPECT_EQ(hn.attached, (std::map<std::string, uint32_t>{{"/cg/monitor", monitor},
                                                           {"/cg/agent", agent}}));
  EXPECT_EQ(hn.unclaimed_calls, 1);  // everything known and attached: leftovers go
  // Only the bridged container has an endpoint and a veth; the policy covers all three:
  // the agent uses the farm, the farm uses the agent (at the gateway for its own veth,
  // and as the agent for the cgroup program); the monitor uses nothing.
  EXPECT_EQ(dp_.endpoints(), (std::map<uint32_t, uint32_t>{{Ipv4(10, 0, 0, 3), farm}}));
  EXPECT_EQ(dp_.attached(), std::set<int>{103});
  EXPECT_EQ(dp_.dependencies(),
            (std::set<std::pair<uint32_t, uint32_t>>{{agent, farm}, {farm, agent}}));
  EXPECT_EQ(dp_.rules(), (std::set<FakeDatapath::RuleKey>{{agent, farm, kTcp, 9000, 9000},
                                                         {farm, agent, kTcp, 9100, 9100},
                                                         {farm, kHostIdFirst, kTcp, 9100, 9100}}));

  // A quiet round attaches again (idempotent: catches a container's new cgroup).
  const int calls = hn.attach_calls;
  m->Reconcile();
  EXPECT_EQ(hn.attach_calls, calls + 2);
  EXPECT_EQ(hn.unclaimed_calls, 1);

  // The agent goes: its cgroup is detached, its rules and the farm's mirror go too.
  source_->Remove("agent");
  r = m->Reconcile();
  EXPECT_THAT(r.removed, ElementsAre("agent"));
  EXPECT_EQ(hn.attached, (std::map<std::string, uint32_t>{{"/cg/monitor", monitor}}));
  EXPECT_TRUE(dp_.dependencies().empty());
  EXPECT_TRUE(dp_.rules().empty());

  m.reset();  // detach_on_exit
  EXPECT_TRUE(hn.attached.empty());
}

TEST_F(ManagerTest, HostNetworkContainerWithoutACgroupIsReported) {
  FakeHostNetwork hn;
  std::unique_ptr<Manager> m = Make(/*detach_on_exit=*/true, &hn);
  source_->AddHostNetwork("monitor", "", {{"role", "monitor"}});
  ReconcileReport r = m->Reconcile();
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_THAT(r.errors[0], HasSubstr("host-network container monitor is not enforced"));
  EXPECT_TRUE(hn.attached.empty());
  EXPECT_EQ(hn.unclaimed_calls, 0);  // a live container's leftovers may still be in force
  source_->cgroups["rt-monitor"] = "/cg/monitor";
  r = m->Reconcile();
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(hn.attached.size(), 1u);
  EXPECT_EQ(hn.unclaimed_calls, 1);
}

TEST_F(ManagerTest, HostNetworkEventsAreNamedByTheContainer) {
  FakeHostNetwork hn;
  std::unique_ptr<Manager> m = Make(/*detach_on_exit=*/true, &hn);
  source_->Add("farm-1", 3, {{"role", "farm"}});
  source_->AddHostNetwork("monitor", "/cg/monitor", {{"role", "monitor"}});
  m->Reconcile();
  std::unique_ptr<EventSubscription> sub = m->Subscribe();
  VerdictEvent e;
  e.container_id = IdOf(*m, "monitor");
  e.host_network = true;
  e.saddr = Ipv4(10, 0, 0, 1);  // the host's address on the bridge
  e.daddr = Ipv4(10, 0, 0, 3);
  e.proto = kTcp;
  e.dport = 7100;
  e.reason = BASTION_DROP_NO_DEPENDENCY;
  dp_.PushEvent(e);
  EXPECT_EQ(m->PumpEvents(absl::Seconds(1)), 1);
  std::vector<NamedEvent> got = sub->Next(absl::Seconds(1));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].src, "monitor");
  EXPECT_EQ(got[0].dst, "farm-1");
  ASSERT_EQ(m->Uncovered().size(), 1u);
  EXPECT_EQ(m->Uncovered()[0].src, "monitor");
}

// A container registered in the netns directory (bastion-oci-hook, bastion-cni) and also
// listed by the Docker API is one container: the registration (first source) keeps it,
// under its id, while both list it; when only the second lists it, that one counts.
TEST_F(ManagerTest, ContainerSeenByTwoSourcesIsOneContainer) {
  FakeDatapath dp;
  Manager m(&dp, {});
  auto registered = std::make_unique<FakeSource>("netns");
  auto docker = std::make_unique<FakeSource>("docker");
  FakeSource* reg = registered.get();
  FakeSource* api = docker.get();
  m.AddSource(std::move(registered));
  m.AddSource(std::move(docker));
  ASSERT_TRUE(m.SetPolicy(Parse(kPolicy), kPolicy).ok());
  reg->Add("client", 2);
  ReconcileReport r = m.Reconcile();
  EXPECT_TRUE(r.errors.empty());
  ASSERT_EQ(m.Containers().size(), 1u);
  const uint32_t id = m.Containers()[0].id;
  api->Add("client", 2);  // same veth (ifindex 102)
  api->containers.back().runtime_id = "0123abcd";
  api->Add("farm-1", 3, {{"role", "farm"}});
  r = m.Reconcile();
  EXPECT_TRUE(r.errors.empty()) << r.errors[0];
  EXPECT_THAT(r.added, ElementsAre("farm-1"));
  ASSERT_EQ(m.Containers().size(), 2u);
  for (const ContainerInfo& c : m.Containers()) {
    if (c.name == "client") EXPECT_EQ(c.id, id);
  }
  EXPECT_TRUE(m.Reconcile().added.empty());  // stable: nothing comes or goes
  reg->Remove("client");
  r = m.Reconcile();
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(m.Containers().size(), 2u);  // now the Docker API's view of it
}

TEST_F(ManagerTest, HostNetworkContainerSeenByTwoSourcesIsAttachedOnce) {
  FakeDatapath dp;
  FakeHostNetwork hn;
  Manager m(&dp, {.host_network = &hn});
  auto registered = std::make_unique<FakeSource>("netns");
  auto docker = std::make_unique<FakeSource>("docker");
  registered->AddHostNetwork("monitor", "/cg/monitor");
  docker->AddHostNetwork("monitor", "/cg/monitor");
  m.AddSource(std::move(registered));
  m.AddSource(std::move(docker));
  ASSERT_TRUE(m.SetPolicy(Parse(kPolicy), kPolicy).ok());
  ReconcileReport r = m.Reconcile();
  EXPECT_TRUE(r.errors.empty()) << r.errors[0];
  EXPECT_EQ(m.Containers().size(), 1u);
  EXPECT_EQ(hn.attached.size(), 1u);
}

}  // namespace
}  // namespace dctk::bastion
