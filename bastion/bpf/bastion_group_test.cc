// Multicast groups in the real Bastion programs (BPF_PROG_TEST_RUN): a MOM datagram a
// dependent container sends to a group is stamped with the group's next sequence number
// (UDP checksum kept valid), copied to each member's host veth with the member's MAC as
// destination, and the original dropped; non-dependent senders, wrong ports and
// non-MOM payloads drop with their reasons; entering a container, a group datagram
// passes only for members and from dependent senders. Needs root: the test moves itself
// into a network namespace of its own (unshare), where it makes the members' veths and
// reads the copies on their far ends with packet sockets.
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/transport/framing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "bastion/bpf/testing/packets.h"
#include "bastion/datapath/bpf_datapath.h"

namespace dctk::bastion {
namespace {

using testing::Frame;
using testing::Ipv4Frame;
using testing::kUdpPayloadOffset;
using testing::Mac;
using testing::RunProgram;
using testing::TestRun;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

constexpr uint32_t kA = 1, kB = 2, kC = 3, kD = 4, kE = 5;  // A sends; B, C, D members
constexpr uint32_t kGroup = kGroupIdFirst;
const uint32_t kIpA = Ipv4(10, 9, 0, 2), kIpB = Ipv4(10, 9, 0, 3), kIpC = Ipv4(10, 9, 0, 4),
               kIpD = Ipv4(10, 9, 0, 5), kIpE = Ipv4(10, 9, 0, 6);
const uint32_t kGroupIp = Ipv4(239, 7, 0, 1);
constexpr uint16_t kPort = 7000;
const MacAddress kMacA = Mac(0xa), kMacB = Mac(0xb), kMacC = Mac(0xc), kMacD = Mac(0xd),
                 kMacE = Mac(0xe);
const MacAddress kMulticastMac{{0x01, 0x00, 0x5e, 0x07, 0x00, 0x01}};
constexpr size_t kSeqAt = kUdpPayloadOffset + 13;  // MomPacket.group_seq's value

// A member's host veth (the redirect target) and a packet socket on its far end.
struct MemberLink {
  int host_ifindex = 0;
  int socket = -1;
};

uint64_t SeqOf(const Frame& f) {
  uint64_t seq = 0;
  for (int i = 0; i < 8; ++i) seq |= uint64_t{f[kSeqAt + i]} << (8 * i);
  return seq;
}

class BastionGroupTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0) return;
    ASSERT_EQ(unshare(CLONE_NEWNET), 0) << "unshare(CLONE_NEWNET)";
    // No IPv6 chatter (router solicitations, MLD) on the test's veths.
    ASSERT_EQ(std::system("for c in default all; do f=/proc/sys/net/ipv6/conf/$c/disable_ipv6; "
                          "[ -w $f ] && echo 1 > $f; done; ip link set lo up"),
              0);
    for (int k = 0; k < 3; ++k) {
      const std::string h = absl::StrCat("bg", k, "h"), c = absl::StrCat("bg", k, "c");
      ASSERT_EQ(std::system(absl::StrCat("ip link add ", h, " type veth peer name ", c,
                                         " && ip link set ", h, " up && ip link set ", c, " up")
                                .c_str()),
                0);
      MemberLink link;
      link.host_ifindex = static_cast<int>(if_nametoindex(h.c_str()));
      link.socket = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
      ASSERT_GE(link.socket, 0);
      sockaddr_ll addr{};
      addr.sll_family = AF_PACKET;
      addr.sll_protocol = htons(ETH_P_ALL);
      addr.sll_ifindex = static_cast<int>(if_nametoindex(c.c_str()));
      ASSERT_EQ(bind(link.socket, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
      links_.push_back(link);
    }
  }

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to load BPF programs and make a netns";
    auto dp = BpfDatapath::Create({});
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::move(*dp);
    // A is bound to the test's interface (1) and is a member too: it gets its own
    // datagrams by the kernel's multicast loopback, never a copy from the datapath.
    ASSERT_TRUE(dp_->BindInterface(1, {kA, kIpA, kMacA}).ok());
    const std::pair<uint32_t, std::pair<uint32_t, MacAddress>> containers[] = {
        {kA, {kIpA, kMacA}}, {kB, {kIpB, kMacB}}, {kC, {kIpC, kMacC}},
        {kD, {kIpD, kMacD}}, {kE, {kIpE, kMacE}}};
    for (const auto& [id, ip_mac] : containers) {
      ASSERT_TRUE(dp_->UpsertEndpoint(ip_mac.first, {id, ip_mac.second, 0}).ok());
    }
    group_ = {.id = kGroup,
              .port = kPort,
              .sequenced = true,
              .members = {{kA, 1, kMacA},
                          {kB, links_[0].host_ifindex, kMacB},
                          {kC, links_[1].host_ifindex, kMacC},
                          {kD, links_[2].host_ifindex, kMacD}}};
    ASSERT_TRUE(dp_->UpsertGroup(kGroupIp, group_).ok());
    ASSERT_TRUE(dp_->AddDependency(kA, kGroup, 0).ok());
    for (const MemberLink& l : links_) Drain(l.socket);
  }

  // A datagram of `payload` bytes to the group from `src`, a MomPacket with its
  // group_seq slot (0) unless `mom` is false, with a valid UDP checksum (or none).
  static Frame Datagram(uint32_t src, const MacAddress& src_mac, uint16_t dport = kPort,
                        bool mom = true, bool checksum = true) {
    constexpr size_t kPayload = 40;
    Frame f = Ipv4Frame({.src_mac = src_mac, .dst_mac = kMulticastMac, .saddr = src,
                         .daddr = kGroupIp, .proto = kUdp, .sport = 41000, .dport = dport,
                         .payload = kPayload});
    uint8_t* p = &f[kUdpPayloadOffset];
    transport::EncodeFrameHeader(BpfDatapath::MomPacketTypeId(), kPayload - 12,
                                 reinterpret_cast<char*>(p));
    p[12] = mom ? 0x09 : 0x15;  // field 1 fixed64 (group_seq), or field 2 first
    for (size_t i = 21; i < kPayload; ++i) p[i] = static_cast<uint8_t>(0x30 + i);
    if (checksum) testing::SetUdpChecksum(f, testing::UdpChecksum(f));
    return f;
  }

  TestRun From(const Frame& f) {
    auto r = RunProgram(dp_->from_container_fd(), f);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : TestRun{};
  }
  TestRun To(const Frame& f) {
    auto r = RunProgram(dp_->to_container_fd(), f);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : TestRun{};
  }

  static void Drain(int fd) {
    uint8_t buf[2048];
    while (recv(fd, buf, sizeof(buf), 0) > 0) {
    }
  }

  // The next IPv4 frame on a member's far end (copies are queued by the time the test
  // run returns; the poll only covers the softirq that delivers them), or empty.
  static Frame Next(int fd, int timeout_ms = 2000) {
    for (;;) {
      pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
      if (poll(&p, 1, timeout_ms) <= 0) return {};
      Frame f(2048);
      ssize_t n = recv(fd, f.data(), f.size(), 0);
      if (n <= 0) return {};
      f.resize(static_cast<size_t>(n));
      if (f.size() > 14 && f[12] == 0x08 && f[13] == 0x00) return f;
    }
  }

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

  void ExpectDropped(const TestRun& r, uint32_t reason, uint32_t daddr = kGroupIp) {
    EXPECT_EQ(r.action, TC_ACT_SHOT);
    EXPECT_THAT(Counters(), ElementsAre(Pair(std::string(VerdictName(reason)), 1u)));
    std::vector<VerdictEvent> events = Events();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(VerdictName(events[0].reason), VerdictName(reason));
    EXPECT_EQ(events[0].daddr, daddr);
  }

  static std::vector<MemberLink> links_;
  std::unique_ptr<BpfDatapath> dp_;
  Group group_;
};

std::vector<MemberLink> BastionGroupTest::links_;

TEST_F(BastionGroupTest, StampsSequenceAndCopiesToEachMember) {
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    TestRun r = From(Datagram(kIpA, kMacA));
    EXPECT_EQ(r.action, TC_ACT_SHOT);  // the original never reaches the bridge
    ASSERT_GT(r.out.size(), kSeqAt + 8);
    EXPECT_EQ(SeqOf(r.out), seq);
    EXPECT_EQ(testing::GetUdpChecksum(r.out), testing::UdpChecksum(r.out));
    const MacAddress macs[] = {kMacB, kMacC, kMacD};
    for (size_t m = 0; m < links_.size(); ++m) {
      SCOPED_TRACE(absl::StrCat("member ", m, " datagram ", seq));
      Frame copy = Next(links_[m].socket);
      ASSERT_FALSE(copy.empty()) << "no copy arrived";
      EXPECT_TRUE(std::equal(macs[m].bytes.begin(), macs[m].bytes.end(), copy.begin()));
      EXPECT_TRUE(std::equal(kMacA.bytes.begin(), kMacA.bytes.end(), copy.begin() + 6));
      EXPECT_EQ(copy[14 + 16], 239);  // IP destination stays the group
      EXPECT_EQ(SeqOf(copy), seq);
      EXPECT_EQ(testing::GetUdpChecksum(copy), testing::UdpChecksum(copy));
      // The rest of the MomPacket is untouched.
      EXPECT_EQ(copy[kUdpPayloadOffset + 21], 0x30 + 21);
    }
  }
  auto seq = dp_->GroupSequence(kGroupIp);
  ASSERT_TRUE(seq.ok()) << seq.status();
  EXPECT_EQ(*seq, 3u);
  EXPECT_THAT(Counters(), ElementsAre(Pair("group_forwarded", 3u)));
  EXPECT_THAT(Events(), IsEmpty());
  for (const MemberLink& l : links_) EXPECT_TRUE(Next(l.socket, 0).empty()) << "extra copy";
}

TEST_F(BastionGroupTest, ZeroChecksumStaysZero) {
  TestRun r = From(Datagram(kIpA, kMacA, kPort, /*mom=*/true, /*checksum=*/false));
  EXPECT_EQ(r.action, TC_ACT_SHOT);
  EXPECT_EQ(SeqOf(r.out), 1u);
  EXPECT_EQ(testing::GetUdpChecksum(r.out), 0u);
}

TEST_F(BastionGroupTest, NonDependentSenderDropsWithNoDependency) {
  ASSERT_TRUE(dp_->BindInterface(1, {kE, kIpE, kMacE}).ok());
  TestRun r = From(Datagram(kIpE, kMacE));
  ExpectDropped(r, BASTION_DROP_NO_DEPENDENCY);
  EXPECT_EQ(SeqOf(r.out), 0u);  // not stamped
  // No copies, and no sequence number used: A's next datagram is number 1 everywhere.
  ASSERT_TRUE(dp_->BindInterface(1, {kA, kIpA, kMacA}).ok());
  EXPECT_EQ(From(Datagram(kIpA, kMacA)).action, TC_ACT_SHOT);
  for (const MemberLink& l : links_) {
    Frame copy = Next(l.socket);
    ASSERT_FALSE(copy.empty());
    EXPECT_EQ(SeqOf(copy), 1u);
  }
}

TEST_F(BastionGroupTest, WrongPortDropsPolicyDenied) {
  ExpectDropped(From(Datagram(kIpA, kMacA, kPort + 1)), BASTION_DROP_POLICY_DENIED);
}

TEST_F(BastionGroupTest, DatagramWithoutSeqSlotDropsInSequencedGroup) {
  ExpectDropped(From(Datagram(kIpA, kMacA, kPort, /*mom=*/false)), BASTION_DROP_GROUP_NOT_MOM);
  auto seq = dp_->GroupSequence(kGroupIp);
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ(*seq, 0u);
}

TEST_F(BastionGroupTest, UnsequencedGroupCopiesAnyDatagramUnchanged) {
  group_.sequenced = false;
  ASSERT_TRUE(dp_->UpsertGroup(kGroupIp, group_).ok());
  Frame sent = Datagram(kIpA, kMacA, kPort, /*mom=*/false);
  TestRun r = From(sent);
  EXPECT_EQ(r.action, TC_ACT_SHOT);
  Frame copy = Next(links_[0].socket);
  ASSERT_EQ(copy.size(), sent.size());
  EXPECT_TRUE(std::equal(sent.begin() + 6, sent.end(), copy.begin() + 6));
  EXPECT_THAT(Counters(), ElementsAre(Pair("group_forwarded", 1u)));
}

TEST_F(BastionGroupTest, FragmentedDatagramDrops) {
  Frame f = Datagram(kIpA, kMacA);
  f[14 + 6] = 0x20;  // MF: the first fragment of a larger datagram
  ExpectDropped(From(f), BASTION_DROP_FRAGMENT);
}

TEST_F(BastionGroupTest, MulticastToNoGroupIsTheWorld) {
  Frame f = Datagram(kIpA, kMacA);
  f[14 + 19] = 2;  // 239.7.0.2: no group there
  ExpectDropped(From(f), BASTION_DROP_WORLD_DENIED, Ipv4(239, 7, 0, 2));
}

TEST_F(BastionGroupTest, IgmpMembershipReportsDropAsIgmp) {
  Frame f = Ipv4Frame({.src_mac = kMacA, .dst_mac = kMulticastMac, .saddr = kIpA,
                       .daddr = Ipv4(224, 0, 0, 22), .proto = 2, .payload = 16});
  ExpectDropped(From(f), BASTION_DROP_IGMP, Ipv4(224, 0, 0, 22));
}

TEST_F(BastionGroupTest, GroupInTheInactiveGenerationIsNotUsed) {
  ASSERT_TRUE(dp_->RemoveGroup(kGroupIp).ok());
  dp_->SetWriteGeneration(1);
  ASSERT_TRUE(dp_->UpsertGroup(kGroupIp, group_).ok());
  ASSERT_TRUE(dp_->AddDependency(kA, kGroup, 0).ok());
  ExpectDropped(From(Datagram(kIpA, kMacA)), BASTION_DROP_WORLD_DENIED);
  ASSERT_TRUE(dp_->ActivateGeneration(1).ok());
  EXPECT_EQ(From(Datagram(kIpA, kMacA)).action, TC_ACT_SHOT);
  EXPECT_THAT(Counters(), ElementsAre(Pair("group_forwarded", 1u),
                                      Pair("world_denied", 1u)));
}

// Entering a container (tc egress of its veth, bound to the test interface).
TEST_F(BastionGroupTest, MemberReceivesFromDependentSender) {
  ASSERT_TRUE(dp_->BindInterface(1, {kB, kIpB, kMacB}).ok());
  EXPECT_EQ(To(Datagram(kIpA, kMacA)).action, TC_ACT_OK);
  EXPECT_THAT(Counters(), ElementsAre(Pair("passed", 1u)));
  EXPECT_THAT(Events(), IsEmpty());
}

TEST_F(BastionGroupTest, NonMemberDoesNotReceive) {
  ASSERT_TRUE(dp_->BindInterface(1, {kE, kIpE, kMacE}).ok());
  TestRun r = To(Datagram(kIpA, kMacA));
  ExpectDropped(r, BASTION_DROP_NOT_FOR_CONTAINER);
}

TEST_F(BastionGroupTest, MemberDropsNonDependentSender) {
  ASSERT_TRUE(dp_->BindInterface(1, {kB, kIpB, kMacB}).ok());
  ExpectDropped(To(Datagram(kIpE, kMacE)), BASTION_DROP_NO_DEPENDENCY);
}

TEST_F(BastionGroupTest, MemberDropsWrongPort) {
  ASSERT_TRUE(dp_->BindInterface(1, {kB, kIpB, kMacB}).ok());
  ExpectDropped(To(Datagram(kIpA, kMacA, kPort + 1)), BASTION_DROP_POLICY_DENIED);
}

TEST(BastionGroupApiTest, RejectsBadGroups) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to load BPF programs";
  auto dp = BpfDatapath::Create({});
  ASSERT_TRUE(dp.ok()) << dp.status();
  Group g{.id = kGroup, .port = kPort};
  EXPECT_FALSE((*dp)->UpsertGroup(Ipv4(10, 0, 0, 1), g).ok());  // not multicast
  EXPECT_FALSE((*dp)->UpsertGroup(kGroupIp, {.id = kHostIdFirst, .port = kPort}).ok());
  g.members.resize(kMaxGroupMembers + 1);
  EXPECT_FALSE((*dp)->UpsertGroup(kGroupIp, g).ok());
  g.members.resize(kMaxGroupMembers);
  EXPECT_TRUE((*dp)->UpsertGroup(kGroupIp, g).ok());
  EXPECT_TRUE(absl::IsNotFound((*dp)->RemoveGroup(Ipv4(239, 0, 0, 9))));
}

}  // namespace
}  // namespace dctk::bastion
