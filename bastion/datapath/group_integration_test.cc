// A MOM group through Bastion's datapath on real traffic: three member containers, a
// sender, and a non-member (which also tries to send), as namespaces on a bridge in a
// test-made host namespace, with a sniffer on the bridge. The policy (a `groups:` entry
// and a `depends_on: group`) is compiled and applied as bastiond does. Checks: every
// member receives every datagram, in order, with the same increasing group sequence
// numbers; the non-member and the bridge see none; the non-member's datagram is dropped
// with no_dependency (an event and a counter) and takes no sequence number. Needs root;
// deletes everything it made.
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "bastion/datapath/bpf_datapath.h"
#include "bastion/datapath/testing/group_traffic.h"
#include "bastion/datapath/testing/netns_lab.h"
#include "bastion/policy/apply.h"
#include "bastion/policy/compiler.h"
#include "bastion/policy/policy.h"

namespace dctk::bastion {
namespace {

using testing::Child;
using ::testing::HasSubstr;
using testing::NetnsLab;

constexpr absl::Duration kWait = absl::Seconds(20);
constexpr uint16_t kGroupPort = 7000;
constexpr uint16_t kMarkerPort = 9;
const uint32_t kGroupIp = Ipv4(239, 7, 0, 1);
const std::vector<std::string> kMembers = {"m1", "m2", "m3"};

constexpr char kPolicy[] = R"(version: 1
groups:
  - name: cm
    address: 239.7.0.1
    port: 7000
    members: {labels: {role: cm}}
services:
  - name: cm
    select: {labels: {role: cm}}
  - name: client
    select: {names: [s]}
    depends_on:
      - group: cm
      - host: gateway
        ports: [udp/9]
      - service: other
        ports: [udp/7000]
  - name: other
    select: {names: [n]}
)";

class GroupIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces and BPF";
    auto lab = NetnsLab::Create("10.216.0", {"m1", "m2", "m3", "s", "n"});
    ASSERT_TRUE(lab.ok()) << lab.status();
    lab_ = std::move(*lab);
    ASSERT_TRUE(lab_->EnterHost().ok());
    auto dp = BpfDatapath::Create({});
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::move(*dp);
    std::vector<ContainerInfo> containers;
    uint32_t id = 1;
    for (const std::string& name : {"m1", "m2", "m3", "s", "n"}) {
      const NetnsLab::Container& ct = lab_->container(name);
      ContainerInfo c{.id = id++, .name = name, .labels = {}, .ip = ct.ip, .mac = ct.mac,
                      .host_ifindex = ct.host_ifindex, .gateway = lab_->gateway_ip()};
      if (name[0] == 'm') c.labels["role"] = "cm";
      containers.push_back(c);
      ASSERT_TRUE(dp_->Attach(ct.host_ifindex).ok());
    }
    absl::StatusOr<Policy> policy = ParsePolicy(kPolicy, "group.yaml");
    ASSERT_TRUE(policy.ok()) << policy.status();
    absl::StatusOr<DatapathState> state = CompilePolicy(*policy, containers);
    ASSERT_TRUE(state.ok()) << state.status();
    ASSERT_TRUE(ApplyState(*dp_, {}, *state).ok());
    for (const std::string& name : kMembers) member_fds_.push_back(Joined(name));
    non_member_fd_ = Joined("n");
    sender_fd_ = Sender("s");
    attacker_fd_ = Sender("n");
  }

  void TearDown() override {
    for (int fd : member_fds_) close(fd);
    for (int fd : {non_member_fd_, sender_fd_, attacker_fd_}) {
      if (fd >= 0) close(fd);
    }
    dp_.reset();
    lab_.reset();
  }

  int Joined(const std::string& name) {
    absl::StatusOr<int> fd = lab_->SocketIn(name, AF_INET, SOCK_DGRAM);
    EXPECT_TRUE(fd.ok()) << fd.status();
    if (!fd.ok()) return -1;
    absl::Status s = testing::BindAndJoin(*fd, kGroupPort, kGroupIp, lab_->container(name).ip);
    EXPECT_TRUE(s.ok()) << s;
    return *fd;
  }

  int Sender(const std::string& name) {
    absl::StatusOr<int> fd = lab_->SocketIn(name, AF_INET, SOCK_DGRAM);
    EXPECT_TRUE(fd.ok()) << fd.status();
    if (!fd.ok()) return -1;
    absl::Status s = testing::MulticastFrom(*fd, lab_->container(name).ip);
    EXPECT_TRUE(s.ok()) << s;
    return *fd;
  }

  static void SendTo(int fd, const std::string& data, uint32_t ip, uint16_t port) {
    sockaddr_in to = testing::SocketAddress(ip, port);
    ASSERT_EQ(sendto(fd, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&to),
                     sizeof(to)),
              static_cast<ssize_t>(data.size()));
  }

  std::unique_ptr<Child> BridgeSniffer() {
    auto sniffer = std::make_unique<Child>(lab_->Exec(lab_->host_netns()) +
                                           "tcpdump -i br0 -n -l -c 1 udp");
    absl::StatusOr<std::string> line;
    do {
      line = sniffer->ReadErrLine(kWait);
      EXPECT_TRUE(line.ok()) << line.status();
    } while (line.ok() && !absl::StrContains(*line, "listening on br0"));
    return sniffer;
  }

  std::unique_ptr<NetnsLab> lab_;
  std::unique_ptr<BpfDatapath> dp_;
  std::vector<int> member_fds_;
  int non_member_fd_ = -1, sender_fd_ = -1, attacker_fd_ = -1;
};

TEST_F(GroupIntegrationTest, MembersGetEverySequencedDatagramNobodyElseSeesAny) {
  auto sniffer = BridgeSniffer();
  constexpr uint64_t kCount = 50;
  {
    // One CPU for the sender: its datagrams enter the datapath in send order, so the
    // stamped order is the send order (on several CPUs, MOM is "mostly" ordered).
    cpu_set_t saved, one;
    ASSERT_EQ(sched_getaffinity(0, sizeof(saved), &saved), 0);
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
    absl::Cleanup restore = [&saved] { sched_setaffinity(0, sizeof(saved), &saved); };
    for (uint64_t i = 1; i <= kCount; ++i) {
      SendTo(sender_fd_, testing::MomDatagram(i), kGroupIp, kGroupPort);
    }
  }
  for (size_t m = 0; m < member_fds_.size(); ++m) {
    for (uint64_t i = 1; i <= kCount; ++i) {
      absl::StatusOr<std::string> got = testing::Receive(member_fds_[m], kWait);
      ASSERT_TRUE(got.ok()) << kMembers[m] << " datagram " << i << ": " << got.status();
      EXPECT_EQ(testing::SenderSeqOf(*got), i) << kMembers[m];
      EXPECT_EQ(testing::GroupSeqOf(*got), i) << kMembers[m];
    }
  }

  // The non-member (not a dependent of the group) multicasts: dropped at its veth.
  SendTo(attacker_fd_, testing::MomDatagram(1), kGroupIp, kGroupPort);
  bool dropped = false;
  const uint32_t attacker_ip = lab_->container("n").ip;
  const absl::Time deadline = absl::Now() + kWait;
  while (!dropped && absl::Now() < deadline) {
    ASSERT_TRUE(dp_->PollEvents(absl::Milliseconds(200), [&](const VerdictEvent& e) {
                     dropped |= e.reason == BASTION_DROP_NO_DEPENDENCY && e.saddr == attacker_ip &&
                                e.daddr == kGroupIp;
                   }).ok());
  }
  EXPECT_TRUE(dropped) << "no no_dependency event for the non-member's datagram";
  // It took no sequence number and reached no member: the sender's next is number 51.
  SendTo(sender_fd_, testing::MomDatagram(kCount + 1), kGroupIp, kGroupPort);
  for (size_t m = 0; m < member_fds_.size(); ++m) {
    absl::StatusOr<std::string> got = testing::Receive(member_fds_[m], kWait);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(testing::SenderSeqOf(*got), kCount + 1) << kMembers[m];
    EXPECT_EQ(testing::GroupSeqOf(*got), kCount + 1) << kMembers[m];
  }
  auto seq = dp_->GroupSequence(kGroupIp);
  ASSERT_TRUE(seq.ok()) << seq.status();
  EXPECT_EQ(*seq, kCount + 1);

  // Markers: to the host (across the bridge) and to the non-member (straight into it).
  // Each is the first UDP packet its observer sees: no group copy came before.
  SendTo(sender_fd_, "marker", lab_->gateway_ip(), kMarkerPort);
  SendTo(sender_fd_, "marker", attacker_ip, kGroupPort);
  absl::StatusOr<std::string> bridge_first = sniffer->ReadLine(kWait);
  ASSERT_TRUE(bridge_first.ok()) << bridge_first.status();
  EXPECT_THAT(*bridge_first, HasSubstr(Ipv4ToString(lab_->gateway_ip()) + ".9:"));
  absl::StatusOr<std::string> non_member_first = testing::Receive(non_member_fd_, kWait);
  ASSERT_TRUE(non_member_first.ok()) << non_member_first.status();
  EXPECT_EQ(*non_member_first, "marker");

  auto counters = dp_->ReadCounters();
  ASSERT_TRUE(counters.ok());
  EXPECT_EQ((*counters)[BASTION_PASS_GROUP], kCount + 1);
  EXPECT_EQ((*counters)[BASTION_GROUP_COPY_FAILED], 0u);
  EXPECT_GE((*counters)[BASTION_DROP_NO_DEPENDENCY], 1u);
}

}  // namespace
}  // namespace dctk::bastion
