// Fast Paxos coordinator change on SimTransport: the coordinator crashes (or
// is cut off) mid-run under reordering, drops and duplicates; the others
// change view by the Fast Paxos rule. Every client completes, the history is
// linearizable, no acknowledged write is lost and the replicas agree.
#include <iostream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "speculative_paxos/fast_paxos_group.h"

namespace dctk::spaxos {
namespace {

using transport::Address;
using transport::TypeId;

void ExpectHealthy(FastPaxosGroup& g, uint64_t ops, int keys) {
  absl::Status lin = CheckLinearizable(g.history);
  EXPECT_TRUE(lin.ok()) << lin;
  FastPaxosReplica* c = g.Coordinator();
  ASSERT_NE(c, nullptr);
  uint64_t requests = 0;
  for (uint64_t s = 1; s <= c->log().end(); ++s) requests += c->log().At(s)->client_id != 0;
  EXPECT_EQ(requests, ops);  // every operation once
  EXPECT_TRUE(g.SameStores(keys));
  EXPECT_EQ(g.Sum(&FastPaxosStats::merge_conflicts), 0u);
}

void AddFaults(FastPaxosGroup& g, uint64_t seed, double reorder) {
  g.net.AddFilter(1, g.net.Reorder(reorder, absl::Microseconds(300),
                                   {.type_id = TypeId<Request>()}));
  if (seed % 2 == 0) g.net.AddFilter(2, g.net.DropWithProbability(0.03));
  if (seed % 3 == 0) g.net.AddFilter(3, g.net.Duplicate(0.05));
}

void RemoveFaults(FastPaxosGroup& g) {
  for (int id = 1; id <= 3; ++id) g.net.RemoveFilter(id);
}

// The coordinator crashes at 1-4 ms of a 4-client run.
TEST(FastPaxosViewChangeTest, CoordinatorCrashMidRun) {
  uint64_t kept = 0, installed = 0, noops = 0;
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    SCOPED_TRACE(seed);
    FastPaxosGroup g(seed);
    AddFaults(g, seed, 0.05 + 0.01 * (seed % 15));
    g.net.Timer(absl::Microseconds(1000 + g.net.RandomBelow(3000)), [&] { g.Crash(0); });
    g.StartClients(4, 60, 8);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Done(); }, absl::Seconds(30)));
    RemoveFaults(g);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Agree(); }, absl::Seconds(5)));
    ExpectHealthy(g, 240, 8);
    EXPECT_GE(g.replicas[1]->view(), 1u);
    EXPECT_GE(g.Sum(&FastPaxosStats::view_changes), 2u);
    kept += g.Sum(&FastPaxosStats::kept);
    installed += g.Sum(&FastPaxosStats::installed);
    noops += g.Sum(&FastPaxosStats::noops);
  }
  EXPECT_GT(installed, 0u);
  std::cout << "installed " << installed << " entries, " << kept << " kept, " << noops
            << " no-ops\n";
}

// One client PUTs a new key per operation; the coordinator crashes in the
// middle. Every acknowledged write is in both survivors' stores.
TEST(FastPaxosViewChangeTest, NoAcknowledgedWriteLost) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SCOPED_TRACE(seed);
    FastPaxosGroup g(seed);
    ClientConfig cc{.replicas = g.config.replicas};
    Client client(&g.net, cc, 900, Address(0x0b0000ff, 1));
    ASSERT_TRUE(client.Start().ok());
    g.net.AddFilter(2, g.net.DropWithProbability(0.02));
    g.net.Timer(absl::Milliseconds(2 + g.net.RandomBelow(6)), [&] { g.Crash(0); });
    int acked = 0;
    std::function<void()> next = [&] {
      if (acked == 100) return;
      client.Invoke(KvApp::Put(absl::StrCat("w", acked), absl::StrCat("v", acked)),
                    [&](const std::string&) {
                      ++acked;
                      next();
                    });
    };
    next();
    ASSERT_TRUE(g.net.RunUntil([&] { return acked == 100; }, absl::Seconds(30)));
    g.net.RemoveFilter(2);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Agree(); }, absl::Seconds(5)));
    for (int i = 1; i < 3; ++i) {
      for (int k = 0; k < 100; ++k) {
        EXPECT_EQ(g.apps[i]->Lookup(absl::StrCat("w", k)), absl::StrCat("v", k));
      }
    }
  }
}

// The coordinator is cut off from everyone for 100 ms, then comes back: it
// joins the new view as a follower and copies what it missed.
TEST(FastPaxosViewChangeTest, CutOffCoordinatorRejoins) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SCOPED_TRACE(seed);
    FastPaxosGroup g(seed);
    AddFaults(g, seed, 0.1);
    std::vector<Address> rest = {g.config.replicas[1], g.config.replicas[2]};
    for (int j = 0; j < 4; ++j) rest.push_back(Address(0x0b000001 + j, 1));
    g.net.Timer(absl::Milliseconds(3), [&] {
      g.net.AddFilter(5, g.net.Partition({g.config.replicas[0]}, rest));
    });
    g.net.Timer(absl::Milliseconds(103), [&] { g.net.RemoveFilter(5); });
    g.StartClients(4, 60, 8);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Done(); }, absl::Seconds(30)));
    RemoveFaults(g);
    g.net.RemoveFilter(5);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Agree(); }, absl::Seconds(5)));
    ExpectHealthy(g, 240, 8);
    EXPECT_FALSE(g.replicas[0]->IsCoordinator());
    EXPECT_EQ(g.replicas[0]->view(), g.replicas[1]->view());
  }
}

// Two coordinator changes: the first coordinator is cut off and comes back
// behind; later the second coordinator crashes, so the one that fell behind
// is half of the next change's quorum.
TEST(FastPaxosViewChangeTest, SecondChangeWithTheReplicaThatFellBehind) {
  for (uint64_t seed = 1; seed <= 15; ++seed) {
    SCOPED_TRACE(seed);
    FastPaxosGroup g(seed);
    AddFaults(g, seed, 0.1);
    std::vector<Address> rest = {g.config.replicas[1], g.config.replicas[2]};
    for (int j = 0; j < 4; ++j) rest.push_back(Address(0x0b000001 + j, 1));
    g.net.Timer(absl::Milliseconds(2), [&] {
      g.net.AddFilter(5, g.net.Partition({g.config.replicas[0]}, rest));
    });
    g.net.Timer(absl::Milliseconds(60), [&] { g.net.RemoveFilter(5); });
    g.net.Timer(absl::Milliseconds(70 + g.net.RandomBelow(30)), [&] {
      for (int i = 1; i < 3; ++i) {
        if (g.replicas[i] && g.replicas[i]->IsCoordinator()) g.Crash(i);
      }
    });
    g.StartClients(4, 300, 32);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Done(); }, absl::Seconds(30)));
    RemoveFaults(g);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Agree(); }, absl::Seconds(5)));
    ExpectHealthy(g, 1200, 32);
    EXPECT_GE(g.replicas[0]->view(), 2u);
  }
}

// 256-byte datagrams and heavy reordering: reports and installations of
// many entries go a piece at a time, none over the budget.
TEST(FastPaxosViewChangeTest, CoordinatorCrashWithSmallDatagrams) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SCOPED_TRACE(seed);
    FastPaxosGroup g(seed, {.max_datagram = 256});
    AddFaults(g, seed, 0.3);
    g.net.Timer(absl::Milliseconds(2 + g.net.RandomBelow(8)), [&] { g.Crash(0); });
    g.StartClients(8, 25, 8);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Done(); }, absl::Seconds(30)));
    RemoveFaults(g);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Agree(); }, absl::Seconds(5)));
    ExpectHealthy(g, 200, 8);
    EXPECT_LE(g.largest(), 256u);
  }
}

}  // namespace
}  // namespace dctk::spaxos
