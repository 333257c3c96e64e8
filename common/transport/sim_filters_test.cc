#include <memory>
#include <vector>

#include "common/transport/sim_test_node.h"
#include "common/transport/sim_transport.h"
#include "common/transport/test_message.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::transport {
namespace {

using ::dctk::transport::testing::Host;
using ::dctk::transport::testing::Node;
using ::testing::ElementsAre;
using ::testing::Not;
using ::testing::IsEmpty;

constexpr int kMany = 2000;

TEST(SimFiltersTest, DropWithProbabilityDropsAboutThatShare) {
  SimTransport net(11);
  Node a(&net, Host(1)), b(&net, Host(2));
  net.AddFilter(1, net.DropWithProbability(0.25));
  for (int i = 0; i < kMany; ++i) a.SendPing(b.addr(), i);
  net.RunUntilIdle();
  size_t got = b.got().size();
  EXPECT_GT(got, kMany * 0.70);
  EXPECT_LT(got, kMany * 0.80);
  EXPECT_EQ(net.stats().dropped[static_cast<int>(SimDropReason::kFilter)], kMany - got);
  net.RemoveFilter(1);
  a.SendPing(b.addr(), 1);
  net.RunUntilIdle();
  EXPECT_EQ(b.got().size(), got + 1);
}

TEST(SimFiltersTest, DropAllMatchesTypeAndDestination) {
  SimTransport net(1);
  Node a(&net, Host(1)), b(&net, Host(2)), c(&net, Host(3));
  b.set_echo(true);
  c.set_echo(true);
  net.AddFilter(1, net.DropAll({.type_id = TypeId<testing::Pong>()}));
  net.AddFilter(2, net.DropAll({.to = c.addr()}));
  a.SendPing(b.addr(), 1);
  a.SendPing(c.addr(), 2);
  net.RunUntilIdle();
  EXPECT_THAT(b.seqs(), ElementsAre(1));  // Ping passes
  EXPECT_THAT(c.got(), IsEmpty());         // everything to c dropped
  EXPECT_EQ(a.pongs(), 0);                 // Pongs dropped
  EXPECT_EQ(net.stats().dropped[static_cast<int>(SimDropReason::kFilter)], 2u);
}

TEST(SimFiltersTest, FixedDelayAddsToLatency) {
  SimTransport net(1, absl::Microseconds(10));
  Node a(&net, Host(1)), b(&net, Host(2));
  net.AddFilter(1, net.Delay(absl::Milliseconds(3), {.from = a.addr()}));
  a.SendPing(b.addr(), 1);
  b.SendPing(a.addr(), 2);
  net.RunUntilIdle();
  ASSERT_EQ(b.got().size(), 1u);
  EXPECT_EQ(b.got()[0].at - SimTransport::kEpoch, absl::Microseconds(3010));
  EXPECT_EQ(a.got()[0].at - SimTransport::kEpoch, absl::Microseconds(10));
}

TEST(SimFiltersTest, RandomDelayStaysInRange) {
  SimTransport net(5, absl::ZeroDuration());
  Node a(&net, Host(1)), b(&net, Host(2));
  net.AddFilter(1, net.RandomDelay(absl::Milliseconds(1), absl::Milliseconds(2)));
  for (int i = 0; i < 200; ++i) a.SendPing(b.addr(), i);
  net.RunUntilIdle();
  ASSERT_EQ(b.got().size(), 200u);
  absl::Duration lo = absl::InfiniteDuration(), hi = absl::ZeroDuration();
  for (const auto& r : b.got()) {
    lo = std::min(lo, r.at - SimTransport::kEpoch);
    hi = std::max(hi, r.at - SimTransport::kEpoch);
  }
  EXPECT_GE(lo, absl::Milliseconds(1));
  EXPECT_LE(hi, absl::Milliseconds(2));
  EXPECT_GT(hi - lo, absl::Microseconds(500));  // actually spread out
}

TEST(SimFiltersTest, DuplicateDeliversExtraCopies) {
  SimTransport net(9);
  Node a(&net, Host(1)), b(&net, Host(2));
  net.AddFilter(1, net.Duplicate(0.5));
  for (int i = 0; i < kMany; ++i) a.SendPing(b.addr(), i);
  net.RunUntilIdle();
  uint64_t dups = net.stats().duplicated;
  EXPECT_GT(dups, kMany * 0.45);
  EXPECT_LT(dups, kMany * 0.55);
  EXPECT_EQ(b.got().size(), kMany + dups);
}

TEST(SimFiltersTest, DroppedMessageIsNotDuplicated) {
  SimTransport net(9);
  Node a(&net, Host(1)), b(&net, Host(2));
  net.AddFilter(1, net.Duplicate(1.0));
  net.AddFilter(2, net.DropAll());
  a.SendPing(b.addr(), 1);
  net.RunUntilIdle();
  EXPECT_THAT(b.got(), IsEmpty());
}

TEST(SimFiltersTest, ReorderLetsLaterMessagesOvertake) {
  SimTransport net(4, absl::Microseconds(10));
  Node a(&net, Host(1)), b(&net, Host(2));
  std::vector<uint64_t> in_order;
  for (int i = 0; i < 100; ++i) in_order.push_back(i);

  a.SendPing(b.addr(), 0);  // control: no filter keeps FIFO order
  net.RunUntilIdle();
  net.AddFilter(1, net.Reorder(0.3, absl::Milliseconds(1)));
  for (int i = 0; i < 100; ++i) {
    a.SendPing(b.addr(), i);
    net.RunFor(absl::Microseconds(5));  // spaced sends, overtaken only by delay
  }
  net.RunUntilIdle();
  std::vector<uint64_t> got = b.seqs();
  got.erase(got.begin());
  ASSERT_EQ(got.size(), 100u);
  EXPECT_NE(got, in_order);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, in_order);  // nothing lost
}

TEST(SimFiltersTest, PartitionSplitsBothWaysAndHeals) {
  SimTransport net(1);
  Node a(&net, Host(1)), b(&net, Host(2)), c(&net, Host(3));
  net.AddFilter(7, net.Partition({a.addr()}, {b.addr(), c.addr()}));
  a.SendPing(b.addr(), 1);
  b.SendPing(a.addr(), 2);
  b.SendPing(c.addr(), 3);  // same side: passes
  net.RunUntilIdle();
  EXPECT_THAT(a.got(), IsEmpty());
  EXPECT_THAT(b.got(), IsEmpty());
  EXPECT_THAT(c.seqs(), ElementsAre(3));
  net.RemoveFilter(7);
  a.SendPing(b.addr(), 4);
  net.RunUntilIdle();
  EXPECT_THAT(b.seqs(), ElementsAre(4));
}

TEST(SimFiltersTest, PartitionAppliesToEachMulticastCopy) {
  SimTransport net(1);
  Address group(0xef000001, 9);
  Node s(&net, Host(1)), m1(&net, Host(2)), m2(&net, Host(3));
  ASSERT_TRUE(net.JoinGroup(&m1, group).ok());
  ASSERT_TRUE(net.JoinGroup(&m2, group).ok());
  net.AddFilter(1, net.Partition({s.addr()}, {m2.addr()}));
  s.SendPing(group, 1);
  net.RunUntilIdle();
  EXPECT_THAT(m1.seqs(), ElementsAre(1));
  EXPECT_THAT(m2.got(), IsEmpty());
}

TEST(SimFiltersTest, CustomFilterSeesMessage) {
  SimTransport net(1);
  Node a(&net, Host(1)), b(&net, Host(2));
  net.AddFilter(1, [](const Address&, const Address&, const Envelope& msg, absl::Duration*) {
    testing::Ping ping;
    return !(msg.Parse(&ping) && ping.seq() % 2 == 1);  // drop odd seqs
  });
  for (int i = 0; i < 6; ++i) a.SendPing(b.addr(), i);
  net.RunUntilIdle();
  EXPECT_THAT(b.seqs(), ElementsAre(0, 2, 4));
}

}  // namespace
}  // namespace dctk::transport
