#include "common/transport/sim_transport.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/transport/sim_test_node.h"
#include "common/transport/test_message.pb.h"
#include "common/transport/timeout.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::transport {
namespace {

using ::dctk::transport::testing::Host;
using ::dctk::transport::testing::Node;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(SimTransportTest, DeliversAfterDefaultLatency) {
  SimTransport net(1, absl::Microseconds(30));
  Node a(&net, Host(1)), b(&net, Host(2));
  a.SendPing(b.addr(), 5);
  net.RunFor(absl::Microseconds(29));
  EXPECT_TRUE(b.got().empty());
  net.RunFor(absl::Microseconds(1));
  ASSERT_EQ(b.got().size(), 1u);
  EXPECT_EQ(b.got()[0].from, a.addr());
  EXPECT_EQ(b.got()[0].seq, 5u);
  EXPECT_EQ(b.got()[0].at, SimTransport::kEpoch + absl::Microseconds(30));
  EXPECT_EQ(net.stats().sent, 1u);
  EXPECT_EQ(net.stats().delivered, 1u);
}

TEST(SimTransportTest, RegisterPicksPortAndRejectsDuplicates) {
  SimTransport net(1);
  Node a(&net, Address(0x0a000001, 0));
  EXPECT_NE(a.addr().port(), 0);
  Node other(&net, Host(9));
  EXPECT_EQ(net.Register(&other, Host(9, 1)).status().code(),
            absl::StatusCode::kAlreadyExists);  // receiver already registered
  struct Sink : TransportReceiver {
    void ReceiveMessage(const Address&, const Envelope&) override {}
  } sink;
  EXPECT_THAT(net.Register(&sink, a.addr()).status().message(), HasSubstr("already in use"));
}

TEST(SimTransportTest, RejectsOversizeAndUnknownSender) {
  SimTransport net(1);
  Node a(&net, Host(1));
  std::string big(kMaxPayloadSize + 1, 'x');
  absl::Status s = net.SendRaw(&a, Host(2), 1, big);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("exceeds the maximum"));
  EXPECT_TRUE(net.SendRaw(&a, Host(2), 1, std::string(kMaxPayloadSize, 'x')).ok());
  struct Sink : TransportReceiver {
    void ReceiveMessage(const Address&, const Envelope&) override {}
  } stranger;
  EXPECT_EQ(net.SendRaw(&stranger, Host(1), 1, "").code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(SimTransportTest, CountsUnparseablePayloadAndMissingReceiver) {
  SimTransport net(1);
  Node a(&net, Host(1)), b(&net, Host(2));
  ASSERT_TRUE(net.SendRaw(&a, b.addr(), TypeId<testing::Ping>(), "\xff\xff\xff").ok());
  ASSERT_TRUE(net.SendRaw(&a, Host(3), TypeId<testing::Ping>(), "").ok());
  net.RunUntilIdle();
  EXPECT_EQ(b.unparsed(), 1);
  EXPECT_EQ(net.stats().malformed[static_cast<int>(MalformedReason::kBadPayload)], 1u);
  EXPECT_EQ(net.stats().dropped[static_cast<int>(SimDropReason::kNoReceiver)], 1u);
}

TEST(SimTransportTest, TimersRunInVirtualTimeAndCancel) {
  SimTransport net(1);
  std::vector<std::string> log;
  net.Timer(absl::Milliseconds(20), [&] { log.push_back("20ms"); });
  TimerId cancelled = net.Timer(absl::Milliseconds(5), [&] { log.push_back("never"); });
  net.Timer(absl::Milliseconds(10), [&] {
    log.push_back(absl::StrCat("10ms@", absl::FormatDuration(net.Now() - SimTransport::kEpoch)));
  });
  EXPECT_TRUE(net.CancelTimer(cancelled));
  EXPECT_FALSE(net.CancelTimer(cancelled));
  net.RunFor(absl::Seconds(1));
  EXPECT_THAT(log, ElementsAre("10ms@10ms", "20ms"));
  EXPECT_EQ(net.Now(), SimTransport::kEpoch + absl::Seconds(1));
}

TEST(SimTransportTest, SameTimeEventsRunInScheduleOrder) {
  SimTransport net(1);
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) net.Timer(absl::Milliseconds(1), [&, i] { order.push_back(i); });
  net.RunUntilIdle();  // timers only: nothing is a message, so nothing runs
  EXPECT_TRUE(order.empty());
  net.RunFor(absl::Milliseconds(1));
  EXPECT_THAT(order, ElementsAre(0, 1, 2, 3, 4));
}

TEST(SimTransportTest, TimeoutIsPeriodicAndStops) {
  SimTransport net(1);
  int fired = 0;
  Timeout t(&net, absl::Milliseconds(10), [&] { ++fired; });
  EXPECT_FALSE(t.Active());
  t.Start();
  EXPECT_TRUE(t.Active());
  net.RunFor(absl::Milliseconds(35));
  EXPECT_EQ(fired, 3);
  t.Reset();  // next expiry 10ms from now (t=45ms)
  net.RunFor(absl::Milliseconds(9));
  EXPECT_EQ(fired, 3);
  net.RunFor(absl::Milliseconds(1));
  EXPECT_EQ(fired, 4);
  t.Stop();
  EXPECT_FALSE(t.Active());
  net.RunFor(absl::Seconds(1));
  EXPECT_EQ(fired, 4);
}

TEST(SimTransportTest, TimeoutCallbackCanStopItself) {
  SimTransport net(1);
  int fired = 0;
  std::unique_ptr<Timeout> t;
  t = std::make_unique<Timeout>(&net, absl::Milliseconds(1), [&] {
    ++fired;
    t->Stop();
  });
  t->Start();
  net.RunFor(absl::Seconds(1));
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(t->Active());
}

TEST(SimTransportTest, DestroyedTimeoutNeverFires) {
  SimTransport net(1);
  int fired = 0;
  {
    Timeout t(&net, absl::Milliseconds(10), [&] { ++fired; });
    t.Start();
    net.RunFor(absl::Milliseconds(5));
  }
  net.RunFor(absl::Seconds(1));
  EXPECT_EQ(fired, 0);
}

TEST(SimTransportTest, RunUntilStopsWhenDoneOrAtLimit) {
  SimTransport net(1, absl::Milliseconds(1));
  Node a(&net, Host(1)), b(&net, Host(2));
  for (int i = 0; i < 10; ++i) a.SendPing(b.addr(), i);
  EXPECT_TRUE(net.RunUntil([&] { return b.got().size() >= 3; }, absl::Seconds(1)));
  EXPECT_EQ(b.got().size(), 3u);  // checked before each event
  EXPECT_FALSE(net.RunUntil([] { return false; }, absl::Seconds(2)));
  EXPECT_EQ(b.got().size(), 10u);
  EXPECT_EQ(net.Now(), SimTransport::kEpoch + absl::Milliseconds(1) + absl::Seconds(2));
}

TEST(SimTransportTest, PostRunsInOrderAndRunStops) {
  SimTransport net(1);
  std::vector<int> order;
  net.Post([&] { order.push_back(1); });
  net.Post([&] {
    order.push_back(2);
    net.Post([&] {
      order.push_back(3);
      net.Stop();
    });
    net.Timer(absl::Hours(1), [&] { order.push_back(99); });
  });
  net.Run();
  EXPECT_THAT(order, ElementsAre(1, 2, 3));
  EXPECT_EQ(net.Now(), SimTransport::kEpoch);
}

TEST(SimTransportTest, CrashDropsBothWaysUntilRestart) {
  SimTransport net(1);
  Node a(&net, Host(1)), b(&net, Host(2));
  b.set_echo(true);
  net.Crash(b.addr());
  EXPECT_TRUE(net.IsCrashed(b.addr()));
  a.SendPing(b.addr(), 1);
  b.SendPing(a.addr(), 2);
  net.RunUntilIdle();
  EXPECT_TRUE(a.got().empty());
  EXPECT_TRUE(b.got().empty());
  EXPECT_EQ(net.stats().dropped[static_cast<int>(SimDropReason::kCrashed)], 2u);
  net.Restart(b.addr());
  a.SendPing(b.addr(), 3);
  net.RunUntilIdle();
  EXPECT_THAT(b.seqs(), ElementsAre(3));
}

TEST(SimTransportTest, ReplacedNodeAtSameAddressGetsLaterMessages) {
  SimTransport net(1);
  Node a(&net, Host(1));
  int old_fired = 0;
  auto b = std::make_unique<Node>(&net, Host(2));
  auto t = std::make_unique<Timeout>(&net, absl::Milliseconds(1), [&] { ++old_fired; });
  t->Start();
  a.SendPing(Host(2), 1);
  net.RunUntilIdle();
  ASSERT_THAT(b->seqs(), ElementsAre(1));
  t.reset();  // "crash": destroy the protocol object and its timeouts
  b.reset();
  a.SendPing(Host(2), 2);
  net.RunUntilIdle();
  EXPECT_EQ(net.stats().dropped[static_cast<int>(SimDropReason::kNoReceiver)], 1u);
  b = std::make_unique<Node>(&net, Host(2));
  a.SendPing(Host(2), 3);
  net.RunFor(absl::Seconds(1));
  EXPECT_THAT(b->seqs(), ElementsAre(3));
  EXPECT_EQ(old_fired, 0);
}

TEST(SimTransportTest, MulticastReachesEveryMember) {
  SimTransport net(1);
  Address group(0xef010101, 5000);
  Node s(&net, Host(1)), m1(&net, Host(2)), m2(&net, Host(3)), outsider(&net, Host(4));
  ASSERT_TRUE(net.JoinGroup(&m1, group).ok());
  ASSERT_TRUE(net.JoinGroup(&m2, group).ok());
  ASSERT_TRUE(net.JoinGroup(&s, group).ok());  // loopback on by default
  EXPECT_FALSE(net.JoinGroup(&m1, Host(9)).ok());
  s.SendPing(group, 1);
  net.RunUntilIdle();
  EXPECT_THAT(m1.seqs(), ElementsAre(1));
  EXPECT_THAT(m2.seqs(), ElementsAre(1));
  EXPECT_THAT(s.seqs(), ElementsAre(1));
  EXPECT_TRUE(outsider.got().empty());
  EXPECT_EQ(m1.got()[0].from, s.addr());

  ASSERT_TRUE(net.LeaveGroup(&m2, group).ok());
  EXPECT_EQ(net.LeaveGroup(&m2, group).code(), absl::StatusCode::kNotFound);
  s.SendPing(group, 2);
  net.RunUntilIdle();
  EXPECT_THAT(m1.seqs(), ElementsAre(1, 2));
  EXPECT_THAT(m2.seqs(), ElementsAre(1));
}

TEST(SimTransportTest, MulticastLoopbackOffSkipsSender) {
  SimTransport net(1);
  Address group(0xef010101, 5000);
  struct Sink : TransportReceiver {
    void ReceiveMessage(const Address&, const Envelope&) override { ++n; }
    int n = 0;
  } sender;
  EndpointOptions opts;
  opts.multicast_loopback = false;
  ASSERT_TRUE(net.Register(&sender, Host(1), opts).ok());
  Node m(&net, Host(2));
  ASSERT_TRUE(net.JoinGroup(&sender, group).ok());
  ASSERT_TRUE(net.JoinGroup(&m, group).ok());
  ASSERT_TRUE(net.SendRaw(&sender, group, TypeId<testing::Ping>(), "").ok());
  net.RunUntilIdle();
  EXPECT_EQ(sender.n, 0);
  EXPECT_EQ(m.got().size(), 1u);
  net.Unregister(&sender);
}

// Runs a lossy, reordering 20-node exchange and returns its trace.
std::string Trace(uint64_t seed) {
  SimTransport net(seed);
  net.AddFilter(1, net.DropWithProbability(0.2));
  net.AddFilter(2, net.Reorder(0.5, absl::Milliseconds(1)));
  net.AddFilter(3, net.Duplicate(0.1));
  std::vector<std::unique_ptr<Node>> nodes;
  for (int i = 0; i < 20; ++i) nodes.push_back(std::make_unique<Node>(&net, Host(i)));
  for (int i = 0; i < 20; ++i) {
    for (int k = 0; k < 5; ++k) {
      nodes[i]->SendPing(nodes[net.RandomBelow(20)]->addr(), i * 100 + k);
    }
  }
  net.RunUntilIdle();
  std::string trace;
  for (auto& n : nodes) {
    for (const testing::Received& r : n->got()) {
      absl::StrAppend(&trace, absl::ToInt64Nanoseconds(r.at - SimTransport::kEpoch), " ",
                      r.from.ToString(), ">", n->addr().ToString(), "#", r.seq, "\n");
    }
  }
  return trace;
}

TEST(SimTransportTest, SameSeedSameTrace) {
  std::string a = Trace(7), b = Trace(7), c = Trace(8);
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(SimTransportTest, ThousandNodesAllToSome) {
  constexpr int kNodes = 1000, kFanout = 20;
  SimTransport net(3);
  std::vector<std::unique_ptr<Node>> nodes;
  for (int i = 0; i < kNodes; ++i) {
    nodes.push_back(std::make_unique<Node>(&net, Host(i)));
    nodes.back()->set_echo(true);
  }
  for (int i = 0; i < kNodes; ++i) {
    for (int k = 1; k <= kFanout; ++k) nodes[i]->SendPing(nodes[(i + k * 37) % kNodes]->addr(), k);
  }
  net.RunUntilIdle();
  size_t received = 0;
  for (auto& n : nodes) received += n->got().size();
  EXPECT_EQ(received, size_t{kNodes} * kFanout);
  int pongs = 0;
  for (auto& n : nodes) pongs += n->pongs();
  EXPECT_EQ(pongs, kNodes * kFanout);
  EXPECT_EQ(net.stats().delivered, 2u * kNodes * kFanout);
  EXPECT_EQ(net.stats().total_dropped(), 0u);
}

}  // namespace
}  // namespace dctk::transport
