#include "common/transport/reordering_transport.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
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
using ::dctk::transport::testing::Ping;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr int kMany = 2000;
constexpr absl::Duration kLatency = absl::Microseconds(10);

std::unique_ptr<ReorderingTransport> Reordering(Transport* inner, double rate, uint64_t seed) {
  absl::StatusOr<std::unique_ptr<ReorderingTransport>> net = ReorderingTransport::Create(
      inner, {.rate = rate, .seed = seed, .type_ids = {TypeId<Ping>()}});
  CHECK(net.ok()) << net.status();
  return *std::move(net);
}

// The order in which a receiver behind a reordering decorator got kMany pings
// sent back to back.
std::vector<uint64_t> ArrivalOrder(double rate, uint64_t seed) {
  SimTransport sim(1, kLatency);
  std::unique_ptr<ReorderingTransport> net = Reordering(&sim, rate, seed);
  Node a(&sim, Host(1)), b(net.get(), Host(2));
  for (int i = 0; i < kMany; ++i) a.SendPing(b.addr(), i);
  sim.RunUntilIdle();
  return b.seqs();
}

TEST(ReorderingTransportTest, HoldsAboutRateOfMatchingMessagesEachDeliveredOnce) {
  SimTransport sim(1, kLatency);
  std::unique_ptr<ReorderingTransport> net = Reordering(&sim, 0.1, 7);
  Node a(&sim, Host(1)), b(net.get(), Host(2));
  for (int i = 0; i < kMany; ++i) {
    a.SendPing(b.addr(), i);
    sim.RunFor(absl::Microseconds(5));  // 10 more pings arrive while one is held
  }
  sim.RunUntilIdle();
  EXPECT_EQ(net->stats().matched, static_cast<uint64_t>(kMany));
  EXPECT_GT(net->stats().held, kMany * 0.08);
  EXPECT_LT(net->stats().held, kMany * 0.12);
  std::vector<uint64_t> seqs = b.seqs();
  std::vector<uint64_t> sorted = seqs;
  std::sort(sorted.begin(), sorted.end());
  std::vector<uint64_t> all(kMany);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(sorted, all);  // every ping once
  // Overtaken: held pings that some later ping passed (10 arrive per 50 us).
  int overtaken = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    overtaken +=
        std::any_of(seqs.begin(), seqs.begin() + i, [&](uint64_t s) { return s > seqs[i]; });
  }
  EXPECT_GT(overtaken, 0);
  EXPECT_EQ(net->stats().overtaken, static_cast<uint64_t>(overtaken));
  // A held ping arrives at most max_hold (50 us) late.
  for (const testing::Received& r : b.got()) {
    const absl::Duration late = r.at - SimTransport::kEpoch - absl::Microseconds(5) * r.seq;
    EXPECT_GE(late, kLatency);
    EXPECT_LE(late, kLatency + absl::Microseconds(50)) << "ping " << r.seq;
  }
}

TEST(ReorderingTransportTest, OnlyAHoldThatALaterMessagePassesIsOvertaken) {
  SimTransport sim(1, kLatency);
  std::unique_ptr<ReorderingTransport> net = Reordering(&sim, 1.0, 7);
  Node a(&sim, Host(1)), b(net.get(), Host(2));
  a.SendPing(b.addr(), 1);
  sim.RunFor(absl::Milliseconds(1));  // released long before the next
  EXPECT_EQ(net->stats().overtaken, 0u);
  a.SendPing(b.addr(), 2);
  a.SendPing(b.addr(), 3);  // both held: 2 is overtaken if 3 waits less
  sim.RunUntilIdle();
  EXPECT_EQ(net->stats().held, 3u);
  const bool two_passed = b.seqs() == std::vector<uint64_t>({1, 3, 2});
  EXPECT_EQ(net->stats().overtaken, two_passed ? 1u : 0u);
}

TEST(ReorderingTransportTest, SameSeedHoldsTheSameMessages) {
  const std::vector<uint64_t> first = ArrivalOrder(0.05, 3);
  EXPECT_EQ(ArrivalOrder(0.05, 3), first);
  EXPECT_NE(ArrivalOrder(0.05, 4), first);
}

TEST(ReorderingTransportTest, RateZeroKeepsTheOrder) {
  std::vector<uint64_t> all(kMany);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(ArrivalOrder(0, 3), all);
}

TEST(ReorderingTransportTest, OtherTypesAndSendsPassUnchanged) {
  SimTransport sim(1, kLatency);
  std::unique_ptr<ReorderingTransport> net = Reordering(&sim, 1.0, 7);
  Node a(net.get(), Host(1)), b(&sim, Host(2));
  b.set_echo(true);
  a.SendPing(b.addr(), 1);  // a's send goes out through the decorator, unheld
  sim.RunFor(kLatency);
  EXPECT_THAT(b.seqs(), ElementsAre(1));
  sim.RunFor(kLatency);
  EXPECT_EQ(a.pongs(), 1);  // the Pong is not a held type
  EXPECT_EQ(net->stats().matched, 0u);
  EXPECT_EQ(net->stats().held, 0u);
}

TEST(ReorderingTransportTest, UnregisteringDropsHeldMessages) {
  SimTransport sim(1, kLatency);
  std::unique_ptr<ReorderingTransport> net = Reordering(&sim, 1.0, 7);
  Node a(&sim, Host(1));
  auto b = std::make_unique<Node>(net.get(), Host(2));
  a.SendPing(b->addr(), 1);
  sim.RunFor(kLatency);  // arrived, held
  EXPECT_EQ(net->stats().held, 1u);
  EXPECT_THAT(b->got(), IsEmpty());
  b.reset();
  Node again(net.get(), Host(2));
  sim.RunUntilIdle();
  EXPECT_THAT(again.got(), IsEmpty());
}

TEST(ReorderingTransportTest, DestroyingItDropsHeldMessagesAndItsRegistrations) {
  SimTransport sim(1, kLatency);
  Node a(&sim, Host(1));
  class Sink : public TransportReceiver {
   public:
    void ReceiveMessage(const Address&, const Envelope&) override { ++got; }
    int got = 0;
  } sink;
  {
    std::unique_ptr<ReorderingTransport> net = Reordering(&sim, 1.0, 7);
    ASSERT_TRUE(net->Register(&sink, Host(2)).ok());
    a.SendPing(Host(2), 1);
    sim.RunFor(kLatency);
    EXPECT_EQ(net->stats().held, 1u);
  }
  a.SendPing(Host(2), 2);  // nobody registered there any more
  sim.RunUntilIdle();
  EXPECT_EQ(sink.got, 0);
  Node b(&sim, Host(2));  // the address is free again
}

TEST(ReorderingTransportTest, CreateRejectsBadOptions) {
  SimTransport sim(1);
  const std::vector<uint32_t> types = {TypeId<Ping>()};
  for (double rate : {-0.1, 1.5, std::nan("")}) {
    EXPECT_EQ(ReorderingTransport::Create(&sim, {.rate = rate, .type_ids = types}).status().code(),
              absl::StatusCode::kInvalidArgument)
        << rate;
  }
  EXPECT_EQ(ReorderingTransport::Create(&sim, {.rate = 0.1, .max_hold = absl::ZeroDuration(),
                                               .type_ids = types})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReorderingTransport::Create(&sim, {.rate = 0.1}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dctk::transport
