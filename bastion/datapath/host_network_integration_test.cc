// Bastion for a network-privileged (host network mode) container on real traffic: "P" is a
// set of processes in the lab's host namespace, in a cgroup the test makes, with the
// host-network programs attached to it; containers A, B, C are namespaces on the bridge
// with the veth programs. P's traffic with containers obeys P's own policy (not the
// host's), in both directions, and P cannot inject frames with a container's address.
// Needs root; deletes the namespaces, the cgroup and the programs also on failure.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/process/run_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "bastion/datapath/bpf_datapath.h"
#include "bastion/datapath/bpf_host_network.h"
#include "bastion/datapath/testing/netns_lab.h"

namespace dctk::bastion {
namespace {

using testing::StartChild;
using ::testing::HasSubstr;
using testing::NetnsLab;
using testing::ShellOutput;

constexpr uint32_t kA = 1, kB = 2, kC = 3, kP = 5;
constexpr uint32_t kGateway = kHostIdFirst;
constexpr absl::Duration kWait = absl::Seconds(20);

class HostNetworkIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for namespaces, cgroups and BPF";
    auto root = Cgroup2MountPoint();
    ASSERT_TRUE(root.ok()) << root.status();
    cgroup_ = absl::StrCat(*root, "/bst", getpid(), "p");
    ASSERT_EQ(mkdir(cgroup_.c_str(), 0755), 0) << cgroup_;
    auto lab = NetnsLab::Create("10.214.0", {"a", "b", "c"});
    ASSERT_TRUE(lab.ok()) << lab.status();
    lab_ = std::move(*lab);
    ASSERT_TRUE(lab_->EnterHost().ok());
    auto dp = BpfDatapath::Create({});
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::move(*dp);
    const uint32_t ids[] = {kA, kB, kC};
    int i = 0;
    for (const char* name : {"a", "b", "c"}) {
      const NetnsLab::Container& ct = lab_->container(name);
      ASSERT_TRUE(dp_->UpsertEndpoint(ct.ip, {ids[i], ct.mac, ct.host_ifindex}).ok());
      ASSERT_TRUE(dp_->BindInterface(ct.host_ifindex, {ids[i], ct.ip, ct.mac}).ok());
      ASSERT_TRUE(dp_->Attach(ct.host_ifindex).ok());
      ++i;
    }
    ASSERT_TRUE(dp_->UpsertHost(lab_->gateway_ip(), kGateway).ok());
    auto hn = BpfHostNetwork::Create(*dp_);
    ASSERT_TRUE(hn.ok()) << hn.status();
    hn_ = std::move(*hn);
    ASSERT_TRUE(hn_->AttachCgroup(cgroup_, kP).ok());
    tool_ = absl::StrCat("/usr/bin/python3 ", getcwd(cwd_, sizeof(cwd_)),
                         "/bastion/datapath/testdata/netns_tool.py ");
  }

  void TearDown() override {
    hn_.reset();
    dp_.reset();
    lab_.reset();
    if (!cgroup_.empty()) {
      std::ofstream(cgroup_ + "/cgroup.kill") << "1" << std::endl;  // stragglers, if any
      rmdir(cgroup_.c_str());
    }
  }

  std::string In(const std::string& name) { return lab_->Exec(lab_->container(name).netns); }
  // A command run as the host-network container P: in P's cgroup, in the host namespace.
  std::string AsP(const std::string& command) {
    return absl::StrCat("sh -c 'echo $$ > ", cgroup_, "/cgroup.procs && exec ",
                        lab_->Exec(lab_->host_netns()), command, "'");
  }
  // The same command as a plain host process (not in P's cgroup).
  std::string AsHost(const std::string& command) {
    return lab_->Exec(lab_->host_netns()) + command;
  }
  std::string Ip(const std::string& name) { return Ipv4ToString(lab_->container(name).ip); }

  std::unique_ptr<ChildProcess> Server(const std::string& command, uint16_t* port) {
    auto server = testing::StartPortServer(command, kWait);
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return nullptr;
    *port = server->port;
    return std::move(server->child);
  }

  void Allow(uint32_t src, uint32_t dst, uint8_t proto, uint16_t port) {
    ASSERT_TRUE(dp_->UpsertPolicy({.src_id = src, .dst_id = dst, .proto = proto,
                                   .first_port = port, .last_port = port}).ok());
  }

  uint64_t Count(uint32_t verdict) {
    auto c = dp_->ReadCounters();
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? (*c)[verdict] : 0;
  }

  std::string TcpClient(const std::string& ip, uint16_t port, const std::string& msg) {
    return absl::StrCat(tool_, "tcp-client ", ip, " ", port, " ", msg);
  }

  char cwd_[4096];
  std::string tool_;
  std::string cgroup_;
  std::unique_ptr<NetnsLab> lab_;
  std::unique_ptr<BpfDatapath> dp_;
  std::unique_ptr<BpfHostNetwork> hn_;
};

TEST_F(HostNetworkIntegrationTest, PReachesItsDependencyOnlyOnItsPolicyPort) {
  uint16_t p_port = 0, host_port = 0;
  auto for_p = Server(In("b") + tool_ + "tcp-server", &p_port);
  auto for_host = Server(In("b") + tool_ + "tcp-server", &host_port);
  ASSERT_TRUE(dp_->AddDependency(kP, kB, 0).ok());
  Allow(kP, kB, kTcp, p_port);
  Allow(kGateway, kB, kTcp, host_port);  // the host (not P) may use this one

  // P's port works, replies included; the host's port is not P's to use.
  EXPECT_THAT(ShellOutput(AsP(TcpClient(Ip("b"), host_port, "x"))), HasSubstr("error"));
  EXPECT_GE(Count(BASTION_DROP_POLICY_DENIED), 1u);
  EXPECT_THAT(ShellOutput(AsP(TcpClient(Ip("b"), p_port, "from-p"))), HasSubstr("reply from-p"));
  EXPECT_EQ(*for_p->ReadLine(kWait), "got from-p");
  EXPECT_GT(Count(BASTION_PASS_REPLY), 0u);
  // A plain host process is the host: its rule applies.
  EXPECT_THAT(ShellOutput(AsHost(TcpClient(Ip("b"), host_port, "from-host"))),
              HasSubstr("reply from-host"));
  EXPECT_EQ(*for_host->ReadLine(kWait), "got from-host");

  bool saw_p_event = false;
  ASSERT_TRUE(dp_->PollEvents(absl::ZeroDuration(), [&](const VerdictEvent& e) {
    if (e.host_network && e.container_id == kP && e.dport == host_port &&
        e.reason == BASTION_DROP_POLICY_DENIED) {
      saw_p_event = true;
    }
  }).ok());
  EXPECT_TRUE(saw_p_event);
}

TEST_F(HostNetworkIntegrationTest, PCannotReachAContainerThatIsNotItsDependency) {
  uint16_t port = 0;
  auto server = Server(In("c") + tool_ + "tcp-server", &port);
  Allow(kGateway, kC, kTcp, port);  // even though the host may
  EXPECT_THAT(ShellOutput(AsP(TcpClient(Ip("c"), port, "x"))), HasSubstr("error"));
  EXPECT_GE(Count(BASTION_DROP_NO_DEPENDENCY), 1u);
}

TEST_F(HostNetworkIntegrationTest, OnlyContainersThatUsePReachItsService) {
  uint16_t port = 0;
  auto server = Server(AsP(tool_ + "tcp-server"), &port);
  // Both A and C may reach the host on this port; only A has P as a dependency.
  Allow(kA, kGateway, kTcp, port);
  Allow(kC, kGateway, kTcp, port);
  ASSERT_TRUE(dp_->AddDependency(kA, kP, 0).ok());
  Allow(kA, kP, kTcp, port);
  const std::string gateway = Ipv4ToString(lab_->gateway_ip());

  EXPECT_THAT(ShellOutput(In("c") + TcpClient(gateway, port, "from-c")), HasSubstr("error"));
  EXPECT_GE(Count(BASTION_DROP_NO_DEPENDENCY), 1u);
  EXPECT_THAT(ShellOutput(In("a") + TcpClient(gateway, port, "from-a")), HasSubstr("reply from-a"));
  EXPECT_EQ(*server->ReadLine(kWait), "got from-a");  // the one connection it accepted
}

TEST_F(HostNetworkIntegrationTest, FramesWithAContainerAddressFromPNeverArrive) {
  uint16_t port = 0;
  auto udp = Server(In("b") + tool_ + "udp-server", &port);
  ASSERT_TRUE(dp_->AddDependency(kA, kB, 0).ok());
  Allow(kA, kB, kUdp, port);
  // The bridge must know B's port (a static entry, as the manager installs): a flooded
  // copy of a frame carries no socket, so its sender could not be told.
  const NetnsLab::Container& b = lab_->container("b");
  ASSERT_TRUE(RunCommand(AsHost("bridge fdb replace " + b.mac.ToString() + " dev " +
                                    b.host_veth + " master static")).ok());
  // P writes a frame claiming A's address straight onto the bridge (AF_PACKET, scapy):
  // it bypasses the IP stack and so P's cgroup programs; B's veth still knows it is P's.
  auto mac = RunCommand(AsHost("cat /sys/class/net/br0/address"));
  ASSERT_TRUE(mac.ok()) << mac.status();
  std::string br_mac(absl::StripAsciiWhitespace(*mac));
  ShellOutput(AsP(absl::StrCat(tool_, "spoof br0 ", br_mac, " ", Ip("a"), " ", b.mac.ToString(),
                               " ", Ip("b"), " ", port, " spoofed")));
  ShellOutput(In("a") + tool_ + "udp-send " + Ip("b") + " " + std::to_string(port) + " END");
  EXPECT_EQ(*udp->ReadLine(kWait), "got END");  // the spoofed datagram never came
  EXPECT_EQ(Count(BASTION_DROP_SPOOFED_IP), 1u);
}

// A manager that exits (or is killed) leaves its programs on the cgroup; the next one
// replaces them with its own in one step, and P stays under policy throughout.
TEST_F(HostNetworkIntegrationTest, ASecondInstanceTakesOverTheCgroup) {
  uint16_t port = 0;
  auto server = Server(In("c") + tool_ + "tcp-server", &port);
  Allow(kGateway, kC, kTcp, port);
  hn_->LeaveAttachedOnDestroy();
  hn_.reset();
  // Nobody owns the attachment now: it still enforces (the cgroup holds the programs).
  EXPECT_THAT(ShellOutput(AsP(TcpClient(Ip("c"), port, "x"))), HasSubstr("error"));
  EXPECT_GE(Count(BASTION_DROP_NO_DEPENDENCY), 1u);

  auto next = BpfHostNetwork::Create(*dp_);
  ASSERT_TRUE(next.ok()) << next.status();
  hn_ = std::move(*next);
  auto before = hn_->Inspect(cgroup_);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_FALSE(before->egress);
  EXPECT_FALSE(before->ingress);
  EXPECT_EQ(before->stale, 2);  // the previous instance's egress and ingress programs
  ASSERT_TRUE(hn_->AttachCgroup(cgroup_, kP).ok());
  auto after = hn_->Inspect(cgroup_);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(after->egress);
  EXPECT_TRUE(after->ingress);
  EXPECT_EQ(after->stale, 0);
  ASSERT_TRUE(hn_->DetachUnclaimed().ok());  // P is claimed: nothing to remove
  const uint64_t drops = Count(BASTION_DROP_NO_DEPENDENCY);
  EXPECT_THAT(ShellOutput(AsP(TcpClient(Ip("c"), port, "x"))), HasSubstr("error"));
  EXPECT_GT(Count(BASTION_DROP_NO_DEPENDENCY), drops);
  // Attaching again is a no-op.
  ASSERT_TRUE(hn_->AttachCgroup(cgroup_, kP).ok());
  EXPECT_EQ(hn_->Inspect(cgroup_)->stale, 0);
}

// Bindings and programs nobody claims after a restart (their container left while no
// manager ran) are removed: P is then a plain host process again.
TEST_F(HostNetworkIntegrationTest, UnclaimedAttachmentsAreRemoved) {
  uint16_t port = 0;
  auto server = Server(In("c") + tool_ + "tcp-server", &port);
  Allow(kGateway, kC, kTcp, port);
  hn_->LeaveAttachedOnDestroy();
  hn_.reset();
  auto next = BpfHostNetwork::Create(*dp_);
  ASSERT_TRUE(next.ok()) << next.status();
  hn_ = std::move(*next);
  ASSERT_TRUE(hn_->DetachUnclaimed().ok());
  auto left = hn_->Inspect(cgroup_);
  ASSERT_TRUE(left.ok()) << left.status();
  EXPECT_FALSE(left->egress || left->ingress);
  EXPECT_EQ(left->stale, 0);
  auto id = CgroupId(cgroup_);
  ASSERT_TRUE(id.ok());
  EXPECT_TRUE(absl::IsNotFound(hn_->UnbindCgroup(*id)));  // the binding went too
  EXPECT_THAT(ShellOutput(AsP(TcpClient(Ip("c"), port, "from-p"))), HasSubstr("reply from-p"));
}

// Detaching a cgroup that is already gone (its container exited) removes the binding.
TEST_F(HostNetworkIntegrationTest, DetachAfterTheCgroupIsGone) {
  const std::string child = cgroup_ + "/gone";
  ASSERT_EQ(mkdir(child.c_str(), 0755), 0);
  ASSERT_TRUE(hn_->AttachCgroup(child, kP + 1).ok());
  auto id = CgroupId(child);
  ASSERT_TRUE(id.ok());
  ASSERT_EQ(rmdir(child.c_str()), 0);
  ASSERT_TRUE(hn_->DetachCgroup(child).ok());
  EXPECT_TRUE(absl::IsNotFound(hn_->UnbindCgroup(*id)));
  EXPECT_EQ(hn_->AttachedCgroups(), std::vector<std::string>{cgroup_});
}

}  // namespace
}  // namespace dctk::bastion
