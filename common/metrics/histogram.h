// Log-bucketed latency histograms (HdrHistogram-like) with bounded relative error.
//
// A value v >= 256 falls in a bucket [lo, lo + 2^k) with lo >= 128 * 2^k, so the
// value a percentile query returns (the bucket's midpoint, clamped to the exact
// min and max) is within kMaxRelativeError = 1/256 (0.4%) of the true sample at
// that rank; values below 256 are exact. The whole uint64 range is covered by
// 7424 buckets, so recording never fails and never allocates.
//
// Two recorders share the layout:
//   Histogram            single-threaded value type: cheapest Record (a few
//                        plain adds), Merge, Subtract (the samples since an
//                        earlier copy), percentiles, proto round-trip for
//                        merging across processes. Give each thread its own
//                        and Merge them at the end. Merge, Subtract and Clear
//                        touch only the buckets between min and max.
//   ConcurrentHistogram  any thread may Record at once, lock-free: each live
//                        thread writes to its own shard (up to 8 threads; more
//                        share them) with relaxed atomic adds; Snapshot()
//                        merges the shards; Merge adds a Histogram's samples.
//                        This is what //common/metrics exports to Prometheus.
// Values are unitless uint64; dctk records latencies in nanoseconds.
//
// Example:
//   Histogram h;
//   for (...) h.Record(latency_ns);
//   printf("p99 %lu ns\n", h.ValueAtQuantile(0.99));
//
//   Histogram earlier = h;                 // a window: the samples since then
//   ...
//   Histogram window = h;
//   window.Subtract(earlier);
//
//   ConcurrentHistogram shared;            // e.g. a component's metric
//   shared.Record(ns);                     // from any thread
//   Histogram now = shared.Snapshot();
#ifndef DCTK_COMMON_METRICS_HISTOGRAM_H_
#define DCTK_COMMON_METRICS_HISTOGRAM_H_

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/metrics/histogram.pb.h"

namespace dctk::metrics {

// The bucket layout: 2^kSubBucketBits buckets per power of two.
class HistogramBuckets {
 public:
  static constexpr int kSubBucketBits = 7;
  static constexpr uint64_t kSubBuckets = uint64_t{1} << kSubBucketBits;
  static constexpr int kCount = (64 - kSubBucketBits + 1) * kSubBuckets;

  static int Index(uint64_t v) {
    const int msb = 63 - __builtin_clzll(v | 1);
    if (msb < kSubBucketBits) return static_cast<int>(v);
    const int shift = msb - kSubBucketBits;
    return static_cast<int>((shift + 1) * kSubBuckets + ((v >> shift) - kSubBuckets));
  }
  // Smallest and largest value in bucket `i`.
  static uint64_t Lowest(int i) {
    if (i < static_cast<int>(kSubBuckets)) return i;
    const int shift = i / kSubBuckets - 1;
    return (kSubBuckets + i % kSubBuckets) << shift;
  }
  static uint64_t Highest(int i) { return Lowest(i) + (Width(i) - 1); }
  static uint64_t Width(int i) {
    return i < static_cast<int>(kSubBuckets) ? 1 : uint64_t{1} << (i / kSubBuckets - 1);
  }
  // The value reported for samples in bucket `i`: its midpoint.
  static uint64_t Representative(int i) { return Lowest(i) + (Width(i) - 1) / 2; }
};

class Histogram {
 public:
  // Bound on |reported - exact| / exact for any percentile.
  static constexpr double kMaxRelativeError = 1.0 / (2 * HistogramBuckets::kSubBuckets);

  Histogram() : counts_(HistogramBuckets::kCount, 0) {}

  void Record(uint64_t v) { RecordN(v, 1); }
  void RecordN(uint64_t v, uint64_t n) {
    counts_[HistogramBuckets::Index(v)] += n;
    count_ += n;
    sum_ += v * n;
    min_ = std::min(min_, v);
    max_ = std::max(max_, v);
  }
  // Adds `other`'s samples: the result equals having recorded both streams here.
  void Merge(const Histogram& other);
  // Removes the samples of `earlier`, an earlier copy of this histogram (or
  // of one merged into it): the buckets, count and sum then hold the samples
  // recorded since. min() and max() stay those of every sample (the extremes
  // of the rest are not known), so percentiles keep their error bound but
  // p0 / p100 are no longer exact; empty again, min() and max() are 0.
  // CHECK-fails if `earlier` holds samples this histogram does not.
  void Subtract(const Histogram& earlier);
  void Clear();

  uint64_t count() const { return count_; }
  // Sum of recorded values (wraps past 2^64).
  uint64_t sum() const { return sum_; }
  // Exact smallest / largest recorded value; 0 if empty.
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0 : static_cast<double>(sum_) / count_; }

  // The value at quantile q in [0, 1] (0.99 = p99): the sample of rank
  // ceil(q * count) (at least 1) in sorted order, within kMaxRelativeError.
  // 0 if empty.
  uint64_t ValueAtQuantile(double q) const;
  // Number of samples in buckets up to and including the one holding `v`
  // (so it may count samples up to v * (1 + 2 * kMaxRelativeError)).
  uint64_t CountAtOrBelow(uint64_t v) const;
  // Samples in bucket `i` (see HistogramBuckets).
  uint64_t bucket_count(int i) const { return counts_[i]; }

  HistogramData ToProto() const;
  // InvalidArgument if `data` has another bucket layout or bad bucket indexes.
  static absl::StatusOr<Histogram> FromProto(const HistogramData& data);

 private:
  friend class ConcurrentHistogram;

  // Every non-empty bucket lies in [FirstBucket(), LastBucket()] (given count_ > 0).
  int FirstBucket() const { return HistogramBuckets::Index(min_); }
  int LastBucket() const { return HistogramBuckets::Index(max_); }

  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = std::numeric_limits<uint64_t>::max();
  uint64_t max_ = 0;
};

class ConcurrentHistogram {
 public:
  ConcurrentHistogram() = default;
  ~ConcurrentHistogram();
  ConcurrentHistogram(const ConcurrentHistogram&) = delete;
  ConcurrentHistogram& operator=(const ConcurrentHistogram&) = delete;

  // Thread-safe and lock-free. A thread's first Record on this histogram may
  // allocate its shard; later ones do not.
  void Record(uint64_t v) {
    Shard& s = ShardForThisThread();
    s.counts[HistogramBuckets::Index(v)].fetch_add(1, std::memory_order_relaxed);
    s.sum.fetch_add(v, std::memory_order_relaxed);
    Extend(s, v, v);
  }
  // Adds `h`'s samples, as Record of each would (thread-safe, lock-free).
  void Merge(const Histogram& h);

  // The samples recorded so far. Taken while others record, it holds each
  // sample either fully or not at all in the bucket counts; sum may be ahead
  // or behind by the samples in flight.
  Histogram Snapshot() const;

 private:
  // A shard is 59 KiB, allocated when a thread holding its slot first records.
  static constexpr int kShards = 8;
  struct alignas(64) Shard {
    std::array<std::atomic<uint64_t>, HistogramBuckets::kCount> counts{};
    std::atomic<uint64_t> sum{0};
    std::atomic<uint64_t> min{std::numeric_limits<uint64_t>::max()};
    std::atomic<uint64_t> max{0};
  };

  // Widens the shard's min / max to cover [lo, hi]. They are written only when
  // they change, which is rare after warm-up.
  static void Extend(Shard& s, uint64_t lo, uint64_t hi) {
    uint64_t m = s.max.load(std::memory_order_relaxed);
    while (hi > m && !s.max.compare_exchange_weak(m, hi, std::memory_order_relaxed)) {
    }
    m = s.min.load(std::memory_order_relaxed);
    while (lo < m && !s.min.compare_exchange_weak(m, lo, std::memory_order_relaxed)) {
    }
  }
  static int ThisThreadSlot();
  Shard& ShardForThisThread() {
    Shard* s = shards_[ThisThreadSlot()].load(std::memory_order_acquire);
    return s != nullptr ? *s : AddShard(ThisThreadSlot());
  }
  Shard& AddShard(int slot);

  std::array<std::atomic<Shard*>, kShards> shards_{};
};

}  // namespace dctk::metrics

#endif  // DCTK_COMMON_METRICS_HISTOGRAM_H_
