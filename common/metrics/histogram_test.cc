#include "common/metrics/histogram.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace dctk::metrics {
namespace {

using B = HistogramBuckets;

TEST(HistogramBucketsTest, LayoutIsContiguousAndCoversUint64) {
  EXPECT_EQ(B::Lowest(0), 0u);
  for (int i = 1; i < B::kCount; ++i) {
    ASSERT_EQ(B::Lowest(i), B::Highest(i - 1) + 1) << "bucket " << i;
  }
  EXPECT_EQ(B::Highest(B::kCount - 1), std::numeric_limits<uint64_t>::max());
  for (int i = 0; i < B::kCount; ++i) {
    ASSERT_EQ(B::Index(B::Lowest(i)), i);
    ASSERT_EQ(B::Index(B::Highest(i)), i);
    // The bucket width bounds the relative error of its midpoint.
    if (B::Width(i) > 1) {
      ASSERT_LE(static_cast<double>(B::Width(i)) / 2 / B::Lowest(i),
                Histogram::kMaxRelativeError);
    }
  }
}

TEST(HistogramTest, EmptyHistogram) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
  EXPECT_EQ(h.ValueAtQuantile(0.99), 0u);
}

TEST(HistogramTest, SmallValuesAreExact) {
  Histogram h;
  for (uint64_t v = 1; v <= 100; ++v) h.Record(v);
  EXPECT_EQ(h.count(), 100u);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_EQ(h.max(), 100u);
  EXPECT_EQ(h.sum(), 5050u);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
  EXPECT_EQ(h.ValueAtQuantile(0.5), 50u);
  EXPECT_EQ(h.ValueAtQuantile(0.99), 99u);
  EXPECT_EQ(h.ValueAtQuantile(0), 1u);
  EXPECT_EQ(h.ValueAtQuantile(1), 100u);
  EXPECT_EQ(h.CountAtOrBelow(10), 10u);
}

// Percentiles against the exact sorted-sample percentile (same rank rule).
void ExpectAccurate(std::vector<uint64_t> samples) {
  Histogram h;
  for (uint64_t v : samples) h.Record(v);
  std::sort(samples.begin(), samples.end());
  EXPECT_EQ(h.min(), samples.front());
  EXPECT_EQ(h.max(), samples.back());
  for (double q : {0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0}) {
    const uint64_t rank =
        std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * samples.size())));
    const double exact = samples[rank - 1];
    const double got = h.ValueAtQuantile(q);
    EXPECT_LE(std::abs(got - exact), exact * Histogram::kMaxRelativeError)
        << "q=" << q << " exact=" << exact << " got=" << got;
  }
}

TEST(HistogramTest, AccurateOnUniform) {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<uint64_t> d(0, 10'000'000);
  std::vector<uint64_t> s(200'000);
  for (auto& v : s) v = d(rng);
  ExpectAccurate(s);
}

TEST(HistogramTest, AccurateOnLognormalLatencies) {
  std::mt19937_64 rng(2);
  std::lognormal_distribution<double> d(std::log(20'000.0), 1.0);  // ~20 us median, long tail
  std::vector<uint64_t> s(200'000);
  for (auto& v : s) v = static_cast<uint64_t>(d(rng));
  ExpectAccurate(s);
}

TEST(HistogramTest, AccurateOnExponentialAndHugeValues) {
  std::mt19937_64 rng(3);
  std::exponential_distribution<double> d(1e-6);
  std::vector<uint64_t> s(100'000);
  for (auto& v : s) v = static_cast<uint64_t>(d(rng));
  s.push_back(std::numeric_limits<uint64_t>::max());
  s.push_back(uint64_t{1} << 62);
  ExpectAccurate(s);
}

Histogram Random(uint64_t seed, int n) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> d(10, 2);
  Histogram h;
  for (int i = 0; i < n; ++i) h.Record(static_cast<uint64_t>(d(rng)));
  return h;
}

void ExpectSame(const Histogram& a, const Histogram& b) {
  EXPECT_EQ(a.count(), b.count());
  EXPECT_EQ(a.sum(), b.sum());
  EXPECT_EQ(a.min(), b.min());
  EXPECT_EQ(a.max(), b.max());
  for (int i = 0; i < B::kCount; ++i) ASSERT_EQ(a.bucket_count(i), b.bucket_count(i)) << i;
}

TEST(HistogramTest, MergeEqualsRecordingEverythingInOne) {
  Histogram all;
  Histogram merged;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    Histogram part = Random(seed, 10'000);
    std::mt19937_64 rng(seed);
    std::lognormal_distribution<double> d(10, 2);
    for (int i = 0; i < 10'000; ++i) all.Record(static_cast<uint64_t>(d(rng)));
    merged.Merge(part);
  }
  ExpectSame(all, merged);
  EXPECT_EQ(merged.ValueAtQuantile(0.99), all.ValueAtQuantile(0.99));
}

TEST(HistogramTest, ProtoRoundTripMergesAcrossProcesses) {
  Histogram h = Random(7, 5'000);
  absl::StatusOr<Histogram> back = Histogram::FromProto(h.ToProto());
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSame(h, *back);

  HistogramData bad = h.ToProto();
  bad.set_sub_bucket_bits(5);
  EXPECT_FALSE(Histogram::FromProto(bad).ok());
  bad = h.ToProto();
  bad.set_bucket(0, B::kCount);
  EXPECT_FALSE(Histogram::FromProto(bad).ok());
}

TEST(HistogramTest, ClearEmpties) {
  Histogram h = Random(8, 100);
  h.Clear();
  ExpectSame(h, Histogram());
}

TEST(ConcurrentHistogramTest, ThreadsRecordingAtOnceLoseNothing) {
  constexpr int kThreads = 12;  // More than the shard count: shards are shared.
  constexpr int kPerThread = 20'000;
  ConcurrentHistogram shared;
  Histogram expected;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) expected.Record(t * 1000 + i);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&shared, t] {
      for (int i = 0; i < kPerThread; ++i) shared.Record(t * 1000 + i);
    });
  }
  // Snapshots taken while recording are internally consistent.
  for (int i = 0; i < 20; ++i) {
    Histogram partial = shared.Snapshot();
    EXPECT_LE(partial.count(), expected.count());
    EXPECT_LE(partial.min(), partial.max());
  }
  for (auto& th : threads) th.join();
  ExpectSame(shared.Snapshot(), expected);
}

TEST(ConcurrentHistogramTest, EmptySnapshot) {
  ConcurrentHistogram h;
  Histogram s = h.Snapshot();
  EXPECT_EQ(s.count(), 0u);
  EXPECT_EQ(s.min(), 0u);
}

}  // namespace
}  // namespace dctk::metrics
