#include "farm/alloc/region_allocator.h"

#include <algorithm>

#include "farm/alloc/alloc_test_util.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/fabric/sync.h"
#include "gtest/gtest.h"

namespace dctk::farm {
namespace {

constexpr uint64_t kRegionSize = 4 << 20;  // 4 blocks

TEST(RegionAllocatorTest, NewRegionIsHostedOnItsRingReplicasAndPublished) {
  FakeCluster c({1, 2, 3}, 2, kRegionSize);
  auto r = c.regions.AllocateRegion();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->id, 1u);
  const auto placed = *c.ring.Place(r->id, 2);
  ASSERT_EQ(r->replicas.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(r->replicas[i].machine, placed[i]);
    const auto& hosted = c.hosted[placed[i]];
    EXPECT_NE(std::find(hosted.begin(), hosted.end(), r->id), hosted.end());
  }
  auto looked = c.table.Lookup(r->id);
  ASSERT_TRUE(looked.ok());
  EXPECT_EQ(looked->primary().key, r->id + 100);
}

TEST(RegionAllocatorTest, HintedRegionSharesThePrimary) {
  FakeCluster c({1, 2, 3, 4}, 1, kRegionSize);
  auto first = c.regions.AllocateRegion();
  ASSERT_TRUE(first.ok());
  for (int i = 0; i < 5; ++i) {
    auto near = c.regions.AllocateRegion(first->id);
    ASSERT_TRUE(near.ok());
    EXPECT_EQ(near->primary().machine, first->primary().machine);
  }
}

TEST(RegionAllocatorTest, BlocksFillTheHintedRegionThenANearbyOne) {
  FakeCluster c({1, 2, 3}, 1, kRegionSize);
  int owner;
  auto b0 = c.regions.AllocateBlock(&owner, absl::nullopt);
  ASSERT_TRUE(b0.ok());
  const RegionId r0 = b0->region();
  for (int i = 1; i < 4; ++i) {
    auto b = c.regions.AllocateBlock(&owner, r0);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b->region(), r0);
  }
  auto spill = c.regions.AllocateBlock(&owner, r0);  // r0 is full
  ASSERT_TRUE(spill.ok());
  EXPECT_NE(spill->region(), r0);
  EXPECT_EQ(c.ring.Primary(spill->region()), c.ring.Primary(r0));
  EXPECT_EQ(c.regions.OwnerOf(spill->Plus(12345)), &owner);
  ASSERT_TRUE(c.regions.FreeBlock(*spill).ok());
  EXPECT_EQ(c.regions.OwnerOf(*spill), nullptr);
  EXPECT_FALSE(c.regions.FreeBlock(*spill).ok());
  EXPECT_FALSE(c.regions.FreeBlock(b0->Plus(64)).ok());
}

TEST(RegionAllocatorTest, HostFailureIsReportedWithRegionAndMachine) {
  PlacementRing ring = *PlacementRing::Create({1}, 4);
  RegionTable table;
  RegionAllocator regions(&ring, &table, 1, kRegionSize,
                          [](fabric::MachineId, RegionId, uint64_t) -> absl::StatusOr<fabric::RegionKey> {
                            return absl::ResourceExhaustedError("out of memory");
                          });
  auto r = regions.AllocateRegion();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(r.status().message().find("region 1 on machine 1"), std::string::npos) << r.status();
  EXPECT_EQ(regions.regions(), 0u);
}

TEST(RegionAllocatorTest, RegionsAreRegisteredWithEachReplicasFabric) {
  std::map<fabric::MachineId, std::unique_ptr<fabric::ShmFabric>> machines;
  for (fabric::MachineId id : {1u, 2u, 3u}) {
    fabric::ShmFabric::Options o;
    o.machine_id = id;
    machines[id] = std::move(*fabric::ShmFabric::Create(o));
  }
  for (auto& [id, f] : machines) {
    for (auto& [other, g] : machines) {
      if (other != id) ASSERT_TRUE(f->Connect(other, g->endpoint()).ok());
    }
  }
  PlacementRing ring = *PlacementRing::Create({1, 2, 3}, 16);
  RegionTable table;
  RegionAllocator regions(&ring, &table, 3, kRegionSize,
                          [&](fabric::MachineId m, RegionId, uint64_t size) -> absl::StatusOr<fabric::RegionKey> {
                            auto r = machines.at(m)->Register(size);
                            if (!r.ok()) return r.status();
                            return r->key;
                          });
  auto info = regions.AllocateRegion();
  ASSERT_TRUE(info.ok()) << info.status();
  // Machine 1 can reach every replica of the new region with one-sided ops.
  auto q = machines[1]->CreateQueue();
  uint64_t word = 1;
  for (const Replica& r : info->replicas) {
    EXPECT_TRUE(fabric::SyncWrite(**q, {r.machine, r.key, kRegionSize - 8}, &word, 8).ok());
  }
  RegionTable::Cache cache(&table);
  auto at = cache.ResolvePrimary(GlobalAddress(info->id, kRegionSize - 8), 8);
  ASSERT_TRUE(at.ok());
  EXPECT_TRUE(fabric::SyncRead(**q, *at, &word, 8).ok());
}

}  // namespace
}  // namespace dctk::farm
