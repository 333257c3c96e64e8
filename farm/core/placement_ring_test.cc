#include "farm/core/placement_ring.h"

#include <algorithm>
#include <map>
#include <set>

#include "gtest/gtest.h"

namespace dctk::farm {
namespace {

TEST(PlacementRingTest, ReplicasAreDistinctMachinesAndPlacementIsDeterministic) {
  auto ring = PlacementRing::Create({3, 1, 2, 5}, 32);
  ASSERT_TRUE(ring.ok());
  auto again = PlacementRing::Create({1, 2, 3, 5}, 32);
  for (RegionId r = 1; r < 500; ++r) {
    auto p = ring->Place(r, 3);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(std::set<fabric::MachineId>(p->begin(), p->end()).size(), 3u);
    EXPECT_EQ((*p)[0], ring->Primary(r));
    EXPECT_EQ(*p, *again->Place(r, 3));
  }
}

TEST(PlacementRingTest, PrimariesAreSpreadOverMachines) {
  auto ring = PlacementRing::Create({1, 2, 3, 4}, 128);
  std::map<fabric::MachineId, int> count;
  constexpr int kRegions = 8000;
  for (RegionId r = 1; r <= kRegions; ++r) ++count[ring->Primary(r)];
  ASSERT_EQ(count.size(), 4u);
  for (auto [m, n] : count) {
    EXPECT_GT(n, kRegions / 4 * 0.7) << "machine " << m;
    EXPECT_LT(n, kRegions / 4 * 1.3) << "machine " << m;
  }
}

TEST(PlacementRingTest, AddingAMachineMovesOnlyRegionsItTakes) {
  auto before = PlacementRing::Create({1, 2, 3, 4}, 64);
  auto after = PlacementRing::Create({1, 2, 3, 4, 5}, 64);
  int moved = 0;
  constexpr int kRegions = 10000;
  for (RegionId r = 1; r <= kRegions; ++r) {
    const auto p0 = before->Primary(r), p1 = after->Primary(r);
    if (p0 != p1) {
      ++moved;
      EXPECT_EQ(p1, 5u) << "region " << r << " moved between old machines";
    }
  }
  EXPECT_GT(moved, kRegions / 5 / 2);
  EXPECT_LT(moved, kRegions / 5 * 2);
}

TEST(PlacementRingTest, RejectsBadInput) {
  EXPECT_FALSE(PlacementRing::Create({}, 8).ok());
  EXPECT_FALSE(PlacementRing::Create({1, 1}, 8).ok());
  EXPECT_FALSE(PlacementRing::Create({1}, 0).ok());
  auto ring = PlacementRing::Create({1, 2}, 8);
  EXPECT_EQ(ring->Place(1, 3).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ring->Place(1, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dctk::farm
