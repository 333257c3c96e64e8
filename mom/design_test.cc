#include "mom/design.h"

#include "gtest/gtest.h"

namespace dctk::mom {
namespace {

TEST(DesignTest, NamesRoundTrip) {
  for (Design d : kAllDesigns) {
    absl::StatusOr<Design> parsed = ParseDesign(DesignName(d));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, d);
  }
}

TEST(DesignTest, UnknownNameIsAnError) {
  absl::StatusOr<Design> d = ParseDesign("fastest");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("fastest"), absl::string_view::npos);
}

TEST(DesignTest, PriorityAndSerialization) {
  EXPECT_FALSE(HighPriority(Design::kNaive));
  EXPECT_FALSE(HighPriority(Design::kTopologyAware));
  EXPECT_TRUE(HighPriority(Design::kTopologyAwareQos));
  EXPECT_TRUE(HighPriority(Design::kSerialized));
  EXPECT_TRUE(Serialized(Design::kSerialized));
  EXPECT_FALSE(Serialized(Design::kTopologyAwareQos));
}

}  // namespace
}  // namespace dctk::mom
