// The Fast Paxos baseline on SimTransport, driven by the shared client
// library in speculative mode (requests to every replica).
#include "speculative_paxos/fast_paxos_replica.h"

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/transport/framing.h"
#include "common/transport/sim_transport.h"
#include "gtest/gtest.h"
#include "speculative_paxos/client.h"
#include "speculative_paxos/kv_app.h"
#include "speculative_paxos/lincheck.h"

namespace dctk::spaxos {
namespace {

using transport::Address;
using transport::SimTransport;
using transport::TypeId;

struct Group {
  explicit Group(uint64_t seed, int max_datagram = 1400) : net(seed) {
    for (int i = 0; i < 3; ++i) config.replicas.push_back(Address(0x0a000001 + i, 7000));
    config.max_datagram = max_datagram;
    // Largest datagram any replica sends.
    net.AddFilter(-1, [this](const Address& from, const Address&, const transport::Envelope& m,
                             absl::Duration*) {
      if (std::find(config.replicas.begin(), config.replicas.end(), from) !=
          config.replicas.end()) {
        largest = std::max(largest, transport::kFrameHeaderSize + m.payload().size());
      }
      return true;
    });
    for (int i = 0; i < 3; ++i) {
      apps.push_back(std::make_unique<KvApp>());
      replicas.push_back(std::make_unique<FastPaxosReplica>(&net, config, i, apps.back().get()));
      EXPECT_TRUE(replicas.back()->Start().ok());
    }
  }
  // Closed-loop clients: `ops` random GET / PUT / CAS each over `keys` keys.
  void StartClients(int clients, int ops, int keys) {
    ClientConfig cc{.replicas = config.replicas};
    for (int j = 0; j < clients; ++j) {
      this->clients.push_back(
          std::make_unique<Client>(&net, cc, 500 + j, Address(0x0b000001 + j, 1)));
      EXPECT_TRUE(this->clients.back()->Start().ok());
      remaining.push_back(ops);
    }
    keys_ = keys;
    for (int j = 0; j < clients; ++j) Next(j);
  }
  bool Done() const {
    for (const auto& c : clients) {
      if (c->busy()) return false;
    }
    return true;
  }
  bool Agree() const {
    const Log& l = replicas[0]->log();
    for (const auto& r : replicas) {
      if (r->log().end() != l.end() || r->log().HashAt(l.end()) != l.HashAt(l.end())) return false;
    }
    return true;
  }
  void Next(int j) {
    if (remaining[j]-- <= 0) return;
    const std::string key = absl::StrCat("k", net.RandomBelow(keys_));
    const std::string value = absl::StrCat("v", ++counter);
    std::string op = net.RandomBelow(3) == 0   ? KvApp::Get(key)
                     : net.RandomBelow(2) == 0 ? KvApp::Put(key, value)
                                               : KvApp::Cas(key, absl::StrCat("v", counter - 1), value);
    const size_t at = history.size();
    KvEvent e;
    e.client = j;
    e.op.ParseFromString(op);
    e.invoke = net.Now();
    history.push_back(e);
    clients[j]->Invoke(op, [this, j, at](const std::string& result) {
      history[at].response = net.Now();
      history[at].result = KvApp::ParseResult(result);
      Next(j);
    });
  }

  SimTransport net;
  FastPaxosConfig config;
  std::vector<std::unique_ptr<KvApp>> apps;
  std::vector<std::unique_ptr<FastPaxosReplica>> replicas;
  std::vector<std::unique_ptr<Client>> clients;
  std::vector<int> remaining;
  KvHistory history;
  uint64_t counter = 0;
  int keys_ = 1;
  size_t largest = 0;
};

TEST(FastPaxosTest, InOrderRequestsAreChosenInTheFastRound) {
  Group g(1);
  g.StartClients(1, 1, 1);
  const absl::Time start = g.net.Now();
  ASSERT_TRUE(g.net.RunUntil([&] { return g.Done(); }, absl::Seconds(1)));
  // Client -> acceptors -> coordinator -> client: three one-way latencies.
  EXPECT_EQ(g.net.Now() - start, 3 * SimTransport::kDefaultLatency);
  g.remaining[0] = 30;
  g.Next(0);
  ASSERT_TRUE(g.net.RunUntil([&] { return g.Done(); }, absl::Seconds(1)));
  ASSERT_TRUE(g.net.RunUntil([&] { return g.Agree(); }, absl::Seconds(1)));
  EXPECT_EQ(g.replicas[0]->stats().fast_decisions, 31u);
  EXPECT_EQ(g.replicas[0]->stats().classic_rounds, 0u);
  for (const auto& r : g.replicas) EXPECT_EQ(r->stats().executed, 31u);
  EXPECT_EQ(g.clients[0]->stats().resends, 0u);
  EXPECT_TRUE(CheckLinearizable(g.history).ok());
}

// Reordered, dropped and duplicated requests: collisions and lost votes go
// through classic rounds; every client completes, the history is
// linearizable and the replicas execute the same log.
TEST(FastPaxosTest, ReorderingDropsAndDuplicates) {
  uint64_t classic = 0, fast = 0, fetched = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE(seed);
    Group g(seed);
    g.net.AddFilter(1, g.net.Reorder(0.05 + 0.01 * (seed % 20), absl::Microseconds(300),
                                     {.type_id = TypeId<Request>()}));
    if (seed % 2 == 0) g.net.AddFilter(2, g.net.DropWithProbability(0.03));
    if (seed % 3 == 0) g.net.AddFilter(3, g.net.Duplicate(0.05));
    g.StartClients(4, 25, 8);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Done(); }, absl::Seconds(30)));
    for (int id = 1; id <= 3; ++id) g.net.RemoveFilter(id);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Agree(); }, absl::Seconds(5)));
    absl::Status lin = CheckLinearizable(g.history);
    EXPECT_TRUE(lin.ok()) << lin;
    EXPECT_EQ(g.replicas[0]->log().end(), 100u);
    for (int k = 0; k < 8; ++k) {
      const std::string key = absl::StrCat("k", k);
      EXPECT_EQ(g.apps[1]->Lookup(key), g.apps[0]->Lookup(key));
      EXPECT_EQ(g.apps[2]->Lookup(key), g.apps[0]->Lookup(key));
    }
    classic += g.replicas[0]->stats().classic_rounds;
    fast += g.replicas[0]->stats().fast_decisions;
    for (const auto& r : g.replicas) fetched += r->stats().fetched;
  }
  EXPECT_GT(classic, 40u);
  EXPECT_GT(fast, 400u);
  std::cout << "fast decisions " << fast << ", classic rounds " << classic
            << ", entries fetched " << fetched << "\n";
}

// 256-byte datagrams (about three entries each): heavy reordering makes
// classic rounds of many requests, which go one FpAccept at a time (the rest
// in the next round); lost commits make followers fetch entries, which come
// in pieces. Same guarantees, and no replica datagram over the budget.
TEST(FastPaxosTest, SmallDatagramBudget) {
  uint64_t classic = 0, fetched = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SCOPED_TRACE(seed);
    Group g(seed, /*max_datagram=*/256);
    g.net.AddFilter(1, g.net.Reorder(0.3, absl::Microseconds(300),
                                     {.type_id = TypeId<Request>()}));
    g.net.AddFilter(2, g.net.DropWithProbability(0.3, {.type_id = TypeId<FpCommit>()}));
    g.net.AddFilter(3, g.net.DropWithProbability(0.05));
    g.StartClients(8, 25, 8);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Done(); }, absl::Seconds(30)));
    for (int id = 1; id <= 3; ++id) g.net.RemoveFilter(id);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Agree(); }, absl::Seconds(5)));
    absl::Status lin = CheckLinearizable(g.history);
    EXPECT_TRUE(lin.ok()) << lin;
    EXPECT_EQ(g.replicas[0]->log().end(), 200u);
    EXPECT_LE(g.largest, 256u);
    classic += g.replicas[0]->stats().classic_rounds;
    for (const auto& r : g.replicas) fetched += r->stats().fetched;
  }
  EXPECT_GT(classic, 20u);
  EXPECT_GT(fetched, 0u);
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
