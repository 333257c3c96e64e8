// MOM group over real UDP on loopback: kernel IP multicast to three receivers
// in one process (each JoinGroup opens its own socket on the group address).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "common/transport/udp_transport.h"
#include "gtest/gtest.h"
#include "mom/group.h"
#include "mom/test_message.pb.h"

namespace dctk::mom {
namespace {

using transport::Address;
using transport::Envelope;
using transport::TransportReceiver;
using transport::UdpTransport;

constexpr uint32_t kLoopbackIp = 0x7f000001;
constexpr int kMessagesPerSender = 200;
constexpr int kSenders = 2;
constexpr int kMembers = 3;

// Holds a free port on a multicast group address (no fixed ports in tests).
class GroupPort {
 public:
  explicit GroupPort(uint32_t group_ip) {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(group_ip);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    group_ = Address(group_ip, ntohs(sa.sin_port));
  }
  ~GroupPort() { close(fd_); }
  const Address& group() const { return group_; }
  // The port-holding socket also gets a copy of every group datagram; this
  // reads the TOS byte of each one queued (IP_RECVTOS), without blocking.
  void EnableTos() {
    int one = 1;
    EXPECT_EQ(setsockopt(fd_, IPPROTO_IP, IP_RECVTOS, &one, sizeof(one)), 0);
  }
  std::vector<int> QueuedTos() {
    std::vector<int> tos;
    char data[2048];
    char control[CMSG_SPACE(sizeof(int))];
    for (;;) {
      iovec iov{data, sizeof(data)};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      if (recvmsg(fd_, &msg, MSG_DONTWAIT) < 0) break;
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS) {
          tos.push_back(*reinterpret_cast<unsigned char*>(CMSG_DATA(c)));
        }
      }
    }
    return tos;
  }

 private:
  int fd_;
  Address group_;
};

transport::EndpointOptions LoopbackOptions(const GroupConfig& g) {
  transport::EndpointOptions o = SenderEndpointOptions(g);
  o.multicast_interface_ip = kLoopbackIp;
  o.multicast_loopback = true;
  return o;
}

class Member : public TransportReceiver {
 public:
  Member(UdpTransport* t, const GroupConfig& g, std::function<void()> on_deliver)
      : mom_(t, this, g, [this, on_deliver](const MomDelivery& d) {
          got.emplace_back(d.sender_id, d.sender_seq);
          on_deliver();
        }) {
    EXPECT_TRUE(t->Register(this, Address::Loopback(0), LoopbackOptions(g)).ok());
    EXPECT_TRUE(mom_.Join().ok());
  }
  void ReceiveMessage(const Address& from, const Envelope& msg) override {
    EXPECT_TRUE(mom_.Handle(from, msg));
  }
  const MomReceiver::Stats& stats() const { return mom_.stats(); }
  std::vector<std::pair<uint32_t, uint64_t>> got;

 private:
  MomReceiver mom_;
};

class Client : public TransportReceiver {
 public:
  Client(UdpTransport* t, const GroupConfig& g, uint32_t id) {
    EXPECT_TRUE(t->Register(this, Address::Loopback(0), LoopbackOptions(g)).ok());
    auto s = MomSender::Create(t, this, g, id, /*incarnation=*/1);
    EXPECT_TRUE(s.ok()) << s.status();
    sender = std::move(*s);
  }
  void ReceiveMessage(const Address&, const Envelope&) override {}
  std::unique_ptr<MomSender> sender;
};

TEST(GroupUdpTest, KernelMulticastReachesThreeReceiversInPerSenderOrder) {
  // 239.255.x.y from the pid: concurrent runs use different groups.
  GroupPort port(0xefff0000 | (getpid() & 0xffff));
  port.EnableTos();
  absl::StatusOr<std::unique_ptr<UdpTransport>> t = UdpTransport::Create();
  ASSERT_TRUE(t.ok()) << t.status();
  UdpTransport* net = t->get();

  GroupConfig g{.group_id = 9,
                .group_address = port.group(),
                .delivery = Delivery::kIpMulticast,
                .design = Design::kTopologyAwareQos};
  int delivered = 0;
  const int want = kMembers * kSenders * kMessagesPerSender;
  std::vector<std::unique_ptr<Member>> members;
  for (int i = 0; i < kMembers; ++i) {
    members.push_back(std::make_unique<Member>(net, g, [&] {
      if (++delivered == want) net->Stop();
    }));
  }
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 1; i <= kSenders; ++i) clients.push_back(std::make_unique<Client>(net, g, i));

  // Send in small rounds from the loop, so receivers drain their sockets
  // between rounds instead of overflowing them.
  int sent = 0;
  std::function<void()> round = [&] {
    for (int k = 0; k < 10 && sent < kMessagesPerSender; ++k, ++sent) {
      for (auto& c : clients) {
        TestOp op;
        op.set_sender(c->sender->sender_id());
        op.set_n(sent);
        ASSERT_TRUE(c->sender->Multicast(op).ok());
      }
    }
    if (sent < kMessagesPerSender) net->Post(round);
  };
  net->Post(round);
  // Only a guard against hanging if datagrams are lost; not a timing assertion.
  net->Timer(absl::Seconds(20), [net] { net->Stop(); });
  net->Run();

  for (const auto& m : members) {
    ASSERT_EQ(m->got.size(), static_cast<size_t>(kSenders * kMessagesPerSender));
    uint64_t last[kSenders + 1] = {};
    for (auto [sender, seq] : m->got) {
      EXPECT_EQ(seq, last[sender] + 1);
      last[sender] = seq;
    }
    EXPECT_EQ(m->stats().missing, 0u);
    EXPECT_EQ(m->stats().count(Arrival::kInOrder),
              static_cast<uint64_t>(kSenders * kMessagesPerSender));
  }
  EXPECT_EQ(clients[0]->sender->stats().copies_sent, static_cast<uint64_t>(kMessagesPerSender));

  // The QoS design's datagrams carry DSCP 46 (EF) on the wire.
  const std::vector<int> tos = port.QueuedTos();
  ASSERT_FALSE(tos.empty());
  for (int t : tos) EXPECT_EQ(t >> 2, kMomDscp);
}

}  // namespace
}  // namespace dctk::mom
