#include "bastion/datapath/port_ranges.h"

#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::bastion {
namespace {

using ::testing::ElementsAre;

// Expands prefixes back to the set of ports they cover.
std::set<uint32_t> Covered(const std::vector<PortPrefix>& prefixes) {
  std::set<uint32_t> ports;
  for (const PortPrefix& p : prefixes) {
    uint32_t size = 1u << (16 - p.prefix_bits);
    EXPECT_EQ(p.port % size, 0u) << "block " << p.port << "/" << int{p.prefix_bits} << " unaligned";
    for (uint32_t i = 0; i < size; ++i) EXPECT_TRUE(ports.insert(p.port + i).second);
  }
  return ports;
}

TEST(PortRangesTest, SinglePortIsOneFullPrefix) {
  EXPECT_THAT(PortRangeToPrefixes(80, 80), ElementsAre(PortPrefix{80, 16}));
}

TEST(PortRangesTest, AlignedBlockIsOnePrefix) {
  EXPECT_THAT(PortRangeToPrefixes(8000, 8003), ElementsAre(PortPrefix{8000, 14}));
  EXPECT_THAT(PortRangeToPrefixes(0, 65535), ElementsAre(PortPrefix{0, 0}));
}

TEST(PortRangesTest, UnalignedRangeSplits) {
  EXPECT_THAT(PortRangeToPrefixes(1, 3), ElementsAre(PortPrefix{1, 16}, PortPrefix{2, 15}));
}

TEST(PortRangesTest, CoversExactlyTheRangeWithFewBlocks) {
  const std::pair<uint16_t, uint16_t> ranges[] = {
      {1, 65534}, {1024, 65535}, {0, 1023}, {3, 3}, {1000, 2000}, {65535, 65535}, {7, 4096}};
  for (auto [first, last] : ranges) {
    std::vector<PortPrefix> prefixes = PortRangeToPrefixes(first, last);
    EXPECT_LE(prefixes.size(), 30u);
    std::set<uint32_t> ports = Covered(prefixes);
    ASSERT_EQ(ports.size(), last - first + 1u) << first << "-" << last;
    EXPECT_EQ(*ports.begin(), first);
    EXPECT_EQ(*ports.rbegin(), last);
  }
}

}  // namespace
}  // namespace dctk::bastion
