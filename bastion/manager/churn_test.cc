// Container churn against the real datapath (issue 9): 1,000 dctk namespace containers
// created and removed in bursts of 250 on four bridges, the Manager (with the real
// BpfDatapath, maps pinned) reconciling after each burst. After every burst the pinned
// maps hold exactly the live containers' endpoints and bindings (read back with
// bpftool), a sample of live veths carries the programs, the manager tracks no stale ids, and at
// the end everything is gone. Root only; deletes its namespaces and pins on failure.
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bastion/datapath/bpf_datapath.h"
#include "bastion/manager/manager.h"
#include "bastion/manager/netns_containers.h"
#include "common/process/run_command.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace dctk::bastion {
namespace {

constexpr int kContainers = 1000;
constexpr int kBurst = 250;
constexpr int kPerBridge = 250;

class ChurnTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, BPF)";
    tag_ = absl::StrCat(getpid() % 100000);
    host_ = "bch" + tag_;
    dir_ = ::testing::TempDir() + "/churn-" + tag_;
    pin_dir_ = "/sys/fs/bpf/bch" + tag_;
    ASSERT_TRUE(RunCommand("ip netns add " + host_).ok());
    made_host_ = true;
    for (int b = 0; b < kContainers / kPerBridge; ++b) {
      ASSERT_TRUE(CreateBridge(Net(b)).ok());
    }
    // This thread joins the host namespace: veth names resolve and tc attaches there.
    ASSERT_TRUE(Enter(host_).ok());
    // bpffs first: on a fresh machine /sys/fs/bpf is a read-only sysfs directory.
    ASSERT_TRUE(RunCommand("(mount | grep -q ' /sys/fs/bpf type bpf' || "
                           "mount -t bpf bpf /sys/fs/bpf) && mkdir -p " + pin_dir_)
                    .ok());
  }

  void TearDown() override {
    manager_.reset();
    datapath_.reset();
    Leave();
    for (int i : live_) DeleteNamespaceContainer(Name(i), dir_).IgnoreError();
    if (made_host_) RunCommand("ip netns del " + host_).IgnoreError();
    RunCommand("rm -rf " + pin_dir_ + " " + dir_).IgnoreError();
  }

  NamespaceNetwork Net(int bridge) {
    return {.host_netns = host_, .bridge = absl::StrCat("br", bridge),
            .prefix = absl::StrCat("10.216.", bridge)};
  }
  std::string Name(int i) { return absl::StrCat("q", tag_, "-", i); }

  absl::Status Enter(const std::string& netns) {
    saved_ = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    int fd = open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) return absl::InternalError("setns " + netns);
    close(fd);
    return absl::OkStatus();
  }
  void Leave() {
    if (saved_ < 0) return;
    setns(saved_, CLONE_NEWNET);
    close(saved_);
    saved_ = -1;
  }

  // Entries in a pinned map (bpftool prints a JSON array of them).
  size_t PinnedEntries(const std::string& map) {
    absl::StatusOr<std::string> out =
        RunCommand("bpftool -j map dump pinned " + pin_dir_ + "/" + map);
    if (!out.ok()) return static_cast<size_t>(-1);
    nlohmann::json j = nlohmann::json::parse(*out, nullptr, false);
    return j.is_array() ? j.size() : static_cast<size_t>(-1);
  }

  // Entries of the dependency map in policy generation `gen` (byte 8 of the key,
  // bastion_dependency_key.gen; bpftool prints key bytes as "0x.." strings).
  size_t PinnedDependencies(int gen) {
    absl::StatusOr<std::string> out =
        RunCommand("bpftool -j map dump pinned " + pin_dir_ + "/bastion_dependencies");
    if (!out.ok()) return static_cast<size_t>(-1);
    nlohmann::json j = nlohmann::json::parse(*out, nullptr, false);
    if (!j.is_array()) return static_cast<size_t>(-1);
    size_t n = 0;
    for (const nlohmann::json& e : j) {
      const nlohmann::json key = e.value("key", nlohmann::json());
      if (!key.is_array() || key.size() < 9 || !key[8].is_string()) return static_cast<size_t>(-1);
      if (std::stoi(key[8].get<std::string>(), nullptr, 16) == gen) ++n;
    }
    return n;
  }

  void CheckConsistent() {
    std::vector<ContainerInfo> containers = manager_->Containers();
    ASSERT_EQ(containers.size(), live_.size());
    std::set<std::string> names;
    for (const ContainerInfo& c : containers) names.insert(c.name);
    for (int i : live_) ASSERT_TRUE(names.count(Name(i))) << Name(i);
    EXPECT_EQ(PinnedEntries("bastion_endpoints"), live_.size());
    EXPECT_EQ(PinnedEntries("bastion_bindings"), live_.size());
    // Both policy generations hold exactly the compiled dependencies.
    EXPECT_EQ(PinnedDependencies(0), manager_->Running().dependencies.size());
    EXPECT_EQ(PinnedDependencies(1), manager_->Running().dependencies.size());
    EXPECT_EQ(manager_->TrackedIds(), live_.size());  // memory: nothing kept for the dead
    // A sample of live veths carries both programs.
    int checked = 0;
    for (int i : live_) {
      if (checked++ == 5) break;
      const std::string veth = NamespaceContainerVeth(Name(i));
      absl::StatusOr<std::string> in = RunCommand("tc filter show dev " + veth + " ingress");
      absl::StatusOr<std::string> out = RunCommand("tc filter show dev " + veth + " egress");
      EXPECT_TRUE(in.ok() && in->find("bastion_from_co") != std::string::npos) << veth;
      EXPECT_TRUE(out.ok() && out->find("bastion_to_cont") != std::string::npos) << veth;
    }
  }

  std::string tag_, host_, dir_, pin_dir_;
  bool made_host_ = false;
  int saved_ = -1;
  std::set<int> live_;
  std::unique_ptr<BpfDatapath> datapath_;
  std::unique_ptr<Manager> manager_;
};

TEST_F(ChurnTest, ThousandContainersInBurstsLeaveNothingStale) {
  absl::StatusOr<std::unique_ptr<BpfDatapath>> dp = BpfDatapath::Create({.pin_dir = pin_dir_});
  ASSERT_TRUE(dp.ok()) << dp.status();
  datapath_ = std::move(*dp);
  manager_ = std::make_unique<Manager>(datapath_.get(), Manager::Options{});
  manager_->AddSource(std::make_unique<NamespaceContainerSource>(dir_));
  // Each container depends on the next one of its group of 10.
  std::string policy = "version: 1\nservices:\n";
  for (int g = 0; g < kContainers / 10; ++g) {
    absl::StrAppend(&policy, "  - name: g", g, "\n    select: {labels: {group: g", g,
                    "}}\n    depends_on: [{service: g", g, ", ports: [tcp/7000]}]\n");
  }
  ASSERT_TRUE(manager_->SetPolicy(*ParsePolicy(policy, "churn.yaml"), policy).ok());

  auto create = [&](int first, int count) {
    for (int i = first; i < first + count; ++i) {
      ASSERT_TRUE(CreateNamespaceContainer(Net(i / kPerBridge),
                                           {.name = Name(i), .index = 2 + i % kPerBridge,
                                            .labels = {{"group", absl::StrCat("g", i / 10)}}},
                                           dir_)
                      .ok());
      live_.insert(i);
    }
  };
  auto remove = [&](int first, int count, int step) {
    for (int i = first; i < first + count; i += step) {
      if (!live_.count(i)) continue;
      ASSERT_TRUE(DeleteNamespaceContainer(Name(i), dir_).ok()) << Name(i);
      live_.erase(i);
    }
  };
  // Up to 1,000 in bursts, with removals between.
  for (int b = 0; b < kContainers / kBurst; ++b) {
    create(b * kBurst, kBurst);
    const absl::Time start = absl::Now();
    ReconcileReport r = manager_->Reconcile();
    // Informational (no timed assertion): a round with 250 new veths at 250*(b+1).
    std::printf("burst %d: %zu added, reconcile with attach %.0f ms\n", b, r.added.size(),
                absl::ToDoubleMilliseconds(absl::Now() - start));
    EXPECT_TRUE(r.errors.empty()) << r.errors.front();
    CheckConsistent();
  }
  remove(0, kContainers, 2);  // every other one: a burst of 500 removals
  manager_->Reconcile();
  CheckConsistent();
  // The freed names and addresses come back (even ones of the first burst).
  for (int i = 0; i < kBurst; i += 2) create(i, 1);
  manager_->Reconcile();
  CheckConsistent();
  remove(0, kContainers, 1);
  manager_->Reconcile();
  CheckConsistent();
  EXPECT_EQ(PinnedEntries("bastion_endpoints"), 0u);
  EXPECT_EQ(PinnedEntries("bastion_dependencies"), 0u);
  EXPECT_EQ(PinnedEntries("bastion_policy"), 0u);
}

}  // namespace
}  // namespace dctk::bastion
