// End to end with real containers: podman (runc) runs containers from a busybox image
// imported offline on a podman network of the test's own (netavark bridge), `podman
// system service` serves the Docker Engine API on a unix socket, and bastiond
// (--label_filter = this test's label, --poll_interval long enough that only runtime
// events can drive it) discovers them through it and enforces a policy: the allowed flow
// works, denied ones fail with their drop reasons in `bastionctl monitor`; a container
// without the label is not managed; a host-network one is listed as such; a container
// started later is enforced once its start event arrives, and a removed one disappears
// from the manager. Host-network (network-privileged) containers are under the same
// policy through their cgroups: one with no dependency (the "monitor") reaches no
// container port although the host itself may, one that depends on the server reaches
// its port and only that; enforcement survives kill -9 of bastiond, and a restarted
// bastiond takes the cgroups over and removes what a container gone meanwhile left.
// Needs root and podman; removes its containers, network, image, service, sockets,
// pinned maps and state also when a check fails.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "bastion/datapath/cgroup.h"
#include "bastion/datapath/testing/netns_lab.h"
#include "bastion/manager/docker_source.h"
#include "common/process/run_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace dctk::bastion {
namespace {

using testing::StartChild;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPodman[] = "podman --runtime runc ";

class PodmanE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (podman, BPF)";
    if (!RunCommand("podman --version").ok()) GTEST_SKIP() << "podman is not installed";
    tag_ = absl::StrCat(getpid());
    image_ = "localhost/bastion-e2e-" + tag_;
    api_socket_ = "/tmp/bpe" + tag_ + ".sock";
    ctl_socket_ = "unix:/tmp/bpe" + tag_ + "b.sock";
    const std::string root = ::testing::TempDir() + "/rootfs-" + tag_;
    ASSERT_TRUE(RunCommand(absl::StrCat(
                    "mkdir -p ", root, "/bin && cp /bin/busybox ", root, "/bin/ && for t in sh nc "
                    "sleep echo; do ln -sf busybox ", root, "/bin/$t; done && tar -C ", root,
                    " -cf ", root, ".tar . && podman import ", root, ".tar ", image_))
                    .ok());
    made_image_ = true;
    network_ = "bpe" + tag_;
    ASSERT_TRUE(RunCommand(absl::StrCat(kPodman, "network create ", network_)).ok());
    made_network_ = true;
    service_ = StartChild(
        absl::StrCat("podman system service --time=0 unix://", api_socket_));
    // The service is up when its API answers; bounded wait.
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (!DockerApiGet(api_socket_, "/_ping").ok()) {
      ASSERT_LT(absl::Now(), deadline) << "podman system service did not come up";
      absl::SleepFor(absl::Milliseconds(100));
    }
    Run("server", "server", "nc -ll -p 8080 -e /bin/echo hello");
    Run("client", "client", "sleep 600");
    Run("attacker", "attacker", "sleep 600");
    Run("outsider", "client", "sleep 600", /*labelled=*/false);
    Run("hostnet", "client", "sleep 600", /*labelled=*/true, /*host_network=*/true);
    Run("monitor", "monitor", "sleep 600", /*labelled=*/true, /*host_network=*/true);
    policy_ = ::testing::TempDir() + "/policy-" + tag_ + ".yaml";
    // The monitor is in no service: it depends on nothing. The host (its address on the
    // bridge, `gateway`) may use the server's port.
    std::ofstream(policy_) << "version: 1\nservices:\n"
                              "  - name: client\n    select: {labels: {role: client}}\n"
                              "    depends_on: [{service: server, ports: [tcp/8080]}]\n"
                              "  - name: server\n    select: {labels: {role: server}}\n"
                              "    accepts: [{host: gateway, ports: [tcp/8080]}]\n";
    pin_dir_ = "/sys/fs/bpf/bpe" + tag_;
    state_file_ = ::testing::TempDir() + "/state-" + tag_ + ".json";
  }

  void TearDown() override {
    monitor_.reset();
    bastiond_.reset();
    for (const std::string& name : containers_) {
      RunCommand(absl::StrCat("podman rm -f -t 0 ", name)).IgnoreError();
    }
    if (made_network_) RunCommand(absl::StrCat(kPodman, "network rm -f ", network_)).IgnoreError();
    service_.reset();
    if (made_image_) RunCommand("podman rmi -f " + image_).IgnoreError();
    // Pinned maps and saved state of the restart test (programs went with the cgroups and
    // veths of the containers and the network).
    RunCommand(absl::StrCat("rm -rf ", api_socket_, " ", ctl_socket_.substr(5), " ",
                            ::testing::TempDir(), "/rootfs-", tag_, "* ", pin_dir_, " ",
                            state_file_, " ", state_file_, ".log"))
        .IgnoreError();
  }

  std::string Name(const std::string& role) { return absl::StrCat("bpe-", role, "-", tag_); }

  // A container labelled role=`label` (and with the test's own label if `labelled`) on
  // the test's network, or on the host's with `host_network`.
  void Run(const std::string& role, const std::string& label, const std::string& command,
           bool labelled = true, bool host_network = false) {
    containers_.push_back(Name(role));
    absl::StatusOr<std::string> out = RunCommand(absl::StrCat(
        kPodman, "run -d --name ", Name(role), " --label role=", label,
        labelled ? " --label bpe=" + tag_ : "", " --network ",
        host_network ? std::string("host") : network_,
        " --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 ", image_, " ", command));
    ASSERT_TRUE(out.ok()) << out.status();
  }

  std::string Ip(const std::string& role) {
    absl::StatusOr<std::string> out = RunCommand(
        "podman inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' " +
        Name(role));
    return out.ok() ? std::string(absl::StripAsciiWhitespace(*out)) : "";
  }

  std::string Exec(const std::string& role, const std::string& command) {
    absl::StatusOr<std::string> out =
        RunCommand(absl::StrCat("podman exec ", Name(role), " ", command, " </dev/null"));
    return out.ok() ? *out : "failed: " + std::string(out.status().message());
  }

  void WaitForLine(ChildProcess& child, const std::string& want) {
    for (;;) {
      absl::StatusOr<std::string> line = child.ReadLine(absl::Seconds(20));
      ASSERT_TRUE(line.ok()) << "waiting for '" << want << "': " << line.status();
      if (absl::StrContains(*line, want)) return;
    }
  }

  std::string Containers() {
    absl::StatusOr<std::string> out =
        RunCommand(absl::StrCat("bastion/cli/bastionctl --server=", ctl_socket_, " containers"));
    return out.ok() ? *out : "failed: " + std::string(out.status().message());
  }

  // bastiond for this test's containers; `flags` adds to the common ones.
  std::unique_ptr<ChildProcess> StartBastiond(const std::string& flags) {
    // Ten minutes between polls: after the first round only runtime events wake bastiond.
    return StartChild(absl::StrCat(
        "bastion/manager/bastiond --netns_dir= --poll_interval=10m --label_filter=bpe=", tag_,
        " --docker_socket=", api_socket_, " --listen=", ctl_socket_, " --policy=", policy_, " ",
        flags));
  }

  // The cgroup v2 directory a container's processes run in.
  std::string CgroupOf(const std::string& role) {
    absl::StatusOr<std::string> pid =
        RunCommand("podman inspect -f '{{.State.Pid}}' " + Name(role));
    int n = 0;
    if (!pid.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*pid), &n)) return "";
    absl::StatusOr<std::string> cgroup = ProcessCgroup(n);
    return cgroup.ok() ? *cgroup : "";
  }

  // Bastion programs attached to a cgroup (bpftool lists them by name).
  int BastionPrograms(const std::string& cgroup) {
    absl::StatusOr<std::string> out = RunCommand("bpftool cgroup show " + cgroup);
    if (!out.ok()) return -1;
    int n = 0;
    for (absl::string_view line : absl::StrSplit(*out, '\n')) n += absl::StrContains(line, " bastion_");
    return n;
  }

  // Entries of the pinned cgroup-binding map.
  int CgroupBindings() {
    absl::StatusOr<std::string> out =
        RunCommand("bpftool -j map dump pinned " + pin_dir_ + "/bastion_cgroups");
    if (!out.ok()) return -1;
    nlohmann::json j = nlohmann::json::parse(*out, nullptr, false);
    return j.is_array() ? static_cast<int>(j.size()) : -1;
  }

  uint64_t Counter(const std::string& verdict) {
    absl::StatusOr<std::string> out =
        RunCommand(absl::StrCat("bastion/cli/bastionctl --server=", ctl_socket_, " counters"));
    if (!out.ok()) return 0;
    for (absl::string_view line : absl::StrSplit(*out, '\n')) {
      std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
      uint64_t n = 0;
      if (f.size() == 2 && f[0] == verdict && absl::SimpleAtoi(f[1], &n)) return n;
    }
    return 0;
  }

  // A connection from the host itself (this process: not in any container's cgroup).
  std::string FromHost(const std::string& ip, int port) {
    absl::StatusOr<std::string> out =
        RunCommand(absl::StrCat("busybox nc -w 3 ", ip, " ", port, " </dev/null"));
    return out.ok() ? *out : "failed: " + std::string(out.status().message());
  }

  std::string tag_, image_, api_socket_, ctl_socket_, policy_, network_, pin_dir_, state_file_;
  bool made_image_ = false;
  bool made_network_ = false;
  std::vector<std::string> containers_;
  std::unique_ptr<ChildProcess> service_, bastiond_, monitor_;
};

TEST_F(PodmanE2eTest, DiscoversThroughThePodmanApiAndEnforces) {
  bastiond_ = StartBastiond("--pin_dir= --state_file= --cleanup_on_exit");
  WaitForLine(*bastiond_, "bastiond: ready");
  const std::string containers = Containers();
  for (const char* role : {"server", "client", "attacker", "hostnet"}) {
    EXPECT_THAT(containers, HasSubstr(Name(role)));
  }
  EXPECT_THAT(containers, Not(HasSubstr(Name("outsider"))));  // not this run's label
  EXPECT_THAT(containers, HasSubstr(Ip("server")));
  EXPECT_THAT(containers, ContainsRegex(Name("hostnet") + " .* host "));
  EXPECT_THAT(containers, ContainsRegex(Name("monitor") + " .* host "));

  monitor_ = StartChild(
      absl::StrCat("bastion/cli/bastionctl --server=", ctl_socket_, " monitor"));
  WaitForLine(*monitor_, "monitoring verdict events");
  const std::string server = Ip("server");
  EXPECT_THAT(Exec("client", "nc -w 3 " + server + " 8080"), HasSubstr("hello"));
  EXPECT_THAT(Exec("client", "nc -w 2 " + server + " 8081"), Not(HasSubstr("hello")));
  WaitForLine(*monitor_, absl::StrCat("DROP policy_denied ", Name("client"), " -> ",
                                      Name("server"), " tcp"));
  EXPECT_THAT(Exec("attacker", "nc -w 2 " + server + " 8080"), Not(HasSubstr("hello")));
  WaitForLine(*monitor_, absl::StrCat("DROP arp_no_dependency ", Name("attacker"), " -> ",
                                      Name("server"), " arp"));

  // A container started now is picked up from its start event (no poll comes for 10 min)
  // and enforced: as a client it reaches the server; the server's tcp/8081 stays closed.
  Run("late", "client", "sleep 600");
  WaitForLine(*bastiond_, "containers added: " + Name("late"));
  EXPECT_THAT(Containers(), HasSubstr(Name("late")));
  EXPECT_THAT(Exec("late", "nc -w 3 " + server + " 8080"), HasSubstr("hello"));
  EXPECT_THAT(Exec("late", "nc -w 2 " + server + " 8081"), Not(HasSubstr("hello")));
  WaitForLine(*monitor_, absl::StrCat("DROP policy_denied ", Name("late"), " -> ",
                                      Name("server"), " tcp"));

  // Removed: gone from the manager after its events, the others unaffected.
  ASSERT_TRUE(RunCommand(absl::StrCat("podman rm -f -t 0 ", Name("late"))).ok());
  WaitForLine(*bastiond_, "containers removed: " + Name("late"));
  EXPECT_THAT(Containers(), Not(HasSubstr(Name("late"))));
  EXPECT_THAT(Exec("client", "nc -w 3 " + server + " 8080"), HasSubstr("hello"));
}

TEST_F(PodmanE2eTest, HostNetworkContainersAreEnforcedAcrossRestarts) {
  const std::string flags = absl::StrCat("--pin_dir=", pin_dir_, " --state_file=", state_file_);
  bastiond_ = StartBastiond(flags);
  WaitForLine(*bastiond_, "bastiond: ready");
  const std::string hostnet_cgroup = CgroupOf("hostnet"), monitor_cgroup = CgroupOf("monitor");
  ASSERT_FALSE(hostnet_cgroup.empty());
  ASSERT_FALSE(monitor_cgroup.empty());
  EXPECT_EQ(BastionPrograms(hostnet_cgroup), 2);  // egress and ingress
  EXPECT_EQ(BastionPrograms(monitor_cgroup), 2);
  EXPECT_EQ(CgroupBindings(), 2);

  monitor_ = StartChild(
      absl::StrCat("bastion/cli/bastionctl --server=", ctl_socket_, " monitor"));
  WaitForLine(*monitor_, "monitoring verdict events");
  const std::string server = Ip("server");
  // The monitor depends on nothing: the server's port is closed to it, dropped at its
  // own cgroup (the host may use that port: the policy says so, and it does below).
  const uint64_t no_dependency = Counter("no_dependency");
  EXPECT_THAT(Exec("monitor", "nc -w 2 " + server + " 8080"), Not(HasSubstr("hello")));
  WaitForLine(*monitor_, absl::StrCat("DROP no_dependency ", Name("monitor"), " -> ",
                                      Name("server"), " tcp"));
  EXPECT_GT(Counter("no_dependency"), no_dependency);
  EXPECT_THAT(FromHost(server, 8080), HasSubstr("hello"));
  // The host-network client reaches its dependency's port, and only that one.
  EXPECT_THAT(Exec("hostnet", "nc -w 3 " + server + " 8080"), HasSubstr("hello"));
  const uint64_t policy_denied = Counter("policy_denied");
  EXPECT_THAT(Exec("hostnet", "nc -w 2 " + server + " 8081"), Not(HasSubstr("hello")));
  WaitForLine(*monitor_, absl::StrCat("DROP policy_denied ", Name("hostnet"), " -> ",
                                      Name("server"), " tcp"));
  EXPECT_GT(Counter("policy_denied"), policy_denied);

  // kill -9: the programs belong to the cgroups, enforcement stays.
  monitor_.reset();
  bastiond_.reset();
  EXPECT_THAT(Exec("monitor", "nc -w 2 " + server + " 8080"), Not(HasSubstr("hello")));
  EXPECT_THAT(Exec("hostnet", "nc -w 3 " + server + " 8080"), HasSubstr("hello"));
  EXPECT_THAT(FromHost(server, 8080), HasSubstr("hello"));
  // While it is down the monitor goes (its cgroup with it).
  ASSERT_TRUE(RunCommand(absl::StrCat("podman rm -f -t 0 ", Name("monitor"))).ok());

  // The restarted bastiond takes the hostnet cgroup over (its programs replace the old
  // ones: still two) and removes the monitor's binding.
  bastiond_ = StartBastiond(flags);
  WaitForLine(*bastiond_, "adopting saved state");
  WaitForLine(*bastiond_, "bastiond: ready");
  EXPECT_EQ(BastionPrograms(hostnet_cgroup), 2);
  EXPECT_EQ(CgroupBindings(), 1);
  EXPECT_THAT(Exec("hostnet", "nc -w 3 " + server + " 8080"), HasSubstr("hello"));
  EXPECT_THAT(Exec("hostnet", "nc -w 2 " + server + " 8081"), Not(HasSubstr("hello")));

  // A new host-network container is attached from its start event, enforced, and
  // detached when it is removed.
  Run("monitor2", "monitor", "sleep 600", /*labelled=*/true, /*host_network=*/true);
  WaitForLine(*bastiond_, "containers added: " + Name("monitor2"));
  EXPECT_EQ(BastionPrograms(CgroupOf("monitor2")), 2);
  EXPECT_EQ(CgroupBindings(), 2);
  EXPECT_THAT(Exec("monitor2", "nc -w 2 " + server + " 8080"), Not(HasSubstr("hello")));
  ASSERT_TRUE(RunCommand(absl::StrCat("podman rm -f -t 0 ", Name("monitor2"))).ok());
  WaitForLine(*bastiond_, "containers removed: " + Name("monitor2"));
  EXPECT_EQ(CgroupBindings(), 1);
  EXPECT_THAT(Exec("hostnet", "nc -w 3 " + server + " 8080"), HasSubstr("hello"));
}

}  // namespace
}  // namespace dctk::bastion
