// Runs the real host-network container programs (cgroup_skb egress/ingress, and the
// cgroup identity check of bastion_to_container) in the kernel with BPF_PROG_TEST_RUN,
// one test per verdict path. The kernel gives a test run's packet a socket in the test
// process's own cgroup, so binding that cgroup makes the test "host-network container P".
// Needs root (BPF load); a cgroup the ancestor test makes is removed also on failure.
#include <linux/pkt_cls.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "bastion/bpf/testing/packets.h"
#include "bastion/datapath/bpf_datapath.h"
#include "bastion/datapath/bpf_host_network.h"

namespace dctk::bastion {
namespace {

using testing::Frame;
using testing::Ipv4Frame;
using testing::Mac;
using testing::RunProgram;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr uint32_t kA = 1, kB = 2, kC = 3, kP = 5;  // P: the host-network container
constexpr uint32_t kGateway = kHostIdFirst;
constexpr int kIfB = 1;  // tc test runs arrive on ifindex 1: "B's host veth"
const uint32_t kIpA = Ipv4(10, 9, 0, 2), kIpB = Ipv4(10, 9, 0, 3), kIpC = Ipv4(10, 9, 0, 4);
const uint32_t kIpHost = Ipv4(10, 9, 0, 1);  // the host's (and so P's) address
const uint32_t kIpWorld = Ipv4(192, 0, 2, 7);
const MacAddress kMacA = Mac(0xa), kMacB = Mac(0xb), kMacC = Mac(0xc), kMacHost = Mac(0x1);
constexpr int kCgroupAllow = 1, kCgroupDrop = 0;

using Pair = std::pair<std::string, uint64_t>;

// The cgroup v2 directory this process runs in.
absl::StatusOr<std::string> OwnCgroup() {
  absl::StatusOr<std::string> root = Cgroup2MountPoint();
  if (!root.ok()) return root.status();
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "0::")) return *root + line.substr(3);
  }
  return absl::NotFoundError("no cgroup v2 line in /proc/self/cgroup");
}

class BastionHostNetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to load BPF programs";
    auto dp = BpfDatapath::Create({});
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::move(*dp);
    auto hn = BpfHostNetwork::Create(*dp_);
    ASSERT_TRUE(hn.ok()) << hn.status();
    hn_ = std::move(*hn);
    auto cgroup = OwnCgroup();
    ASSERT_TRUE(cgroup.ok()) << cgroup.status();
    own_cgroup_ = *cgroup;
    auto id = CgroupId(own_cgroup_);
    ASSERT_TRUE(id.ok()) << id.status();
    own_cgroup_id_ = *id;
    ASSERT_TRUE(hn_->BindCgroup(own_cgroup_id_, kP).ok());

    ASSERT_TRUE(dp_->UpsertEndpoint(kIpA, {kA, kMacA, 1001}).ok());
    ASSERT_TRUE(dp_->UpsertEndpoint(kIpB, {kB, kMacB, kIfB}).ok());
    ASSERT_TRUE(dp_->UpsertEndpoint(kIpC, {kC, kMacC, 1003}).ok());
    ASSERT_TRUE(dp_->UpsertHost(kIpHost, kGateway).ok());
    ASSERT_TRUE(dp_->BindInterface(kIfB, {kB, kIpB, kMacB}).ok());
    // P uses B on TCP 80; A uses P on TCP 8080 (and reaches it at the host's address).
    ASSERT_TRUE(dp_->AddDependency(kP, kB, 0).ok());
    ASSERT_TRUE(dp_->UpsertPolicy({.src_id = kP, .dst_id = kB, .proto = kTcp,
                                   .first_port = 80, .last_port = 80}).ok());
    ASSERT_TRUE(dp_->AddDependency(kA, kP, 0).ok());
    ASSERT_TRUE(dp_->UpsertPolicy({.src_id = kA, .dst_id = kP, .proto = kTcp,
                                   .first_port = 8080, .last_port = 8080}).ok());
  }

  int Run(int fd, const Frame& f) {
    auto r = RunProgram(fd, f);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->action : -1;
  }
  // P's sockets send `f` (cgroup egress) / `f` is delivered to P's sockets (ingress) /
  // `f` leaves the host on B's veth (tc egress, bastion_to_container).
  int FromP(const Frame& f) { return Run(hn_->from_host_network_fd(), f); }
  int ToP(const Frame& f) { return Run(hn_->to_host_network_fd(), f); }
  int IntoB(const Frame& f) { return Run(dp_->to_container_fd(), f); }

  static Frame Tcp(uint32_t saddr, uint32_t daddr, uint16_t dport, uint16_t sport = 40000) {
    return Ipv4Frame({.src_mac = kMacHost, .dst_mac = kMacB, .saddr = saddr, .daddr = daddr,
                      .proto = kTcp, .sport = sport, .dport = dport});
  }

  std::vector<Pair> Counters() {
    auto c = testing::NonZeroCounters(*dp_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : std::vector<Pair>();
  }

  std::vector<VerdictEvent> Events() {
    auto e = testing::PendingEvents(*dp_);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? *std::move(e) : std::vector<VerdictEvent>();
  }

  // Exactly one drop, for `reason`, by a host-network program on behalf of P.
  void ExpectDropped(int action, uint32_t reason, bool to_container = false) {
    EXPECT_EQ(action, kCgroupDrop);
    EXPECT_THAT(Counters(), ElementsAre(Pair(std::string(VerdictName(reason)), 1u)));
    std::vector<VerdictEvent> events = Events();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(VerdictName(events[0].reason), VerdictName(reason));
    EXPECT_TRUE(events[0].host_network);
    EXPECT_EQ(events[0].to_container, to_container);
    EXPECT_FALSE(events[0].audit);
  }

  std::unique_ptr<BpfDatapath> dp_;
  std::unique_ptr<BpfHostNetwork> hn_;
  std::string own_cgroup_;
  uint64_t own_cgroup_id_ = 0;
};

// --- cgroup egress: what P sends ---

TEST_F(BastionHostNetworkTest, DependencyOnAllowedPortPasses) {
  EXPECT_EQ(FromP(Tcp(kIpHost, kIpB, 80)), kCgroupAllow);
  EXPECT_THAT(Counters(), ElementsAre(Pair("passed", 1)));
  EXPECT_THAT(Events(), IsEmpty());
}

TEST_F(BastionHostNetworkTest, DependencyOnOtherPortDrops) {
  ExpectDropped(FromP(Tcp(kIpHost, kIpB, 81)), BASTION_DROP_POLICY_DENIED);
}

TEST_F(BastionHostNetworkTest, NonDependencyDrops) {
  ExpectDropped(FromP(Tcp(kIpHost, kIpC, 80)), BASTION_DROP_NO_DEPENDENCY);
}

TEST_F(BastionHostNetworkTest, DropEventNamesTheContainerAndPacket) {
  FromP(Tcp(kIpHost, kIpC, 80, 41000));
  std::vector<VerdictEvent> events = Events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].container_id, kP);
  EXPECT_EQ(events[0].saddr, kIpHost);
  EXPECT_EQ(events[0].daddr, kIpC);
  EXPECT_EQ(events[0].sport, 41000);
  EXPECT_EQ(events[0].dport, 80);
  EXPECT_EQ(events[0].proto, kTcp);
}

TEST_F(BastionHostNetworkTest, HostAndWorldTrafficPasses) {
  EXPECT_EQ(FromP(Tcp(kIpHost, kIpWorld, 443)), kCgroupAllow);
  EXPECT_EQ(FromP(Tcp(kIpHost, kIpHost, 22)), kCgroupAllow);
  EXPECT_THAT(Counters(), ElementsAre(Pair("passed", 2)));
}

TEST_F(BastionHostNetworkTest, ContainerSourceAddressIsSpoofing) {
  ExpectDropped(FromP(Tcp(kIpA, kIpB, 80)), BASTION_DROP_SPOOFED_IP);
}

TEST_F(BastionHostNetworkTest, UnboundCgroupDrops) {
  ASSERT_TRUE(hn_->UnbindCgroup(own_cgroup_id_).ok());
  EXPECT_EQ(FromP(Tcp(kIpHost, kIpB, 80)), kCgroupDrop);
  EXPECT_THAT(Counters(), ElementsAre(Pair("unbound", 1)));
  EXPECT_EQ(Events().size(), 1u);
}

TEST_F(BastionHostNetworkTest, NonFirstFragmentToAContainerDrops) {
  Frame f = Ipv4Frame({.src_mac = kMacHost, .dst_mac = kMacB, .saddr = kIpHost, .daddr = kIpB,
                       .proto = kUdp, .dport = 80, .frag_offset = 100});
  ExpectDropped(FromP(f), BASTION_DROP_FRAGMENT);
}

TEST_F(BastionHostNetworkTest, TruncatedIpv4Drops) {
  Frame f = Tcp(kIpHost, kIpB, 80);
  f.resize(14 + 20 + 2);  // IPv4 header, but only half the ports
  ExpectDropped(FromP(f), BASTION_DROP_MALFORMED);
}

TEST_F(BastionHostNetworkTest, Ipv6IsNotJudged) {
  EXPECT_EQ(FromP(testing::EtherFrame(kMacHost, kMacB, 0x86dd, 60)), kCgroupAllow);
  EXPECT_THAT(Counters(), ElementsAre(Pair("passed", 1)));
}

TEST_F(BastionHostNetworkTest, AuditModePassesPolicyDropsButRecordsThem) {
  ASSERT_TRUE(dp_->SetAuditMode(true).ok());
  EXPECT_EQ(FromP(Tcp(kIpHost, kIpC, 80)), kCgroupAllow);
  EXPECT_THAT(Counters(), ElementsAre(Pair("audit_passed", 1), Pair("no_dependency", 1)));
  std::vector<VerdictEvent> events = Events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].audit);
  // Spoofing still drops.
  EXPECT_EQ(FromP(Tcp(kIpA, kIpB, 80)), kCgroupDrop);
}

// --- cgroup ingress: what is delivered to P ---

TEST_F(BastionHostNetworkTest, ReplyOfPsConnectionIsDelivered) {
  ASSERT_EQ(FromP(Tcp(kIpHost, kIpB, 80, 40000)), kCgroupAllow);
  EXPECT_EQ(ToP(Tcp(kIpB, kIpHost, 40000, 80)), kCgroupAllow);
  EXPECT_THAT(Counters(), ElementsAre(Pair("passed", 1), Pair("reply", 1)));
}

TEST_F(BastionHostNetworkTest, ContainerThatUsesPReachesItsPort) {
  EXPECT_EQ(ToP(Tcp(kIpA, kIpHost, 8080)), kCgroupAllow);
  EXPECT_THAT(Counters(), ElementsAre(Pair("passed", 1)));
}

TEST_F(BastionHostNetworkTest, ContainerThatUsesPOnOtherPortDrops) {
  ExpectDropped(ToP(Tcp(kIpA, kIpHost, 8081)), BASTION_DROP_POLICY_DENIED,
                /*to_container=*/true);
}

TEST_F(BastionHostNetworkTest, ContainerThatDoesNotUsePDrops) {
  ExpectDropped(ToP(Tcp(kIpC, kIpHost, 8080)), BASTION_DROP_NO_DEPENDENCY,
                /*to_container=*/true);
}

TEST_F(BastionHostNetworkTest, HostAndWorldReachP) {
  EXPECT_EQ(ToP(Tcp(kIpWorld, kIpHost, 22)), kCgroupAllow);
  EXPECT_EQ(ToP(Tcp(kIpHost, kIpHost, 22)), kCgroupAllow);
  EXPECT_THAT(Counters(), ElementsAre(Pair("passed", 2)));
}

// --- tc egress of B's veth (bastion_to_container): P's packets are P's, not the host's ---

TEST_F(BastionHostNetworkTest, VethJudgesPsPacketsAsP) {
  EXPECT_EQ(IntoB(Tcp(kIpHost, kIpB, 80)), TC_ACT_OK);  // P -> B:80 allowed
  EXPECT_EQ(IntoB(Tcp(kIpHost, kIpB, 81)), TC_ACT_SHOT);
  EXPECT_THAT(Counters(), ElementsAre(Pair("passed", 1), Pair("policy_denied", 1)));
  // The host itself has no policy to B: the same packet from an unbound cgroup drops.
  ASSERT_TRUE(hn_->UnbindCgroup(own_cgroup_id_).ok());
  EXPECT_EQ(IntoB(Tcp(kIpHost, kIpB, 80)), TC_ACT_SHOT);
  auto c = dp_->ReadCounters();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)[BASTION_DROP_HOST_DENIED], 1u);
}

TEST_F(BastionHostNetworkTest, VethDropsPsPacketsClaimingAContainerAddress) {
  // As a raw/AF_PACKET frame would: A's address, straight onto the bridge.
  EXPECT_EQ(IntoB(Tcp(kIpA, kIpB, 80)), TC_ACT_SHOT);
  EXPECT_THAT(Counters(), ElementsAre(Pair("spoofed_ip", 1)));
}

// A process in a cgroup below the container's still speaks for the container.
TEST_F(BastionHostNetworkTest, SubCgroupOfTheContainerIsTheContainer) {
  const std::string parent = absl::StrCat(own_cgroup_, "/bst", getpid(), "p");
  const std::string child = parent + "/worker";
  ASSERT_EQ(mkdir(parent.c_str(), 0755), 0) << parent;
  struct Cleanup {  // back to our own cgroup, then remove what we made
    std::string own, parent, child;
    ~Cleanup() {
      std::ofstream(own + "/cgroup.procs") << getpid() << std::endl;
      rmdir(child.c_str());
      rmdir(parent.c_str());
    }
  } cleanup{own_cgroup_, parent, child};
  ASSERT_EQ(mkdir(child.c_str(), 0755), 0) << child;
  ASSERT_TRUE(hn_->UnbindCgroup(own_cgroup_id_).ok());
  auto parent_id = CgroupId(parent);
  ASSERT_TRUE(parent_id.ok()) << parent_id.status();
  ASSERT_TRUE(hn_->BindCgroup(*parent_id, kP).ok());
  {
    std::ofstream procs(child + "/cgroup.procs");
    procs << getpid() << std::endl;
    ASSERT_TRUE(procs.good());
  }
  EXPECT_EQ(FromP(Tcp(kIpHost, kIpB, 80)), kCgroupAllow);
  EXPECT_EQ(FromP(Tcp(kIpHost, kIpC, 80)), kCgroupDrop);
  EXPECT_THAT(Counters(), ElementsAre(Pair("passed", 1), Pair("no_dependency", 1)));
}

}  // namespace
}  // namespace dctk::bastion
