// Truncation watermarks end to end (wire.h, transaction.h, participant.h):
// coordinators' messages carry their watermarks, so the outcomes the
// participants remember are bounded by what the coordinators have in
// flight, however many transactions commit (with the old bounded cache,
// every participant held the last 1 Mi decisions).
#include <memory>
#include <tuple>

#include "farm/tx/test_util.h"
#include "gtest/gtest.h"

namespace dctk::farm::tx {
namespace {

constexpr int kTransactions = 500;

TEST(TruncationTest, RememberedOutcomesAreBoundedByTransactionsInFlight) {
  auto c = MakeShmCluster();
  const std::vector<RegionInfo> regions = c->table().All();
  ASSERT_GE(regions.size(), 2u);
  auto [a, b] = CountersIn(c->client(1), regions[0].id, regions[1].id);
  for (int i = 0; i < kTransactions; ++i) {
    for (fabric::MachineId m : {1, 2, 3}) ASSERT_TRUE(Increment(c->client(m), a, b).ok()) << i;
  }
  EXPECT_EQ(Values(c->client(2), a, b),
            std::make_pair(uint64_t{3 * kTransactions}, uint64_t{3 * kTransactions}));
  for (fabric::MachineId m : {1, 2, 3}) {
    // Each coordinator's last transaction (its next message would pass it).
    EXPECT_LE(c->machine(m).participant().remembered_outcomes(), 3u) << "machine " << m;
  }
}

// A commit whose outcome stayed Unknown (a backup died after the LOCKs, no
// decision within outcome_timeout): the cluster, its coordinator's machine,
// the two counters it wrote and its id.
struct UnknownCommit {
  std::unique_ptr<ShmCluster> cluster;
  fabric::MachineId coordinator = 0, victim = 0;
  GlobalAddress a, b;
  TxId tx = 0;
};

void MakeUnknownCommit(UnknownCommit* u) {
  LocalClusterOptions o;
  o.client.rpc_timeout = absl::Milliseconds(200);
  o.client.outcome_timeout = absl::Milliseconds(300);
  u->cluster = MakeShmCluster(o);
  auto& c = u->cluster;
  // Two regions with different primaries and a backup of one of them that
  // is neither primary: it dies; the coordinator runs on a primary.
  fabric::MachineId victim = 0;
  auto pair = RegionPair(*c, [&](const RegionInfo& x, const RegionInfo& y) {
    if (x.primary().machine == y.primary().machine) return false;
    for (const RegionInfo* r : {&x, &y}) {
      for (size_t i = 1; i < r->replicas.size(); ++i) {
        const fabric::MachineId m = r->replicas[i].machine;
        if (m != x.primary().machine && m != y.primary().machine) victim = m;
      }
    }
    return victim != 0;
  });
  ASSERT_TRUE(pair.has_value());
  u->victim = victim;
  u->coordinator = pair->first.primary().machine;
  auto& client = c->client(u->coordinator);
  std::tie(u->a, u->b) = CountersIn(client, pair->first.id, pair->second.id);
  c->Kill(victim);
  auto tx = client.Begin();
  u->tx = tx.id();
  absl::StatusOr<std::string> va = tx.Read(u->a, 8), vb = tx.Read(u->b, 8);
  ASSERT_TRUE(va.ok() && vb.ok()) << va.status() << " " << vb.status();
  ASSERT_TRUE(tx.Write(u->a, U64(1)).ok());
  ASSERT_TRUE(tx.Write(u->b, U64(1)).ok());
  absl::Status s = tx.Commit();
  ASSERT_TRUE(absl::IsUnknown(s)) << s;
}

// It holds its coordinator's watermark until the coordinator learns what
// recovery decided: at its next commit, once the configuration moved on, it
// asks OUTCOME, truncates the commit and its watermark passes it, so
// participants forget it again.
TEST(TruncationTest, AnUnknownCommitIsSettledAfterRecoveryAndReleasesTheWatermark) {
  UnknownCommit u;
  ASSERT_NO_FATAL_FAILURE(MakeUnknownCommit(&u));
  auto& c = u.cluster;
  auto& client = c->client(u.coordinator);
  EXPECT_EQ(client.watermark().tx, u.tx) << "an undecided commit is not finished";
  ASSERT_TRUE(c->Recover({u.victim}).ok());
  // The next commit learns the decision first: committed if the other
  // region's backup logged it before the victim's COMMIT-BACKUP failed,
  // else aborted.
  ASSERT_TRUE(Increment(client, u.a, u.b).ok());
  const auto [va, vb] = Values(client, u.a, u.b);
  EXPECT_EQ(va, vb);
  EXPECT_TRUE(va == 1 || va == 2) << va;
  EXPECT_TRUE(TxBefore(u.tx, client.watermark().tx));
  ASSERT_TRUE(Increment(client, u.a, u.b).ok());  // carries the watermark past it everywhere
  for (fabric::MachineId m : c->live()) {
    EXPECT_EQ(c->machine(m).participant().Known(u.tx), Outcome::kFinished) << "machine " << m;
  }
}

// A coordinator that stops (FarmClient::Leave) settles it without another
// commit: Settle asks the outcome once recovery moved the configuration on
// and sends its TRUNCATEs; before that it stays unfinished.
TEST(TruncationTest, SettleFinishesAnUnknownCommitOnceRecoveryDecidedIt) {
  UnknownCommit u;
  ASSERT_NO_FATAL_FAILURE(MakeUnknownCommit(&u));
  auto& c = u.cluster;
  auto& client = c->client(u.coordinator);
  EXPECT_EQ(client.Settle(absl::Now()), 1u) << "undecided before any recovery";
  ASSERT_TRUE(c->Recover({u.victim}).ok());
  EXPECT_EQ(client.Settle(absl::Now() + absl::Seconds(30)), 0u);
  EXPECT_TRUE(TxBefore(u.tx, client.watermark().tx));
  {
    auto open = client.Begin();
    EXPECT_EQ(client.Settle(absl::Now() + absl::Seconds(30)), 1u) << "an open transaction";
  }
  EXPECT_EQ(client.unfinished(), 0u) << "destroyed: aborted";
}

}  // namespace
}  // namespace dctk::farm::tx
