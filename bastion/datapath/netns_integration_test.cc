// Bastion on real traffic: three "containers" (network namespaces) on a bridge in a
// test-made host namespace, with the programs attached to their host-side veths.
// Checks allowed TCP/UDP flows, denied flows, spoofing, ARP scans, and that a sniffer on
// the bridge never sees direct-forwarded traffic. Needs root; deletes everything it made.
#include <unistd.h>

#include <memory>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "bastion/datapath/bpf_datapath.h"
#include "bastion/datapath/testing/netns_lab.h"

namespace dctk::bastion {
namespace {

using testing::StartChild;
using ::testing::HasSubstr;
using testing::NetnsLab;
using testing::ShellOutput;
using ::testing::UnorderedElementsAre;

constexpr uint32_t kA = 1, kB = 2, kC = 3;
constexpr uint32_t kGateway = kHostIdFirst;
constexpr absl::Duration kWait = absl::Seconds(20);

class NetnsIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces and BPF";
    auto lab = NetnsLab::Create("10.213.0", {"a", "b", "c"});
    ASSERT_TRUE(lab.ok()) << lab.status();
    lab_ = std::move(*lab);
    ASSERT_TRUE(lab_->EnterHost().ok());  // netlink (tc attach) must see the host veths
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
    ASSERT_TRUE(dp_->AddDependency(kA, kB, 0).ok());  // A uses B; C uses nobody
    ASSERT_TRUE(dp_->UpsertPolicy({.src_id = kA, .dst_id = kGateway, .proto = kUdp,
                                   .first_port = 9, .last_port = 9}).ok());
    tool_ = absl::StrCat("/usr/bin/python3 ", getcwd(cwd_, sizeof(cwd_)),
                         "/bastion/datapath/testdata/netns_tool.py ");
  }

  void TearDown() override {
    dp_.reset();  // detaches while still in the host namespace
    lab_.reset();
  }

  std::string In(const std::string& name) { return lab_->Exec(lab_->container(name).netns); }
  std::string Ip(const std::string& name) { return Ipv4ToString(lab_->container(name).ip); }

  // Starts a server in `name`; returns it with its port read from its first line.
  std::unique_ptr<ChildProcess> Server(const std::string& name, const std::string& kind, uint16_t* port) {
    auto server = testing::StartPortServer(In(name) + tool_ + kind, kWait);
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

  char cwd_[4096];
  std::string tool_;
  std::unique_ptr<NetnsLab> lab_;
  std::unique_ptr<BpfDatapath> dp_;
};

TEST_F(NetnsIntegrationTest, AllowedTcpAndUdpFlowsWork) {
  uint16_t tcp_port = 0, udp_port = 0;
  auto tcp = Server("b", "tcp-server", &tcp_port);
  auto udp = Server("b", "udp-server", &udp_port);
  Allow(kA, kB, kTcp, tcp_port);
  Allow(kA, kB, kUdp, udp_port);

  EXPECT_THAT(ShellOutput(In("a") + tool_ + "tcp-client " + Ip("b") + " " +
                          std::to_string(tcp_port) + " hello"),
              HasSubstr("reply hello"));
  EXPECT_EQ(*tcp->ReadLine(kWait), "got hello");

  ShellOutput(In("a") + tool_ + "udp-send " + Ip("b") + " " + std::to_string(udp_port) +
              " one two END");
  EXPECT_EQ(*udp->ReadLine(kWait), "got one");
  EXPECT_EQ(*udp->ReadLine(kWait), "got two");
  EXPECT_EQ(*udp->ReadLine(kWait), "got END");

  EXPECT_GT(Count(BASTION_PASS_FORWARDED), 0u);   // A -> B, straight to B's namespace
  EXPECT_GT(Count(BASTION_PASS_REPLY), 0u);       // B -> A TCP replies, by conntrack
  EXPECT_GT(Count(BASTION_PASS_ARP_ANSWERED), 0u);
}

TEST_F(NetnsIntegrationTest, DeniedFlowsFail) {
  uint16_t allowed = 0, other = 0;
  auto server = Server("b", "tcp-server", &allowed);
  auto other_server = Server("b", "tcp-server", &other);
  Allow(kA, kB, kTcp, allowed);

  // A -> B on a port its policy does not name.
  EXPECT_THAT(
      ShellOutput(In("a") + tool_ + "tcp-client " + Ip("b") + " " + std::to_string(other) + " x"),
      HasSubstr("error"));
  EXPECT_GT(Count(BASTION_DROP_POLICY_DENIED), 0u);
  // C -> B: B is not a dependency of C; C cannot even resolve B.
  EXPECT_THAT(
      ShellOutput(In("c") + tool_ + "tcp-client " + Ip("b") + " " + std::to_string(allowed) + " x"),
      HasSubstr("error"));
  EXPECT_GT(Count(BASTION_DROP_ARP_NO_DEPENDENCY), 0u);
  // The allowed port still works afterwards, and got only A's connection.
  EXPECT_THAT(ShellOutput(In("a") + tool_ + "tcp-client " + Ip("b") + " " +
                          std::to_string(allowed) + " ok"),
              HasSubstr("reply ok"));
  EXPECT_EQ(*server->ReadLine(kWait), "got ok");
}

TEST_F(NetnsIntegrationTest, SpoofedPacketsNeverArrive) {
  uint16_t port = 0;
  auto udp = Server("b", "udp-server", &port);
  Allow(kA, kB, kUdp, port);
  const std::string p = std::to_string(port);
  const NetnsLab::Container& a = lab_->container("a");
  const NetnsLab::Container& b = lab_->container("b");
  const NetnsLab::Container& c = lab_->container("c");
  // C claims A's IP; A claims C's MAC; C claims A's IP and MAC. All addressed to B's MAC.
  ShellOutput(In("c") + tool_ + "spoof eth0 " + c.mac.ToString() + " " + Ip("a") + " " +
              b.mac.ToString() + " " + Ip("b") + " " + p + " spoofed-ip");
  ShellOutput(In("a") + tool_ + "spoof eth0 " + c.mac.ToString() + " " + Ip("a") + " " +
              b.mac.ToString() + " " + Ip("b") + " " + p + " spoofed-mac");
  ShellOutput(In("c") + tool_ + "spoof eth0 " + a.mac.ToString() + " " + Ip("a") + " " +
              b.mac.ToString() + " " + Ip("b") + " " + p + " spoofed-both");
  // Then A's real datagram: the first (and only) one B receives.
  ShellOutput(In("a") + tool_ + "udp-send " + Ip("b") + " " + p + " END");
  EXPECT_EQ(*udp->ReadLine(kWait), "got END");
  EXPECT_EQ(Count(BASTION_DROP_SPOOFED_IP), 1u);
  EXPECT_EQ(Count(BASTION_DROP_SPOOFED_MAC), 2u);
}

// A 4000-byte UDP datagram at MTU 1500 travels as three IPv4 fragments: A's (allowed)
// arrives whole; C's (a dependency of B, but not on this port) loses every fragment.
TEST_F(NetnsIntegrationTest, FragmentsOfAllowedDatagramsArriveWhole) {
  uint16_t port = 0;
  auto udp = Server("b", "udp-server", &port);
  Allow(kA, kB, kUdp, port);
  ASSERT_TRUE(dp_->AddDependency(kC, kB, 0).ok());
  Allow(kC, kB, kUdp, 9);  // C may reach B, on another port only
  const std::string p = std::to_string(port);
  const std::string from_c(4000, 'c'), from_a(4000, 'a');
  ShellOutput(In("c") + tool_ + "udp-send " + Ip("b") + " " + p + " " + from_c);
  ShellOutput(In("a") + tool_ + "udp-send " + Ip("b") + " " + p + " " + from_a + " END");
  EXPECT_EQ(*udp->ReadLine(kWait), "got " + from_a);  // the first datagram B receives
  EXPECT_EQ(*udp->ReadLine(kWait), "got END");
  EXPECT_EQ(Count(BASTION_DROP_POLICY_DENIED), 1u);  // C's first fragment
  EXPECT_EQ(Count(BASTION_DROP_FRAGMENT), 2u);       // and its two later ones
  EXPECT_GE(Count(BASTION_PASS_FORWARDED), 4u);      // A's three fragments and END
}

TEST_F(NetnsIntegrationTest, ArpScanFindsOnlyDependencies) {
  const NetnsLab::Container& a = lab_->container("a");
  const NetnsLab::Container& b = lab_->container("b");
  const NetnsLab::Container& c = lab_->container("c");
  std::string from_a = ShellOutput(In("a") + tool_ + "arpscan eth0 " + a.mac.ToString() + " " +
                                   Ip("a") + " 10.213.0 1 12");
  std::string from_c = ShellOutput(In("c") + tool_ + "arpscan eth0 " + c.mac.ToString() + " " +
                                   Ip("c") + " 10.213.0 1 12");
  auto answers = [](const std::string& out) {
    std::set<std::string> ips;
    for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
      std::vector<std::string> w = absl::StrSplit(line, ' ');
      if (w.size() == 3 && w[0] == "answer") ips.insert(w[1]);
    }
    return ips;
  };
  // A sees its dependency B (answered by the datapath with B's MAC) and the gateway.
  EXPECT_THAT(answers(from_a), UnorderedElementsAre(Ip("b"), "10.213.0.1")) << from_a;
  EXPECT_THAT(from_a, HasSubstr(b.mac.ToString()));
  // C depends on nobody: only the gateway answers.
  EXPECT_THAT(answers(from_c), UnorderedElementsAre("10.213.0.1")) << from_c;
}

TEST_F(NetnsIntegrationTest, BridgeSnifferSeesNoDirectForwardedTraffic) {
  uint16_t port = 0;
  auto udp = Server("b", "udp-server", &port);
  Allow(kA, kB, kUdp, port);
  // Captures the first UDP packet crossing the bridge, then exits.
  std::unique_ptr<ChildProcess> sniffer =
      StartChild(lab_->Exec(lab_->host_netns()) + "tcpdump -i br0 -n -l -c 1 udp");
  absl::StatusOr<std::string> ready;
  do {
    ready = sniffer->ReadErrLine(kWait);
    ASSERT_TRUE(ready.ok()) << ready.status();
  } while (!absl::StrContains(*ready, "listening on br0"));

  ShellOutput(In("a") + tool_ + "udp-send " + Ip("b") + " " + std::to_string(port) +
              " secret1 secret2 END");
  EXPECT_EQ(*udp->ReadLine(kWait), "got secret1");
  EXPECT_EQ(*udp->ReadLine(kWait), "got secret2");
  EXPECT_EQ(*udp->ReadLine(kWait), "got END");
  // Host port 7 is not in A's policy (dropped); port 9 is (crosses the bridge: the marker).
  ShellOutput(In("a") + tool_ + "udp-send 10.213.0.1 7 denied");
  ShellOutput(In("a") + tool_ + "udp-send 10.213.0.1 9 marker");
  auto captured = sniffer->ReadLine(kWait);
  ASSERT_TRUE(captured.ok()) << captured.status();
  EXPECT_THAT(*captured, HasSubstr(Ip("a") + ".")) << *captured;
  EXPECT_THAT(*captured, HasSubstr("10.213.0.1.9:")) << *captured;
  EXPECT_EQ(Count(BASTION_DROP_HOST_DENIED), 1u);
}

}  // namespace
}  // namespace dctk::bastion
