// bastiond for real, as separate processes: namespace containers on a bridge in a
// test-made host namespace, bastiond enforcing a policy file, bastionctl reading the
// event stream. Allowed flows work; denied flows fail with the right drop reason in the
// stream; kill -9 of bastiond changes nothing on the datapath; a restarted bastiond
// adopts the pinned maps and reconciles containers that came and went meanwhile. A
// host-network namespace container (processes in the host namespace and a cgroup of its
// own) is under the policy by its cgroup: it reaches no container the host may reach.
// Needs root (namespaces, BPF); cleans up namespaces, pins and processes on failure too.
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "bastion/datapath/testing/netns_lab.h"
#include "bastion/manager/netns_containers.h"
#include "common/process/run_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::bastion {
namespace {

using testing::StartChild;
using ::testing::HasSubstr;

constexpr char kTool[] = "python3 bastion/datapath/testdata/netns_tool.py ";

class BastiondTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, BPF)";
    const std::string tag = absl::StrCat(getpid());
    net_ = {.host_netns = "bsm" + tag, .bridge = "br0", .prefix = "10.214.0"};
    client_ = "c" + tag;
    server_ = "s" + tag;
    attacker_ = "x" + tag;
    late_ = "l" + tag;
    tmp_ = ::testing::TempDir();
    dir_ = tmp_ + "/containers-" + tag;
    pin_dir_ = "/sys/fs/bpf/bsm" + tag;
    socket_ = "unix:/tmp/bsm" + tag + ".sock";  // unix socket paths are short
    policy_ = tmp_ + "/policy-" + tag + ".yaml";
    std::ofstream(policy_) << "version: 1\nservices:\n"
                              "  - name: client\n    select: {labels: {role: client}}\n"
                              "    depends_on: [{service: server, ports: [tcp/1024-65535]}]\n"
                              "  - name: server\n    select: {labels: {role: server}}\n"
                              "    accepts: [{host: gateway, ports: [tcp/1024-65535]}]\n";
    ASSERT_TRUE(RunCommand("ip netns add " + net_.host_netns).ok());
    made_netns_ = true;
    ASSERT_TRUE(CreateBridge(net_).ok());
    ASSERT_TRUE(Make(client_, 2, "client").ok());
    ASSERT_TRUE(Make(server_, 3, "server").ok());
    ASSERT_TRUE(Make(attacker_, 4, "attacker").ok());
  }

  void TearDown() override {
    monitor_.reset();
    bastiond_.reset();
    for (const std::string& name : made_) DeleteNamespaceContainer(name, dir_).IgnoreError();
    if (made_netns_) RunCommand("ip netns del " + net_.host_netns).IgnoreError();
    RunCommand(absl::StrCat("rm -rf ", pin_dir_, " ", dir_, " ", socket_.substr(5), " ", tmp_,
                            "/state-", getpid(), ".json*"))
        .IgnoreError();
  }

  absl::Status Make(const std::string& name, int index, const std::string& role) {
    made_.push_back(name);
    return CreateNamespaceContainer(net_, {.name = name, .index = index, .labels = {{"role", role}}},
                                    dir_);
  }

  void StartBastiond(const std::string& expect_first_line) {
    bastiond_ = StartChild(absl::StrCat(
        "bastion/manager/bastiond --netns=", net_.host_netns, " --listen=", socket_,
        " --netns_dir=", dir_, " --pin_dir=", pin_dir_, " --state_file=", tmp_, "/state-",
        getpid(), ".json --policy=", policy_));
    absl::StatusOr<std::string> line = bastiond_->ReadLine(absl::Seconds(20));
    ASSERT_TRUE(line.ok()) << line.status() << " / " << bastiond_->ReadErrLine(absl::Seconds(1)).value_or("");
    EXPECT_THAT(*line, HasSubstr(expect_first_line));
    WaitForLine(*bastiond_, "bastiond: ready");
  }

  void WaitForLine(ChildProcess& child, const std::string& want) {
    for (;;) {
      absl::StatusOr<std::string> line = child.ReadLine(absl::Seconds(20));
      ASSERT_TRUE(line.ok()) << "waiting for '" << want << "': " << line.status();
      if (absl::StrContains(*line, want)) return;
    }
  }

  std::string Ctl(const std::string& args) {
    absl::StatusOr<std::string> out =
        RunCommand(absl::StrCat("bastion/cli/bastionctl --server=", socket_, " ", args));
    return out.ok() ? *out : std::string(out.status().message());
  }

  // Connects from `from` to the server's fresh listener; "reply hi" on success.
  std::string Connect(const std::string& from, int port = 0) {
    return ConnectWith("ip netns exec " + NamespaceContainerNetns(from) + " ", port);
  }
  // The same, the client run with the command prefix `run`.
  std::string ConnectWith(const std::string& run, int port = 0) {
    std::unique_ptr<ChildProcess> server = StartChild(absl::StrCat("ip netns exec ", NamespaceContainerNetns(server_), " ", kTool,
                              "tcp-server"));
    absl::StatusOr<std::string> ready = server->ReadLine(absl::Seconds(10));
    if (!ready.ok()) return "server failed";
    const std::string p = port ? absl::StrCat(port) : ready->substr(5);
    absl::StatusOr<std::string> out =
        RunCommand(absl::StrCat(run, kTool, "tcp-client 10.214.0.3 ", p, " hi"));
    return out.ok() ? *out : std::string(out.status().message());
  }

  NamespaceNetwork net_;
  std::string client_, server_, attacker_, late_;
  std::string tmp_, dir_, pin_dir_, socket_, policy_;
  std::vector<std::string> made_;
  bool made_netns_ = false;
  std::unique_ptr<ChildProcess> bastiond_;
  std::unique_ptr<ChildProcess> monitor_;
};

TEST_F(BastiondTest, EnforcesReportsSurvivesKillAndAdopts) {
  StartBastiond("no saved state");
  EXPECT_THAT(Ctl("containers"), HasSubstr(server_));
  // The server's MAC is a static FDB entry on its veth (never flooded elsewhere).
  absl::StatusOr<std::string> mac = RunCommand(absl::StrCat(
      "ip netns exec ", NamespaceContainerNetns(server_), " cat /sys/class/net/eth0/address"));
  ASSERT_TRUE(mac.ok()) << mac.status();
  absl::StatusOr<std::string> fdb = RunCommand(
      absl::StrCat("bridge -n ", net_.host_netns, " fdb show dev d", server_));
  ASSERT_TRUE(fdb.ok()) << fdb.status();
  EXPECT_THAT(*fdb, HasSubstr(absl::StrCat(absl::StripAsciiWhitespace(*mac), " master br0 static")));

  monitor_ = StartChild(
      absl::StrCat("bastion/cli/bastionctl --server=", socket_, " monitor"));
  WaitForLine(*monitor_, "monitoring verdict events");

  // Allowed: client -> server on an ephemeral port (policy tcp/1024-65535).
  EXPECT_THAT(Connect(client_), HasSubstr("reply hi"));
  // Denied by port: client -> server tcp/80.
  EXPECT_THAT(Connect(client_, 80), HasSubstr("error"));
  WaitForLine(*monitor_, absl::StrCat("DROP policy_denied ", client_, " -> ", server_, " tcp"));
  // Denied: the attacker is nobody's dependency; even its ARP request is dropped.
  EXPECT_THAT(Connect(attacker_), HasSubstr("error"));
  WaitForLine(*monitor_, absl::StrCat("DROP arp_no_dependency ", attacker_, " -> ", server_, " arp"));

  // The same event as JSON, for scripts (the integration demo).
  {
    std::unique_ptr<ChildProcess> json =
        StartChild(absl::StrCat("bastion/cli/bastionctl --server=", socket_, " monitor --json"));
    absl::StatusOr<std::string> ready = json->ReadErrLine(absl::Seconds(20));
    ASSERT_TRUE(ready.ok()) << ready.status();
    EXPECT_THAT(Connect(client_, 80), HasSubstr("error"));
    // The attacker's ARP retries may still come in between: skip other events.
    absl::StatusOr<std::string> line;
    do {
      line = json->ReadLine(absl::Seconds(20));
      ASSERT_TRUE(line.ok()) << line.status();
    } while (!absl::StrContains(*line, "\"src\":\"" + client_ + "\""));
    EXPECT_THAT(*line, HasSubstr(absl::StrCat("\"action\":\"drop\",\"verdict\":\"policy_denied\",\"src\":\"",
                                              client_, "\",\"dst\":\"", server_, "\"")));
    EXPECT_THAT(*line, HasSubstr("\"dport\":80"));
  }

  const std::string counters = Ctl("counters");
  EXPECT_THAT(counters, HasSubstr("policy_denied"));
  EXPECT_THAT(counters, HasSubstr(absl::StrCat(client_, " -> ", server_, " tcp/80 policy_denied")));

  // An invalid policy is refused with file and line; the running one stays.
  const std::string bad = tmp_ + "/bad.yaml";
  std::ofstream(bad) << "version: 1\nservices:\n  - name: a\n    select: {names: [a]}\n"
                        "    depends_on: [{service: a, ports: [tpc/1]}]\n";
  EXPECT_THAT(Ctl("policy apply " + bad), HasSubstr("bad.yaml:5:"));
  EXPECT_THAT(Connect(client_), HasSubstr("reply hi"));

  // kill -9: enforcement stays exactly as it was.
  monitor_.reset();
  bastiond_.reset();  // SIGKILL
  EXPECT_THAT(Connect(client_), HasSubstr("reply hi"));
  EXPECT_THAT(Connect(client_, 80), HasSubstr("error"));
  EXPECT_THAT(Connect(attacker_), HasSubstr("error"));

  // While it is down, the attacker goes and a new client comes.
  ASSERT_TRUE(DeleteNamespaceContainer(attacker_, dir_).ok());
  ASSERT_TRUE(Make(late_, 5, "client").ok());

  StartBastiond("adopting saved state: 3 containers");
  const std::string containers = Ctl("containers");
  EXPECT_THAT(containers, HasSubstr(late_));
  EXPECT_THAT(containers, ::testing::Not(HasSubstr(attacker_)));
  EXPECT_THAT(Connect(late_), HasSubstr("reply hi"));
  EXPECT_THAT(Connect(client_), HasSubstr("reply hi"));
  EXPECT_THAT(Connect(client_, 80), HasSubstr("error"));
}

TEST_F(BastiondTest, HostNetworkContainerIsUnderPolicyByItsCgroup) {
  const std::string monitor = "m" + std::to_string(getpid());
  made_.push_back(monitor);
  ASSERT_TRUE(CreateNamespaceContainer(
                  net_, {.name = monitor, .labels = {{"role", "monitor"}}, .host_network = true},
                  dir_)
                  .ok());
  absl::StatusOr<std::string> cgroup = NamespaceContainerCgroup(monitor);
  ASSERT_TRUE(cgroup.ok()) << cgroup.status();
  StartBastiond("no saved state");
  EXPECT_THAT(Ctl("containers"), ::testing::ContainsRegex(monitor + " .* host "));
  monitor_ = StartChild(
      absl::StrCat("bastion/cli/bastionctl --server=", socket_, " monitor"));
  WaitForLine(*monitor_, "monitoring verdict events");

  // In the host's namespace, as the host: the policy lets the host use the server.
  const std::string as_host = absl::StrCat("ip netns exec ", net_.host_netns, " ");
  EXPECT_THAT(ConnectWith(as_host), HasSubstr("reply hi"));
  // The same namespace, in the monitor's cgroup: it depends on nothing.
  const std::string as_monitor = absl::StrCat("sh -c 'echo $$ > ", *cgroup,
                                              "/cgroup.procs && exec ", as_host, "\"$@\"' sh ");
  EXPECT_THAT(ConnectWith(as_monitor), HasSubstr("error"));
  WaitForLine(*monitor_, absl::StrCat("DROP no_dependency ", monitor, " -> ", server_, " tcp"));
  EXPECT_THAT(Ctl("counters"), HasSubstr(absl::StrCat(monitor, " -> ", server_, " tcp/")));

  // Removed: its binding leaves the pinned map (the programs went with the cgroup).
  ASSERT_TRUE(DeleteNamespaceContainer(monitor, dir_).ok());
  WaitForLine(*bastiond_, "containers removed: " + monitor);
  absl::StatusOr<std::string> bindings =
      RunCommand("bpftool -j map dump pinned " + pin_dir_ + "/bastion_cgroups");
  ASSERT_TRUE(bindings.ok()) << bindings.status();
  EXPECT_EQ(absl::StripAsciiWhitespace(*bindings), "[]");
  EXPECT_THAT(ConnectWith(as_host), HasSubstr("reply hi"));
}

}  // namespace
}  // namespace dctk::bastion
