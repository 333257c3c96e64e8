// Cost of recording one latency sample: dctk's Histogram (one thread) and
// ConcurrentHistogram (shared, lock-free) against the baseline of
// prometheus-cpp's Histogram::Observe with the same 22 bucket bounds that
// //common/metrics exports. Samples are a fixed lognormal stream (median
// 20 us) so every recorder sees the same values.
#include <cmath>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/metrics/histogram.h"
#include "common/metrics/registry.h"
#include "prometheus/histogram.h"

namespace dctk::metrics {
namespace {

constexpr size_t kSamples = 4096;  // Power of two: index with a mask.

const std::vector<uint64_t>& SamplesNs() {
  static const std::vector<uint64_t> samples = [] {
    std::mt19937_64 rng(42);
    std::lognormal_distribution<double> d(std::log(20'000.0), 1.0);
    std::vector<uint64_t> s(kSamples);
    for (auto& v : s) v = static_cast<uint64_t>(d(rng));
    return s;
  }();
  return samples;
}

void BM_Histogram_Record(benchmark::State& state) {
  const std::vector<uint64_t>& samples = SamplesNs();
  Histogram h;
  size_t i = 0;
  for (auto _ : state) {
    h.Record(samples[i++ & (kSamples - 1)]);
  }
  benchmark::DoNotOptimize(h.count());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Histogram_Record);

void BM_ConcurrentHistogram_Record(benchmark::State& state) {
  static ConcurrentHistogram* shared = nullptr;
  if (state.thread_index() == 0) shared = new ConcurrentHistogram;
  const std::vector<uint64_t>& samples = SamplesNs();
  size_t i = state.thread_index() * 1000;
  for (auto _ : state) {
    shared->Record(samples[i++ & (kSamples - 1)]);
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    delete shared;
    shared = nullptr;
  }
}
BENCHMARK(BM_ConcurrentHistogram_Record)->Threads(1)->Threads(2);

void BM_PrometheusHistogram_Observe(benchmark::State& state) {
  static prometheus::Histogram* shared = nullptr;
  if (state.thread_index() == 0) {
    shared = new prometheus::Histogram(prometheus::Histogram::BucketBoundaries(
        kLatencyBoundsSeconds.begin(), kLatencyBoundsSeconds.end()));
  }
  std::vector<double> seconds;
  for (uint64_t ns : SamplesNs()) seconds.push_back(ns * 1e-9);
  size_t i = state.thread_index() * 1000;
  for (auto _ : state) {
    shared->Observe(seconds[i++ & (kSamples - 1)]);
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    delete shared;
    shared = nullptr;
  }
}
BENCHMARK(BM_PrometheusHistogram_Observe)->Threads(1)->Threads(2);

void BM_Histogram_ValueAtQuantile(benchmark::State& state) {
  Histogram h;
  for (uint64_t v : SamplesNs()) h.Record(v);
  for (auto _ : state) benchmark::DoNotOptimize(h.ValueAtQuantile(0.99));
}
BENCHMARK(BM_Histogram_ValueAtQuantile);

// Adding one client's latencies to a sum (1,000 samples of the stream).
void BM_Histogram_Merge(benchmark::State& state) {
  Histogram part;
  for (size_t i = 0; i < 1000; ++i) part.Record(SamplesNs()[i]);
  Histogram sum;
  for (auto _ : state) sum.Merge(part);
  benchmark::DoNotOptimize(sum.count());
}
BENCHMARK(BM_Histogram_Merge);

void BM_ConcurrentHistogram_Snapshot(benchmark::State& state) {
  ConcurrentHistogram h;
  for (uint64_t v : SamplesNs()) h.Record(v);
  for (auto _ : state) benchmark::DoNotOptimize(h.Snapshot().count());
}
BENCHMARK(BM_ConcurrentHistogram_Snapshot);

}  // namespace
}  // namespace dctk::metrics
