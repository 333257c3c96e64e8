// Per-request cost of the log: the hash chain step (ChainHash) and Append
// (chain step, duplicate index, entry reuse), for op sizes the benchmarks
// and the KV store use (0: the null app's empty op).
//
//   bazel run -c opt //speculative_paxos:log_benchmark
#include <string>

#include "benchmark/benchmark.h"
#include "speculative_paxos/log.h"

namespace dctk::spaxos {
namespace {

void BM_ChainHash(benchmark::State& state) {
  const std::string op(state.range(0), 'o');
  std::string hash = ChainHash("", 1, 1, op);
  std::string next;
  uint64_t request_id = 1;
  for (auto _ : state) {
    ChainHash(hash, 7, ++request_id, op, &next);
    hash.swap(next);
  }
  benchmark::DoNotOptimize(hash);
}
BENCHMARK(BM_ChainHash)->Arg(0)->Arg(7)->Arg(16)->Arg(64);

void BM_AppendAndCompact(benchmark::State& state) {
  const std::string op(state.range(0), 'o');
  const transport::Address client;
  Log log;
  uint64_t request_id = 0;
  for (auto _ : state) {
    ++request_id;
    LogEntry& e = log.Append(/*client_id=*/request_id % 64, request_id, op, client);
    log.Commit(e.slot);
    if (e.slot % 4096 == 0) log.CompactTo(e.slot - 2048);
  }
}
BENCHMARK(BM_AppendAndCompact)->Arg(0)->Arg(16);

}  // namespace
}  // namespace dctk::spaxos
