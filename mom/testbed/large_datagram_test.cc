// UDP datagrams longer than one Ethernet frame across the real switch fabric:
// a 2-leaf, 2-spine leaf-spine of mom_switch processes (DPDK af_packet ports
// on veths with a 1500-byte MTU), host namespaces sending 4 KB, 16 KB and
// larger datagrams. Hosts fragment them; every switch port receives them
// reassembled (DPDK's af_packet sockets defragment) and the switch fragments
// them again on transmit. Every copy must arrive byte for byte, and in the
// serialized design carry its sequencer's stamp. Needs root; skipped otherwise.
//
//   leaf0: host0_0 host0_1 host0_2      leaf1: host1_0 host1_1 host1_2
//   sender host0_0; unicast to host1_1 (leaf0, a spine, leaf1); multicast
//   members host0_1, host1_1, host1_2 (copies replicated at the root spine).

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mom/controller/switch_config.h"
#include "mom/design.h"
#include "mom/mom.pb.h"
#include "common/transport/framing.h"
#include "common/transport/transport.h"
#include "mom/testbed/testbed_suite.h"

namespace dctk::mom {
namespace {

// MomPacket.group_seq's value in a datagram (mom/switch/packet.h).
constexpr size_t kGroupSeqOffset = 13;
// mom_switch's default --max_datagram_bytes (32688) less the IP and UDP headers.
constexpr size_t kLargestPayload = 32688 - 28;

// A transport-framed MomPacket of exactly `size` bytes whose payload is
// pseudo-random (seeded by `seq`), so any corrupted or misplaced fragment shows.
std::string Datagram(uint32_t group, uint64_t seq, size_t size, bool serialized) {
  MomPacket p;
  if (serialized) p.set_group_seq(0);
  p.set_group_id(group);
  p.set_sender_id(1);
  p.set_sender_seq(seq);
  p.set_incarnation(1);
  std::mt19937 random(static_cast<uint32_t>(seq * 7919 + size));
  std::string body;
  for (size_t pad = size;;) {
    std::string payload(pad, '\0');
    for (char& c : payload) c = static_cast<char>(random());
    p.set_payload(std::move(payload));
    body = p.SerializeAsString();
    const size_t total = body.size() + transport::kFrameHeaderSize;
    if (total == size) break;
    pad -= total - size;  // the first try overshoots by the headers
  }
  char header[transport::kFrameHeaderSize];
  transport::EncodeFrameHeader(transport::TypeId<MomPacket>(), body.size(), header);
  return std::string(header, sizeof(header)) + body;
}

uint64_t Stamp(const std::string& d) {
  uint64_t seq = 0;
  for (int i = 0; i < 8; ++i) {
    seq |= uint64_t{static_cast<uint8_t>(d[kGroupSeqOffset + i])} << (8 * i);
  }
  return seq;
}

class LargeDatagramTest : public TestbedSuite<> {
 protected:
  static void SetUpTestSuite() { StartTestbed(Topology::LeafSpine(2, 2, 3)); }
  void TearDown() override {
    TestbedSuite::TearDown();
    if (bed_ == nullptr) return;
    // No switch lost a datagram (IGMP and ARP count as not_ipv4, no_route).
    for (int sw : bed_->topology().switches()) {
      absl::StatusOr<SwitchStats> st = bed_->Stats(sw);
      ASSERT_TRUE(st.ok()) << st.status();
      for (const char* reason :
           {"malformed", "not_mom_packet", "queue_full", "tx_full", "too_big", "no_buffers"}) {
        EXPECT_EQ(st->drops().at(reason), 0u) << reason << ": " << st->ShortDebugString();
      }
    }
  }
};

TEST_F(LargeDatagramTest, UnicastArrivesIntactAcrossThreeSwitches) {
  ASSERT_TRUE(bed_->Configure({}).ok());
  const int receiver = hosts_[4];  // host1_1
  const int in = Receiver(receiver, {});
  const int out = Sender(hosts_[0], 46);
  uint64_t seq = 0;
  for (size_t size : {size_t{1472}, size_t{1473}, size_t{4096}, size_t{16384}, kLargestPayload}) {
    for (int n = 0; n < 5; ++n) {  // one at a time: the point is size, not load
      const std::string sent = Datagram(1, ++seq, size, false);
      Send(out, bed_->ip(receiver), sent);
      const std::string got = Receive(in);
      ASSERT_EQ(got.size(), sent.size()) << size << " B datagram lost" << FabricStats();
      EXPECT_TRUE(got == sent) << size << " B datagram corrupted";
    }
  }
}

TEST_F(LargeDatagramTest, MulticastArrivesIntactAtEveryMemberAndStamped) {
  const std::vector<int> members = {hosts_[1], hosts_[4], hosts_[5]};
  for (Design design : {Design::kTopologyAware, Design::kSerialized}) {
    SCOPED_TRACE(DesignName(design));
    const uint32_t group = 60 + static_cast<uint32_t>(design);
    absl::StatusOr<std::vector<GroupRoutes>> routes = bed_->Configure(
        {GroupSpec{.group_id = group, .senders = {hosts_[0]}, .receivers = members,
                   .design = design}});
    ASSERT_TRUE(routes.ok()) << routes.status();
    const GroupRoutes& r = (*routes)[0];
    port_ = 0;
    std::vector<int> in;
    for (int m : members) in.push_back(Receiver(m, ChannelIps(r)));
    const int out = Sender(hosts_[0], 46);
    const bool serialized = design == Design::kSerialized;
    uint64_t seq = 0;
    for (size_t size : {size_t{4096}, size_t{16384}}) {
      for (int n = 0; n < 10; ++n) {
        std::string sent = Datagram(group, ++seq, size, serialized);
        Send(out, SenderChannelIp(r, 0), sent);
        if (serialized) {  // what the sequencer writes: stamps 1, 2, ... in order
          for (int i = 0; i < 8; ++i) sent[kGroupSeqOffset + i] = static_cast<char>(seq >> (8 * i));
        }
        for (size_t i = 0; i < in.size(); ++i) {
          const std::string got = Receive(in[i]);
          ASSERT_EQ(got.size(), sent.size())
              << size << " B datagram " << seq << " lost at member " << i << FabricStats();
          if (serialized) EXPECT_EQ(Stamp(got), seq) << "member " << i;
          EXPECT_TRUE(got == sent) << size << " B datagram corrupted at member " << i;
        }
      }
    }
  }
}

}  // namespace
}  // namespace dctk::mom
