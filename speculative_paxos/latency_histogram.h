// LatencyHistogram: request latencies in fixed buckets (1 us .. 1 s, 1-2-5
// steps), cheap to add to, to sum over clients and to export (the bucket
// bounds are Prometheus-style upper bounds).
//
// Example:
//   LatencyHistogram h;
//   h.Add(absl::Microseconds(70));
//   double p99 = h.PercentileUs(0.99);  // upper bound of the bucket holding it
#ifndef DCTK_SPECULATIVE_PAXOS_LATENCY_HISTOGRAM_H_
#define DCTK_SPECULATIVE_PAXOS_LATENCY_HISTOGRAM_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace dctk::spaxos {

class LatencyHistogram {
 public:
  // Upper bounds in microseconds; one more bucket holds everything above.
  static constexpr std::array<double, 19> kBoundsUs = {
      1,    2,    5,     10,    20,    50,     100,    200,    500,   1000,
      2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000, 1000000};
  static constexpr size_t kBuckets = kBoundsUs.size() + 1;

  void Add(absl::Duration latency);
  void Merge(const LatencyHistogram& other);

  uint64_t count() const { return count_; }
  double sum_us() const { return sum_us_; }
  double MeanUs() const { return count_ == 0 ? 0 : sum_us_ / count_; }
  // Count in bucket i (i < kBuckets): latencies in (kBoundsUs[i-1], kBoundsUs[i]].
  uint64_t bucket(size_t i) const { return buckets_[i]; }
  // Upper bound of the bucket holding the p-quantile (0 < p <= 1); the
  // largest latency seen if that is the overflow bucket; 0 when empty.
  double PercentileUs(double p) const;
  // "<=50us:3 <=100us:120 ..." (non-empty buckets only).
  std::string ToString() const;

 private:
  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  double sum_us_ = 0;
  double max_us_ = 0;
};

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_LATENCY_HISTOGRAM_H_
