#include "farm/alloc/size_classes.h"

#include "gtest/gtest.h"

namespace dctk::farm {
namespace {

TEST(SizeClassesTest, TwoHundredFiftySixIncreasingLineMultiplesFrom64BTo1MB) {
  EXPECT_EQ(ClassSize(0), 64u);
  EXPECT_EQ(ClassSize(kNumSizeClasses - 1), 1u << 20);
  for (int c = 1; c < kNumSizeClasses; ++c) {
    EXPECT_GT(ClassSize(c), ClassSize(c - 1));
    EXPECT_EQ(ClassSize(c) % 64, 0u) << c;
  }
}

TEST(SizeClassesTest, SmallestFittingClassAndBoundedWaste) {
  EXPECT_EQ(*SizeClassFor(1), 0);
  EXPECT_EQ(*SizeClassFor(64), 0);
  EXPECT_EQ(*SizeClassFor(65), 1);
  for (size_t bytes = 1; bytes <= (1u << 20); bytes = bytes * 5 / 4 + 1) {
    const int c = *SizeClassFor(bytes);
    ASSERT_GE(ClassSize(c), bytes);
    if (c > 0) ASSERT_LT(ClassSize(c - 1), bytes);
    // Waste: at most one cache line, or ~4% for large sizes.
    EXPECT_LE(ClassSize(c) - bytes, std::max<size_t>(64, bytes * 41 / 1000 + 64)) << bytes;
  }
  EXPECT_FALSE(SizeClassFor(0).ok());
  EXPECT_EQ(SizeClassFor((1u << 20) + 1).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dctk::farm
