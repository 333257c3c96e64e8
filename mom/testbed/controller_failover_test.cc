// The controller process on real switches: mom_controller configures a
// 2-leaf, 2-spine fabric of mom_switch processes from a fabric file; a
// serialized group's root (its sequencer, a spine) is killed, loses its
// link to one leaf, or its link to one leaf stays up but drops every frame
// towards the leaf (an XDP program on the leaf's end); the controller's health
// check (switch answers, link states, probes) notices, passes the root over
// and moves the group to the other spine, and traffic flows again, stamped by
// the new sequencer. Needs root.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/process/run_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mom/controller/switch_config.h"
#include "mom/testbed/controller_process.h"
#include "mom/testbed/mom_datagram.h"
#include "mom/testbed/netns.h"
#include "mom/testbed/testbed.h"

namespace dctk::mom {
namespace {

constexpr uint32_t kGroup = 61;
constexpr int kMessages = 20;

// An XDP program that drops every frame (or, `half`, each frame with
// probability 1/2) arriving on interface `iface` of network namespace `netns`
// (generic XDP runs before packet sockets see the frame, so the switch on
// that end receives nothing, or half, while the link stays up). Detached when
// the object goes; deleting the interface detaches it too.
class XdpDrop {
 public:
  ~XdpDrop() { Detach(); }
  absl::Status Attach(const std::string& netns, const std::string& iface, bool half = false) {
    const bpf_insn drop_all[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_DROP},
        {.code = BPF_JMP | BPF_EXIT},
    };
    // r0 = random & 1; r0 += XDP_DROP: XDP_DROP (1) or XDP_PASS (2).
    const bpf_insn drop_half[] = {
        {.code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_get_prandom_u32},
        {.code = BPF_ALU64 | BPF_AND | BPF_K, .dst_reg = BPF_REG_0, .imm = 1},
        {.code = BPF_ALU64 | BPF_ADD | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_DROP},
        {.code = BPF_JMP | BPF_EXIT},
    };
    static_assert(XDP_DROP + 1 == XDP_PASS);
    prog_ = half ? bpf_prog_load(BPF_PROG_TYPE_XDP, "mom_drop_half", "GPL", drop_half, 4, nullptr)
                 : bpf_prog_load(BPF_PROG_TYPE_XDP, "mom_drop", "GPL", drop_all, 2, nullptr);
    if (prog_ < 0) return absl::InternalError(absl::StrCat("bpf_prog_load: ", prog_));
    netns_ = netns;
    absl::Status status;
    InNetns([&] {
      ifindex_ = static_cast<int>(if_nametoindex(iface.c_str()));
      const int rc =
          ifindex_ > 0 ? bpf_xdp_attach(ifindex_, prog_, XDP_FLAGS_SKB_MODE, nullptr) : -ENODEV;
      if (rc != 0) {
        ifindex_ = 0;
        status = absl::InternalError(absl::StrCat("XDP attach to ", iface, ": ", rc));
      }
    });
    return status;
  }
  void Detach() {
    if (ifindex_ > 0) {
      InNetns([&] { bpf_xdp_detach(ifindex_, XDP_FLAGS_SKB_MODE, nullptr); });
      ifindex_ = 0;
    }
    if (prog_ >= 0) close(prog_);
    prog_ = -1;
  }

 private:
  // Runs `fn` on a thread of its own inside netns_.
  template <typename Fn>
  void InNetns(Fn fn) {
    std::thread t([&] {
      if (EnterNetns(netns_).ok()) fn();
    });
    t.join();
  }

  std::string netns_;
  int prog_ = -1;
  int ifindex_ = 0;
};

class ControllerFailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for namespaces, veths and DPDK af_packet";
    absl::StatusOr<Topology> topo = Topology::LeafSpine(2, 2, 2);
    ASSERT_TRUE(topo.ok());
    absl::StatusOr<std::unique_ptr<Testbed>> bed =
        Testbed::Create(*std::move(topo), {.switch_binary = "mom/switch/mom_switch"});
    ASSERT_TRUE(bed.ok()) << bed.status();
    bed_ = *std::move(bed);
  }
  void TearDown() override {
    for (int fd : fds_) close(fd);
  }

  int Node(const std::string& name) { return *bed_->topology().FindNode(name); }

  std::string WriteFabricFile() {
    std::string text = "leaf_spine { leaves: 2 spines: 2 hosts_per_leaf: 2 }\n";
    for (int sw : bed_->topology().switches()) {
      absl::StrAppend(&text, "switches { name: \"", bed_->topology().node(sw).name,
                      "\" control: \"", bed_->control_address(sw), "\" }\n");
    }
    for (int h : bed_->topology().hosts()) {
      absl::StrAppend(&text, "hosts { name: \"", bed_->topology().node(h).name, "\" ip: \"",
                      Ipv4Text(bed_->ip(h)), "\" }\n");
    }
    absl::StrAppend(&text, "groups { group_id: ", kGroup, " design: \"serialized\" ",
                    "senders: \"host0_0\" receivers: [\"host0_1\", \"host1_0\", \"host1_1\"] }\n");
    const char* dir = std::getenv("TEST_TMPDIR");
    const std::string path = absl::StrCat(dir ? dir : "/tmp", "/fabric_", getpid(), ".conf");
    std::ofstream(path) << text;
    return path;
  }

  int Receiver(int host) {
    absl::StatusOr<int> fd = bed_->GroupReceiver(host, &port_, {ChannelGroupIp(kGroup, 0)});
    EXPECT_TRUE(fd.ok()) << fd.status();
    if (!fd.ok()) return -1;
    fds_.push_back(*fd);
    return *fd;
  }

  // Sends kMessages from host0_0 (sender sequence numbers from `first`); each
  // receiver must get them all, stamped first_stamp.. by the (current) sequencer.
  void SendAndExpectAllStamped(int sender_fd, const std::vector<int>& receivers, uint64_t first,
                               uint64_t first_stamp = 1) {
    const sockaddr_in to = Sockaddr(ChannelGroupIp(kGroup, 0), port_);
    for (int i = 0; i < kMessages; ++i) {
      const std::string d = EncodeMomDatagram(kGroup, 1, first + i, true, 0);
      ASSERT_EQ(sendto(sender_fd, d.data(), d.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                       sizeof(to)),
                static_cast<ssize_t>(d.size()));
    }
    for (int fd : receivers) {
      SCOPED_TRACE(absl::StrCat("receiver fd ", fd, ", first message ", first));
      char buf[2048];
      for (int i = 0; i < kMessages; ++i) {
        const ssize_t len = recv(fd, buf, sizeof(buf), 0);
        ASSERT_GT(len, 0) << "message " << i << " lost" << FabricStats();
        absl::optional<MomDatagram> m = DecodeMomDatagram(absl::string_view(buf, len));
        ASSERT_TRUE(m.has_value());
        EXPECT_EQ(m->sender_seq, first + i);
        EXPECT_EQ(m->group_seq, first_stamp + i);
      }
    }
  }

  // Starts the controller, reads its first configuration (a spine as the
  // group's root, into *old_root), opens the members' receivers and host0_0's
  // sender, and checks the first kMessages arrive stamped 1..kMessages.
  void ConfigureAndSendFirst(ControllerProcess* controller, std::string* old_root, int* sender,
                             std::vector<int>* receivers,
                             std::vector<std::string> flags = {"--interval_ms=100"}) {
    ASSERT_TRUE(controller->Start("mom/controller/mom_controller", WriteFabricFile(), flags).ok());
    const std::string first = controller->NextLine();
    ASSERT_THAT(first, ::testing::StartsWith("mom_controller configured: failed: none; group 61"));
    *old_root = first.substr(first.rfind(' ') + 1);
    ASSERT_THAT(*old_root, ::testing::StartsWith("spine"));
    for (const char* host : {"host0_1", "host1_0", "host1_1"}) {
      receivers->push_back(Receiver(Node(host)));
    }
    absl::StatusOr<int> fd = bed_->UdpSocket(Node("host0_0"));
    ASSERT_TRUE(fd.ok());
    fds_.push_back(*fd);
    *sender = *fd;
    SendAndExpectAllStamped(*sender, *receivers, 1);
  }

  // After a failure: the controller's next line starts with `failures` and
  // names another spine than `old_root` as the group's root; 20 more messages
  // reach every member, stamped 1..20 by the new sequencer, whose stats
  // confirm it.
  void ExpectRootMoved(ControllerProcess* controller, const std::string& failures,
                       const std::string& old_root, int sender, const std::vector<int>& receivers) {
    const std::string line = controller->NextLine();
    ASSERT_THAT(line, ::testing::StartsWith("mom_controller configured: " + failures +
                                            "; group 61 (serialized) roots: spine"));
    const std::string new_root = line.substr(line.rfind(' ') + 1);
    EXPECT_NE(new_root, old_root);
    SendAndExpectAllStamped(sender, receivers, 1 + kMessages);
    absl::StatusOr<SwitchStats> stats = bed_->Stats(Node(new_root));
    ASSERT_TRUE(stats.ok());
    ASSERT_EQ(stats->group_sequences_size(), 1);
    EXPECT_EQ(stats->group_sequences(0).last_stamped(), static_cast<uint64_t>(kMessages));
  }

  // The failure is gone: once the hold-down passed, the controller's next
  // line reports none, and 20 more messages reach every member through the
  // spine it picks, whose stamps continue where that spine left off.
  void ExpectRestored(ControllerProcess* controller, int sender,
                      const std::vector<int>& receivers) {
    const std::string line = controller->NextLine();
    ASSERT_THAT(line,
                ::testing::StartsWith(
                    "mom_controller configured: failed: none; group 61 (serialized) roots: spine"));
    absl::StatusOr<SwitchStats> stats = bed_->Stats(Node(line.substr(line.rfind(' ') + 1)));
    ASSERT_TRUE(stats.ok());
    ASSERT_EQ(stats->group_sequences_size(), 1);
    SendAndExpectAllStamped(sender, receivers, 1 + 2 * kMessages,
                            stats->group_sequences(0).last_stamped() + 1);
  }

  // Every running switch's counters and port states, for failure messages.
  std::string FabricStats() {
    std::string text;
    for (int sw : bed_->topology().switches()) {
      if (!bed_->switch_running(sw)) continue;
      absl::StatusOr<SwitchStats> st = bed_->Stats(sw);
      absl::StrAppend(&text, "\n", st.ok() ? st->ShortDebugString() : st.status().ToString());
    }
    return text;
  }

  std::unique_ptr<Testbed> bed_;
  std::vector<int> fds_;
  uint16_t port_ = 0;
};

TEST_F(ControllerFailoverTest, KilledRootIsBlacklistedAndTrafficMovesToAnotherRoot) {
  ControllerProcess controller;
  std::string old_root;
  int sender = -1;
  std::vector<int> receivers;
  ASSERT_NO_FATAL_FAILURE(ConfigureAndSendFirst(&controller, &old_root, &sender, &receivers));
  absl::StatusOr<SwitchStats> stats = bed_->Stats(Node(old_root));
  ASSERT_TRUE(stats.ok());
  ASSERT_EQ(stats->group_sequences_size(), 1);
  EXPECT_EQ(stats->group_sequences(0).last_stamped(), static_cast<uint64_t>(kMessages));

  ASSERT_TRUE(bed_->StopSwitch(Node(old_root), SIGKILL).ok());  // the root crashes
  ExpectRootMoved(&controller, "failed: " + old_root, old_root, sender, receivers);
}

TEST_F(ControllerFailoverTest, LinkDownMovesTheGroupToARootThatReachesEveryReceiver) {
  ControllerProcess controller;
  std::string old_root;
  int sender = -1;
  std::vector<int> receivers;
  ASSERT_NO_FATAL_FAILURE(ConfigureAndSendFirst(&controller, &old_root, &sender, &receivers));

  // The root's link to leaf1 goes down at the root's end (its peer, leaf1's
  // port, loses carrier): the root has no 2-hop path to host1_* any more.
  const int root = Node(old_root);
  const std::string iface = bed_->SwitchPortIface(root, bed_->topology().PortTo(root, Node("leaf1")));
  const std::string link_cmd = absl::StrCat("ip -n ", bed_->netns(root), " link set ", iface);
  ASSERT_TRUE(RunCommand(link_cmd + " down").ok());
  ASSERT_NO_FATAL_FAILURE(ExpectRootMoved(
      &controller, "failed: none; links down: leaf1-" + old_root, old_root, sender, receivers));
  ASSERT_TRUE(bed_->switch_running(root));  // the switch is fine; only its link is not

  // The link comes back: once it stayed up for the hold-down (a second at
  // --interval_ms=100), the controller routes over it again. (Before
  // mom_switch cleared the socket error a link flap leaves, a burst into the
  // restored link stayed in the transmit ring.)
  ASSERT_TRUE(RunCommand(link_cmd + " up").ok());
  ExpectRestored(&controller, sender, receivers);
}

TEST_F(ControllerFailoverTest, LinkThatDropsWhileUpIsFoundByProbesAndPassedOver) {
  ControllerProcess controller;
  std::string old_root;
  int sender = -1;
  std::vector<int> receivers;
  ASSERT_NO_FATAL_FAILURE(ConfigureAndSendFirst(&controller, &old_root, &sender, &receivers));

  // Leaf1's end of its link to the root drops every frame; both ends stay up.
  const int root = Node(old_root), leaf1 = Node("leaf1");
  XdpDrop drop;
  ASSERT_TRUE(drop.Attach(bed_->netns(leaf1),
                          bed_->SwitchPortIface(leaf1, bed_->topology().PortTo(leaf1, root)))
                  .ok());
  ASSERT_NO_FATAL_FAILURE(ExpectRootMoved(
      &controller, "failed: none; links dropping: leaf1-" + old_root, old_root, sender, receivers));
  absl::StatusOr<SwitchStats> root_stats = bed_->Stats(root);
  ASSERT_TRUE(root_stats.ok());
  EXPECT_TRUE(root_stats->ports(bed_->topology().PortTo(root, leaf1)).link_up());

  // The link stops dropping: once probes crossed it for the hold-down, the
  // controller routes over it again.
  drop.Detach();
  ExpectRestored(&controller, sender, receivers);
}

// Partial loss: leaf1's end of its link to the root drops each frame with
// probability 1/2 (both ends stay up). With --probe_miss_ms long enough that
// a run of lost probes never fails the link as silent, the controller finds
// it by the fraction of probes lost over its 2 s window (the default 25 %),
// names it dropping and moves the group; 20 more messages reach every member
// through the new root. Once the loss stops, a window with (almost) no loss
// brings the link back.
TEST_F(ControllerFailoverTest, LinkThatLosesHalfWhileUpIsFoundByProbeLossAndPassedOver) {
  ControllerProcess controller;
  std::string old_root;
  int sender = -1;
  std::vector<int> receivers;
  ASSERT_NO_FATAL_FAILURE(ConfigureAndSendFirst(
      &controller, &old_root, &sender, &receivers,
      {"--interval_ms=100", "--probe_miss_ms=60000", "--probe_loss_window_ms=2000"}));

  const int root = Node(old_root), leaf1 = Node("leaf1");
  XdpDrop drop;
  ASSERT_TRUE(drop.Attach(bed_->netns(leaf1),
                          bed_->SwitchPortIface(leaf1, bed_->topology().PortTo(leaf1, root)),
                          /*half=*/true)
                  .ok());
  ASSERT_NO_FATAL_FAILURE(ExpectRootMoved(
      &controller, "failed: none; links dropping: leaf1-" + old_root, old_root, sender, receivers));
  drop.Detach();
  ExpectRestored(&controller, sender, receivers);
}

// A host link that drops: leaf1's end of its link to host1_1 (a member)
// drops every frame arriving from the host, so the host's answers to the
// leaf's ARP probes never arrive (what leaves the leaf still reaches the
// host). The controller reports the host link as dropping and keeps the
// group's root (a host has no other way in); 20 more messages still reach
// every member, host1_1 included. With the program detached the report
// goes after the hold-down.
TEST_F(ControllerFailoverTest, HostLinkThatDropsIsReportedAndTheGroupStays) {
  ControllerProcess controller;
  std::string old_root;
  int sender = -1;
  std::vector<int> receivers;
  ASSERT_NO_FATAL_FAILURE(ConfigureAndSendFirst(&controller, &old_root, &sender, &receivers));
  const int leaf1 = Node("leaf1"), host = Node("host1_1");
  XdpDrop drop;
  ASSERT_TRUE(drop.Attach(bed_->netns(leaf1),
                          bed_->SwitchPortIface(leaf1, bed_->topology().PortTo(leaf1, host)))
                  .ok());
  EXPECT_EQ(controller.NextLine(),
            "mom_controller configured: failed: none; host links dropping: leaf1-host1_1; "
            "group 61 (serialized) roots: " +
                old_root);
  SendAndExpectAllStamped(sender, receivers, 1 + kMessages, 1 + kMessages);
  drop.Detach();
  EXPECT_EQ(controller.NextLine(),
            "mom_controller configured: failed: none; group 61 (serialized) roots: " + old_root);
}

}  // namespace
}  // namespace dctk::mom
