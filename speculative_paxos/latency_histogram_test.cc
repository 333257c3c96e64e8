#include "speculative_paxos/latency_histogram.h"

#include "gtest/gtest.h"

namespace dctk::spaxos {
namespace {

TEST(LatencyHistogramTest, EmptyIsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.PercentileUs(0.5), 0);
  EXPECT_EQ(h.MeanUs(), 0);
  EXPECT_EQ(h.ToString(), "");
}

TEST(LatencyHistogramTest, BucketsAndPercentiles) {
  LatencyHistogram h;
  for (int i = 0; i < 98; ++i) h.Add(absl::Microseconds(70));  // (50, 100]
  h.Add(absl::Microseconds(100));                               // (50, 100]: bound inclusive
  h.Add(absl::Milliseconds(3));                                 // (2000, 5000]
  EXPECT_EQ(h.count(), 100u);
  EXPECT_EQ(h.bucket(6), 99u);
  EXPECT_EQ(h.bucket(11), 1u);
  EXPECT_EQ(h.PercentileUs(0.5), 100);
  EXPECT_EQ(h.PercentileUs(0.99), 100);
  EXPECT_EQ(h.PercentileUs(1.0), 3000);  // the largest seen, below its bucket's bound
  EXPECT_DOUBLE_EQ(h.MeanUs(), (98 * 70 + 100 + 3000) / 100.0);
  EXPECT_EQ(h.ToString(), "<=100us:99 <=5000us:1");
}

TEST(LatencyHistogramTest, OverflowAndMerge) {
  LatencyHistogram a, b;
  a.Add(absl::Seconds(3));
  b.Add(absl::Microseconds(1));
  a.Merge(b);
  EXPECT_EQ(a.count(), 2u);
  EXPECT_EQ(a.bucket(LatencyHistogram::kBuckets - 1), 1u);
  EXPECT_EQ(a.PercentileUs(0.5), 1);
  EXPECT_EQ(a.PercentileUs(1.0), 3e6);
  EXPECT_EQ(a.ToString(), "<=1us:1 >1000000us:1");
}

}  // namespace
}  // namespace dctk::spaxos
