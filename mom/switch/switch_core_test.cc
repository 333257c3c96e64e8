#include "mom/switch/switch_core.h"

#include <deque>
#include <map>
#include <set>
#include <vector>

#include "gtest/gtest.h"
#include "mom/controller/routes.h"
#include "mom/controller/switch_config.h"
#include "mom/switch/test_frames.h"

namespace dctk::mom {
namespace {

using testing::MomPayload;
using testing::ParseMom;
using testing::UdpFrame;

constexpr uint32_t kGroupIp = 0xef000500;  // 239.0.5.0

SwitchConfig OneRule(bool stamp, bool high_priority) {
  SwitchConfig c;
  c.set_switch_name("s");
  MulticastRule* r = c.add_rules();
  r->set_group_ip(kGroupIp);
  r->set_group_id(5);
  r->set_in_port(0);
  r->add_out_ports(1);
  r->add_out_ports(3);
  r->set_high_priority(high_priority);
  r->set_stamp_group_seq(stamp);
  return c;
}

TEST(ForwardingTableTest, MulticastMatchesGroupAndInPort) {
  absl::StatusOr<ForwardingTable> t = ForwardingTable::Create(OneRule(false, false), 4);
  ASSERT_TRUE(t.ok()) << t.status();
  PacketInfo info{.dst_ip = kGroupIp};
  Forwarding f;
  ASSERT_FALSE(t->Lookup(0, info, &f).has_value());
  EXPECT_EQ(f.out_ports, 0b1010u);
  EXPECT_EQ(f.band, kBestEffortBand);
  EXPECT_EQ(t->Lookup(2, info, &f), DropReason::kNoRoute);  // no rule for this in port
  info.dscp = 46;
  ASSERT_FALSE(t->Lookup(0, info, &f).has_value());
  EXPECT_EQ(f.band, kHighPriorityBand);  // EF marking is honoured
}

TEST(ForwardingTableTest, UnicastLongestPrefix) {
  SwitchConfig c;
  UnicastRoute* wide = c.add_unicast_routes();
  wide->set_prefix(0x0a000000);
  wide->set_prefix_len(8);
  wide->set_out_port(1);
  UnicastRoute* narrow = c.add_unicast_routes();
  narrow->set_prefix(0x0a010000);
  narrow->set_prefix_len(16);
  narrow->set_out_port(2);
  absl::StatusOr<ForwardingTable> t = ForwardingTable::Create(c, 3);
  ASSERT_TRUE(t.ok()) << t.status();
  Forwarding f;
  ASSERT_FALSE(t->Lookup(0, PacketInfo{.dst_ip = 0x0a010203}, &f).has_value());
  EXPECT_EQ(f.out_ports, 1u << 2);
  ASSERT_FALSE(t->Lookup(0, PacketInfo{.dst_ip = 0x0a020203}, &f).has_value());
  EXPECT_EQ(f.out_ports, 1u << 1);
  EXPECT_EQ(t->Lookup(0, PacketInfo{.dst_ip = 0x0b000001}, &f), DropReason::kNoRoute);
}

TEST(ForwardingTableTest, RejectsBadConfigs) {
  EXPECT_FALSE(ForwardingTable::Create(OneRule(false, false), 3).ok());  // port 3
  EXPECT_FALSE(ForwardingTable::Create(OneRule(false, false), 65).ok());
  SwitchConfig dup = OneRule(false, false);
  *dup.add_rules() = dup.rules(0);
  absl::StatusOr<ForwardingTable> t = ForwardingTable::Create(dup, 4);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("rule 1"), std::string::npos);
  SwitchConfig unicast_group = OneRule(false, false);
  unicast_group.mutable_rules(0)->set_group_ip(0x0a000001);
  EXPECT_FALSE(ForwardingTable::Create(unicast_group, 4).ok());
  SwitchConfig long_prefix;
  long_prefix.add_unicast_routes()->set_prefix_len(33);
  EXPECT_FALSE(ForwardingTable::Create(long_prefix, 4).ok());
}

TEST(SwitchCoreTest, SequencerStampsConsecutiveNumbersAcrossSenders) {
  SwitchCore core(*ForwardingTable::Create(OneRule(true, true), 4));
  // Interleaved messages from three concurrent senders.
  std::vector<uint64_t> stamps;
  for (uint64_t i = 1; i <= 30; ++i) {
    std::vector<uint8_t> f = UdpFrame(i % 3, kGroupIp, 46, MomPayload(i % 3, i));
    Forwarding fwd;
    ASSERT_FALSE(core.Process(0, absl::MakeSpan(f), &fwd).has_value());
    EXPECT_EQ(fwd.band, kHighPriorityBand);
    stamps.push_back(ParseMom(f).group_seq());
  }
  for (uint64_t i = 0; i < stamps.size(); ++i) EXPECT_EQ(stamps[i], i + 1);
  EXPECT_EQ(core.group_seq(5), 30u);
  EXPECT_EQ(core.forwarded(), 30u);

  // A packet this sequencer cannot stamp is dropped and does not use a number.
  std::vector<uint8_t> bad = UdpFrame(1, kGroupIp, 46, std::string(40, 'x'));
  Forwarding fwd;
  EXPECT_EQ(core.Process(0, absl::MakeSpan(bad), &fwd), DropReason::kNotMomPacket);
  EXPECT_EQ(core.drops()[static_cast<int>(DropReason::kNotMomPacket)], 1u);
  std::vector<uint8_t> next = UdpFrame(1, kGroupIp, 46, MomPayload(1, 99));
  ASSERT_FALSE(core.Process(0, absl::MakeSpan(next), &fwd).has_value());
  EXPECT_EQ(ParseMom(next).group_seq(), 31u);

  // A fragmented MomPacket: the first fragment is stamped, a later one is
  // forwarded without using a number.
  std::vector<uint8_t> first = UdpFrame(1, kGroupIp, 46, MomPayload(1, 100));
  first[14 + 6] = 0x20;                  // more fragments
  first[14 + 20 + 4] = 0x0b;             // UDP length 3008: the whole datagram
  first[14 + 20 + 5] = 0xc0;
  ASSERT_FALSE(core.Process(0, absl::MakeSpan(first), &fwd).has_value());
  EXPECT_EQ(first[42 + kGroupSeqOffset], 32);
  std::vector<uint8_t> later = UdpFrame(1, kGroupIp, 46, std::string(100, 'z'));
  later[14 + 7] = 185;                   // fragment offset 1480
  ASSERT_FALSE(core.Process(0, absl::MakeSpan(later), &fwd).has_value());
  EXPECT_EQ(fwd.out_ports, (uint64_t{1} << 1) | (uint64_t{1} << 3));
  EXPECT_EQ(core.group_seq(5), 32u);
  std::vector<uint8_t> after = UdpFrame(1, kGroupIp, 46, MomPayload(1, 101));
  ASSERT_FALSE(core.Process(0, absl::MakeSpan(after), &fwd).has_value());
  EXPECT_EQ(ParseMom(after).group_seq(), 33u);

  // Reconfiguring keeps the sequence going.
  core.SetTable(*ForwardingTable::Create(OneRule(true, true), 4));
  ASSERT_FALSE(core.Process(0, absl::MakeSpan(next), &fwd).has_value());
  EXPECT_EQ(ParseMom(next).group_seq(), 34u);
}

TEST(SwitchCoreTest, CountsDropsByReason) {
  SwitchCore core(*ForwardingTable::Create(OneRule(false, false), 4));
  Forwarding fwd;
  std::vector<uint8_t> short_frame(10, 0);
  EXPECT_EQ(core.Process(0, absl::MakeSpan(short_frame), &fwd), DropReason::kMalformed);
  std::vector<uint8_t> other_group = UdpFrame(1, 0xef000600, 0, "x");
  EXPECT_EQ(core.Process(0, absl::MakeSpan(other_group), &fwd), DropReason::kNoRoute);
  std::vector<uint8_t> arp = UdpFrame(1, 0xef000600, 0, "x");
  arp[12] = 0x08;  // EtherType ARP
  arp[13] = 0x06;
  EXPECT_EQ(core.Process(0, absl::MakeSpan(arp), &fwd), DropReason::kNotIpv4);
  core.CountDrop(DropReason::kQueueFull);
  EXPECT_EQ(core.drops()[static_cast<int>(DropReason::kMalformed)], 1u);
  EXPECT_EQ(core.drops()[static_cast<int>(DropReason::kNoRoute)], 1u);
  EXPECT_EQ(core.drops()[static_cast<int>(DropReason::kNotIpv4)], 1u);
  EXPECT_EQ(core.drops()[static_cast<int>(DropReason::kQueueFull)], 1u);
  EXPECT_EQ(core.forwarded(), 0u);
}

// The controller's configs on a fat tree of SwitchCores: each receiver gets
// exactly one copy of each message, members only, and (serialized) every
// receiver sees the same stamps in the same order.
TEST(SwitchCoreTest, ControllerConfigsReplicateToExactlyTheMembers) {
  absl::StatusOr<Topology> topo = Topology::FatTree(4);
  ASSERT_TRUE(topo.ok());
  const std::vector<int> hosts = topo->hosts();
  GroupSpec spec{.group_id = 5,
                 .senders = {hosts[0], hosts[7], hosts[13]},
                 .receivers = {hosts[1], hosts[4], hosts[10], hosts[15]},
                 .design = Design::kSerialized};
  absl::StatusOr<GroupRoutes> routes = ComputeRoutes(*topo, spec);
  ASSERT_TRUE(routes.ok());
  std::map<int, std::unique_ptr<SwitchCore>> cores;
  for (int sw : topo->switches()) {
    SwitchConfig empty;
    empty.set_switch_name(topo->node(sw).name);
    cores[sw] = std::make_unique<SwitchCore>(
        *ForwardingTable::Create(empty, static_cast<int>(topo->ports(sw).size())));
  }
  for (const SwitchConfig& c : SwitchConfigs(*topo, *routes)) {
    const int sw = *topo->FindNode(c.switch_name());
    absl::StatusOr<ForwardingTable> t =
        ForwardingTable::Create(c, static_cast<int>(topo->ports(sw).size()));
    ASSERT_TRUE(t.ok()) << t.status();
    cores[sw]->SetTable(*std::move(t));
  }

  // Each sender sends 5 messages, round robin; copies hop through the cores.
  std::map<int, std::vector<uint64_t>> stamps_at;  // receiver -> stamps in arrival order
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    for (size_t s = 0; s < spec.senders.size(); ++s) {
      const uint32_t ip = ChannelGroupIp(5, routes->senders[s].channel);
      struct Copy {
        int node, from;
        std::vector<uint8_t> frame;
      };
      const int sender = spec.senders[s];
      std::deque<Copy> in_flight = {
          {topo->ports(sender)[0].neighbor, sender, UdpFrame(s, ip, 46, MomPayload(s, seq))}};
      while (!in_flight.empty()) {
        Copy c = std::move(in_flight.front());
        in_flight.pop_front();
        if (topo->is_host(c.node)) {
          stamps_at[c.node].push_back(ParseMom(c.frame).group_seq());
          continue;
        }
        Forwarding fwd;
        ASSERT_FALSE(cores[c.node]
                         ->Process(topo->PortTo(c.node, c.from), absl::MakeSpan(c.frame), &fwd)
                         .has_value())
            << "dropped at " << topo->node(c.node).name;
        for (int p = 0; p < static_cast<int>(topo->ports(c.node).size()); ++p) {
          if (fwd.out_ports >> p & 1) {
            in_flight.push_back({topo->ports(c.node)[p].neighbor, c.node, c.frame});
          }
        }
      }
    }
  }
  const std::vector<uint64_t> want = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  std::set<int> got_copies;
  for (const auto& [host, stamps] : stamps_at) got_copies.insert(host);
  EXPECT_EQ(got_copies, std::set<int>(spec.receivers.begin(), spec.receivers.end()));
  for (int r : spec.receivers) EXPECT_EQ(stamps_at[r], want) << topo->node(r).name;
  EXPECT_EQ(cores[routes->sequencer]->group_seq(5), 15u);
}

}  // namespace
}  // namespace dctk::mom
