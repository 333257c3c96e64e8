// A MOM group through Bastion's datapath on real traffic: three member containers, a
// sender, and a non-member (which also tries to send), as namespaces on a bridge in a
// test-made host namespace, with a sniffer on the bridge. The policy (a `groups:` entry
// and a `depends_on: group`) is compiled and applied as bastiond does. Checks: every
// member receives every datagram, in order, with the same increasing group sequence
// numbers; the non-member and the bridge see none; the non-member's datagram is dropped
// with no_dependency (an event and a counter) and takes no sequence number. Needs root;
// deletes everything it made.
#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "bastion/datapath/bpf_datapath.h"
#include "bastion/datapath/testing/group_traffic.h"
#include "bastion/datapath/testing/netns_lab.h"
#include "bastion/policy/apply.h"
#include "bastion/policy/compiler.h"
#include "bastion/policy/policy.h"
#include "common/transport/udp_transport.h"
#include "mom/group.h"

namespace dctk::bastion {
namespace {

using testing::StartChild;
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
  }

  // Plain sockets: members and the non-member joined on the group port, two senders.
  void OpenSockets() {
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

  std::unique_ptr<ChildProcess> BridgeSniffer() {
    auto sniffer = StartChild(lab_->Exec(lab_->host_netns()) +
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

// Pins the calling thread to the CPU it runs on, and back: its datagrams then enter the
// datapath in send order, so the stamped order is the send order (on several CPUs, MOM
// is "mostly" ordered).
class OneCpu {
 public:
  OneCpu() {
    sched_getaffinity(0, sizeof(saved_), &saved_);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    sched_setaffinity(0, sizeof(one), &one);
  }
  ~OneCpu() { sched_setaffinity(0, sizeof(saved_), &saved_); }

 private:
  cpu_set_t saved_;
};

TEST_F(GroupIntegrationTest, MembersGetEverySequencedDatagramNobodyElseSeesAny) {
  OpenSockets();
  auto sniffer = BridgeSniffer();
  constexpr uint64_t kCount = 50;
  {
    OneCpu pinned;
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

// Moves the calling thread into network namespace `netns` (for good).
absl::Status EnterNetns(const std::string& netns) {
  int fd = open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, "opening netns " + netns);
  int rc = setns(fd, CLONE_NEWNET);
  int err = errno;
  close(fd);
  return rc == 0 ? absl::OkStatus() : absl::ErrnoToStatus(err, "entering netns " + netns);
}

// A MOM replica: a UdpTransport loop in a member's namespace with a MomReceiver joined
// to the group, recording every delivery.
class MomMember : public transport::TransportReceiver {
 public:
  MomMember(const NetnsLab::Container& ct, const mom::GroupConfig& group, uint64_t expect)
      : thread_([this, ct, group, expect] { Run(ct, group, expect); }) {}
  ~MomMember() override {
    if (transport_ready_.WaitForNotificationWithTimeout(kWait) && transport_) transport_->Stop();
    thread_.join();
  }

  void ReceiveMessage(const transport::Address& from, const transport::Envelope& msg) override {
    if (receiver_) receiver_->Handle(from, msg);
  }

  // Joined (or failed: status()), within the timeout.
  bool WaitJoined() { return joined_.WaitForNotificationWithTimeout(kWait); }
  bool WaitAll() { return all_.WaitForNotificationWithTimeout(kWait); }
  absl::Status status() const { return status_; }
  // Valid after WaitAll().
  const std::vector<std::pair<uint64_t, uint64_t>>& seqs() const { return seqs_; }  // group, sender
  const mom::MomReceiver::Stats& stats() const { return stats_; }

 private:
  void Run(NetnsLab::Container ct, mom::GroupConfig group, uint64_t expect) {
    absl::Cleanup done = [this] {
      if (!joined_.HasBeenNotified()) joined_.Notify();
      if (!transport_ready_.HasBeenNotified()) transport_ready_.Notify();
    };
    status_ = EnterNetns(ct.netns);
    if (!status_.ok()) return;
    auto t = transport::UdpTransport::Create();
    if (!t.ok()) {
      status_ = t.status();
      return;
    }
    transport_ = std::move(*t);
    transport_ready_.Notify();
    receiver_ = std::make_unique<mom::MomReceiver>(
        transport_.get(), this, group, [this, expect](const mom::MomDelivery& d) {
          seqs_.push_back({d.group_seq, d.sender_seq});
          if (seqs_.size() == expect) {
            stats_ = receiver_->stats();
            all_.Notify();
          }
        });
    auto bound = transport_->Register(this, transport::Address(ct.ip, kGroupPort),
                                      {.multicast_interface_ip = ct.ip});
    status_ = bound.ok() ? receiver_->Join() : bound.status();
    joined_.Notify();
    if (status_.ok()) transport_->Run();
  }

  std::unique_ptr<transport::UdpTransport> transport_;
  std::unique_ptr<mom::MomReceiver> receiver_;
  absl::Notification transport_ready_, joined_, all_;
  absl::Status status_;
  std::vector<std::pair<uint64_t, uint64_t>> seqs_;
  mom::MomReceiver::Stats stats_;
  std::thread thread_;
};

class NullEndpoint : public transport::TransportReceiver {
 public:
  void ReceiveMessage(const transport::Address&, const transport::Envelope&) override {}
};

// The real MOM library on both ends: a MomSender (serialized design: it sends the
// group_seq slot) in the sender's namespace, MomReceivers in the members': every member
// delivers every message with the group sequence numbers Bastion stamped, none missing,
// none out of order. This is the recipe for the CM group (README, "Multicast groups").
TEST_F(GroupIntegrationTest, MomSenderToMomReceiversThroughTheDatapath) {
  constexpr uint64_t kCount = 40;
  const mom::GroupConfig group{.group_id = 7,
                               .group_address = transport::Address(kGroupIp, kGroupPort),
                               .delivery = mom::Delivery::kIpMulticast,
                               .design = mom::Design::kSerialized};
  std::vector<std::unique_ptr<MomMember>> members;
  for (const std::string& name : kMembers) {
    members.push_back(std::make_unique<MomMember>(lab_->container(name), group, kCount));
  }
  for (auto& m : members) {
    ASSERT_TRUE(m->WaitJoined());
    ASSERT_TRUE(m->status().ok()) << m->status();
  }
  absl::Status sent;
  std::thread sender([&] {
    const NetnsLab::Container& ct = lab_->container("s");
    sent = EnterNetns(ct.netns);
    if (!sent.ok()) return;
    auto t = transport::UdpTransport::Create();
    if (!t.ok()) {
      sent = t.status();
      return;
    }
    NullEndpoint endpoint;
    transport::EndpointOptions options = mom::SenderEndpointOptions(group);
    options.multicast_interface_ip = ct.ip;
    options.multicast_loopback = false;
    auto bound = (*t)->Register(&endpoint, transport::Address(ct.ip, 0), options);
    if (!bound.ok()) {
      sent = bound.status();
      return;
    }
    auto mom_sender = mom::MomSender::Create(t->get(), &endpoint, group, /*sender_id=*/4,
                                             /*incarnation=*/1);
    if (!mom_sender.ok()) {
      sent = mom_sender.status();
      return;
    }
    OneCpu pinned;
    for (uint64_t i = 1; i <= kCount && sent.ok(); ++i) {
      sent = (*mom_sender)->MulticastRaw(/*type_id=*/1234, absl::StrCat("request ", i));
    }
  });
  sender.join();
  ASSERT_TRUE(sent.ok()) << sent;
  for (size_t m = 0; m < members.size(); ++m) {
    ASSERT_TRUE(members[m]->WaitAll()) << kMembers[m] << " did not deliver all " << kCount;
    const auto& seqs = members[m]->seqs();
    for (uint64_t i = 1; i <= kCount; ++i) {
      EXPECT_EQ(seqs[i - 1], std::make_pair(i, i)) << kMembers[m];
    }
    EXPECT_EQ(members[m]->stats().group_seq_missing, 0u) << kMembers[m];
    EXPECT_EQ(members[m]->stats().group_seq_out_of_order, 0u) << kMembers[m];
    EXPECT_EQ(members[m]->stats().malformed, 0u) << kMembers[m];
  }
  auto counters = dp_->ReadCounters();
  ASSERT_TRUE(counters.ok());
  EXPECT_EQ((*counters)[BASTION_PASS_GROUP], kCount);
  EXPECT_EQ((*counters)[BASTION_DROP_GROUP_NOT_MOM], 0u);
}

}  // namespace
}  // namespace dctk::bastion
