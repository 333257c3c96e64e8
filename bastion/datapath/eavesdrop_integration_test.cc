// Eavesdropping on real traffic: containers A, B, C are namespaces on a bridge with the
// Bastion veth programs; A may talk to B. Sniffers on the bridge and in C (tcpdump,
// promiscuous) must capture none of A's TCP and UDP traffic to B, even with the bridge
// flooding every unicast frame to every port (learning off: the state a MAC-table
// overflow attack forces on a plain bridge). Each sniffer's first capture must be a
// marker sent after that traffic through the sniffer's own path. Needs root; deletes
// everything it made also on failure.
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/process/run_command.h"
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

constexpr uint32_t kA = 1, kB = 2, kC = 3;
constexpr uint32_t kGateway = kHostIdFirst;
constexpr uint16_t kMarkerPort = 9;
constexpr absl::Duration kWait = absl::Seconds(20);

class EavesdropIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces and BPF";
    auto lab = NetnsLab::Create("10.215.0", {"a", "b", "c"});
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
      // Flood every unicast frame to every port.
      ASSERT_TRUE(RunCommand(Host() + "ip link set dev " + ct.host_veth +
                                 " type bridge_slave learning off").ok());
      ++i;
    }
    ASSERT_TRUE(RunCommand(Host() + "bridge fdb flush dev br0 dynamic").ok());
    ASSERT_TRUE(dp_->UpsertHost(lab_->gateway_ip(), kGateway).ok());
    // A uses B (the secrets) and C (C's marker); A may send the bridge marker to the host.
    ASSERT_TRUE(dp_->AddDependency(kA, kB, 0).ok());
    ASSERT_TRUE(dp_->AddDependency(kA, kC, 0).ok());
    Allow(kA, kC, kUdp, kMarkerPort);
    Allow(kA, kGateway, kUdp, kMarkerPort);
    tool_ = absl::StrCat("/usr/bin/python3 ", getcwd(cwd_, sizeof(cwd_)),
                         "/bastion/datapath/testdata/netns_tool.py ");
  }

  void TearDown() override {
    dp_.reset();
    lab_.reset();
  }

  std::string Host() { return lab_->Exec(lab_->host_netns()); }
  std::string In(const std::string& name) { return lab_->Exec(lab_->container(name).netns); }
  std::string Ip(const std::string& name) { return Ipv4ToString(lab_->container(name).ip); }

  void Allow(uint32_t src, uint32_t dst, uint8_t proto, uint16_t port) {
    ASSERT_TRUE(dp_->UpsertPolicy({.src_id = src, .dst_id = dst, .proto = proto,
                                   .first_port = port, .last_port = port}).ok());
  }

  std::unique_ptr<ChildProcess> Server(const std::string& name, const std::string& kind, uint16_t* port) {
    auto server = testing::StartPortServer(In(name) + tool_ + kind, kWait);
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return nullptr;
    *port = server->port;
    return std::move(server->child);
  }

  // tcpdump printing the first TCP or UDP packet it captures, ready when this returns.
  std::unique_ptr<ChildProcess> Sniffer(const std::string& netns_exec, const std::string& iface) {
    auto sniffer = StartChild(netns_exec + "tcpdump -i " + iface +
                                           " -n -l -c 1 'udp or tcp'");
    absl::StatusOr<std::string> line;
    do {
      line = sniffer->ReadErrLine(kWait);
      EXPECT_TRUE(line.ok()) << line.status();
    } while (line.ok() && !absl::StrContains(*line, "listening on " + iface));
    return sniffer;
  }

  char cwd_[4096];
  std::string tool_;
  std::unique_ptr<NetnsLab> lab_;
  std::unique_ptr<BpfDatapath> dp_;
};

TEST_F(EavesdropIntegrationTest, BridgeAndThirdContainerSniffersSeeNoneOfAToB) {
  uint16_t tcp_port = 0, udp_port = 0;
  auto tcp = Server("b", "tcp-server", &tcp_port);
  auto udp = Server("b", "udp-server", &udp_port);
  Allow(kA, kB, kTcp, tcp_port);
  Allow(kA, kB, kUdp, udp_port);
  auto on_bridge = Sniffer(Host(), "br0");
  auto in_c = Sniffer(In("c"), "eth0");

  // A and B talk: a TCP exchange (with B's replies) and UDP datagrams.
  EXPECT_THAT(ShellOutput(In("a") + tool_ + "tcp-client " + Ip("b") + " " +
                          std::to_string(tcp_port) + " secret-tcp"),
              HasSubstr("reply secret-tcp"));
  EXPECT_EQ(*tcp->ReadLine(kWait), "got secret-tcp");
  ShellOutput(In("a") + tool_ + "udp-send " + Ip("b") + " " + std::to_string(udp_port) +
              " secret1 secret2 END");
  EXPECT_EQ(*udp->ReadLine(kWait), "got secret1");
  EXPECT_EQ(*udp->ReadLine(kWait), "got secret2");
  EXPECT_EQ(*udp->ReadLine(kWait), "got END");
  EXPECT_GT(dp_->ReadCounters().value()[BASTION_PASS_FORWARDED], 0u);

  // Then the markers: to the host (crosses the bridge) and to C (straight into C).
  ShellOutput(In("a") + tool_ + "udp-send " + Ipv4ToString(lab_->gateway_ip()) + " " +
              std::to_string(kMarkerPort) + " marker");
  ShellOutput(In("a") + tool_ + "udp-send " + Ip("c") + " " + std::to_string(kMarkerPort) +
              " marker");
  const std::string from_a = Ip("a") + ".";
  auto bridge_first = on_bridge->ReadLine(kWait);
  ASSERT_TRUE(bridge_first.ok()) << bridge_first.status();
  EXPECT_THAT(*bridge_first, HasSubstr(from_a));
  EXPECT_THAT(*bridge_first, HasSubstr(Ipv4ToString(lab_->gateway_ip()) + ".9:"));
  auto c_first = in_c->ReadLine(kWait);
  ASSERT_TRUE(c_first.ok()) << c_first.status();
  EXPECT_THAT(*c_first, HasSubstr(from_a));
  EXPECT_THAT(*c_first, HasSubstr(Ip("c") + ".9:"));
}

}  // namespace
}  // namespace dctk::bastion
