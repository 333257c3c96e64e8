// Truncation watermarks end to end (wire.h, transaction.h, participant.h):
// coordinators' messages carry their watermarks, so the outcomes the
// participants remember are bounded by what the coordinators have in
// flight, however many transactions commit (with the old bounded cache,
// every participant held the last 1 Mi decisions).
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

}  // namespace
}  // namespace dctk::farm::tx
