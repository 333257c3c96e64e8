// A switch port whose device refuses frames, on a real mom_switch: the
// switch must count what the device did not take as tx_full (per port and
// as a drop reason), free it, and keep forwarding on its other ports.
//
// What makes DPDK 22.11's af_packet transmit take fewer frames than offered
// (eth_af_packet_tx): it copies each frame into the next slot of the
// socket's TPACKET_V2 transmit ring and stops early only when that slot is
// not free (the kernel still holds it) and poll() says POLLERR or still no
// free slot; it then kicks the kernel with one sendto(MSG_DONTWAIT), and
// counts ENOBUFS/EAGAIN as success. A tc qdisc does not do it (the driver
// sets PACKET_QDISC_BYPASS by default), nor, by the kernel's code (not
// exercised here), a peer that is down: packet_direct_xmit drops the frame
// for want of carrier and frees the slot at once (the frame is lost, the
// switch counts it sent; the controller's link check sees the carrier go).
// What does: the port's own interface going down.
// sendto then fails (ENETDOWN) before the kernel looks at the ring, so the
// frames stay in their slots, marked for sending; the socket's error
// (ENETDOWN, set when the interface went down) makes poll() return POLLERR;
// once all ring slots hold such frames, every later burst is refused whole.
// So the port takes exactly one ring's worth (512 slots) and refuses the
// rest. Those 512 would leave, stale, when the interface comes back: the
// switch voids them while the interface is down (each becomes a 14-byte
// frame of an EtherType nobody takes), so the host behind the port gets
// none of them, and the first datagram it gets is one sent after the link
// came back. Needs root; skipped otherwise.
//
//   leaf0: host0_0 sends; host0_1 behind the refusing port; host0_2 not.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/process/run_command.h"
#include "gtest/gtest.h"
#include "mom/testbed/netns.h"
#include "mom/testbed/testbed_suite.h"

namespace dctk::mom {
namespace {

constexpr uint64_t kRingSlots = 512;  // DpdkSwitch's af_packet transmit ring
constexpr int kChunk = 64;            // datagrams to the refusing port per round
constexpr int kRounds = 10;           // 640 in all: the ring's 512 and 128 refused
constexpr int kOthersPerRound = 4;    // datagrams to the other port per round

class TxFullTest : public TestbedSuite<> {
 protected:
  static void SetUpTestSuite() { StartTestbed(Topology::LeafSpine(1, 1, 3)); }
  void SetUp() override {
    TestbedSuite::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    leaf_ = Node("leaf0");
    ASSERT_GE(leaf_, 0);
  }

  PortStatus Port(int port) {
    absl::StatusOr<SwitchStats> st = bed_->Stats(leaf_);
    EXPECT_TRUE(st.ok()) << st.status();
    if (!st.ok() || port >= st->ports_size()) return PortStatus();
    return st->ports(port);
  }

  // Polls the leaf's counters until `done` holds for port `port` (a guard of
  // 30 s only against hanging: the switch answers in milliseconds).
  template <typename Done>
  bool WaitFor(int port, Done done) {
    const absl::Time guard = absl::Now() + absl::Seconds(30);
    while (absl::Now() < guard) {
      if (done(Port(port))) return true;
    }
    return false;
  }

  int leaf_ = -1;
};

TEST_F(TxFullTest, RefusedFramesAreCountedAndOtherPortsKeepForwarding) {
  ASSERT_TRUE(bed_->Configure({}).ok());
  const int refusing_host = hosts_[1], other_host = hosts_[2];
  const int in_port = bed_->topology().PortTo(leaf_, hosts_[0]);
  const int refusing = bed_->topology().PortTo(leaf_, refusing_host);
  const int other = bed_->topology().PortTo(leaf_, other_host);
  const int in_other = Receiver(other_host, {});
  const int in_refusing = Receiver(refusing_host, {});
  const int out = Sender(hosts_[0]);

  // The leaf's end of its link to host0_1 goes down.
  const std::string link_cmd = absl::StrCat("ip -n ", bed_->netns(leaf_), " link set ",
                                            bed_->SwitchPortIface(leaf_, refusing));
  ASSERT_TRUE(RunCommand(link_cmd + " down").ok());
  ASSERT_TRUE(WaitFor(refusing, [](const PortStatus& p) { return !p.link_up(); }));
  const PortStatus refusing_before = Port(refusing), other_before = Port(other);
  uint64_t received = Port(in_port).rx_packets();

  int others = 0;
  for (int round = 0; round < kRounds; ++round) {
    for (int i = 0; i < kChunk; ++i) {
      Send(out, bed_->ip(refusing_host), absl::StrCat("refused? ", round * kChunk + i));
    }
    for (int i = 0; i < kOthersPerRound; ++i) {
      Send(out, bed_->ip(other_host), absl::StrCat("other ", others + i));
    }
    // In rounds, so the switch's receive ring never overflows: the next
    // round goes once the switch has read this one.
    received += kChunk + kOthersPerRound;
    ASSERT_TRUE(WaitFor(in_port, [&](const PortStatus& p) { return p.rx_packets() >= received; }))
        << FabricStats();
    for (int i = 0; i < kOthersPerRound; ++i, ++others) {
      ASSERT_EQ(Receive(in_other), absl::StrCat("other ", others)) << FabricStats();
    }
  }
  // Every datagram to host0_1 went to the device, which took one ring's
  // worth and refused the rest; the other port lost nothing.
  const PortStatus refusing_after = Port(refusing), other_after = Port(other);
  const uint64_t offered = kRounds * kChunk;
  EXPECT_EQ(refusing_after.tx_packets() - refusing_before.tx_packets(), kRingSlots) << FabricStats();
  EXPECT_EQ(refusing_after.tx_full() - refusing_before.tx_full(), offered - kRingSlots);
  EXPECT_EQ(other_after.tx_packets() - other_before.tx_packets(),
            static_cast<uint64_t>(kRounds * kOthersPerRound));
  EXPECT_EQ(other_after.tx_full(), other_before.tx_full());
  absl::StatusOr<SwitchStats> stats = bed_->Stats(leaf_);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->drops().at("tx_full"), offered - kRingSlots);
  EXPECT_EQ(stats->drops().at("queue_full"), 0u);

  // The ring's 512 frames were voided while the link was down; once it is
  // back, host0_1 gets what is sent now, and nothing from before.
  ASSERT_TRUE(WaitFor(refusing, [](const PortStatus& p) { return p.stale_voided() >= kRingSlots; }))
      << FabricStats();
  ASSERT_TRUE(RunCommand(link_cmd + " up").ok());
  ASSERT_TRUE(WaitFor(refusing, [](const PortStatus& p) { return p.link_up(); }));
  constexpr int kFresh = 4;
  for (int i = 0; i < kFresh; ++i) Send(out, bed_->ip(refusing_host), absl::StrCat("fresh ", i));
  for (int i = 0; i < kFresh; ++i) {
    ASSERT_EQ(Receive(in_refusing), absl::StrCat("fresh ", i)) << FabricStats();
  }
  EXPECT_EQ(Port(refusing).stale_voided() - refusing_before.stale_voided(), kRingSlots);
}

}  // namespace
}  // namespace dctk::mom
