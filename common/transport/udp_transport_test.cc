#include "common/transport/udp_transport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/transport/framing.h"
#include "common/transport/test_message.pb.h"
#include "common/transport/timeout.h"
#include "common/transport/udp_test_peer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::transport {
namespace {

using ::testing::ElementsAre;

constexpr uint32_t kLoopbackIp = 0x7f000001;

TEST(UdpTransportTest, UnicastEchoBetweenTwoTransports) {
  auto ta = NewTransport(), tb = NewTransport();
  Peer client(ta.get()), server(tb.get());
  server.echo = true;
  client.on_message = [&] {
    if (client.pongs.size() == 3) ta->Stop();
  };
  LoopThread lb(tb.get());
  LoopThread la(ta.get());
  ta->Post([&] {
    for (int i = 1; i <= 3; ++i) client.SendPing(server.addr(), i);
  });
  la.Join();
  lb.StopAndJoin();
  EXPECT_THAT(client.pongs, ElementsAre(1, 2, 3));
  EXPECT_THAT(server.pings, ElementsAre(1, 2, 3));
  EXPECT_EQ(server.last_from, client.addr());
  EXPECT_EQ(ta->stats().sent, 3u);
  EXPECT_EQ(ta->stats().received, 3u);
  EXPECT_EQ(tb->stats().received, 3u);
}

TEST(UdpTransportTest, SendBeforeRunGoesOutDirectly) {
  auto t = NewTransport();
  Peer a(t.get()), b(t.get());
  a.SendPing(b.addr(), 7);
  EXPECT_EQ(t->stats().sent, 1u);
  b.on_message = [&] { t->Stop(); };
  t->Run();
  EXPECT_THAT(b.pings, ElementsAre(7));
}

TEST(UdpTransportTest, RejectsBadSendsAndOptions) {
  auto t = NewTransport();
  Peer a(t.get());
  absl::Status s = t->SendRaw(&a, a.addr(), 1, std::string(kMaxPayloadSize + 1, 'x'));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("exceeds the maximum"));
  Peer other(t.get());
  t->Unregister(&other);
  EXPECT_EQ(t->SendRaw(&other, a.addr(), 1, "").code(), absl::StatusCode::kFailedPrecondition);
  EndpointOptions bad;
  bad.dscp = 64;
  EXPECT_EQ(t->Register(&other, Address::Loopback(0), bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(t->Register(&other, a.addr()).status().message()),
              ::testing::HasSubstr("bind for " + a.addr().ToString()));
  EXPECT_EQ(t->Register(&a, Address::Loopback(0)).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(t->JoinGroup(&a, Address::Loopback(5)).code(), absl::StatusCode::kInvalidArgument);
}

TEST(UdpTransportTest, TimersFireInDeadlineOrderAndCancel) {
  auto t = NewTransport();
  std::vector<std::string> log;
  t->Timer(absl::Milliseconds(30), [&] {
    log.push_back("30");
    t->Stop();
  });
  TimerId never = t->Timer(absl::Milliseconds(5), [&] { log.push_back("never"); });
  t->Timer(absl::Milliseconds(10), [&] { log.push_back("10"); });
  t->Timer(absl::ZeroDuration(), [&] { log.push_back("0"); });
  EXPECT_TRUE(t->CancelTimer(never));
  EXPECT_FALSE(t->CancelTimer(never));
  t->Run();
  EXPECT_THAT(log, ElementsAre("0", "10", "30"));
}

TEST(UdpTransportTest, TimeoutIsPeriodicAndCancelsOnDestruction) {
  auto t = NewTransport();
  int fired = 0, other_fired = 0;
  auto other = std::make_unique<Timeout>(t.get(), absl::Milliseconds(1), [&] { ++other_fired; });
  Timeout timeout(t.get(), absl::Milliseconds(2), [&] {
    if (++fired == 3) {
      other.reset();  // destroyed mid-run: must never call back again
      t->Timer(absl::Milliseconds(20), [&] { t->Stop(); });
    }
  });
  other->Start();
  timeout.Start();
  t->Run();
  EXPECT_GE(fired, 3);
  int other_at_destruction = other_fired;
  EXPECT_GT(other_at_destruction, 0);
  timeout.Stop();
  t->Timer(absl::Milliseconds(5), [&] { t->Stop(); });
  t->Run();
  EXPECT_EQ(other_fired, other_at_destruction);
}

TEST(UdpTransportTest, PostFromOtherThreadsRunsEverythingOnLoop) {
  auto t = NewTransport();
  constexpr int kThreads = 4, kPerThread = 1000;
  int count = 0;  // touched only on the loop thread
  std::thread::id loop_id;
  bool all_on_loop = true;
  LoopThread loop(t.get());
  std::vector<std::thread> posters;
  for (int i = 0; i < kThreads; ++i) {
    posters.emplace_back([&] {
      for (int k = 0; k < kPerThread; ++k) {
        t->Post([&] {
          if (loop_id == std::thread::id()) loop_id = std::this_thread::get_id();
          all_on_loop &= loop_id == std::this_thread::get_id();
          if (++count == kThreads * kPerThread) t->Stop();
        });
      }
    });
  }
  for (auto& p : posters) p.join();
  loop.Join();
  EXPECT_EQ(count, kThreads * kPerThread);
  EXPECT_TRUE(all_on_loop);
  EXPECT_NE(loop_id, std::this_thread::get_id());
}

TEST(UdpTransportTest, PostOnLoopThreadRunsAtTheEndOfTheIteration) {
  auto t = NewTransport();
  Peer sender(t.get()), receiver(t.get());
  // Queued before Run: the loop takes all three with one recvmmsg.
  for (int i = 1; i <= 3; ++i) sender.SendPing(receiver.addr(), i);
  std::vector<std::string> log;
  bool posted = false;
  receiver.on_message = [&] {
    log.push_back("ping");
    if (posted) return;
    posted = true;
    t->Post([&] {
      log.push_back("post");
      // Posted by a post: runs next iteration without waiting for an event.
      t->Post([&] {
        log.push_back("again");
        t->Stop();
      });
    });
  };
  t->Run();
  EXPECT_THAT(log, ElementsAre("ping", "ping", "ping", "post", "again"));
}

TEST(UdpTransportTest, LoopThreadPostsLeftAtStopRunInTheNextRun) {
  auto t = NewTransport();
  bool ran = false;
  t->Timer(absl::ZeroDuration(), [&] {
    t->Post([&] {
      t->Stop();
      t->Post([&] {
        ran = true;
        t->Stop();
      });
    });
  });
  t->Run();
  EXPECT_FALSE(ran);
  t->Run();
  EXPECT_TRUE(ran);
}

TEST(UdpTransportTest, CancelledTimersNeverFire) {
  auto t = NewTransport();
  int fired = 0;
  // A Timeout restarted on every tick, as protocols do on every message:
  // the cancelled deadlines pile up in the heap and must all stay silent.
  Timeout restarted(t.get(), absl::Milliseconds(1), [&] { ++fired; });
  int ticks = 0;
  Timeout tick(t.get(), absl::Microseconds(100), [&] {
    restarted.Start();
    if (++ticks == 200) t->Stop();
  });
  restarted.Start();
  tick.Start();
  t->Run();
  EXPECT_EQ(ticks, 200);
  EXPECT_EQ(fired, 0);
}

TEST(UdpTransportTest, StopBeforeRunReturnsImmediately) {
  auto t = NewTransport();
  std::thread stopper([&] { t->Stop(); });
  stopper.join();
  t->Run();  // must not block
  SUCCEED();
}

// Holds a port on a multicast group address so tests never pick a fixed port.
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

 private:
  int fd_;
  Address group_;
};

TEST(UdpTransportTest, MulticastReachesThreeReceiversOnLoopback) {
  // 239.255.x.y from the pid: concurrent test runs use different groups.
  GroupPort port(0xefff0000 | (getpid() & 0xffff));
  auto t = NewTransport();
  EndpointOptions opts;
  opts.multicast_interface_ip = kLoopbackIp;
  opts.multicast_loopback = true;
  Peer sender(t.get(), opts);
  std::vector<std::unique_ptr<Peer>> members;
  int total = 0;
  for (int i = 0; i < 3; ++i) {
    members.push_back(std::make_unique<Peer>(t.get(), opts));
    ASSERT_TRUE(t->JoinGroup(members.back().get(), port.group()).ok());
    members.back()->on_message = [&] {
      if (++total == 3) t->Stop();
    };
  }
  EXPECT_EQ(t->JoinGroup(members[0].get(), port.group()).code(),
            absl::StatusCode::kAlreadyExists);
  sender.SendPing(port.group(), 42);
  t->Run();
  for (auto& m : members) {
    EXPECT_THAT(m->pings, ElementsAre(42));
    EXPECT_EQ(m->last_from, sender.addr());  // replies go to the unicast address
  }
  EXPECT_TRUE(sender.pings.empty());  // sender did not join

  ASSERT_TRUE(t->LeaveGroup(members[2].get(), port.group()).ok());
  EXPECT_EQ(t->LeaveGroup(members[2].get(), port.group()).code(), absl::StatusCode::kNotFound);
  total = 0;
  members[0]->on_message = members[1]->on_message = [&] {
    if (++total == 2) t->Stop();
  };
  sender.SendPing(port.group(), 43);
  t->Run();
  EXPECT_THAT(members[0]->pings, ElementsAre(42, 43));
  EXPECT_THAT(members[1]->pings, ElementsAre(42, 43));
}

int RawSocket() {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(kLoopbackIp);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  return fd;
}

void RawSend(int fd, const Address& to, const std::string& bytes) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(to.ip());
  sa.sin_port = htons(to.port());
  ASSERT_EQ(sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&sa),
                   sizeof(sa)),
            static_cast<ssize_t>(bytes.size()));
}

std::string Frame(uint32_t type_id, const std::string& payload) {
  std::string out(kFrameHeaderSize, '\0');
  EncodeFrameHeader(type_id, payload.size(), out.data());
  return out + payload;
}

TEST(UdpTransportTest, MalformedDatagramsAreCountedByReason) {
  auto t = NewTransport();
  Peer rx(t.get());
  rx.on_message = [&] {
    if (!rx.pings.empty()) t->Stop();
  };
  int raw = RawSocket();
  Ping ping;
  ping.set_seq(9);
  std::string good = Frame(TypeId<Ping>(), ping.SerializeAsString());
  std::string bad_magic = good, bad_version = good;
  bad_magic[0] = 'X';
  bad_version[2] = 7;
  RawSend(raw, rx.addr(), "");
  RawSend(raw, rx.addr(), "short");
  RawSend(raw, rx.addr(), bad_magic);
  RawSend(raw, rx.addr(), bad_version);
  RawSend(raw, rx.addr(), good.substr(0, good.size() - 1));
  RawSend(raw, rx.addr(), good + "trailing");
  RawSend(raw, rx.addr(), Frame(TypeId<Ping>(), "\xff\xff\xff\xff"));  // not a Ping
  RawSend(raw, rx.addr(), good);  // same socket pair on lo: arrives last
  t->Run();
  close(raw);
  const UdpTransport::Stats& s = t->stats();
  auto count = [&](MalformedReason r) { return s.malformed[static_cast<int>(r)]; };
  EXPECT_EQ(count(MalformedReason::kTooShort), 2u);
  EXPECT_EQ(count(MalformedReason::kBadMagic), 1u);
  EXPECT_EQ(count(MalformedReason::kBadVersion), 1u);
  EXPECT_EQ(count(MalformedReason::kLengthMismatch), 2u);
  EXPECT_EQ(count(MalformedReason::kBadPayload), 1u);
  EXPECT_THAT(rx.pings, ElementsAre(9));
  EXPECT_EQ(s.received, 2u);  // the unparsable Ping was framed correctly
}

TEST(UdpTransportTest, MarksDscpAndFramesOnTheWire) {
  auto t = NewTransport();
  EndpointOptions ef;
  ef.dscp = 46;
  Peer tx(t.get(), ef);
  int raw = RawSocket();
  int one = 1;
  ASSERT_EQ(setsockopt(raw, IPPROTO_IP, IP_RECVTOS, &one, sizeof(one)), 0);
  sockaddr_in sa{};
  socklen_t len = sizeof(sa);
  getsockname(raw, reinterpret_cast<sockaddr*>(&sa), &len);
  tx.SendPing(Address(kLoopbackIp, ntohs(sa.sin_port)), 5);

  char buf[256], control[64];
  iovec iov = {buf, sizeof(buf)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = recvmsg(raw, &msg, 0);  // loopback delivery already happened
  close(raw);
  ASSERT_GT(n, 0);
  int tos = -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS) {
      tos = *reinterpret_cast<unsigned char*>(CMSG_DATA(c));
    }
  }
  EXPECT_EQ(tos >> 2, 46);
  FrameDecodeResult r = DecodeFrame(absl::string_view(buf, n));
  ASSERT_TRUE(r.ok());
  Ping ping;
  ASSERT_TRUE(r.envelope().Parse(&ping));
  EXPECT_EQ(ping.seq(), 5u);
}

TEST(UdpTransportTest, ReceiverMayUnregisterMidBatch) {
  auto t = NewTransport();
  struct Quitter : TransportReceiver {
    void ReceiveMessage(const Address&, const Envelope&) override {
      ++received;
      t->Unregister(this);  // the rest of its recvmmsg batch must be skipped
      t->Timer(absl::Milliseconds(10), [this] { t->Stop(); });
    }
    UdpTransport* t;
    int received = 0;
  } rx;
  rx.t = t.get();
  absl::StatusOr<Address> rx_addr = t->Register(&rx, Address::Loopback(0));
  ASSERT_TRUE(rx_addr.ok());
  Peer tx(t.get());
  for (int i = 0; i < 5; ++i) tx.SendPing(*rx_addr, i);
  t->Run();
  EXPECT_EQ(rx.received, 1);
  EXPECT_EQ(t->stats().received, 1u);
}

TEST(UdpTransportTest, DestructionClosesEveryDescriptor) {
  size_t before = OpenFds();
  {
    GroupPort port(0xefff0000 | ((getpid() + 1) & 0xffff));
    auto t = NewTransport();
    EndpointOptions opts;
    opts.multicast_interface_ip = kLoopbackIp;
    Peer a(t.get(), opts), b(t.get(), opts);
    ASSERT_TRUE(t->JoinGroup(&a, port.group()).ok());
    ASSERT_TRUE(t->JoinGroup(&b, port.group()).ok());
    t->Unregister(&b);
    t->Timer(absl::Milliseconds(1), [&] { t->Stop(); });
    t->Run();
  }
  EXPECT_EQ(OpenFds(), before);
}

}  // namespace
}  // namespace dctk::transport
