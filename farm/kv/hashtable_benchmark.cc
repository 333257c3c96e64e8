// Hashtable benchmarks on the shm fabric (16 B keys, 32 B values).
//
// BM_HashTableLookup: lookups/s per core and reads per lookup at 50/75/90%
// occupancy, uniform and Zipf(0.99) keys; baseline in the same run:
// BM_UnorderedMapLookup of the same keys with the same distributions.
// BM_MultiGet / BM_SingleGets: a batch of keys over tables on 1..8 machines,
// fetched with MultiLookup (one batch of reads per machine) against the same
// keys fetched one at a time, in the same run.
// BM_RpcMultiGet / BM_RpcSingleGets: the same by RPC over the message rings
// (one request message per machine, or per key), the holders served by one
// server thread; keys/s in wall time, since the holders' CPU now counts.
//
//   bazel run -c opt //farm/kv:hashtable_benchmark
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

#include "benchmark/benchmark.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/kv/hashtable_test_util.h"

namespace dctk::farm::kv {
namespace {

using fabric::ShmFabric;
using testing::KeyHash;
using testing::ShardedTables;

constexpr TableConfig kConfig{.buckets = 1 << 16, .overflow_blocks = 1 << 13};
constexpr size_t kSamples = 1 << 20;
constexpr double kZipfTheta = 0.99;

Key MakeKey(uint64_t i) {
  Key k{};
  std::memcpy(k.data(), &i, 8);
  return k;
}

std::vector<Key> Keys(uint64_t n) {
  std::vector<Key> keys;
  for (uint64_t i = 0; i < n; ++i) keys.push_back(MakeKey(i * 7919 + 1));
  return keys;
}

// kSamples key indices in [0, n): uniform, or Zipf with rank r drawn with
// probability ~ 1/(r+1)^theta (rank r is key r, whose bucket is random).
std::vector<uint32_t> Samples(uint64_t n, bool zipf) {
  std::mt19937_64 rng(1);
  std::vector<uint32_t> out(kSamples);
  if (!zipf) {
    for (auto& s : out) s = static_cast<uint32_t>(rng() % n);
    return out;
  }
  std::vector<double> cdf(n);
  double sum = 0;
  for (uint64_t r = 0; r < n; ++r) cdf[r] = (sum += 1.0 / std::pow(static_cast<double>(r + 1), kZipfTheta));
  std::uniform_real_distribution<double> u(0, sum);
  for (auto& s : out) {
    s = static_cast<uint32_t>(std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin());
  }
  return out;
}

const char* DistName(int64_t d) { return d == 0 ? "uniform" : "zipf0.99"; }

void BM_HashTableLookup(benchmark::State& state) {
  ShmFabric::Options o;
  o.machine_id = 2;
  auto owner = std::move(*ShmFabric::Create(o));
  o.machine_id = 1;
  auto client = std::move(*ShmFabric::Create(o));
  auto region = *owner->Register(TableBytes(kConfig));
  auto writer = *HashTableWriter::Create(static_cast<uint8_t*>(region.base), kConfig);
  const std::vector<Key> keys = Keys(writer.capacity() * state.range(0) / 100);
  Value v{};
  for (const Key& k : keys) {
    if (!writer.Put(k, v).ok()) {
      state.SkipWithError("table full");
      return;
    }
  }
  const std::vector<uint32_t> samples = Samples(keys.size(), state.range(1) != 0);
  (void)client->Connect(2, owner->endpoint());
  auto queue = std::move(*client->CreateQueue());
  auto reader = std::move(*HashTableReader<ShmFabric>::Create(*client, queue.get(), {2, region.key, 0}, kConfig));
  size_t n = 0;
  for (auto _ : state) {
    auto got = reader->Lookup(keys[samples[n++ & (kSamples - 1)]]);
    benchmark::DoNotOptimize(got);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(DistName(state.range(1)));
  state.counters["reads_per_lookup"] = static_cast<double>(reader->reads()) / reader->lookups();
}
BENCHMARK(BM_HashTableLookup)
    ->ArgNames({"occupancy_pct", "zipf"})
    ->ArgsProduct({{50, 75, 90}, {0, 1}});

void BM_UnorderedMapLookup(benchmark::State& state) {
  const std::vector<Key> keys = Keys((uint64_t{kConfig.buckets} + 1) * kSlots * 9 / 10);
  std::unordered_map<Key, Value, KeyHash> map;
  for (const Key& k : keys) map[k] = Value{};
  const std::vector<uint32_t> samples = Samples(keys.size(), state.range(0) != 0);
  size_t n = 0;
  for (auto _ : state) {
    auto it = map.find(keys[samples[n++ & (kSamples - 1)]]);
    benchmark::DoNotOptimize(it);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(DistName(state.range(0)));
}
BENCHMARK(BM_UnorderedMapLookup)->ArgName("zipf")->Arg(0)->Arg(1);

// Tables on `machines` shm machines (each 1<<14 buckets at ~80%), built once
// per machine count and shared by the multi-get benchmarks.
struct Cluster {
  static constexpr TableConfig kShardConfig{.buckets = 1 << 14, .overflow_blocks = 1 << 11};
  explicit Cluster(uint32_t machines) : tables(machines, kShardConfig) {
    const uint64_t n = uint64_t{kShardConfig.buckets} * kSlots * 8 / 10 * machines;
    keys = Keys(n);
    for (const Key& k : keys) CHECK(tables.writer_for(k).Put(k, Value{}).ok());
    client = tables.Client();
  }
  static Cluster& Get(uint32_t machines) {
    static auto* clusters = new std::map<uint32_t, std::unique_ptr<Cluster>>;
    auto& c = (*clusters)[machines];
    if (c == nullptr) c = std::make_unique<Cluster>(machines);
    return *c;
  }
  // The RPC servers and client, made on first use.
  testing::RpcShards& Rpc() {
    if (rpc == nullptr) {
      rpc = std::make_unique<testing::RpcShards>(tables, kShardConfig);
      rpc_client = rpc->Client();
    }
    return *rpc;
  }
  ShardedTables tables;
  std::vector<Key> keys;
  std::unique_ptr<HashTableClient<ShmFabric>> client;
  std::unique_ptr<testing::RpcShards> rpc;
  std::unique_ptr<RpcMultiGetClient<ShmFabric>> rpc_client;
};

// Runs the holders' RPC servers on a thread for the benchmark's duration.
class ServerThread {
 public:
  explicit ServerThread(testing::RpcShards& rpc) : thread_([this, &rpc] { rpc.ServeUntil(stop_); }) {}
  ~ServerThread() {
    stop_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

void MultiGetArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "machines"});
  for (int64_t machines : {1, 2, 4, 8}) {
    for (int64_t batch : {1, 8, 32, 128}) b->Args({batch, machines});
  }
}

// Items are keys; a batch is MultiLookup of `batch` random keys.
void BM_MultiGet(benchmark::State& state) {
  Cluster& c = Cluster::Get(static_cast<uint32_t>(state.range(1)));
  const size_t batch = static_cast<size_t>(state.range(0));
  std::mt19937_64 rng(2);
  std::vector<Key> keys(batch);
  const uint64_t batches_before = c.client->stats().machine_batches, calls_before = c.client->stats().calls;
  for (auto _ : state) {
    for (Key& k : keys) k = c.keys[rng() % c.keys.size()];
    auto got = c.client->MultiLookup(keys);
    benchmark::DoNotOptimize(got);
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["machine_batches_per_call"] =
      static_cast<double>(c.client->stats().machine_batches - batches_before) /
      static_cast<double>(c.client->stats().calls - calls_before);
}
BENCHMARK(BM_MultiGet)->Apply(MultiGetArgs);

// Baseline: the same keys, one Lookup each.
void BM_SingleGets(benchmark::State& state) {
  Cluster& c = Cluster::Get(static_cast<uint32_t>(state.range(1)));
  const size_t batch = static_cast<size_t>(state.range(0));
  std::mt19937_64 rng(2);
  std::vector<Key> keys(batch);
  for (auto _ : state) {
    for (Key& k : keys) k = c.keys[rng() % c.keys.size()];
    for (const Key& k : keys) {
      auto got = c.client->Lookup(k);
      benchmark::DoNotOptimize(got);
    }
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_SingleGets)->Apply(MultiGetArgs);

// RPC: one request message per machine holding any of the batch's keys.
void BM_RpcMultiGet(benchmark::State& state) {
  Cluster& c = Cluster::Get(static_cast<uint32_t>(state.range(1)));
  ServerThread server(c.Rpc());
  const size_t batch = static_cast<size_t>(state.range(0));
  std::mt19937_64 rng(2);
  std::vector<Key> keys(batch);
  const uint64_t messages_before = c.rpc_client->messages();
  for (auto _ : state) {
    for (Key& k : keys) k = c.keys[rng() % c.keys.size()];
    auto got = c.rpc_client->MultiLookup(keys);
    benchmark::DoNotOptimize(got);
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["messages_per_call"] =
      static_cast<double>(c.rpc_client->messages() - messages_before) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_RpcMultiGet)->Apply(MultiGetArgs)->UseRealTime();

// Baseline: the same keys by RPC, one request message per key.
void BM_RpcSingleGets(benchmark::State& state) {
  Cluster& c = Cluster::Get(static_cast<uint32_t>(state.range(1)));
  ServerThread server(c.Rpc());
  const size_t batch = static_cast<size_t>(state.range(0));
  std::mt19937_64 rng(2);
  std::vector<Key> keys(batch);
  for (auto _ : state) {
    for (Key& k : keys) k = c.keys[rng() % c.keys.size()];
    for (const Key& k : keys) {
      auto got = c.rpc_client->MultiLookup(absl::MakeConstSpan(&k, 1));
      benchmark::DoNotOptimize(got);
    }
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_RpcSingleGets)->Apply(MultiGetArgs)->UseRealTime();

}  // namespace
}  // namespace dctk::farm::kv
