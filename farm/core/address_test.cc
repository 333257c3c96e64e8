#include "farm/core/address.h"

#include "absl/container/flat_hash_set.h"
#include "gtest/gtest.h"

namespace dctk::farm {
namespace {

TEST(GlobalAddressTest, SplitsIntoRegionAndOffsetAndRoundTripsRaw) {
  constexpr GlobalAddress a(7, 0x80000010u);
  static_assert(a.region() == 7 && a.offset() == 0x80000010u);
  EXPECT_EQ(a.raw(), (uint64_t{7} << 32) | 0x80000010u);
  EXPECT_EQ(GlobalAddress::FromRaw(a.raw()), a);
  EXPECT_EQ(a.Plus(16), GlobalAddress(7, 0x80000020u));
  EXPECT_EQ(a.ToString(), "7:0x80000010");
}

TEST(GlobalAddressTest, NullIsRegionZeroOffsetZeroAndOrderingFollowsRegionFirst) {
  EXPECT_TRUE(GlobalAddress().is_null());
  EXPECT_FALSE(GlobalAddress(0, 8).is_null());
  EXPECT_LT(GlobalAddress(1, 0xffffffff), GlobalAddress(2, 0));
  absl::flat_hash_set<GlobalAddress> set = {GlobalAddress(1, 2), GlobalAddress(1, 2), GlobalAddress(2, 1)};
  EXPECT_EQ(set.size(), 2u);
}

}  // namespace
}  // namespace dctk::farm
