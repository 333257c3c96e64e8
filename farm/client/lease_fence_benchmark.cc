// The cost a FarmClient adds to every transaction Read, Alloc and Commit for
// self-fencing (LeaseFence::Open(Now()): one monotonic clock read, one atomic
// load), against the clock read alone. Numbers: farm/README.md, "Precise
// membership".
//
//   bazel run -c opt //farm/client:lease_fence_benchmark
#include <atomic>

#include "benchmark/benchmark.h"
#include "farm/client/lease_fence.h"

namespace dctk::farm::client {
namespace {

void BM_ClockRead(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(LeaseFence::Now());
}
BENCHMARK(BM_ClockRead);

void BM_FenceOpen(benchmark::State& state) {
  LeaseFence fence;
  fence.Renewed(LeaseFence::Now(), absl::Hours(1));
  for (auto _ : state) benchmark::DoNotOptimize(fence.Open(LeaseFence::Now()));
}
BENCHMARK(BM_FenceOpen);

// With the lease thread renewing meanwhile (the cache line moves).
void BM_FenceOpenWhileRenewed(benchmark::State& state) {
  static LeaseFence fence;
  if (state.thread_index() == 0) {
    fence.Renewed(LeaseFence::Now(), absl::Hours(1));
    for (auto _ : state) benchmark::DoNotOptimize(fence.Open(LeaseFence::Now()));
  } else {
    for (auto _ : state) fence.Renewed(LeaseFence::Now(), absl::Hours(1));
  }
}
BENCHMARK(BM_FenceOpenWhileRenewed)->Threads(2);

}  // namespace
}  // namespace dctk::farm::client
