// Runs the real Bastion programs in the kernel (BPF_PROG_TEST_RUN) on crafted frames, one
// test per verdict path and drop reason, checking the action, the rewritten frame, the
// per-reason counters and the ring-buffer events. Needs root (BPF load).
#include <linux/pkt_cls.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "bastion/bpf/testing/packets.h"
#include "bastion/datapath/bpf_datapath.h"

namespace dctk::bastion {
namespace {

using testing::ArpFrame;
using testing::ArpSpec;
using testing::Frame;
using testing::Ipv4Frame;
using testing::Ipv4Spec;
using testing::Mac;
using testing::RunProgram;
using testing::TestRun;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// The frames arrive on ifindex 1 (see RunProgram): that is "A's host veth".
constexpr int kIfA = 1;
constexpr int kIfB = 1002;  // B's host veth: only a redirect target, never validated here
constexpr uint32_t kA = 1, kB = 2, kC = 3;
constexpr uint32_t kGateway = kHostIdFirst;
const uint32_t kIpA = Ipv4(10, 9, 0, 2), kIpB = Ipv4(10, 9, 0, 3), kIpC = Ipv4(10, 9, 0, 4);
const uint32_t kIpGw = Ipv4(10, 9, 0, 1);
const MacAddress kMacA = Mac(0xa), kMacB = Mac(0xb), kMacC = Mac(0xc), kMacGw = Mac(0x1);
const MacAddress kBroadcast{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};

class BastionLxcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to load BPF programs";
    auto dp = BpfDatapath::Create({});
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::move(*dp);
    ASSERT_TRUE(dp_->UpsertEndpoint(kIpA, {kA, kMacA, kIfA}).ok());
    ASSERT_TRUE(dp_->UpsertEndpoint(kIpB, {kB, kMacB, kIfB}).ok());
    ASSERT_TRUE(dp_->UpsertEndpoint(kIpC, {kC, kMacC, 1003}).ok());
    ASSERT_TRUE(dp_->UpsertHost(kIpGw, kGateway).ok());
    ASSERT_TRUE(dp_->BindInterface(kIfA, {kA, kIpA, kMacA}).ok());
    ASSERT_TRUE(dp_->AddDependency(kA, kB, 0).ok());
    ASSERT_TRUE(dp_->UpsertPolicy({.src_id = kA, .dst_id = kB, .proto = kTcp,
                                   .first_port = 80, .last_port = 80}).ok());
    ASSERT_TRUE(dp_->UpsertPolicy({.src_id = kA, .dst_id = kB, .proto = kUdp,
                                   .first_port = 5000, .last_port = 5007}).ok());
    ASSERT_TRUE(dp_->UpsertPolicy({.src_id = kA, .dst_id = kGateway, .proto = kUdp,
                                   .first_port = 53, .last_port = 53}).ok());
    auto counters = dp_->ReadCounters();
    ASSERT_TRUE(counters.ok()) << counters.status();
    EXPECT_THAT(*counters, ::testing::Each(0u));
  }

  // Binds the test interface to another container (to send as B, say).
  void SendAs(uint32_t id, uint32_t ip, const MacAddress& mac) {
    ASSERT_TRUE(dp_->BindInterface(kIfA, {id, ip, mac}).ok());
  }

  TestRun From(const Frame& f) { return Run(dp_->from_container_fd(), f); }
  TestRun To(const Frame& f) { return Run(dp_->to_container_fd(), f); }
  TestRun Run(int fd, const Frame& f) {
    auto r = RunProgram(fd, f);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : TestRun{};
  }

  Frame Tcp(uint32_t saddr, uint32_t daddr, uint16_t dport, uint16_t sport = 40000) {
    return Ipv4Frame({.src_mac = kMacA, .dst_mac = kMacB, .saddr = saddr, .daddr = daddr,
                      .proto = kTcp, .sport = sport, .dport = dport});
  }
  Frame Udp(uint32_t daddr, uint16_t dport) {
    return Ipv4Frame({.src_mac = kMacA, .dst_mac = kMacB, .saddr = kIpA, .daddr = daddr,
                      .proto = kUdp, .dport = dport});
  }
  Frame ArpRequest(uint32_t tpa) {
    return ArpFrame({.op = 1, .eth_src = kMacA, .eth_dst = kBroadcast, .sha = kMacA,
                     .spa = kIpA, .tha = {}, .tpa = tpa});
  }

  // Non-zero counters, by name.
  std::vector<std::pair<std::string, uint64_t>> Counters() {
    auto c = testing::NonZeroCounters(*dp_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : std::vector<std::pair<std::string, uint64_t>>();
  }

  std::vector<VerdictEvent> Events() {
    auto e = testing::PendingEvents(*dp_);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? *std::move(e) : std::vector<VerdictEvent>();
  }

  // Expects exactly one drop, for `reason`, recorded in counters and one event.
  void ExpectDropped(const TestRun& r, uint32_t reason) {
    EXPECT_EQ(r.action, TC_ACT_SHOT);
    EXPECT_THAT(Counters(), ElementsAre(std::pair(std::string(VerdictName(reason)), 1u)));
    std::vector<VerdictEvent> events = Events();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(VerdictName(events[0].reason), VerdictName(reason));
    EXPECT_FALSE(events[0].audit);
  }

  std::unique_ptr<BpfDatapath> dp_;
};

using Pair = std::pair<std::string, uint64_t>;

TEST_F(BastionLxcTest, AllowedTcpIsForwardedStraightToThePeer) {
  Frame f = Tcp(kIpA, kIpB, 80);
  f[0] = 0xee;  // addressed to some other MAC (e.g. the gateway): rewritten to B's
  TestRun r = From(f);
  EXPECT_EQ(r.action, TC_ACT_REDIRECT);
  EXPECT_TRUE(std::equal(kMacB.bytes.begin(), kMacB.bytes.end(), r.out.begin()));
  EXPECT_THAT(Counters(), ElementsAre(Pair("forwarded", 1)));
  EXPECT_THAT(Events(), IsEmpty());
}

// Policy entries written to the inactive generation change nothing until it is
// activated; then the active generation's entries alone decide.
TEST_F(BastionLxcTest, InactiveGenerationIsIgnoredUntilActivated) {
  ASSERT_EQ(dp_->ActiveGeneration(), 0u);
  dp_->SetWriteGeneration(1);
  ASSERT_TRUE(dp_->AddDependency(kA, kC, 0).ok());
  ASSERT_TRUE(dp_->UpsertPolicy({.src_id = kA, .dst_id = kC, .proto = kTcp,
                                 .first_port = 90, .last_port = 90}).ok());
  EXPECT_EQ(From(Tcp(kIpA, kIpC, 90)).action, TC_ACT_SHOT);   // no_dependency (gen 0)
  EXPECT_EQ(From(Tcp(kIpA, kIpB, 80)).action, TC_ACT_REDIRECT);
  ASSERT_TRUE(dp_->ActivateGeneration(1).ok());
  EXPECT_EQ(From(Tcp(kIpA, kIpC, 90)).action, TC_ACT_REDIRECT);
  EXPECT_EQ(From(Tcp(kIpA, kIpB, 80)).action, TC_ACT_SHOT);   // A->B exists only in gen 0
  ASSERT_TRUE(dp_->ActivateGeneration(0).ok());
  EXPECT_EQ(From(Tcp(kIpA, kIpB, 80)).action, TC_ACT_REDIRECT);
  EXPECT_THAT(Counters(), ElementsAre(Pair("forwarded", 3), Pair("no_dependency", 2)));
  EXPECT_FALSE(dp_->ActivateGeneration(2).ok());
}

TEST_F(BastionLxcTest, PortRangeAllowsInsideAndDeniesOutside) {
  EXPECT_EQ(From(Udp(kIpB, 5000)).action, TC_ACT_REDIRECT);
  EXPECT_EQ(From(Udp(kIpB, 5007)).action, TC_ACT_REDIRECT);
  EXPECT_EQ(From(Udp(kIpB, 5008)).action, TC_ACT_SHOT);
  EXPECT_EQ(From(Udp(kIpB, 4999)).action, TC_ACT_SHOT);
  EXPECT_THAT(Counters(), ElementsAre(Pair("forwarded", 2), Pair("policy_denied", 2)));
}

TEST_F(BastionLxcTest, ExactDenyCarvesOutOfARange) {
  ASSERT_TRUE(dp_->UpsertPolicy({.src_id = kA, .dst_id = kB, .proto = kUdp, .first_port = 5005,
                                 .last_port = 5005, .verdict = PolicyVerdict::kDeny}).ok());
  EXPECT_EQ(From(Udp(kIpB, 5004)).action, TC_ACT_REDIRECT);
  EXPECT_EQ(From(Udp(kIpB, 5005)).action, TC_ACT_SHOT);
}

TEST_F(BastionLxcTest, RemovedPoliciesDenyAgain) {
  ASSERT_TRUE(dp_->RemovePolicy({.src_id = kA, .dst_id = kB, .proto = kUdp,
                                 .first_port = 5000, .last_port = 5007}).ok());
  ASSERT_TRUE(dp_->RemovePolicy({.src_id = kA, .dst_id = kB, .proto = kTcp,
                                 .first_port = 80, .last_port = 80}).ok());
  EXPECT_EQ(From(Udp(kIpB, 5003)).action, TC_ACT_SHOT);
  EXPECT_EQ(From(Tcp(kIpA, kIpB, 80)).action, TC_ACT_SHOT);
  EXPECT_EQ(dp_->RemovePolicy({.src_id = kA, .dst_id = kB, .proto = kUdp, .first_port = 5000,
                               .last_port = 5007}).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(BastionLxcTest, AnyProtocolRuleStillAppliesBesideProtocolRanges) {
  const uint32_t outside = Ipv4(192, 0, 2, 7);
  ASSERT_TRUE(dp_->UpsertPolicy({.src_id = kA, .dst_id = kWorldId}).ok());
  ASSERT_TRUE(dp_->UpsertPolicy({.src_id = kA, .dst_id = kWorldId, .proto = kTcp,
                                 .first_port = 1000, .last_port = 1999,
                                 .verdict = PolicyVerdict::kDeny}).ok());
  EXPECT_EQ(From(Tcp(kIpA, outside, 1500)).action, TC_ACT_SHOT);
  EXPECT_EQ(From(Tcp(kIpA, outside, 443)).action, TC_ACT_OK);
}

TEST_F(BastionLxcTest, InvalidRulesAreRejected) {
  EXPECT_EQ(dp_->UpsertPolicy({.src_id = kA, .dst_id = kB, .proto = kAnyProtocol,
                               .first_port = 80, .last_port = 80}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(dp_->UpsertPolicy({.src_id = kA, .dst_id = kB, .proto = kTcp, .first_port = 90,
                               .last_port = 80}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(dp_->UpsertEndpoint(kIpC, {kGateway, kMacC, 0}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(BastionLxcTest, NoDependencyDrops) {
  TestRun r = From(Tcp(kIpA, kIpC, 80));
  ExpectDropped(r, BASTION_DROP_NO_DEPENDENCY);
}

TEST_F(BastionLxcTest, DropEventDescribesThePacket) {
  From(Tcp(kIpA, kIpC, 443, 41000));
  std::vector<VerdictEvent> events = Events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].ifindex, kIfA);
  EXPECT_EQ(events[0].container_id, kA);
  EXPECT_EQ(events[0].saddr, kIpA);
  EXPECT_EQ(events[0].daddr, kIpC);
  EXPECT_EQ(events[0].sport, 41000);
  EXPECT_EQ(events[0].dport, 443);
  EXPECT_EQ(events[0].proto, kTcp);
  EXPECT_EQ(events[0].l3_proto, 0x0800);
  EXPECT_FALSE(events[0].to_container);
}

TEST_F(BastionLxcTest, WrongPortDrops) {
  ExpectDropped(From(Tcp(kIpA, kIpB, 81)), BASTION_DROP_POLICY_DENIED);
}

TEST_F(BastionLxcTest, WrongProtocolDrops) {
  ExpectDropped(From(Udp(kIpB, 80)), BASTION_DROP_POLICY_DENIED);
}

TEST_F(BastionLxcTest, SpoofedSourceIpDrops) {
  ExpectDropped(From(Tcp(kIpC, kIpB, 80)), BASTION_DROP_SPOOFED_IP);
}

TEST_F(BastionLxcTest, SpoofedSourceMacDrops) {
  Frame f = Ipv4Frame({.src_mac = kMacC, .dst_mac = kMacB, .saddr = kIpA, .daddr = kIpB,
                       .proto = kTcp, .dport = 80});
  ExpectDropped(From(f), BASTION_DROP_SPOOFED_MAC);
}

TEST_F(BastionLxcTest, UnboundInterfaceDrops) {
  ASSERT_TRUE(dp_->UnbindInterface(kIfA).ok());
  ExpectDropped(From(Tcp(kIpA, kIpB, 80)), BASTION_DROP_UNBOUND);
}

TEST_F(BastionLxcTest, ArpRequestForDependencyIsAnsweredInPlace) {
  TestRun r = From(ArpRequest(kIpB));
  EXPECT_EQ(r.action, TC_ACT_REDIRECT);  // back out of the same veth, to the container
  ArpSpec want{.op = 2, .eth_src = kMacB, .eth_dst = kMacA, .sha = kMacB, .spa = kIpB,
               .tha = kMacA, .tpa = kIpA};
  EXPECT_EQ(r.out, ArpFrame(want));
  EXPECT_THAT(Counters(), ElementsAre(Pair("arp_answered", 1)));
}

TEST_F(BastionLxcTest, ArpRequestFromAPeerThatDependsOnUsIsAnswered) {
  SendAs(kB, kIpB, kMacB);  // B must resolve A to reply to it
  Frame req = ArpFrame({.op = 1, .eth_src = kMacB, .eth_dst = kBroadcast, .sha = kMacB,
                        .spa = kIpB, .tha = {}, .tpa = kIpA});
  EXPECT_EQ(From(req).action, TC_ACT_REDIRECT);
}

TEST_F(BastionLxcTest, ArpRequestForGatewayGoesToTheHost) {
  EXPECT_EQ(From(ArpRequest(kIpGw)).action, TC_ACT_OK);
  EXPECT_THAT(Counters(), ElementsAre(Pair("arp_passed", 1)));
}

TEST_F(BastionLxcTest, ArpRequestForNonDependencyDrops) {
  ExpectDropped(From(ArpRequest(kIpC)), BASTION_DROP_ARP_NO_DEPENDENCY);
}

TEST_F(BastionLxcTest, ArpScanOfUnknownAddressesLearnsNothing) {
  for (uint8_t host = 5; host < 50; ++host) {
    EXPECT_EQ(From(ArpRequest(Ipv4(10, 9, 0, host))).action, TC_ACT_SHOT);
  }
  EXPECT_THAT(Counters(), ElementsAre(Pair("arp_no_dependency", 45)));
}

TEST_F(BastionLxcTest, ForgedArpReplyClaimingAnotherIpDrops) {
  Frame reply = ArpFrame({.op = 2, .eth_src = kMacA, .eth_dst = kBroadcast, .sha = kMacA,
                          .spa = kIpB, .tha = kBroadcast, .tpa = kIpB});  // "B is at A"
  ExpectDropped(From(reply), BASTION_DROP_ARP_SPOOFED);
}

TEST_F(BastionLxcTest, ForgedArpSenderMacDrops) {
  Frame reply = ArpFrame({.op = 2, .eth_src = kMacA, .eth_dst = kMacGw, .sha = kMacC,
                          .spa = kIpA, .tha = kMacGw, .tpa = kIpGw});
  ExpectDropped(From(reply), BASTION_DROP_ARP_SPOOFED);
}

TEST_F(BastionLxcTest, ArpReplyWithOwnAddressesPasses) {
  Frame reply = ArpFrame({.op = 2, .eth_src = kMacA, .eth_dst = kMacGw, .sha = kMacA,
                          .spa = kIpA, .tha = kMacGw, .tpa = kIpGw});
  EXPECT_EQ(From(reply).action, TC_ACT_OK);
  EXPECT_THAT(Counters(), ElementsAre(Pair("arp_passed", 1)));
}

TEST_F(BastionLxcTest, HostServiceInPolicyPassesToTheStack) {
  EXPECT_EQ(From(Udp(kIpGw, 53)).action, TC_ACT_OK);
  EXPECT_THAT(Counters(), ElementsAre(Pair("passed", 1)));
}

TEST_F(BastionLxcTest, HostServiceNotInPolicyDrops) {
  ExpectDropped(From(Tcp(kIpA, kIpGw, 22)), BASTION_DROP_HOST_DENIED);
}

TEST_F(BastionLxcTest, WorldNeedsAPolicy) {
  const uint32_t outside = Ipv4(192, 0, 2, 7);
  ExpectDropped(From(Tcp(kIpA, outside, 443)), BASTION_DROP_WORLD_DENIED);
  ASSERT_TRUE(dp_->UpsertPolicy({.src_id = kA, .dst_id = kWorldId}).ok());  // anything
  EXPECT_EQ(From(Tcp(kIpA, outside, 443)).action, TC_ACT_OK);
  EXPECT_EQ(From(Udp(outside, 9)).action, TC_ACT_OK);
}

TEST_F(BastionLxcTest, ReplyOfAnAllowedConnectionIsForwarded) {
  ASSERT_EQ(From(Tcp(kIpA, kIpB, 80, 40001)).action, TC_ACT_REDIRECT);
  SendAs(kB, kIpB, kMacB);
  Frame reply = Ipv4Frame({.src_mac = kMacB, .dst_mac = kMacA, .saddr = kIpB, .daddr = kIpA,
                           .proto = kTcp, .sport = 80, .dport = 40001});
  EXPECT_EQ(From(reply).action, TC_ACT_REDIRECT);
  EXPECT_THAT(Counters(), ElementsAre(Pair("forwarded", 1), Pair("reply", 1)));
  // Another port of A is not a reply: B has no dependency on A.
  Frame other = Ipv4Frame({.src_mac = kMacB, .dst_mac = kMacA, .saddr = kIpB, .daddr = kIpA,
                           .proto = kTcp, .sport = 80, .dport = 40002});
  EXPECT_EQ(From(other).action, TC_ACT_SHOT);
  // After a flush (policy revoked) the reply is no longer admitted.
  ASSERT_TRUE(dp_->FlushConnections().ok());
  EXPECT_EQ(From(reply).action, TC_ACT_SHOT);
}

TEST_F(BastionLxcTest, ExpiredConnectionAdmitsNoReply) {
  dp_.reset();
  auto dp = BpfDatapath::Create({.conntrack_lifetime = absl::ZeroDuration()});
  ASSERT_TRUE(dp.ok()) << dp.status();
  dp_ = std::move(*dp);
  ASSERT_TRUE(dp_->UpsertEndpoint(kIpA, {kA, kMacA, kIfA}).ok());
  ASSERT_TRUE(dp_->UpsertEndpoint(kIpB, {kB, kMacB, kIfB}).ok());
  ASSERT_TRUE(dp_->BindInterface(kIfA, {kA, kIpA, kMacA}).ok());
  ASSERT_TRUE(dp_->AddDependency(kA, kB, 0).ok());
  ASSERT_TRUE(dp_->UpsertPolicy({.src_id = kA, .dst_id = kB, .proto = kTcp,
                                 .first_port = 80, .last_port = 80}).ok());
  ASSERT_EQ(From(Tcp(kIpA, kIpB, 80, 40001)).action, TC_ACT_REDIRECT);
  SendAs(kB, kIpB, kMacB);
  Frame reply = Ipv4Frame({.src_mac = kMacB, .dst_mac = kMacA, .saddr = kIpB, .daddr = kIpA,
                           .proto = kTcp, .sport = 80, .dport = 40001});
  EXPECT_EQ(From(reply).action, TC_ACT_SHOT);
}

TEST_F(BastionLxcTest, AuditModePassesPolicyDropsButRecordsThem) {
  ASSERT_TRUE(dp_->SetAuditMode(true).ok());
  EXPECT_EQ(From(Tcp(kIpA, kIpC, 80)).action, TC_ACT_OK);  // to the stack, not forwarded
  EXPECT_EQ(From(ArpRequest(kIpC)).action, TC_ACT_OK);
  EXPECT_THAT(Counters(), ElementsAre(Pair("audit_passed", 2), Pair("arp_no_dependency", 1),
                                      Pair("no_dependency", 1)));
  std::vector<VerdictEvent> events = Events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].reason, BASTION_DROP_NO_DEPENDENCY);
  EXPECT_TRUE(events[0].audit);
  EXPECT_EQ(events[1].reason, BASTION_DROP_ARP_NO_DEPENDENCY);
  EXPECT_TRUE(events[1].audit);
}

TEST_F(BastionLxcTest, AuditModeStillDropsSpoofing) {
  ASSERT_TRUE(dp_->SetAuditMode(true).ok());
  ExpectDropped(From(Tcp(kIpC, kIpB, 80)), BASTION_DROP_SPOOFED_IP);
}

TEST_F(BastionLxcTest, NonIpv4Drops) {
  ExpectDropped(From(testing::EtherFrame(kMacA, kMacB, 0x86dd, 60)),
                BASTION_DROP_UNSUPPORTED_L3);
}

// A UDP datagram from A as three fragments: first (offset 0, MF), middle, last.
std::vector<Frame> UdpFragments(uint32_t saddr, uint32_t daddr, uint16_t dport,
                                uint16_t ip_id) {
  std::vector<Frame> out;
  for (uint16_t offset : {0, 185, 370}) {
    out.push_back(Ipv4Frame({.src_mac = kMacA, .dst_mac = kMacB, .saddr = saddr,
                             .daddr = daddr, .proto = kUdp, .dport = dport,
                             .frag_offset = offset, .more_fragments = offset != 370,
                             .ip_id = ip_id, .payload = 1472}));
  }
  return out;
}

TEST_F(BastionLxcTest, LoneNonFirstFragmentDrops) {
  Frame f = Ipv4Frame({.src_mac = kMacA, .dst_mac = kMacB, .saddr = kIpA, .daddr = kIpB,
                       .proto = kUdp, .dport = 5000, .frag_offset = 100});
  ExpectDropped(From(f), BASTION_DROP_FRAGMENT);
}

// Every fragment of an allowed datagram is forwarded straight to the peer, like the first.
TEST_F(BastionLxcTest, FragmentsOfAnAllowedDatagramAllFollowTheFirst) {
  for (Frame& f : UdpFragments(kIpA, kIpB, 5000, 77)) {
    f[0] = 0xee;  // rewritten to B's MAC on every fragment
    TestRun r = From(f);
    EXPECT_EQ(r.action, TC_ACT_REDIRECT);
    EXPECT_TRUE(std::equal(kMacB.bytes.begin(), kMacB.bytes.end(), r.out.begin()));
  }
  EXPECT_THAT(Counters(), ElementsAre(Pair("forwarded", 3)));
  EXPECT_THAT(Events(), IsEmpty());
  // Another datagram (IP id) between the same two has no record of its own.
  EXPECT_EQ(From(UdpFragments(kIpA, kIpB, 5000, 78)[1]).action, TC_ACT_SHOT);
  EXPECT_THAT(Counters(), ElementsAre(Pair("forwarded", 3), Pair("fragment", 1)));
}

TEST_F(BastionLxcTest, FragmentsToTheStackFollowTheFirst) {
  for (const Frame& f : UdpFragments(kIpA, kIpGw, 53, 9)) EXPECT_EQ(From(f).action, TC_ACT_OK);
  EXPECT_THAT(Counters(), ElementsAre(Pair("passed", 3)));
}

TEST_F(BastionLxcTest, FragmentsOfADeniedDatagramAllDrop) {
  std::vector<Frame> frags = UdpFragments(kIpA, kIpB, 6000, 78);
  for (const Frame& f : frags) EXPECT_EQ(From(f).action, TC_ACT_SHOT);
  EXPECT_THAT(Counters(), ElementsAre(Pair("policy_denied", 1), Pair("fragment", 2)));
  EXPECT_EQ(Events().size(), 3u);
}

// A denied first fragment removes an older allowed record of the same key (IP id reuse).
TEST_F(BastionLxcTest, DeniedFirstFragmentForgetsAnOlderRecord) {
  EXPECT_EQ(From(UdpFragments(kIpA, kIpB, 5000, 5)[0]).action, TC_ACT_REDIRECT);
  EXPECT_EQ(From(UdpFragments(kIpA, kIpB, 6000, 5)[0]).action, TC_ACT_SHOT);
  EXPECT_EQ(From(UdpFragments(kIpA, kIpB, 6000, 5)[1]).action, TC_ACT_SHOT);
  EXPECT_THAT(Counters(), ElementsAre(Pair("forwarded", 1), Pair("policy_denied", 1),
                                      Pair("fragment", 1)));
}

// Source verification applies to later fragments too, even with a recorded first one.
TEST_F(BastionLxcTest, SpoofedSourceFragmentDrops) {
  std::vector<Frame> frags = UdpFragments(kIpA, kIpB, 5000, 11);
  EXPECT_EQ(From(frags[0]).action, TC_ACT_REDIRECT);
  ASSERT_EQ(Counters(), (std::vector<Pair>{Pair("forwarded", 1)}));
  SendAs(kC, kIpC, kMacC);  // the record is A's; C claims A's address
  std::vector<Frame> spoofed = UdpFragments(kIpA, kIpB, 5000, 11);
  for (Frame& f : spoofed) std::copy(kMacC.bytes.begin(), kMacC.bytes.end(), f.begin() + 6);
  TestRun r = From(spoofed[1]);
  EXPECT_EQ(r.action, TC_ACT_SHOT);
  EXPECT_THAT(Counters(), ElementsAre(Pair("forwarded", 1), Pair("spoofed_ip", 1)));
}

// Replies allowed by conntrack: their later fragments pass as replies too.
TEST_F(BastionLxcTest, FragmentsOfAReplyFollowTheFirst) {
  EXPECT_EQ(From(Udp(kIpB, 5000)).action, TC_ACT_REDIRECT);  // A:40000 -> B:5000
  SendAs(kB, kIpB, kMacB);
  std::vector<Frame> reply;
  for (uint16_t offset : {0, 185}) {
    reply.push_back(Ipv4Frame({.src_mac = kMacB, .dst_mac = kMacA, .saddr = kIpB,
                               .daddr = kIpA, .proto = kUdp, .sport = 5000, .dport = 40000,
                               .frag_offset = offset, .more_fragments = offset == 0,
                               .ip_id = 3, .payload = 1472}));
  }
  for (const Frame& f : reply) EXPECT_EQ(From(f).action, TC_ACT_REDIRECT);
  EXPECT_THAT(Counters(), ElementsAre(Pair("forwarded", 1), Pair("reply", 2)));
}

// Entering a container (tc egress): the same, by the destination's own policy.
TEST_F(BastionLxcTest, FragmentsIntoAContainerFollowTheFirst) {
  SendAs(kB, kIpB, kMacB);  // the interface is now B's: traffic A -> B enters it
  for (const Frame& f : UdpFragments(kIpA, kIpB, 5000, 21)) EXPECT_EQ(To(f).action, TC_ACT_OK);
  for (const Frame& f : UdpFragments(kIpA, kIpB, 6000, 22)) EXPECT_EQ(To(f).action, TC_ACT_SHOT);
  EXPECT_THAT(Counters(), ElementsAre(Pair("passed", 3), Pair("policy_denied", 1),
                                      Pair("fragment", 2)));
}

TEST_F(BastionLxcTest, TruncatedIpv4Drops) {
  Frame f = Tcp(kIpA, kIpB, 80);
  f.resize(14 + 20 + 2);  // IPv4 header, but only half the ports
  ExpectDropped(From(f), BASTION_DROP_MALFORMED);
}

// --- tc egress: traffic entering container A through the bridge ---

TEST_F(BastionLxcTest, InboundHostServiceNeedsPolicy) {
  Frame in = Ipv4Frame({.src_mac = kMacGw, .dst_mac = kMacA, .saddr = kIpGw, .daddr = kIpA,
                        .proto = kTcp, .sport = 50000, .dport = 8080});
  ExpectDropped(To(in), BASTION_DROP_HOST_DENIED);
  ASSERT_TRUE(dp_->UpsertPolicy({.src_id = kGateway, .dst_id = kA, .proto = kTcp,
                                 .first_port = 8080, .last_port = 8080}).ok());
  EXPECT_EQ(To(in).action, TC_ACT_OK);
}

TEST_F(BastionLxcTest, HostReplyEntersTheContainer) {
  ASSERT_EQ(From(Udp(kIpGw, 53)).action, TC_ACT_OK);
  Frame reply = Ipv4Frame({.src_mac = kMacGw, .dst_mac = kMacA, .saddr = kIpGw, .daddr = kIpA,
                           .proto = kUdp, .sport = 53, .dport = 40000});
  EXPECT_EQ(To(reply).action, TC_ACT_OK);
  EXPECT_THAT(Counters(), ElementsAre(Pair("passed", 1), Pair("reply", 1)));
}

// An ICMP error (type 3, code 3) from the gateway to A about `original` (A's packet).
Frame IcmpUnreachable(const Frame& original) {
  Frame f = Ipv4Frame({.src_mac = kMacGw, .dst_mac = kMacA, .saddr = kIpGw, .daddr = kIpA,
                       .proto = kIcmp, .payload = 28});
  const size_t icmp = 14 + 20;
  f[icmp] = 3;
  f[icmp + 1] = 3;
  std::copy(original.begin() + 14, original.begin() + 14 + 28, f.begin() + icmp + 8);
  return f;
}

TEST_F(BastionLxcTest, IcmpErrorAboutATrackedPacketEntersTheContainer) {
  Frame sent = Udp(kIpGw, 53);
  ASSERT_EQ(From(sent).action, TC_ACT_OK);
  EXPECT_EQ(To(IcmpUnreachable(sent)).action, TC_ACT_OK);
  EXPECT_THAT(Counters(), ElementsAre(Pair("passed", 1), Pair("reply", 1)));
}

TEST_F(BastionLxcTest, IcmpErrorAboutAnUntrackedPacketDrops) {
  ExpectDropped(To(IcmpUnreachable(Udp(kIpGw, 54))), BASTION_DROP_HOST_DENIED);
}

TEST_F(BastionLxcTest, InboundFromContainerViaBridgeIsPolicyChecked) {
  Frame in = Ipv4Frame({.src_mac = kMacC, .dst_mac = kMacA, .saddr = kIpC, .daddr = kIpA,
                        .proto = kTcp, .sport = 50000, .dport = 80});
  ExpectDropped(To(in), BASTION_DROP_NO_DEPENDENCY);
  EXPECT_TRUE(Events().empty());
  auto events_seen = 0;
  To(in);
  dp_->PollEvents(absl::ZeroDuration(), [&](const VerdictEvent& e) {
    EXPECT_TRUE(e.to_container);
    ++events_seen;
  }).IgnoreError();
  EXPECT_EQ(events_seen, 1);
}

TEST_F(BastionLxcTest, ArpEntersOnlyTheContainerItIsFor) {
  Frame for_a = ArpFrame({.op = 1, .eth_src = kMacGw, .eth_dst = kBroadcast, .sha = kMacGw,
                          .spa = kIpGw, .tha = {}, .tpa = kIpA});
  EXPECT_EQ(To(for_a).action, TC_ACT_OK);
  Frame for_c = ArpFrame({.op = 1, .eth_src = kMacGw, .eth_dst = kBroadcast, .sha = kMacGw,
                          .spa = kIpGw, .tha = {}, .tpa = kIpC});
  EXPECT_EQ(To(for_c).action, TC_ACT_SHOT);
  EXPECT_THAT(Counters(), ElementsAre(Pair("arp_passed", 1), Pair("not_for_container", 1)));
}

TEST_F(BastionLxcTest, Ipv4NotAddressedToTheContainerDrops) {
  Frame in = Ipv4Frame({.src_mac = kMacGw, .dst_mac = kMacA, .saddr = kIpGw, .daddr = kIpC,
                        .proto = kUdp, .sport = 53, .dport = 40000});
  ExpectDropped(To(in), BASTION_DROP_NOT_FOR_CONTAINER);
}

}  // namespace
}  // namespace dctk::bastion
