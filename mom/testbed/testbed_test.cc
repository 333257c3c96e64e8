// The MOM data plane for real: a 2-leaf, 2-spine fabric of mom_switch
// processes (DPDK af_packet ports on veths), six host namespaces, switches
// configured by the controller over gRPC. Needs root; skipped otherwise.
//
//   leaf0: host0_0 host0_1 host0_2      leaf1: host1_0 host1_1 host1_2
//   senders host0_0, host1_0; members host0_1, host1_1, host1_2; host0_2 is not
//   a member (but joins the channel addresses, so a stray copy would show).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/process/run_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mom/controller/switch_config.h"
#include "mom/sequence_tracker.h"
#include "mom/testbed/mom_datagram.h"
#include "mom/testbed/netns.h"
#include "mom/testbed/testbed_suite.h"

namespace dctk::mom {
namespace {

constexpr double kHostPortMbps = 20;

class TestbedTest : public TestbedSuite<> {
 protected:
  static void SetUpTestSuite() {
    StartTestbed(Topology::LeafSpine(2, 2, 3), {.host_port_mbps = kHostPortMbps});
  }
  void SetUp() override {
    TestbedSuite::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    senders_ = {hosts_[0], hosts_[3]};
    members_ = {hosts_[1], hosts_[4], hosts_[5]};
    outsider_ = hosts_[2];
  }

  // Up to `n` MOM datagrams (stops early if nothing arrives for the guard time).
  static std::vector<MomDatagram> ReceiveMom(int fd, int n) {
    std::vector<MomDatagram> got;
    char buf[2048];
    while (static_cast<int>(got.size()) < n) {
      const ssize_t len = recv(fd, buf, sizeof(buf), 0);
      if (len <= 0) break;
      if (auto d = DecodeMomDatagram(absl::string_view(buf, len))) got.push_back(*d);
    }
    return got;
  }

  std::vector<int> senders_, members_;
  int outsider_ = -1;
};

TEST_F(TestbedTest, MulticastReachesExactlyTheMembersInEveryDesign) {
  constexpr int kPerSender = 60;
  for (Design design : {Design::kNaive, Design::kTopologyAware, Design::kTopologyAwareQos,
                        Design::kSerialized}) {
    SCOPED_TRACE(DesignName(design));
    const uint32_t group = 20 + static_cast<uint32_t>(design);
    absl::StatusOr<std::vector<GroupRoutes>> routes = bed_->Configure(
        {GroupSpec{.group_id = group, .senders = senders_, .receivers = members_,
                   .design = design}});
    ASSERT_TRUE(routes.ok()) << routes.status();
    const GroupRoutes& r = (*routes)[0];
    const std::vector<uint32_t> channels = ChannelIps(r);
    port_ = 0;
    std::vector<int> in;
    for (int m : members_) in.push_back(Receiver(m, channels));
    const int outsider = Receiver(outsider_, channels);
    for (size_t s = 0; s < senders_.size(); ++s) {
      const int fd = Sender(senders_[s], HighPriority(design) ? 46 : 0);
      for (int seq = 1; seq <= kPerSender; ++seq) {
        Send(fd, SenderChannelIp(r, static_cast<int>(s)),
             EncodeMomDatagram(group, static_cast<uint32_t>(s + 1), seq, Serialized(design), 0));
      }
    }
    std::vector<uint64_t> first_stamps;
    for (size_t i = 0; i < in.size(); ++i) {
      std::vector<MomDatagram> got = ReceiveMom(in[i], 2 * kPerSender);
      ASSERT_EQ(got.size(), 2u * kPerSender) << "member " << i << FabricStats();
      std::map<uint32_t, uint64_t> last;  // per sender: in order, each once
      std::vector<uint64_t> stamps;
      for (const MomDatagram& d : got) {
        EXPECT_EQ(d.sender_seq, last[d.sender_id] + 1) << "sender " << d.sender_id;
        last[d.sender_id] = d.sender_seq;
        stamps.push_back(d.group_seq);
      }
      if (Serialized(design)) {
        if (i == 0) first_stamps = stamps;
        EXPECT_EQ(stamps, first_stamps) << "members disagree on the order";
        for (size_t k = 0; k < stamps.size(); ++k) EXPECT_EQ(stamps[k], k + 1);
      } else {
        EXPECT_EQ(stamps, std::vector<uint64_t>(stamps.size(), 0));
      }
    }
    char buf[2048];
    EXPECT_LT(recv(outsider, buf, sizeof(buf), MSG_DONTWAIT), 0) << "a non-member got a copy";
  }
}

TEST_F(TestbedTest, SerializedReceiversSeeOneOrderAndDetectInjectedDrops) {
  constexpr int kPerSender = 78;  // the last copy is not one the filter drops
  constexpr uint32_t kGroup = 40;
  absl::StatusOr<std::vector<GroupRoutes>> routes = bed_->Configure(
      {GroupSpec{.group_id = kGroup, .senders = senders_, .receivers = members_,
                 .design = Design::kSerialized}});
  ASSERT_TRUE(routes.ok()) << routes.status();
  const GroupRoutes& r = (*routes)[0];
  // members_[1] loses every 10th MOM copy (nftables in its namespace).
  const int lossy = members_[1];
  ASSERT_TRUE(bed_->RunIn(lossy, "nft add table ip momdrop").ok());
  ASSERT_TRUE(bed_->RunIn(lossy, "nft add chain ip momdrop pre "
                                 "'{ type filter hook prerouting priority -300; }'")
                  .ok());
  ASSERT_TRUE(bed_->RunIn(lossy, "nft add rule ip momdrop pre ip daddr 239.0.0.0/8 "
                                 "numgen inc mod 10 == 9 drop")
                  .ok());
  std::vector<int> in;
  for (int m : members_) in.push_back(Receiver(m, ChannelIps(r)));
  std::vector<int> out;
  for (int s : senders_) out.push_back(Sender(s, 46));
  // Both senders at once, so the sequencer interleaves them.
  std::vector<std::thread> threads;
  for (size_t s = 0; s < senders_.size(); ++s) {
    threads.emplace_back([&, s] {
      for (int seq = 1; seq <= kPerSender; ++seq) {
        Send(out[s], SenderChannelIp(r, static_cast<int>(s)),
             EncodeMomDatagram(kGroup, static_cast<uint32_t>(s + 1), seq, true, 0));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const int total = 2 * kPerSender;
  std::vector<std::vector<std::pair<uint64_t, uint64_t>>> order(in.size());  // (stamp, id)
  std::vector<SequenceTracker> trackers(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const int want = static_cast<int>(i) == 1 ? total - total / 10 : total;
    for (const MomDatagram& d : ReceiveMom(in[i], want)) {
      order[i].push_back({d.group_seq, uint64_t{d.sender_id} << 32 | d.sender_seq});
      trackers[i].Observe(d.group_seq);
    }
    ASSERT_EQ(static_cast<int>(order[i].size()), want) << "member " << i;
  }
  EXPECT_EQ(order[0], order[2]) << "lossless members deliver the identical sequence";
  EXPECT_EQ(trackers[0].missing(), 0u);
  // The lossy member sees exactly the stamps it lost as gaps, and otherwise the
  // same order.
  std::vector<std::pair<uint64_t, uint64_t>> expected;
  for (size_t k = 0; k < order[0].size(); ++k) {
    if (k % 10 != 9) expected.push_back(order[0][k]);
  }
  EXPECT_EQ(order[1], expected);
  EXPECT_EQ(trackers[1].missing(), static_cast<uint64_t>(total / 10));
  EXPECT_TRUE(bed_->RunIn(lossy, "nft delete table ip momdrop").ok());
}

TEST_F(TestbedTest, PriorityTrafficOvertakesBackgroundUnderLoad) {
  constexpr int kBackground = 400;  // 1000-byte datagrams, 160 ms at 20 Mb/s
  constexpr int kMom = 20;
  constexpr uint32_t kGroup = 50;
  const std::vector<int> h = bed_->topology().hosts();
  const int bg_sender = h[0], mom_sender = h[1], receiver = h[4];
  absl::StatusOr<std::vector<GroupRoutes>> routes = bed_->Configure(
      {GroupSpec{.group_id = kGroup, .senders = {mom_sender}, .receivers = {receiver, h[5]},
                 .design = Design::kTopologyAwareQos}});
  ASSERT_TRUE(routes.ok()) << routes.status();
  const GroupRoutes& r = (*routes)[0];
  // One socket sees both streams in arrival order.
  const int in = Receiver(receiver, ChannelIps(r));
  const int bg = Sender(bg_sender, 0);
  const std::string filler(1000, 'x');
  for (int i = 0; i < kBackground; ++i) Send(bg, bed_->ip(receiver), filler);
  const int mom = Sender(mom_sender, 46);
  for (int seq = 1; seq <= kMom; ++seq) {
    Send(mom, SenderChannelIp(r, 0), EncodeMomDatagram(kGroup, 1, seq, false, 0));
  }
  int mom_seen = 0, background_before = 0, background_after = 0;
  char buf[2048];
  timeval quiet{0, 300000};  // after the last MOM message: count the rest, then stop
  for (;;) {
    const ssize_t len = recv(in, buf, sizeof(buf), 0);
    if (len <= 0) break;
    if (DecodeMomDatagram(absl::string_view(buf, len))) {
      if (++mom_seen == kMom) setsockopt(in, SOL_SOCKET, SO_RCVTIMEO, &quiet, sizeof(quiet));
    } else {
      ++(mom_seen == kMom ? background_after : background_before);
    }
  }
  std::cout << "background datagrams delivered before the last MOM message: "
            << background_before << ", after: " << background_after << "\n";
  EXPECT_EQ(mom_seen, kMom) << FabricStats();
  // Every background datagram was sent before any MOM message, yet most of the
  // queued ones leave the overloaded port after all MOM messages.
  EXPECT_GE(background_after, 50) << "before: " << background_before;
  absl::StatusOr<SwitchStats> leaf1 = bed_->Stats(*bed_->topology().FindNode("leaf1"));
  ASSERT_TRUE(leaf1.ok()) << leaf1.status();
  EXPECT_GT(leaf1->drops().at("queue_full"), 0u) << "the port was not overloaded";
}

std::string Scrape(int port) {
  return RunCommand(absl::StrCat("curl -s http://127.0.0.1:", port, "/metrics")).value_or("");
}

// The switch process exports its counters for Prometheus: the sequencer's
// group sequence, and per-port / per-band counters of the traffic sent.
TEST_F(TestbedTest, SwitchProcessesServePrometheusMetrics) {
  constexpr int kMessages = 30;
  constexpr uint32_t kGroup = 50;
  absl::StatusOr<std::vector<GroupRoutes>> routes = bed_->Configure(
      {GroupSpec{.group_id = kGroup, .senders = {senders_[0]}, .receivers = members_,
                 .design = Design::kSerialized}});
  ASSERT_TRUE(routes.ok()) << routes.status();
  const GroupRoutes& r = (*routes)[0];
  port_ = 0;
  const int in = Receiver(members_[0], ChannelIps(r));
  const int fd = Sender(senders_[0], 46);
  for (int seq = 1; seq <= kMessages; ++seq) {
    Send(fd, SenderChannelIp(r, 0), EncodeMomDatagram(kGroup, 1, seq, true, 0));
  }
  ASSERT_EQ(ReceiveMom(in, kMessages).size(), static_cast<size_t>(kMessages)) << FabricStats();

  const std::string name = bed_->topology().node(r.sequencer).name;
  const std::string sequence = absl::StrCat("mom_switch_group_sequence{group=\"", kGroup,
                                            "\",switch=\"", name, "\"} ", kMessages);
  // The switch publishes every 100 ms: wait (bounded) for the last stamp to show.
  std::string body;
  for (int attempt = 0; attempt < 100; ++attempt) {
    body = Scrape(bed_->metrics_port(r.sequencer));
    if (body.find(sequence) != std::string::npos) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_THAT(body, ::testing::HasSubstr(sequence));
  EXPECT_THAT(body, ::testing::HasSubstr(absl::StrCat("mom_switch_forwarded_total{switch=\"", name, "\"}")));
  EXPECT_THAT(body, ::testing::HasSubstr("mom_switch_drops_total{reason=\"queue_full\""));
  EXPECT_THAT(body, ::testing::HasSubstr("mom_switch_queue_depth{band=\"1\",port=\"0\""));
  // The stamped copies went out in the high-priority band of some port.
  EXPECT_THAT(body, ::testing::ContainsRegex(
                        "mom_switch_queue_enqueued_total\\{band=\"0\",port=\"[0-9]+\",switch=\"" +
                        name + "\"\\} [1-9]"));
  EXPECT_THAT(body, ::testing::ContainsRegex(
                        "mom_switch_port_rx_packets_total\\{port=\"[0-9]+\",switch=\"" + name +
                        "\"\\} [1-9]"));
}

// Each switch's ports live in its own network namespace (its IPv4
// reassembly and PACKET_FANOUT groups are its own), none in this one.
TEST_F(TestbedTest, EverySwitchHasItsPortsInItsOwnNamespace) {
  for (int sw : bed_->topology().switches()) {
    for (int p = 0; p < static_cast<int>(bed_->topology().ports(sw).size()); ++p) {
      const std::string dev = bed_->SwitchPortIface(sw, p);
      EXPECT_TRUE(
          RunCommand(absl::StrCat("ip -n ", bed_->netns(sw), " link show dev ", dev)).ok())
          << dev;
      EXPECT_FALSE(RunCommand(absl::StrCat("ip link show dev ", dev)).ok()) << dev;
    }
  }
}

// A testbed whose switches do not start removes every namespace it made
// (with their veths) before Create returns the error.
TEST(TestbedSetupTest, FailedStartLeavesNothingBehind) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for namespaces and veths";
  const std::string tag = absl::StrCat("f", getpid() % 100000);
  absl::StatusOr<Topology> topo = Topology::LeafSpine(2, 1, 1);
  ASSERT_TRUE(topo.ok());
  absl::StatusOr<std::unique_ptr<Testbed>> bed =
      Testbed::Create(*std::move(topo), {.switch_binary = "/bin/false", .tag = tag});
  ASSERT_FALSE(bed.ok());
  EXPECT_THAT(std::string(bed.status().message()), ::testing::HasSubstr("did not start"));
  EXPECT_FALSE(RunCommand(absl::StrCat("ip netns list | grep -q mom", tag, "_")).ok())
      << "a namespace is left";
  EXPECT_FALSE(RunCommand(absl::StrCat("ip -o link | grep -q m", tag, "l")).ok())
      << "a veth is left in this namespace";
}

}  // namespace
}  // namespace dctk::mom
