// The DPDK switch's packet path from SwitchCore to the port queues, on real
// mbufs (EAL without devices, no hugepages): frames longer than an out port's
// MTU leave as IPv4 fragments that reassemble to the (stamped) datagram, one
// fragment set per MTU shared by the ports, every reference returned.
#include "mom/switch/egress.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_mbuf.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mom/switch/packet.h"
#include "mom/switch/test_frames.h"

namespace dctk::mom {
namespace {

constexpr uint32_t kGroupIp = 0xef000500;  // 239.0.5.0
constexpr uint32_t kHostIp = 0x0a000002;   // unicast destination, port 0
constexpr int kInPort = 4;
// Ports 0 and 1: 1500; port 2: 9000; port 3: 576; port 4 (in): 1500.
const std::vector<uint16_t> kMtus = {1500, 1500, 9000, 576, 1500};

bool eal_ok = false;
rte_mempool* rx_pool = nullptr;  // as the switch's: one segment holds any frame

// A MomPacket datagram (transport frame) of exactly `size` UDP payload bytes,
// its MomPacket.payload a byte pattern.
std::string MomDatagram(size_t size, bool seq_slot) {
  MomPacket p;
  if (seq_slot) p.set_group_seq(0);
  p.set_group_id(5);
  p.set_sender_id(1);
  p.set_sender_seq(1);
  std::string body;
  for (size_t pad = size; body.size() + transport::kFrameHeaderSize != size;) {
    std::string payload(pad, '\0');
    for (size_t i = 0; i < pad; ++i) payload[i] = static_cast<char>(i * 7 + 3);
    p.set_payload(payload);
    body = p.SerializeAsString();
    pad -= body.size() + transport::kFrameHeaderSize - size;  // shrink by the overshoot
  }
  char header[transport::kFrameHeaderSize];
  transport::EncodeFrameHeader(transport::TypeId<MomPacket>(), body.size(), header);
  return std::string(header, sizeof(header)) + body;
}

std::vector<uint8_t> Frame(uint32_t dst, const std::string& payload, bool dont_fragment = false) {
  std::vector<uint8_t> f = testing::UdpFrame(0x0a000001, dst, 46, payload);
  f[0] = 0x02;  // some destination MAC, kept in every fragment
  f[5] = 0x07;
  f[6 + 5] = 0x09;
  f[14 + 4] = 0x12;  // IP identification
  f[14 + 5] = 0x34;
  if (dont_fragment) f[14 + 6] = 0x40;
  uint32_t sum = 0;  // a valid header checksum, as a sender's
  for (int i = 14; i < 34; i += 2) sum += uint32_t{f[i]} << 8 | f[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  f[24] = static_cast<uint8_t>(~sum >> 8);
  f[25] = static_cast<uint8_t>(~sum);
  return f;
}

rte_mbuf* Mbuf(const std::vector<uint8_t>& frame) {
  rte_mbuf* m = rte_pktmbuf_alloc(rx_pool);
  if (m == nullptr) return nullptr;
  char* data = rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size()));
  if (data == nullptr) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  std::memcpy(data, frame.data(), frame.size());
  return m;
}

std::vector<uint8_t> Bytes(const rte_mbuf* m) {
  std::vector<uint8_t> out(rte_pktmbuf_pkt_len(m));
  const void* p = rte_pktmbuf_read(m, 0, out.size(), out.data());
  if (p != out.data()) std::memcpy(out.data(), p, out.size());
  return out;
}

// The one's complement sum of an IPv4 header with its checksum is 0xffff.
bool HeaderChecksumOk(const uint8_t* ip) {
  uint32_t sum = 0;
  for (int i = 0; i < (ip[0] & 0x0f) * 4; i += 2) sum += uint32_t{ip[i]} << 8 | ip[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum == 0xffff;
}

// Every fragment mbuf pool is full again (no fragment leaked or still held).
bool FragmentPoolsFull() {
  bool full = true;
  rte_mempool_walk(
      [](rte_mempool* mp, void* arg) {
        if (absl::StartsWith(mp->name, "mom_frag") && !rte_mempool_full(mp)) {
          *static_cast<bool*>(arg) = false;
        }
      },
      &full);
  return full;
}

class EgressTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::vector<std::string> args = {"egress_test", "--no-huge", "-m", "256", "--no-pci",
                                     "--no-telemetry",
                                     "--log-level=lib.eal:error",
                                     absl::StrCat("--file-prefix=egress_test_", getpid())};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    eal_ok = rte_eal_init(static_cast<int>(argv.size()), argv.data()) >= 0;
    if (!eal_ok) return;
    rx_pool = rte_pktmbuf_pool_create("egress_test_rx", 255, 0, 0,
                                      RTE_PKTMBUF_HEADROOM + 32 * 1024, rte_socket_id());
    eal_ok = rx_pool != nullptr;
  }
  static void TearDownTestSuite() {
    if (!eal_ok) return;
    rte_mempool_free(rx_pool);
    const std::string runtime_dir = rte_eal_get_runtime_dir();
    rte_eal_cleanup();
    std::error_code ignored;
    std::filesystem::remove_all(runtime_dir, ignored);
  }

  void SetUp() override {
    if (!eal_ok && geteuid() != 0) GTEST_SKIP() << "DPDK EAL init needs root here";
    ASSERT_TRUE(eal_ok) << "DPDK EAL init failed: " << rte_strerror(rte_errno);
  }

  void TearDown() override {
    egress_.reset();
    if (!eal_ok) return;
    EXPECT_TRUE(rte_mempool_full(rx_pool)) << "a received frame was leaked or freed twice";
  }

  void MakeSwitch(size_t queue_packets = 256) {
    SwitchConfig c;
    c.set_switch_name("s");
    MulticastRule* r = c.add_rules();
    r->set_group_ip(kGroupIp);
    r->set_group_id(5);
    r->set_in_port(kInPort);
    for (int p : {0, 1, 2, 3}) r->add_out_ports(p);
    r->set_high_priority(true);
    r->set_stamp_group_seq(true);
    UnicastRoute* u = c.add_unicast_routes();
    u->set_prefix(kHostIp);
    u->set_prefix_len(32);
    u->set_out_port(0);
    absl::StatusOr<ForwardingTable> table = ForwardingTable::Create(c, 5);
    ASSERT_TRUE(table.ok()) << table.status();
    core_ = std::make_unique<SwitchCore>(*std::move(table));
    absl::StatusOr<std::unique_ptr<Egress>> egress = Egress::Create(kMtus, queue_packets);
    ASSERT_TRUE(egress.ok()) << egress.status();
    egress_ = *std::move(egress);
  }

  // The packet path: SwitchCore, then Egress. Returns the drop reason, if any.
  absl::optional<DropReason> Forward(const std::vector<uint8_t>& frame) {
    rte_mbuf* m = Mbuf(frame);
    EXPECT_NE(m, nullptr);
    Forwarding f;
    absl::Span<uint8_t> data(rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_data_len(m));
    if (absl::optional<DropReason> r = core_->Process(kInPort, data, &f)) {
      rte_pktmbuf_free(m);
      return r;
    }
    egress_->Enqueue(m, f, core_.get());
    return absl::nullopt;
  }

  std::vector<rte_mbuf*> Drain(int port) {
    std::vector<rte_mbuf*> out;
    while (absl::optional<rte_mbuf*> m = egress_->Dequeue(port)) out.push_back(*m);
    return out;
  }

  static void Free(const std::vector<rte_mbuf*>& frames) {
    for (rte_mbuf* m : frames) rte_pktmbuf_free(m);
  }

  std::unique_ptr<SwitchCore> core_;
  std::unique_ptr<Egress> egress_;
};

// Checks that `fragments` are valid IPv4 fragments of at most `mtu` bytes
// carrying `original`'s Ethernet header, IP identification and addresses,
// and returns the datagram they reassemble to (Ethernet + IP header of the
// original form, IP payload concatenated).
std::vector<uint8_t> Reassemble(const std::vector<rte_mbuf*>& fragments, uint16_t mtu,
                                const std::vector<uint8_t>& original) {
  std::vector<uint8_t> datagram(original.begin(), original.begin() + 34);
  size_t next_offset = 0;
  for (size_t i = 0; i < fragments.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("fragment ", i));
    const std::vector<uint8_t> f = Bytes(fragments[i]);
    EXPECT_LE(f.size(), size_t{mtu} + kEthernetHeaderSize);
    EXPECT_TRUE(std::equal(f.begin(), f.begin() + 14, original.begin()));  // Ethernet
    const uint8_t* ip = &f[14];
    EXPECT_EQ(size_t(ip[2] << 8 | ip[3]), f.size() - 14);
    EXPECT_EQ(ip[4], 0x12);  // identification
    EXPECT_EQ(ip[5], 0x34);
    EXPECT_TRUE(std::equal(ip + 12, ip + 20, original.begin() + 26));  // addresses
    EXPECT_TRUE(HeaderChecksumOk(ip));
    const uint16_t flags_offset = static_cast<uint16_t>(ip[6] << 8 | ip[7]);
    EXPECT_EQ((flags_offset & 0x1fff) * 8u, next_offset);
    EXPECT_EQ((flags_offset & 0x2000) != 0, i + 1 < fragments.size()) << "more-fragments bit";
    datagram.insert(datagram.end(), f.begin() + 34, f.end());
    next_offset += f.size() - 34;
  }
  return datagram;
}

TEST_F(EgressTest, FrameWithinMtuIsQueuedAsIsOnEveryPort) {
  MakeSwitch();
  const std::vector<uint8_t> frame = Frame(kGroupIp, MomDatagram(1000, true));
  ASSERT_FALSE(Forward(frame).has_value());
  for (int p : {0, 1, 3, 2}) {  // 1028 IP bytes: within 1500 and 9000, not 576
    const std::vector<rte_mbuf*> got = Drain(p);
    if (p == 3) {
      EXPECT_EQ(got.size(), 2u);  // 1008 bytes of IP payload in 552-byte pieces
      EXPECT_EQ(egress_->counters()[p].fragmented, 1u);
    } else {
      ASSERT_EQ(got.size(), 1u);
      EXPECT_EQ(rte_pktmbuf_pkt_len(got[0]), frame.size());
      EXPECT_EQ(got[0]->nb_segs, 1);
      EXPECT_EQ(egress_->counters()[p].fragmented, 0u);
    }
    Free(got);
  }
}

TEST_F(EgressTest, LongStampedMulticastIsFragmentedOncePerMtuAndReassembles) {
  MakeSwitch();
  for (size_t size : {4096u, 16384u}) {
    SCOPED_TRACE(absl::StrCat(size, " B datagram"));
    std::vector<uint8_t> frame = Frame(kGroupIp, MomDatagram(size, true));
    const uint64_t seq = core_->group_seq(5) + 1;
    const uint64_t enqueued_before = egress_->counters()[0].enqueued[kHighPriorityBand];
    ASSERT_FALSE(Forward(frame).has_value());
    // What the datagram is once stamped: seq at UDP payload offset 13, no UDP checksum.
    PacketInfo info;
    ASSERT_FALSE(ParsePacket(frame, &info).has_value());
    ASSERT_TRUE(StampGroupSeq(absl::MakeSpan(frame), info, seq));

    std::vector<rte_mbuf*> port[4];
    for (int p = 0; p < 4; ++p) port[p] = Drain(p);
    const size_t ip_payload = 8 + size;
    ASSERT_EQ(port[0].size(), (ip_payload + 1479) / 1480);
    EXPECT_EQ(port[0], port[1]) << "ports of one MTU share the fragments";
    EXPECT_EQ(port[2].size(), (ip_payload + 8975) / 8976);
    EXPECT_EQ(port[3].size(), (ip_payload + 551) / 552);
    for (int p = 0; p < 4; ++p) {
      SCOPED_TRACE(absl::StrCat("port ", p));
      EXPECT_EQ(Reassemble(port[p], kMtus[p], frame), frame);
      const std::vector<uint8_t> first = Bytes(port[p][0]);
      uint64_t stamped = 0;
      for (int b = 0; b < 8; ++b) stamped |= uint64_t{first[42 + kGroupSeqOffset + b]} << (8 * b);
      EXPECT_EQ(stamped, seq) << "the first fragment carries the stamp";
      EXPECT_EQ(first[40] | first[41], 0) << "UDP checksum: none";
      EXPECT_EQ(first[15] >> 2, 46) << "DSCP kept";
    }
    EXPECT_EQ(egress_->counters()[0].enqueued[kHighPriorityBand] - enqueued_before,
              port[0].size());
    for (int p = 0; p < 4; ++p) Free(port[p]);
    EXPECT_TRUE(FragmentPoolsFull());
  }
  EXPECT_EQ(core_->group_seq(5), 2u);
  EXPECT_EQ(egress_->counters()[2].fragmented, 1u);  // 4 KB fits 9000 whole
}

TEST_F(EgressTest, LongUnicastKeepsItsUdpChecksum) {
  MakeSwitch();
  const std::vector<uint8_t> frame = Frame(kHostIp, MomDatagram(4096, false));
  ASSERT_FALSE(Forward(frame).has_value());
  const std::vector<rte_mbuf*> got = Drain(0);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(Reassemble(got, 1500, frame), frame) << "unchanged, checksum included";
  EXPECT_TRUE(Drain(1).empty());
  Free(got);
  EXPECT_TRUE(FragmentPoolsFull());
}

TEST_F(EgressTest, DontFragmentIsDroppedAsTooBigOnlyWhereItDoesNotFit) {
  MakeSwitch();
  const std::vector<uint8_t> frame = Frame(kGroupIp, MomDatagram(4096, true), true);
  ASSERT_FALSE(Forward(frame).has_value());
  EXPECT_TRUE(Drain(0).empty());
  EXPECT_TRUE(Drain(1).empty());
  EXPECT_TRUE(Drain(3).empty());
  const std::vector<rte_mbuf*> whole = Drain(2);  // fits 9000
  ASSERT_EQ(whole.size(), 1u);
  EXPECT_EQ(Bytes(whole[0]).size(), frame.size());
  Free(whole);
  EXPECT_EQ(core_->drops()[static_cast<int>(DropReason::kTooBig)], 3u);  // ports 0, 1, 3
}

TEST_F(EgressTest, FullQueueTakesAllFragmentsOfADatagramOrNone) {
  MakeSwitch(/*queue_packets=*/8);
  // 4096 B: 3 fragments at 1500 fit, 8 at 576 do not... after one earlier datagram.
  ASSERT_FALSE(Forward(Frame(kGroupIp, MomDatagram(4096, true))).has_value());
  ASSERT_FALSE(Forward(Frame(kGroupIp, MomDatagram(4096, true))).has_value());
  EXPECT_EQ(egress_->depth(0, kHighPriorityBand), 6u);  // 2 x 3 fragments
  EXPECT_EQ(egress_->depth(3, kHighPriorityBand), 8u);  // the first datagram only
  EXPECT_EQ(egress_->counters()[3].queue_full[kHighPriorityBand], 8u);
  EXPECT_EQ(core_->drops()[static_cast<int>(DropReason::kQueueFull)], 8u);
  const std::vector<rte_mbuf*> port3 = Drain(3);
  Free(port3);
  for (int p : {0, 1, 2}) Free(Drain(p));
  EXPECT_TRUE(FragmentPoolsFull());
}

// Fragments dequeued but not yet freed (a transmit burst in flight) hold
// fragment mbufs: once the pools are empty a datagram to be cut is dropped
// whole as no_buffers, and cutting works again when they come back.
TEST_F(EgressTest, EmptyFragmentPoolDropsTheDatagramWholeAsNoBuffers) {
  MakeSwitch(/*queue_packets=*/4);  // pools of 5 x 2 x 4 + 64 = 104 mbufs
  const std::vector<uint8_t> frame = Frame(kHostIp, MomDatagram(4096, false));  // 3 fragments
  std::vector<rte_mbuf*> held;
  int forwarded = 0;
  while (core_->drops()[static_cast<int>(DropReason::kNoBuffers)] == 0 && forwarded < 100) {
    ASSERT_FALSE(Forward(frame).has_value());
    for (rte_mbuf* m : Drain(0)) held.push_back(m);
    ++forwarded;
  }
  EXPECT_EQ(core_->drops()[static_cast<int>(DropReason::kNoBuffers)], 1u);
  EXPECT_EQ(held.size() % 3, 0u) << "the dropped datagram left no fragment queued";
  EXPECT_EQ(held.size(), 3u * (forwarded - 1));
  EXPECT_GE(held.size(), 100u) << "dropped before the pools were nearly empty";
  EXPECT_EQ(core_->drops()[static_cast<int>(DropReason::kQueueFull)], 0u);
  Free(held);
  ASSERT_FALSE(Forward(frame).has_value());
  const std::vector<rte_mbuf*> again = Drain(0);
  EXPECT_EQ(again.size(), 3u);
  EXPECT_EQ(Reassemble(again, 1500, frame), frame);
  Free(again);
  EXPECT_TRUE(FragmentPoolsFull());
}

TEST_F(EgressTest, DestructionFreesWhatIsQueued) {
  MakeSwitch();
  ASSERT_FALSE(Forward(Frame(kGroupIp, MomDatagram(16384, true))).has_value());
  egress_.reset();  // TearDown checks the receive pool is full again
}

}  // namespace
}  // namespace dctk::mom
