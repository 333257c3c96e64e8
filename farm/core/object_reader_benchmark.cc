// ReadLockFree (one-sided read + version check + payload copy-out) on the shm
// fabric for 64 B-4 KB objects, against a raw fabric read of the same bytes.
//
//   bazel run -c opt //farm/core:object_reader_benchmark
#include <memory>
#include <vector>

#include "benchmark/benchmark.h"
#include "farm/core/object_reader.h"
#include "farm/fabric/shm_fabric.h"

namespace dctk::farm {
namespace {

using fabric::ShmFabric;

void BM_ReadLockFree(benchmark::State& state) {
  ShmFabric::Options o;
  o.machine_id = 2;
  auto target = std::move(*ShmFabric::Create(o));
  o.machine_id = 1;
  auto reader_machine = std::move(*ShmFabric::Create(o));
  auto region = *target->Register(1 << 20);
  (void)reader_machine->Connect(2, target->endpoint());
  RegionTable table;
  (void)table.Upsert({5, region.size, {{2, region.key}}});
  RegionTable::Cache cache(&table);
  auto queue = std::move(*reader_machine->CreateQueue());
  auto reader = std::move(*ObjectReader<ShmFabric>::Create(*reader_machine, queue.get(), &cache));
  const size_t len = static_cast<size_t>(state.range(0));
  std::vector<uint8_t> value(len, 3), out(len);
  const size_t lines = ObjectLines(len);
  for (uint32_t off = 0; off + ObjectBytes(len) <= region.size; off += 8192) {
    auto* obj = static_cast<uint8_t*>(region.base) + off;
    InitObject(obj, lines);
    ObjectWriter::TryLock(obj, 1);
    ObjectWriter::Write(obj, lines, value.data(), len);
    ObjectWriter::Unlock(obj, true);
  }
  uint32_t off = 0;
  for (auto _ : state) {
    if (!reader->ReadLockFree(GlobalAddress(5, off), out.data(), len).ok()) {
      state.SkipWithError("read failed");
      break;
    }
    benchmark::DoNotOptimize(out.data());
    off = (off + 8192) % (1 << 20);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["reads_per_object"] =
      static_cast<double>(reader->stats().reads) / std::max<uint64_t>(1, reader->stats().objects);
}
BENCHMARK(BM_ReadLockFree)->RangeMultiplier(4)->Range(64, 4096);

}  // namespace
}  // namespace dctk::farm
