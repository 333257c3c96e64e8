#include "common/metrics/histogram.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace dctk::metrics {

// The loops below take their bounds and arrays into locals: a count written
// through counts_ may alias min_ / max_ for the compiler, which then would
// neither hoist the bounds nor vectorize.

void Histogram::Merge(const Histogram& other) {
  if (other.count_ == 0) return;
  const int first = other.FirstBucket(), last = other.LastBucket();
  uint64_t* to = counts_.data();
  const uint64_t* from = other.counts_.data();
  for (int i = first; i <= last; ++i) to[i] += from[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void Histogram::Subtract(const Histogram& earlier) {
  if (earlier.count_ == 0) return;
  CHECK_GE(count_, earlier.count_) << "Subtract: the earlier histogram holds more samples";
  const int first = earlier.FirstBucket(), last = earlier.LastBucket();
  uint64_t* to = counts_.data();
  const uint64_t* from = earlier.counts_.data();
  for (int i = first; i <= last; ++i) {
    CHECK_GE(to[i], from[i]) << "Subtract: bucket " << i
                             << " holds fewer samples than the earlier histogram";
    to[i] -= from[i];
  }
  count_ -= earlier.count_;
  sum_ -= earlier.sum_;
  if (count_ == 0) Clear();
}

void Histogram::Clear() {
  if (count_ > 0) std::fill(counts_.data() + FirstBucket(), counts_.data() + LastBucket() + 1, 0);
  count_ = 0;
  sum_ = 0;
  min_ = std::numeric_limits<uint64_t>::max();
  max_ = 0;
}

uint64_t Histogram::ValueAtQuantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const uint64_t rank =
      std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_))));
  uint64_t seen = 0;
  for (int i = FirstBucket(); i < HistogramBuckets::kCount; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      return std::min(std::max(HistogramBuckets::Representative(i), min_), max_);
    }
  }
  return max_;
}

uint64_t Histogram::CountAtOrBelow(uint64_t v) const {
  if (count_ == 0) return 0;
  const int first = FirstBucket(), last = std::min(HistogramBuckets::Index(v), LastBucket());
  const uint64_t* counts = counts_.data();
  uint64_t n = 0;
  for (int i = first; i <= last; ++i) n += counts[i];
  return n;
}

HistogramData Histogram::ToProto() const {
  HistogramData data;
  data.set_sub_bucket_bits(HistogramBuckets::kSubBucketBits);
  for (int i = 0; i < HistogramBuckets::kCount; ++i) {
    if (counts_[i] == 0) continue;
    data.add_bucket(i);
    data.add_count(counts_[i]);
  }
  data.set_sum(sum_);
  data.set_min(min());
  data.set_max(max_);
  return data;
}

absl::StatusOr<Histogram> Histogram::FromProto(const HistogramData& data) {
  if (data.sub_bucket_bits() != HistogramBuckets::kSubBucketBits) {
    return absl::InvalidArgumentError(
        absl::StrCat("histogram data has sub_bucket_bits ", data.sub_bucket_bits(), ", want ",
                     HistogramBuckets::kSubBucketBits));
  }
  if (data.bucket_size() != data.count_size()) {
    return absl::InvalidArgumentError(absl::StrCat("histogram data has ", data.bucket_size(),
                                                   " buckets but ", data.count_size(),
                                                   " counts"));
  }
  Histogram h;
  for (int i = 0; i < data.bucket_size(); ++i) {
    if (data.bucket(i) >= static_cast<uint32_t>(HistogramBuckets::kCount)) {
      return absl::InvalidArgumentError(
          absl::StrCat("histogram data bucket[", i, "] = ", data.bucket(i), " is out of range"));
    }
    // Merge and Subtract rely on every sample lying between min and max.
    const int b = static_cast<int>(data.bucket(i));
    if (data.count(i) > 0 &&
        (b < HistogramBuckets::Index(data.min()) || b > HistogramBuckets::Index(data.max()))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "histogram data bucket[", i, "] = ", b, " (values ", HistogramBuckets::Lowest(b), "..",
          HistogramBuckets::Highest(b), ") lies outside min ", data.min(), " .. max ", data.max()));
    }
    h.counts_[data.bucket(i)] += data.count(i);
    h.count_ += data.count(i);
  }
  h.sum_ = data.sum();
  if (h.count_ > 0) {
    h.min_ = data.min();
    h.max_ = data.max();
  }
  return h;
}

ConcurrentHistogram::~ConcurrentHistogram() {
  for (auto& s : shards_) delete s.load(std::memory_order_acquire);
}

namespace {

// Shard slots in use by live threads, one bit each. A thread takes the lowest
// free slot on its first Record and frees it when it exits, so up to kShards
// live threads never share a shard, however many threads came and went.
std::atomic<uint32_t> slots_in_use{0};
std::atomic<uint32_t> overflow_next{0};

class SlotLease {
 public:
  explicit SlotLease(int slots) {
    uint32_t used = slots_in_use.load(std::memory_order_relaxed);
    while (true) {
      const int free = __builtin_ctz(~used);
      if (free >= slots) break;
      if (slots_in_use.compare_exchange_weak(used, used | (1u << free),
                                             std::memory_order_relaxed)) {
        slot_ = free;
        owned_ = true;
        return;
      }
    }
    // More live threads than slots: share one, round robin.
    slot_ = overflow_next.fetch_add(1, std::memory_order_relaxed) % slots;
  }
  ~SlotLease() {
    if (owned_) slots_in_use.fetch_and(~(1u << slot_), std::memory_order_relaxed);
  }
  int slot() const { return slot_; }

 private:
  int slot_ = 0;
  bool owned_ = false;
};

}  // namespace

int ConcurrentHistogram::ThisThreadSlot() {
  static_assert(kShards < 32, "slots_in_use has one bit per shard");
  thread_local const SlotLease lease(kShards);
  return lease.slot();
}

ConcurrentHistogram::Shard& ConcurrentHistogram::AddShard(int slot) {
  auto fresh = std::make_unique<Shard>();
  Shard* expected = nullptr;
  if (shards_[slot].compare_exchange_strong(expected, fresh.get(), std::memory_order_acq_rel)) {
    return *fresh.release();
  }
  return *expected;  // Another thread of this slot won the race.
}

void ConcurrentHistogram::Merge(const Histogram& h) {
  if (h.count_ == 0) return;
  Shard& s = ShardForThisThread();
  const int first = h.FirstBucket(), last = h.LastBucket();
  for (int i = first; i <= last; ++i) {
    if (h.counts_[i] != 0) s.counts[i].fetch_add(h.counts_[i], std::memory_order_relaxed);
  }
  s.sum.fetch_add(h.sum_, std::memory_order_relaxed);
  Extend(s, h.min_, h.max_);
}

Histogram ConcurrentHistogram::Snapshot() const {
  Histogram h;
  for (const auto& slot : shards_) {
    const Shard* s = slot.load(std::memory_order_acquire);
    if (s == nullptr) continue;
    for (int i = 0; i < HistogramBuckets::kCount; ++i) {
      const uint64_t n = s->counts[i].load(std::memory_order_relaxed);
      h.counts_[i] += n;
      h.count_ += n;
    }
    h.sum_ += s->sum.load(std::memory_order_relaxed);
    h.min_ = std::min(h.min_, s->min.load(std::memory_order_relaxed));
    h.max_ = std::max(h.max_, s->max.load(std::memory_order_relaxed));
  }
  // A sample being recorded now may be in its bucket before min/max see it;
  // keep min/max consistent with the buckets.
  for (int i = 0; h.count_ > 0 && i < HistogramBuckets::kCount; ++i) {
    if (h.counts_[i] == 0) continue;
    h.min_ = std::min(h.min_, HistogramBuckets::Highest(i));
    break;
  }
  for (int i = HistogramBuckets::kCount - 1; h.count_ > 0 && i >= 0; --i) {
    if (h.counts_[i] == 0) continue;
    h.max_ = std::max(h.max_, HistogramBuckets::Lowest(i));
    break;
  }
  return h;
}

}  // namespace dctk::metrics
