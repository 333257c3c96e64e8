// The Fast Paxos baseline on SimTransport, driven by the shared client
// library in speculative mode (requests to every replica).
#include "speculative_paxos/fast_paxos_replica.h"

#include <iostream>

#include "gtest/gtest.h"
#include "speculative_paxos/fast_paxos_group.h"

namespace dctk::spaxos {
namespace {

using transport::Address;
using transport::SimTransport;
using transport::TypeId;

void ExpectHealthy(FastPaxosGroup& g, uint64_t ops, int keys) {
  absl::Status lin = CheckLinearizable(g.history);
  EXPECT_TRUE(lin.ok()) << lin;
  ASSERT_NE(g.Coordinator(), nullptr);
  // Every operation once (no-ops of coordinator changes aside).
  uint64_t requests = 0;
  const Log& log = g.Coordinator()->log();
  for (uint64_t s = 1; s <= log.end(); ++s) requests += log.At(s)->client_id != 0;
  EXPECT_EQ(requests, ops);
  EXPECT_TRUE(g.SameStores(keys));
  EXPECT_EQ(g.Sum(&FastPaxosStats::merge_conflicts), 0u);
}

TEST(FastPaxosTest, InOrderRequestsAreChosenInTheFastRound) {
  FastPaxosGroup g(1);
  g.StartClients(1, 1, 1);
  const absl::Time start = g.net.Now();
  ASSERT_TRUE(g.net.RunUntil([&] { return g.Done(); }, absl::Seconds(1)));
  // Client -> acceptors -> coordinator -> client: three one-way latencies.
  EXPECT_EQ(g.net.Now() - start, 3 * SimTransport::kDefaultLatency);
  g.StartClients(1, 30, 1);
  ASSERT_TRUE(g.net.RunUntil([&] { return g.Done(); }, absl::Seconds(1)));
  ASSERT_TRUE(g.net.RunUntil([&] { return g.Agree(); }, absl::Seconds(1)));
  EXPECT_EQ(g.replicas[0]->stats().fast_decisions, 31u);
  EXPECT_EQ(g.replicas[0]->stats().classic_rounds, 0u);
  for (const auto& r : g.replicas) EXPECT_EQ(r->stats().executed, 31u);
  for (const auto& c : g.clients) EXPECT_EQ(c->stats().resends, 0u);
  EXPECT_TRUE(CheckLinearizable(g.history).ok());
}

// Reordered, dropped and duplicated requests: collisions and lost votes go
// through classic rounds; every client completes, the history is
// linearizable and the replicas execute the same log.
TEST(FastPaxosTest, ReorderingDropsAndDuplicates) {
  uint64_t classic = 0, fast = 0, fetched = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE(seed);
    FastPaxosGroup g(seed);
    g.net.AddFilter(1, g.net.Reorder(0.05 + 0.01 * (seed % 20), absl::Microseconds(300),
                                     {.type_id = TypeId<Request>()}));
    if (seed % 2 == 0) g.net.AddFilter(2, g.net.DropWithProbability(0.03));
    if (seed % 3 == 0) g.net.AddFilter(3, g.net.Duplicate(0.05));
    g.StartClients(4, 25, 8);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Done(); }, absl::Seconds(30)));
    for (int id = 1; id <= 3; ++id) g.net.RemoveFilter(id);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Agree(); }, absl::Seconds(5)));
    ExpectHealthy(g, 100, 8);
    EXPECT_EQ(g.replicas[0]->log().end(), 100u);
    EXPECT_EQ(g.Sum(&FastPaxosStats::view_changes), 0u);
    classic += g.replicas[0]->stats().classic_rounds;
    fast += g.replicas[0]->stats().fast_decisions;
    fetched += g.Sum(&FastPaxosStats::fetched);
  }
  EXPECT_GT(classic, 40u);
  EXPECT_GT(fast, 400u);
  std::cout << "fast decisions " << fast << ", classic rounds " << classic
            << ", entries fetched " << fetched << "\n";
}

// 256-byte datagrams (about three entries each): heavy reordering makes
// classic rounds of many requests, which go an FpAccept piece at a time;
// lost commits make followers fetch entries, which come in pieces. Same
// guarantees, and no replica datagram over the budget.
TEST(FastPaxosTest, SmallDatagramBudget) {
  uint64_t classic = 0, fetched = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SCOPED_TRACE(seed);
    FastPaxosGroup g(seed, {.max_datagram = 256});
    g.net.AddFilter(1, g.net.Reorder(0.3, absl::Microseconds(300),
                                     {.type_id = TypeId<Request>()}));
    g.net.AddFilter(2, g.net.DropWithProbability(0.3, {.type_id = TypeId<FpCommit>()}));
    g.net.AddFilter(3, g.net.DropWithProbability(0.05));
    g.StartClients(8, 25, 8);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Done(); }, absl::Seconds(30)));
    for (int id = 1; id <= 3; ++id) g.net.RemoveFilter(id);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Agree(); }, absl::Seconds(5)));
    ExpectHealthy(g, 200, 8);
    EXPECT_LE(g.largest(), 256u);
    classic += g.replicas[0]->stats().classic_rounds;
    fetched += g.Sum(&FastPaxosStats::fetched);
  }
  EXPECT_GT(classic, 20u);
  EXPECT_GT(fetched, 0u);
}

// 16 clients on one endpoint: a RequestBatch of up to 16 requests makes as
// many votes at each acceptor, more than a 256-byte datagram holds; the
// FpVote goes in pieces, none over the budget.
TEST(FastPaxosTest, BatchedVotesWithinTheBudget) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE(seed);
    FastPaxosGroup g(seed, {.max_datagram = 256});
    size_t vote_pieces = 0, most_votes = 0;
    g.net.AddFilter(1, [&](const Address&, const Address&, const transport::Envelope& m,
                           absl::Duration*) {
      FpVote v;
      if (m.Is<FpVote>() && m.Parse(&v)) {
        ++vote_pieces;
        most_votes = std::max<size_t>(most_votes, v.entries_size());
      }
      return true;
    });
    g.net.AddFilter(2, g.net.Reorder(0.1, absl::Microseconds(200),
                                     {.type_id = TypeId<RequestBatch>()}));
    g.StartClients(16, 20, 8, /*shared=*/true);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Done(); }, absl::Seconds(30)));
    g.net.RemoveFilter(2);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Agree(); }, absl::Seconds(5)));
    ExpectHealthy(g, 320, 8);
    EXPECT_LE(g.largest(), 256u);
    EXPECT_GT(g.endpoint->stats().requests, 3 * g.endpoint->stats().request_datagrams);
    EXPECT_GT(vote_pieces, 0u);
    EXPECT_GE(most_votes, 2u);
  }
}

TEST(FastPaxosTest, RejectsOtherGroupSizes) {
  SimTransport net(1);
  FastPaxosConfig config;
  for (int i = 0; i < 5; ++i) config.replicas.push_back(Address(0x0a000001 + i, 7000));
  KvApp app;
  FastPaxosReplica r(&net, config, 0, &app);
  EXPECT_FALSE(r.Start().ok());
}

}  // namespace
}  // namespace dctk::spaxos
