#include "farm/alloc/slab_allocator.h"

#include <algorithm>
#include <random>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "farm/alloc/alloc_test_util.h"
#include "gtest/gtest.h"

namespace dctk::farm {
namespace {

constexpr uint64_t kRegionSize = 4 << 20;  // 4 blocks per region

TEST(SlabAllocatorTest, ObjectsAreAlignedDistinctAndNonOverlapping) {
  FakeCluster c({1, 2}, 1, kRegionSize);
  SlabAllocator slab(&c.regions);
  std::vector<std::pair<uint64_t, uint32_t>> spans;
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    const size_t bytes = 1 + rng() % 3000;
    auto a = slab.Allocate(bytes);
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_EQ(a->offset() % 64, 0u);
    spans.emplace_back(a->raw(), ClassSize(*SizeClassFor(bytes)));
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    ASSERT_LE(spans[i - 1].first + spans[i - 1].second, spans[i].first) << "overlap at " << i;
  }
}

TEST(SlabAllocatorTest, FastPathTakesOneBlockPerMegabyteOfAClass) {
  FakeCluster c({1}, 1, kRegionSize);
  SlabAllocator slab(&c.regions);
  for (int i = 0; i < 16384; ++i) ASSERT_TRUE(slab.Allocate(64).ok());  // exactly 1 MB
  EXPECT_EQ(slab.stats().blocks_taken, 1u);
  ASSERT_TRUE(slab.Allocate(64).ok());
  EXPECT_EQ(slab.stats().blocks_taken, 2u);
}

TEST(SlabAllocatorTest, FreedSlotsAreReusedAndEmptyBlocksReturned) {
  FakeCluster c({1}, 1, kRegionSize);
  SlabAllocator slab(&c.regions);
  std::vector<GlobalAddress> objs;
  for (int i = 0; i < 3000; ++i) objs.push_back(*slab.Allocate(1000));  // ~3 blocks
  const uint64_t taken = slab.stats().blocks_taken;
  for (size_t i = 0; i < objs.size(); i += 2) ASSERT_TRUE(slab.Free(objs[i]).ok());
  for (size_t i = 0; i < objs.size(); i += 2) ASSERT_TRUE(slab.Allocate(1000).ok());
  EXPECT_EQ(slab.stats().blocks_taken, taken) << "freed slots were not reused";
  for (int i = 0; i < 3000; ++i) {  // free everything (the re-allocations too)
    (void)slab.Free(objs[i]);
  }
  EXPECT_GE(slab.stats().blocks_returned, 1u);
}

TEST(SlabAllocatorTest, DoubleFreeAndInteriorAddressesAreRejected) {
  FakeCluster c({1}, 1, kRegionSize);
  SlabAllocator slab(&c.regions);
  auto a = slab.Allocate(100);
  auto keep = slab.Allocate(100);
  ASSERT_TRUE(a.ok() && keep.ok());
  EXPECT_EQ(slab.Free(a->Plus(64)).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(slab.Free(*a).ok());
  EXPECT_EQ(slab.Free(*a).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(slab.Free(GlobalAddress(999, 0)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(slab.Allocate(0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(slab.Allocate((1 << 20) + 1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SlabAllocatorTest, HintsLandInSameBlockThenSameRegionThenNearbyRegion) {
  FakeCluster c({1, 2, 3}, 1, kRegionSize);
  SlabAllocator slab(&c.regions);
  SlabAllocator other(&c.regions);
  auto anchor = slab.Allocate(64);
  ASSERT_TRUE(anchor.ok());
  auto b = slab.Allocate(64, *anchor);
  EXPECT_EQ(b->raw() & ~uint64_t{kBlockBytes - 1}, anchor->raw() & ~uint64_t{kBlockBytes - 1})
      << "same block";
  // Another thread's allocator has no slab there: it lands in the same region.
  auto c1 = other.Allocate(64, *anchor);
  EXPECT_EQ(c1->region(), anchor->region());
  // A different class near the anchor: a new block, same region.
  auto big = slab.Allocate(500000, *anchor);
  EXPECT_EQ(big->region(), anchor->region());
  // Fill the region's remaining block, then spill to a region with the same primary.
  auto fill = slab.Allocate(1 << 20, *anchor);
  EXPECT_EQ(fill->region(), anchor->region());
  auto spill = slab.Allocate(1 << 20, *anchor);
  ASSERT_TRUE(spill.ok());
  EXPECT_NE(spill->region(), anchor->region());
  EXPECT_EQ(c.ring.Primary(spill->region()), c.ring.Primary(anchor->region()));
}

TEST(SlabAllocatorTest, ThreadsAllocateConcurrentlyAndFreeEachOthersObjects) {
  FakeCluster c({1, 2}, 1, 64 << 20);
  SlabAllocator a(&c.regions), b(&c.regions);
  std::vector<GlobalAddress> from_a, from_b;
  std::thread ta([&] {
    for (int i = 0; i < 5000; ++i) from_a.push_back(*a.Allocate(200));
  });
  std::thread tb([&] {
    for (int i = 0; i < 5000; ++i) from_b.push_back(*b.Allocate(200));
  });
  ta.join();
  tb.join();
  std::set<uint64_t> all;
  for (auto x : from_a) all.insert(x.raw());
  for (auto x : from_b) all.insert(x.raw());
  EXPECT_EQ(all.size(), 10000u);
  // b frees a's objects: queued to a, applied on a's next allocation.
  for (auto x : from_a) ASSERT_TRUE(b.Free(x).ok());
  EXPECT_EQ(a.stats().frees, 0u);
  ASSERT_TRUE(a.Allocate(200).ok());
  EXPECT_EQ(a.stats().frees, 5000u);
  EXPECT_EQ(a.stats().bad_remote_frees, 0u);
}

}  // namespace
}  // namespace dctk::farm
