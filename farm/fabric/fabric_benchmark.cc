// One-sided READ latency and reads/s per core on the shm fabric, 64 B-4 KB,
// against the physical limits measured in the same run: memcpy of the same
// size and a cache-line ping-pong between two cores; and on the net fabric
// against a loopback TCP round trip. Single-threaded reads:
// items_per_second is reads/s for one core; time per iteration is latency.
//
//   bazel run -c opt //farm/fabric:fabric_benchmark
#include <atomic>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "benchmark/benchmark.h"
#include "farm/fabric/internal/tcp_exchange.h"
#include "farm/fabric/net_fabric.h"
#include "farm/fabric/shm_fabric.h"

namespace dctk::farm::fabric {
namespace {

struct Pair {
  std::unique_ptr<ShmFabric> target, reader;  // reader goes first on destruction
  MemoryRegion region;
  std::unique_ptr<ShmFabric::Queue> queue;
  Pair() {
    ShmFabric::Options o;
    o.machine_id = 1;
    reader = std::move(*ShmFabric::Create(o));
    o.machine_id = 2;
    target = std::move(*ShmFabric::Create(o));
    region = *target->Register(1 << 20);
    std::memset(region.base, 7, region.size);
    (void)reader->Connect(2, target->endpoint());
    queue = std::move(*reader->CreateQueue());
  }
};

void BM_ShmRead(benchmark::State& state) {
  Pair p;
  const uint32_t len = static_cast<uint32_t>(state.range(0));
  std::vector<uint8_t> buf(len);
  Completion c;
  uint64_t offset = 0;
  for (auto _ : state) {
    (void)p.queue->PostRead({2, p.region.key, offset}, buf.data(), len, 1);
    while (p.queue->PollCompletions(absl::MakeSpan(&c, 1)) == 0) {
    }
    benchmark::DoNotOptimize(buf.data());
    offset = (offset + 4096) & ((1 << 20) - 1);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * len);
}
BENCHMARK(BM_ShmRead)->RangeMultiplier(4)->Range(64, 4096);

// A batch of 16 reads posted before polling (how FaRM overlaps reads).
void BM_ShmReadBatch16(benchmark::State& state) {
  Pair p;
  const uint32_t len = static_cast<uint32_t>(state.range(0));
  std::vector<uint8_t> buf(len * 16);
  Completion c[16];
  for (auto _ : state) {
    for (int i = 0; i < 16; ++i) {
      (void)p.queue->PostRead({2, p.region.key, uint64_t(i) * 4096}, buf.data() + i * len, len, i);
    }
    int n = 0;
    while (n < 16) n += p.queue->PollCompletions(absl::MakeSpan(c + n, 16 - n));
    benchmark::DoNotOptimize(buf.data());
  }
  state.SetItemsProcessed(state.iterations() * 16);
}
BENCHMARK(BM_ShmReadBatch16)->Arg(64)->Arg(4096);

// Reads of lines the target's CPU keeps writing: every line must move from
// the other core's cache, as a NIC read of freshly written data must come
// from memory. The writer thread is the target machine's application.
void BM_ShmReadWhileTargetWrites(benchmark::State& state) {
  Pair p;
  const uint32_t len = static_cast<uint32_t>(state.range(0));
  std::vector<uint8_t> buf(len);
  std::atomic<bool> stop{false};
  auto* words = static_cast<uint64_t*>(p.region.base);
  std::thread writer([&] {
    for (uint64_t v = 0; !stop.load(std::memory_order_relaxed); ++v) {
      for (uint32_t w = 0; w < len / 8; w += 8) __atomic_store_n(&words[w], v, __ATOMIC_RELEASE);
    }
  });
  Completion c;
  for (auto _ : state) {
    (void)p.queue->PostRead({2, p.region.key, 0}, buf.data(), len, 1);
    while (p.queue->PollCompletions(absl::MakeSpan(&c, 1)) == 0) {
    }
    benchmark::DoNotOptimize(buf.data());
  }
  stop = true;
  writer.join();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ShmReadWhileTargetWrites)->Arg(64)->Arg(4096)->UseRealTime();

double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Net fabric waiting modes (Arg "wait"): 0 = spin, the behaviour before
// blocking waits (Options::blocking_waits = false: initiators spin on recv);
// 1 = block (the default: adaptive PollCompletions sleeps in ppoll); 2 = block
// at the initiator, the target's progress thread busy-polls (poll_spin_us).
NetFabric::Options NetOptions(MachineId id, int64_t wait) {
  NetFabric::Options o;
  o.machine_id = id;
  o.blocking_waits = wait != 0;
  o.poll_spin_us = wait == 2 ? 1000 : 0;
  return o;
}

// The net fabric: the same READ carried over loopback TCP to the target's
// progress thread. cpu_us_per_op: CPU of the whole process (both machines'
// threads) per read.
void BM_NetRead(benchmark::State& state) {
  auto target = std::move(*NetFabric::Create(NetOptions(2, state.range(1))));
  auto reader = std::move(*NetFabric::Create(NetOptions(1, state.range(1))));
  auto region = *target->Register(1 << 20);
  (void)reader->Connect(2, target->endpoint());
  auto queue = std::move(*reader->CreateQueue());
  const uint32_t len = static_cast<uint32_t>(state.range(0));
  std::vector<uint8_t> buf(len);
  Completion c;
  const double cpu0 = ProcessCpuSeconds();
  for (auto _ : state) {
    (void)queue->PostRead({2, region.key, 0}, buf.data(), len, 1);
    while (queue->PollCompletions(absl::MakeSpan(&c, 1)) == 0) {
    }
    if (!c.ok()) state.SkipWithError("net read failed");
  }
  state.counters["cpu_us_per_op"] =
      (ProcessCpuSeconds() - cpu0) * 1e6 / static_cast<double>(state.iterations());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NetRead)->ArgNames({"bytes", "wait"})->ArgsProduct({{64, 4096}, {0, 1, 2}})->UseRealTime();

// More reader threads than cores (Arg "threads", each with its own queue, 64 B
// reads, one outstanding each) against one target: the main job's situation
// on 2 cores. Spinning readers take the CPU the target's progress thread needs.
// items_per_second: reads/s of all threads; cpu_us_per_op as above.
void BM_NetReadOversubscribed(benchmark::State& state) {
  const int64_t wait = state.range(1);
  auto target = std::move(*NetFabric::Create(NetOptions(2, wait)));
  auto reader = std::move(*NetFabric::Create(NetOptions(1, wait)));
  auto region = *target->Register(1 << 20);
  (void)reader->Connect(2, target->endpoint());
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> others{0};
  auto read_once = [&](NetFabric::Queue& q) {
    uint64_t word;
    Completion c;
    (void)q.PostRead({2, region.key, 0}, &word, 8, 1);
    while (q.PollCompletions(absl::MakeSpan(&c, 1)) == 0) {
    }
  };
  std::vector<std::thread> helpers;
  for (int64_t i = 1; i < state.range(0); ++i) {
    helpers.emplace_back([&] {
      auto q = std::move(*reader->CreateQueue());
      while (!stop.load(std::memory_order_relaxed)) {
        read_once(*q);
        others.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  auto queue = std::move(*reader->CreateQueue());
  const double cpu0 = ProcessCpuSeconds();
  const uint64_t others0 = others.load();
  uint64_t mine = 0;
  for (auto _ : state) {
    read_once(*queue);
    ++mine;
  }
  const double cpu = ProcessCpuSeconds() - cpu0;
  const double total = static_cast<double>(mine + others.load() - others0);
  stop = true;
  for (auto& t : helpers) t.join();
  state.counters["cpu_us_per_op"] = cpu * 1e6 / total;
  state.counters["reads_per_s"] = benchmark::Counter(total, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_NetReadOversubscribed)
    ->ArgNames({"threads", "wait"})
    ->ArgsProduct({{4}, {0, 1}})
    ->UseRealTime();

// Baseline for the net fabric: a 64-byte TCP round trip on loopback to an
// echo thread (the floor for any request/response over TCP here).
void BM_TcpLoopbackRoundTrip(benchmark::State& state) {
  std::string endpoint;
  const int listen_fd = *internal::TcpListen("127.0.0.1", &endpoint);
  std::thread echo([&] {
    const int fd = accept(listen_fd, nullptr, nullptr);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char msg[64];
    while (internal::ReadFull(fd, msg, sizeof(msg)).ok() &&
           internal::WriteFull(fd, msg, sizeof(msg)).ok()) {
    }
    close(fd);
  });
  const int fd = *internal::TcpConnect(endpoint);
  char msg[64] = {};
  for (auto _ : state) {
    (void)internal::WriteFull(fd, msg, sizeof(msg));
    (void)internal::ReadFull(fd, msg, sizeof(msg));
  }
  close(fd);
  echo.join();
  close(listen_fd);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TcpLoopbackRoundTrip)->UseRealTime();

// Baseline: plain memcpy of the same bytes from the same mapping.
void BM_Memcpy(benchmark::State& state) {
  Pair p;
  const size_t len = static_cast<size_t>(state.range(0));
  std::vector<uint8_t> buf(len);
  const auto* src = static_cast<const uint8_t*>(p.region.base);
  uint64_t offset = 0;
  for (auto _ : state) {
    std::memcpy(buf.data(), src + offset, len);
    benchmark::DoNotOptimize(buf.data());
    benchmark::ClobberMemory();
    offset = (offset + 4096) & ((1 << 20) - 1);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * len);
}
BENCHMARK(BM_Memcpy)->RangeMultiplier(4)->Range(64, 4096);

// Baseline: a cache line bounced between two cores; one iteration is a
// round trip (the floor for any cross-core handoff, e.g. a message ring).
void BM_CacheLinePingPong(benchmark::State& state) {
  alignas(64) std::atomic<uint64_t> line{0};
  std::atomic<bool> stop{false};
  std::thread echo([&] {
    uint64_t seen = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      const uint64_t v = line.load(std::memory_order_acquire);
      if (v != seen && (v & 1)) {
        line.store(v + 1, std::memory_order_release);
        seen = v + 1;
      }
    }
  });
  uint64_t v = 0;
  for (auto _ : state) {
    line.store(++v, std::memory_order_release);  // odd: ping
    ++v;
    while (line.load(std::memory_order_acquire) != v) {
    }
  }
  stop = true;
  echo.join();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CacheLinePingPong)->UseRealTime();

}  // namespace
}  // namespace dctk::farm::fabric
