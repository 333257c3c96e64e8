#include "common/metrics/histogram.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
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

// The sample at quantile q: rank ceil(q * n), at least 1, of sorted `s`.
uint64_t ExactAt(const std::vector<uint64_t>& sorted, double q) {
  return sorted[std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * sorted.size()))) - 1];
}

// What the fixed 1-2-5 bucket histogram this one replaced in spaxos's
// ClientStats (1 us .. 1 s, 20 buckets) reported: the upper bound of the
// bucket holding the sample, or the largest sample if that is smaller.
uint64_t OneTwoFiveBound(uint64_t exact, uint64_t max) {
  for (uint64_t decade = 1000; decade <= 1'000'000'000; decade *= 10) {
    for (uint64_t m : {1, 2, 5}) {
      if (m * decade >= exact) return std::min(m * decade, max);
    }
  }
  return max;
}

// Real request latencies of spaxos_client (testdata: 2016 completions on
// loopback): its p50 / p99 come from this histogram now, where they were
// exact (a sorted vector) and its whole-run histogram had 1-2-5 buckets.
// Within 0.4% of exact (0.3 us at p90 here), where the 1-2-5 bounds are
// off by 10-100% (18 us at p90, 88 us at p50).
TEST(HistogramTest, RecordedClientLatenciesFinerThanOneTwoFiveBuckets) {
  std::ifstream in("common/metrics/testdata/spaxos_client_latency_ns.txt");
  ASSERT_TRUE(in) << "testdata/spaxos_client_latency_ns.txt not found";
  std::vector<uint64_t> s;
  Histogram h;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    s.push_back(std::stoull(line));
    h.Record(s.back());
  }
  ASSERT_EQ(s.size(), 2016u);
  std::sort(s.begin(), s.end());
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const double exact = ExactAt(s, q);
    const double got = h.ValueAtQuantile(q);
    const double old = OneTwoFiveBound(ExactAt(s, q), s.back());
    std::cout << "q=" << q << " exact " << exact / 1e3 << " us, histogram " << got / 1e3
              << " us, 1-2-5 bound " << old / 1e3 << " us\n";
    EXPECT_LE(std::abs(got - exact), exact * Histogram::kMaxRelativeError) << "q=" << q;
    EXPECT_LT(std::abs(got - exact), old - exact) << "q=" << q;
  }
}

// The test of that 1-2-5 histogram, here: 70 us is reported as 70 us (there
// 100 us, its bucket's bound), the largest sample exactly, the mean exactly.
TEST(HistogramTest, LatencyWithinItsBucketNotAtItsBound) {
  Histogram h;
  for (int i = 0; i < 98; ++i) h.Record(70'000);
  h.Record(100'000);
  h.Record(3'000'000);
  EXPECT_NEAR(h.ValueAtQuantile(0.5), 70'000, 70'000 * Histogram::kMaxRelativeError);
  EXPECT_NEAR(h.ValueAtQuantile(0.99), 100'000, 100'000 * Histogram::kMaxRelativeError);
  EXPECT_EQ(h.ValueAtQuantile(1.0), 3'000'000u);
  EXPECT_DOUBLE_EQ(h.mean(), (98 * 70'000 + 100'000 + 3'000'000) / 100.0);
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

TEST(HistogramTest, MergeOfEmptyAndIntoEmpty) {
  Histogram h = Random(9, 1'000);
  Histogram sum;
  sum.Merge(Histogram());
  ExpectSame(sum, Histogram());
  sum.Merge(h);
  ExpectSame(sum, h);
}

TEST(HistogramTest, SubtractLeavesTheSamplesSinceTheEarlierCopy) {
  Histogram h = Random(1, 10'000);
  const Histogram earlier = h;
  std::mt19937_64 rng(2);
  std::lognormal_distribution<double> d(12, 1);
  std::vector<uint64_t> since;
  Histogram only_since;
  for (int i = 0; i < 10'000; ++i) {
    since.push_back(static_cast<uint64_t>(d(rng)));
    h.Record(since.back());
    only_since.Record(since.back());
  }
  h.Subtract(earlier);
  EXPECT_EQ(h.count(), only_since.count());
  EXPECT_EQ(h.sum(), only_since.sum());
  for (int i = 0; i < B::kCount; ++i) ASSERT_EQ(h.bucket_count(i), only_since.bucket_count(i)) << i;
  // min / max stay those of all samples; the quantiles are the window's.
  EXPECT_EQ(h.min(), earlier.min());
  std::sort(since.begin(), since.end());
  for (double q : {0.01, 0.5, 0.99}) {
    const double exact = ExactAt(since, q);
    EXPECT_LE(std::abs(h.ValueAtQuantile(q) - exact), exact * Histogram::kMaxRelativeError);
  }
  // Usable again: a merge and a proto round trip keep the samples.
  Histogram sum;
  sum.Merge(h);
  EXPECT_EQ(sum.count(), only_since.count());
  absl::StatusOr<Histogram> back = Histogram::FromProto(h.ToProto());
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSame(*back, h);
}

TEST(HistogramTest, SubtractingEverythingEmpties) {
  Histogram h = Random(3, 1'000);
  h.Subtract(Histogram(h));
  ExpectSame(h, Histogram());
  h.Record(5);
  EXPECT_EQ(h.min(), 5u);
  EXPECT_EQ(h.max(), 5u);
}

TEST(HistogramDeathTest, SubtractingSamplesNeverRecordedDies) {
  Histogram h;
  h.Record(1'000);
  Histogram other;
  other.Record(2'000);
  EXPECT_DEATH(h.Subtract(other), "holds fewer samples");
  other.Record(1'000);
  EXPECT_DEATH(h.Subtract(other), "holds more samples");
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
  // A sample outside [min, max]: Merge would miss it.
  bad = h.ToProto();
  bad.set_min(B::Highest(bad.bucket(0)) + 1);
  absl::StatusOr<Histogram> outside = Histogram::FromProto(bad);
  ASSERT_FALSE(outside.ok());
  EXPECT_NE(outside.status().message().find("bucket[0]"), std::string::npos) << outside.status();
  bad = h.ToProto();
  bad.set_max(bad.min());
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

TEST(ConcurrentHistogramTest, MergeAddsAHistogramsSamples) {
  ConcurrentHistogram shared;
  Histogram expected;
  for (uint64_t v : {3u, 70'000u, 9'000'000u}) {
    shared.Record(v);
    expected.Record(v);
  }
  const Histogram part = Random(4, 5'000);
  std::thread other([&] { shared.Merge(part); });  // another thread's shard
  other.join();
  shared.Merge(Histogram());
  expected.Merge(part);
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
