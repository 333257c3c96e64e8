#include "speculative_paxos/latency_histogram.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace dctk::spaxos {

void LatencyHistogram::Add(absl::Duration latency) {
  const double us = std::max(0.0, absl::ToDoubleMicroseconds(latency));
  const size_t i = std::lower_bound(kBoundsUs.begin(), kBoundsUs.end(), us) - kBoundsUs.begin();
  ++buckets_[i];
  ++count_;
  sum_us_ += us;
  max_us_ = std::max(max_us_, us);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < kBuckets; ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_us_ += other.sum_us_;
  max_us_ = std::max(max_us_, other.max_us_);
}

double LatencyHistogram::PercentileUs(double p) const {
  if (count_ == 0) return 0;
  const auto rank = static_cast<uint64_t>(std::ceil(std::clamp(p, 0.0, 1.0) * count_));
  uint64_t seen = 0;
  for (size_t i = 0; i < kBoundsUs.size(); ++i) {
    seen += buckets_[i];
    if (seen >= std::max<uint64_t>(rank, 1)) return std::min(kBoundsUs[i], max_us_);
  }
  return max_us_;
}

std::string LatencyHistogram::ToString() const {
  std::string out;
  for (size_t i = 0; i < kBuckets; ++i) {
    if (buckets_[i] == 0) continue;
    if (!out.empty()) out += " ";
    if (i < kBoundsUs.size()) {
      absl::StrAppend(&out, "<=", static_cast<int64_t>(kBoundsUs[i]), "us:", buckets_[i]);
    } else {
      absl::StrAppend(&out, ">", static_cast<int64_t>(kBoundsUs.back()), "us:", buckets_[i]);
    }
  }
  return out;
}

}  // namespace dctk::spaxos
