// Byte-bounded messages (ReplicaConfig.max_datagram) on SimTransport: log
// changes and state transfers of long logs with a small datagram budget, with
// and without lost pieces. No replica datagram may exceed the budget, and the
// usual guarantees hold (every operation completes, linearizable history,
// committed entries never change, replicas converge).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "speculative_paxos/sim_cluster.h"

namespace dctk::spaxos {
namespace {

using transport::Address;
using transport::Envelope;
using transport::SimTransport;
using transport::TypeId;

constexpr int kBudget = 300;

SimClusterOptions Options(uint64_t seed, int clients) {
  SimClusterOptions o;
  o.seed = seed;
  o.num_clients = clients;
  o.replica.max_datagram = kBudget;
  return o;
}

void ExpectHealthy(SimCluster& c) {
  EXPECT_TRUE(c.CheckCommitted().ok()) << c.CheckCommitted();
  EXPECT_TRUE(c.commit_violation().ok()) << c.commit_violation();
  absl::Status lin = CheckLinearizable(c.history());
  EXPECT_TRUE(lin.ok()) << lin;
  for (int i = 0; i < c.num_replicas(); ++i) {
    if (Replica* r = c.replica(i)) {
      EXPECT_EQ(r->stats().rejected[static_cast<int>(Reject::kMergeFailed)], 0u);
    }
  }
  EXPECT_LE(c.max_replica_datagram(), static_cast<size_t>(kBudget));
}

void ExpectSameStores(SimCluster& c, int keys) {
  for (int k = 0; k < keys; ++k) {
    const std::string key = absl::StrCat("k", k);
    for (int i = 1; i < c.num_replicas(); ++i) {
      if (c.app(i) != nullptr && c.app(0) != nullptr) {
        EXPECT_EQ(c.app(i)->Lookup(key), c.app(0)->Lookup(key)) << key << " replica " << i;
      }
    }
  }
}

// Drops copies of type M with probability p (from the net's RNG).
template <typename M>
SimTransport::Filter DropPieces(SimTransport& net, double p) {
  return net.DropWithProbability(p, {.type_id = TypeId<M>()});
}

// Records the longest StartLog (entries end - base) sent for a stamp of at
// least `min_view`.
SimTransport::Filter LongestStartLog(uint64_t min_view, uint64_t* longest) {
  return [=](const Address&, const Address&, const Envelope& msg, absl::Duration*) {
    StartLog m;
    if (msg.Is<StartLog>() && msg.Parse(&m) && m.stamp().view() >= min_view) {
      *longest = std::max(*longest, m.end() - m.base());
    }
    return true;
  };
}

// No commits while SyncReplies are lost: the leader's log grows, it
// reconciles on every commit stall (each log change carries the whole log),
// requests are reordered so that logs differ.
class LongReconciliation : public testing::TestWithParam<double> {};

TEST_P(LongReconciliation, PiecesOfReportsAndLogs) {
  const double loss = GetParam();
  SimCluster c(Options(31, 4));
  SimTransport& net = c.net();
  uint64_t longest = 0;
  net.AddFilter(1, net.DropAll({.type_id = TypeId<SyncReply>()}));
  net.AddFilter(2, net.Reorder(0.05, absl::Microseconds(150), {.type_id = TypeId<Request>()}));
  net.AddFilter(3, DropPieces<LogReport>(net, loss));
  net.AddFilter(4, DropPieces<StartLog>(net, loss));
  net.AddFilter(5, LongestStartLog(0, &longest));
  net.Timer(absl::Milliseconds(60), [&net] {
    net.RemoveFilter(1);
    net.RemoveFilter(2);
  });
  c.StartClosedLoop(150, 32);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(30)));
  ASSERT_TRUE(net.RunUntil([&] { return c.Converged(); }, absl::Seconds(5)));
  const ReplicaStats& leader = c.replica(0)->stats();
  EXPECT_GE(leader.reconciliations, 2u);
  EXPECT_GE(longest, 100u);  // entries of one change, ~110 bytes each
  // Every log change went out in many pieces.
  EXPECT_GT(c.replica_datagrams(TypeId<StartLog>()), 20 * leader.logs_installed);
  EXPECT_GT(c.replica_datagrams(TypeId<LogReport>()), 20 * leader.logs_installed);
  if (loss == 0) {
    // Followers put the pieces together (no state transfer needed).
    EXPECT_GE(c.replica(1)->stats().logs_installed + c.replica(2)->stats().logs_installed,
              leader.logs_installed);
  }
  ExpectHealthy(c);
  ExpectSameStores(c, 32);
}

INSTANTIATE_TEST_SUITE_P(Loss, LongReconciliation, testing::Values(0.0, 0.1));

// The leader crashes while nothing has committed for a while: the view
// change merges long logs, in pieces, some lost.
class LongViewChange : public testing::TestWithParam<double> {};

TEST_P(LongViewChange, PiecesOfReportsAndLogs) {
  const double loss = GetParam();
  SimClusterOptions o = Options(32, 4);
  o.replica.sync_interval = absl::Milliseconds(20);  // no stall reconciliation first
  o.replica.leader_timeout = absl::Milliseconds(200);
  SimCluster c(o);
  SimTransport& net = c.net();
  uint64_t longest = 0;
  net.AddFilter(1, net.DropAll({.type_id = TypeId<SyncReply>()}));
  net.AddFilter(3, DropPieces<LogReport>(net, loss));
  net.AddFilter(4, DropPieces<StartLog>(net, loss));
  net.AddFilter(5, LongestStartLog(1, &longest));
  c.StartClosedLoop(200, 32);
  net.RunFor(absl::Milliseconds(15));
  ASSERT_EQ(c.replica(1)->commit_point(), 0u);
  ASSERT_GT(c.replica(1)->log().end(), 100u);
  c.Crash(0);
  net.RemoveFilter(1);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(30)));
  ASSERT_TRUE(net.RunUntil([&] { return c.Converged(); }, absl::Seconds(5)));
  EXPECT_EQ(c.Leader(), 1);
  EXPECT_GE(c.replica(1)->stats().view_changes, 1u);
  EXPECT_GE(longest, 100u);
  if (loss == 0) {
    EXPECT_GE(c.replica(2)->stats().logs_installed, 1u);
  }
  ExpectHealthy(c);
  c.Restart(0);
  c.StartClosedLoop(20, 32);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(10)));
  ASSERT_TRUE(net.RunUntil([&] { return c.Converged(); }, absl::Seconds(5)));
  ExpectHealthy(c);
  ExpectSameStores(c, 32);
}

INSTANTIATE_TEST_SUITE_P(Loss, LongViewChange, testing::Values(0.0, 0.1));

// A follower cut off for 300 operations catches up by state transfer, in
// replies of a few entries (and, with compaction, checkpoint chunks), with a
// fifth of them lost.
class LongTransfer : public testing::TestWithParam<uint64_t> {};

TEST_P(LongTransfer, CatchesUpInSmallReplies) {
  SimClusterOptions o = Options(33, 2);
  o.replica.checkpoint_interval = GetParam();
  SimCluster c(o);
  SimTransport& net = c.net();
  net.AddFilter(1, net.Partition({c.replica_address(2)},
                                 {c.replica_address(0), c.replica_address(1),
                                  c.client(0).address(), c.client(1).address()}));
  net.AddFilter(3, DropPieces<StateReply>(net, 0.2));
  net.AddFilter(4, DropPieces<SnapshotReply>(net, 0.2));
  c.StartClosedLoop(150, 32);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(10)));
  ASSERT_GE(c.replica(0)->commit_point(), 290u);
  ASSERT_EQ(c.replica(2)->log().end(), 0u);
  net.RemoveFilter(1);
  c.StartClosedLoop(10, 32);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(10)));
  ASSERT_TRUE(net.RunUntil([&] { return c.Converged(); }, absl::Seconds(10)));
  EXPECT_GE(c.replica(2)->stats().transfers, 1u);
  if (GetParam() == 0) {
    // ~110 bytes per entry: two or three entries per reply.
    EXPECT_GT(c.replica_datagrams(TypeId<StateReply>()), 100u);
  } else {
    EXPECT_GE(c.replica(2)->stats().snapshots_installed, 1u);
  }
  ExpectHealthy(c);
  ExpectSameStores(c, 32);
}

INSTANTIATE_TEST_SUITE_P(CheckpointInterval, LongTransfer, testing::Values(0, 64));

TEST(BudgetTest, ConfigRejectsBudgetsOutOfRange) {
  ReplicaConfig config;
  config.replicas = {Address(1, 1), Address(2, 1), Address(3, 1)};
  config.max_datagram = 255;
  EXPECT_FALSE(config.Validate().ok());
  config.max_datagram = 65508;
  EXPECT_FALSE(config.Validate().ok());
  config.max_datagram = 256;
  EXPECT_TRUE(config.Validate().ok());
}

}  // namespace
}  // namespace dctk::spaxos
