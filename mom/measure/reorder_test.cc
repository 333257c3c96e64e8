#include "mom/measure/reorder.h"

#include <algorithm>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace dctk::mom {
namespace {

TEST(ReorderMeterTest, IdenticalOrdersHaveNoReordering) {
  ReorderMeter meter(3);
  for (int r = 0; r < 3; ++r) {
    for (uint64_t s = 1; s <= 100; ++s) {
      meter.Record(r, {1, s});
      meter.Record(r, {2, s});
    }
  }
  ReorderReport rep = meter.Compute();
  EXPECT_EQ(rep.messages, 200u);
  EXPECT_EQ(rep.reordered, 0u);
  EXPECT_EQ(rep.reorder_rate(), 0.0);
  EXPECT_EQ(rep.incomplete, 0u);
  EXPECT_EQ(rep.compared_pairs, 3u * 200 * 199 / 2);
}

TEST(ReorderMeterTest, OneSwapReordersExactlyTwoMessages) {
  ReorderMeter meter(2);
  for (uint64_t s = 1; s <= 10; ++s) meter.Record(0, {1, s});
  for (uint64_t s : {1, 2, 3, 5, 4, 6, 7, 8, 9, 10}) meter.Record(1, {1, s});
  ReorderReport rep = meter.Compute();
  EXPECT_EQ(rep.messages, 10u);
  EXPECT_EQ(rep.reordered, 2u);
  EXPECT_DOUBLE_EQ(rep.reorder_rate(), 0.2);
  EXPECT_EQ(rep.inverted_pairs, 1u);
}

TEST(ReorderMeterTest, OneMessageOvertakingManyReordersAllOfThem) {
  // Receiver 1 gets message 5 first: it is inverted with 1..4, so 5 messages are
  // reordered although only one "moved".
  ReorderMeter meter(2);
  for (uint64_t s = 1; s <= 6; ++s) meter.Record(0, {1, s});
  for (uint64_t s : {5, 1, 2, 3, 4, 6}) meter.Record(1, {1, s});
  ReorderReport rep = meter.Compute();
  EXPECT_EQ(rep.reordered, 5u);
  EXPECT_EQ(rep.inverted_pairs, 4u);
}

TEST(ReorderMeterTest, DropsAreIncompleteNotReordered) {
  ReorderMeter meter(3);
  for (int r = 0; r < 3; ++r) {
    for (uint64_t s = 1; s <= 5; ++s) {
      if (r == 2 && s == 3) continue;
      meter.Record(r, {7, s});
    }
  }
  meter.Record(0, {7, 2});  // duplicate, ignored
  ReorderReport rep = meter.Compute();
  EXPECT_EQ(rep.messages, 5u);
  EXPECT_EQ(rep.incomplete, 1u);
  EXPECT_EQ(rep.duplicates, 1u);
  EXPECT_EQ(rep.reordered, 0u);
}

TEST(ReorderMeterTest, MessageOnlyOneReceiverGotIsNotCounted) {
  ReorderMeter meter(2);
  meter.Record(0, {1, 1});
  meter.Record(0, {1, 2});
  meter.Record(1, {1, 2});
  ReorderReport rep = meter.Compute();
  EXPECT_EQ(rep.messages, 1u);
  EXPECT_EQ(rep.reordered, 0u);
}

// Cross-check against the definition applied literally, O(R^2 N^2).
TEST(ReorderMeterTest, MatchesBruteForceOnRandomOrders) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 30; ++trial) {
    const int receivers = 2 + trial % 4;
    const int n = 5 + trial;
    ReorderMeter meter(receivers);
    std::vector<std::vector<int>> orders(receivers);
    for (int r = 0; r < receivers; ++r) {
      for (int i = 0; i < n; ++i) {
        if (rng() % 10 != 0) orders[r].push_back(i);  // ~10% dropped
      }
      // Local perturbation: a few adjacent swaps.
      for (int k = 0; k < 3; ++k) {
        if (orders[r].size() < 2) break;
        size_t i = rng() % (orders[r].size() - 1);
        std::swap(orders[r][i], orders[r][i + 1]);
      }
      for (int m : orders[r]) meter.Record(r, {static_cast<uint32_t>(m % 3), uint64_t(m)});
    }
    std::vector<bool> reordered(n, false);
    uint64_t inverted = 0;
    for (int r = 0; r < receivers; ++r) {
      for (int s = r + 1; s < receivers; ++s) {
        auto pos = [](const std::vector<int>& o, int m) {
          return std::find(o.begin(), o.end(), m) - o.begin();
        };
        for (int a = 0; a < n; ++a) {
          for (int b = a + 1; b < n; ++b) {
            const auto ra = pos(orders[r], a), rb = pos(orders[r], b);
            const auto sa = pos(orders[s], a), sb = pos(orders[s], b);
            const auto rn = static_cast<long>(orders[r].size());
            const auto sn = static_cast<long>(orders[s].size());
            if (ra == rn || rb == rn || sa == sn || sb == sn) continue;
            if ((ra < rb) != (sa < sb)) {
              reordered[a] = reordered[b] = true;
              ++inverted;
            }
          }
        }
      }
    }
    ReorderReport rep = meter.Compute();
    EXPECT_EQ(rep.reordered, static_cast<uint64_t>(std::count(reordered.begin(),
                                                              reordered.end(), true)))
        << "trial " << trial;
    EXPECT_EQ(rep.inverted_pairs, inverted) << "trial " << trial;
  }
}

}  // namespace
}  // namespace dctk::mom
