// Hashtable lookups on the shm fabric (16 B keys, 32 B values, uniform keys)
// at 50/75/90% occupancy: lookups/s per core, latency, reads per lookup;
// baseline in the same run: std::unordered_map lookups of the same keys.
//
//   bazel run -c opt //farm/kv:hashtable_benchmark
#include <cstring>
#include <memory>
#include <random>
#include <unordered_map>
#include <vector>

#include "absl/hash/hash.h"
#include "benchmark/benchmark.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/kv/hashtable_reader.h"
#include "farm/kv/hashtable_writer.h"

namespace dctk::farm::kv {
namespace {

using fabric::ShmFabric;

constexpr TableConfig kConfig{.buckets = 1 << 16, .overflow_blocks = 1 << 13};

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
  (void)client->Connect(2, owner->endpoint());
  auto queue = std::move(*client->CreateQueue());
  auto reader = std::move(*HashTableReader<ShmFabric>::Create(*client, queue.get(), {2, region.key, 0}, kConfig));
  std::mt19937_64 rng(1);
  for (auto _ : state) {
    auto got = reader->Lookup(keys[rng() % keys.size()]);
    benchmark::DoNotOptimize(got);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["reads_per_lookup"] = static_cast<double>(reader->reads()) / reader->lookups();
}
BENCHMARK(BM_HashTableLookup)->ArgName("occupancy_pct")->Arg(50)->Arg(75)->Arg(90);

struct KeyHash {
  size_t operator()(const Key& k) const { return absl::HashOf(std::string(k.begin(), k.end())); }
};

void BM_UnorderedMapLookup(benchmark::State& state) {
  const std::vector<Key> keys = Keys((uint64_t{kConfig.buckets} + 1) * kSlots * 9 / 10);
  std::unordered_map<Key, Value, KeyHash> map;
  for (const Key& k : keys) map[k] = Value{};
  std::mt19937_64 rng(1);
  for (auto _ : state) {
    auto it = map.find(keys[rng() % keys.size()]);
    benchmark::DoNotOptimize(it);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_UnorderedMapLookup);

}  // namespace
}  // namespace dctk::farm::kv
