#include "farm/core/region_table.h"

#include "gtest/gtest.h"

namespace dctk::farm {
namespace {

RegionInfo Info(RegionId id, fabric::MachineId primary, fabric::RegionKey key) {
  return RegionInfo{id, 1 << 20, {{primary, key}, {primary + 1, key + 1}}};
}

TEST(RegionTableTest, CacheResolvesToPrimaryAndHitsWithoutTheTable) {
  RegionTable table;
  ASSERT_TRUE(table.Upsert(Info(7, 2, 11)).ok());
  RegionTable::Cache cache(&table);
  for (int i = 0; i < 10; ++i) {
    auto at = cache.ResolvePrimary(GlobalAddress(7, 128), 64);
    ASSERT_TRUE(at.ok());
    EXPECT_EQ(at->machine, 2u);
    EXPECT_EQ(at->key, 11u);
    EXPECT_EQ(at->offset, 128u);
  }
  EXPECT_EQ(cache.misses(), 1u);
}

TEST(RegionTableTest, CacheSeesConfigurationChanges) {
  RegionTable table;
  ASSERT_TRUE(table.Upsert(Info(7, 2, 11)).ok());
  RegionTable::Cache cache(&table);
  ASSERT_TRUE(cache.ResolvePrimary(GlobalAddress(7, 0)).ok());
  ASSERT_TRUE(table.Upsert(Info(7, 3, 4)).ok());  // the backup became primary
  auto at = cache.ResolvePrimary(GlobalAddress(7, 0));
  ASSERT_TRUE(at.ok());
  EXPECT_EQ(at->machine, 3u);
  ASSERT_TRUE(table.Remove(7).ok());
  EXPECT_EQ(cache.ResolvePrimary(GlobalAddress(7, 0)).status().code(), absl::StatusCode::kNotFound);
}

TEST(RegionTableTest, RejectsBadEntriesAndOutOfRegionAddresses) {
  RegionTable table;
  EXPECT_FALSE(table.Upsert(Info(0, 1, 1)).ok());
  EXPECT_FALSE(table.Upsert(RegionInfo{5, 4096, {}}).ok());
  ASSERT_TRUE(table.Upsert(Info(5, 1, 1)).ok());
  RegionTable::Cache cache(&table);
  auto at = cache.ResolvePrimary(GlobalAddress(5, (1 << 20) - 8), 16);
  EXPECT_EQ(at.status().code(), absl::StatusCode::kOutOfRange) << at.status();
  EXPECT_EQ(cache.ResolvePrimary(GlobalAddress(9, 0)).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace dctk::farm
