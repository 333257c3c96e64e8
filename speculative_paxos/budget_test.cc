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

SimClusterOptions Options(uint64_t seed, int clients, int budget = kBudget) {
  SimClusterOptions o;
  o.seed = seed;
  o.num_clients = clients;
  o.replica.max_datagram = budget;
  return o;
}

void ExpectHealthy(SimCluster& c, int budget = kBudget) {
  EXPECT_TRUE(c.CheckCommitted().ok()) << c.CheckCommitted();
  EXPECT_TRUE(c.commit_violation().ok()) << c.commit_violation();
  absl::Status lin = CheckLinearizable(c.history());
  EXPECT_TRUE(lin.ok()) << lin;
  for (int i = 0; i < c.num_replicas(); ++i) {
    if (Replica* r = c.replica(i)) {
      EXPECT_EQ(r->stats().rejected[static_cast<int>(Reject::kMergeFailed)], 0u);
    }
  }
  EXPECT_LE(c.max_replica_datagram(), static_cast<size_t>(budget));
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

// StartLog copies sent for stamps of at least some view.
struct StartLogs {
  uint64_t longest = 0;      // end - base
  uint64_t pieces = 0;       // copies with entries
  uint64_t by_transfer = 0;  // copies announcing a transfer
};

SimTransport::Filter RecordStartLogs(uint64_t min_view, StartLogs* logs) {
  return [=](const Address&, const Address&, const Envelope& msg, absl::Duration*) {
    StartLog m;
    if (msg.Is<StartLog>() && msg.Parse(&m) && m.stamp().view() >= min_view) {
      logs->longest = std::max(logs->longest, m.end() - m.base());
      if (m.entries_size() > 0) ++logs->pieces;
      if (m.by_transfer()) ++logs->by_transfer;
    }
    return true;
  };
}

// No commits while SyncReplies are lost: the leader's log grows, it
// reconciles on every commit stall (each log change carries the whole log),
// requests are reordered so that logs differ. Reports come in windows of
// pieces; merged logs longer than a window go by state transfer.
class LongReconciliation : public testing::TestWithParam<double> {};

TEST_P(LongReconciliation, ReportsInPiecesLogsByTransfer) {
  const double loss = GetParam();
  SimCluster c(Options(31, 4, kBudget));
  SimTransport& net = c.net();
  StartLogs logs;
  net.AddFilter(1, net.DropAll({.type_id = TypeId<SyncReply>()}));
  net.AddFilter(2, net.Reorder(0.05, absl::Microseconds(150), {.type_id = TypeId<Request>()}));
  net.AddFilter(3, DropPieces<LogReport>(net, loss));
  net.AddFilter(4, DropPieces<StartLog>(net, loss));
  net.AddFilter(5, RecordStartLogs(0, &logs));
  net.Timer(absl::Milliseconds(60), [&net] {
    net.RemoveFilter(1);
    net.RemoveFilter(2);
  });
  c.StartClosedLoop(150, 32);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(30)));
  ASSERT_TRUE(net.RunUntil([&] { return c.Converged(); }, absl::Seconds(5)));
  const ReplicaStats& leader = c.replica(0)->stats();
  EXPECT_GE(leader.reconciliations, 2u);
  EXPECT_GE(logs.longest, 100u);  // entries of one change, ~110 bytes each
  EXPECT_GE(logs.by_transfer, 2u);
  EXPECT_GE(c.replica(1)->stats().transfers + c.replica(2)->stats().transfers, 2u);
  // Every report went in many pieces, a window per request.
  EXPECT_GT(c.replica_datagrams(TypeId<LogReport>()), 20 * leader.logs_installed);
  EXPECT_GT(c.replica_datagrams(TypeId<StartChange>()),
            c.replica_datagrams(TypeId<LogReport>()) / kPieceWindow);
  ExpectHealthy(c, kBudget);
  ExpectSameStores(c, 32);
}

INSTANTIATE_TEST_SUITE_P(Loss, LongReconciliation, testing::Values(0.0, 0.1));

// The leader crashes while nothing has committed for a while: the view
// change merges long logs, reported in pieces (some lost). A merged log of up
// to a window of pieces goes in pieces, a longer one by state transfer.
struct ViewChangeCase {
  int budget;
  int ops_per_client;
  double loss;
};

class LongViewChange : public testing::TestWithParam<ViewChangeCase> {};

TEST_P(LongViewChange, MergesLongLogs) {
  const ViewChangeCase& p = GetParam();
  SimClusterOptions o = Options(32, 4, p.budget);
  o.replica.sync_interval = absl::Milliseconds(20);  // no stall reconciliation first
  o.replica.leader_timeout = absl::Milliseconds(200);
  SimCluster c(o);
  SimTransport& net = c.net();
  StartLogs logs;
  net.AddFilter(1, net.DropAll({.type_id = TypeId<SyncReply>()}));
  net.AddFilter(3, DropPieces<LogReport>(net, p.loss));
  net.AddFilter(4, DropPieces<StartLog>(net, p.loss));
  net.AddFilter(5, RecordStartLogs(1, &logs));
  c.StartClosedLoop(p.ops_per_client, 32);
  net.RunFor(absl::Milliseconds(15));
  ASSERT_EQ(c.replica(1)->commit_point(), 0u);
  const uint64_t uncommitted = c.replica(1)->log().end();
  ASSERT_GT(uncommitted, 40u);
  c.Crash(0);
  net.RemoveFilter(1);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(30)));
  ASSERT_TRUE(net.RunUntil([&] { return c.Converged(); }, absl::Seconds(5)));
  EXPECT_EQ(c.Leader(), 1);
  EXPECT_GE(c.replica(1)->stats().view_changes, 1u);
  EXPECT_GE(logs.longest, uncommitted);
  if (p.budget == kBudget) {
    EXPECT_GE(logs.by_transfer, 1u);
    EXPECT_GE(c.replica(2)->stats().transfers, 1u);
  } else {
    EXPECT_EQ(logs.by_transfer, 0u);
    EXPECT_GT(logs.pieces, 1u);
    if (p.loss == 0) {
      EXPECT_GE(c.replica(2)->stats().logs_installed, 1u);  // put together from pieces
      EXPECT_EQ(c.replica(2)->stats().transfers, 0u);
    }
  }
  ExpectHealthy(c, p.budget);
  c.Restart(0);
  c.StartClosedLoop(20, 32);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(10)));
  ASSERT_TRUE(net.RunUntil([&] { return c.Converged(); }, absl::Seconds(5)));
  ExpectHealthy(c, p.budget);
  ExpectSameStores(c, 32);
}

INSTANTIATE_TEST_SUITE_P(
    BudgetOpsLoss, LongViewChange,
    testing::Values(ViewChangeCase{kBudget, 200, 0.0}, ViewChangeCase{kBudget, 200, 0.1},
                    ViewChangeCase{1400, 15, 0.0}, ViewChangeCase{1400, 15, 0.2}));

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
    // ~110 bytes per entry: two or three entries per reply, a window of
    // replies per request.
    EXPECT_GT(c.replica_datagrams(TypeId<StateReply>()), 100u);
    EXPECT_GT(c.replica_datagrams(TypeId<StateReply>()),
              4 * c.replica_datagrams(TypeId<StateRequest>()));
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
