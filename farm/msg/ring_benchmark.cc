// Message rings on the shm fabric: messages/s of send+receive in one thread,
// and the round-trip latency of a ping-pong between two threads over two
// rings, against a one-sided READ of the same size measured in the same run.
//
//   bazel run -c opt //farm/msg:ring_benchmark
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/msg/ring_receiver.h"
#include "farm/msg/ring_sender.h"

namespace dctk::farm::msg {
namespace {

using fabric::ShmFabric;

constexpr uint64_t kRing = 64 * 1024;

struct Link {  // machine `from` sends to machine `to`
  std::unique_ptr<ShmFabric::Queue> tx_queue, rx_queue;
  std::unique_ptr<RingSender<ShmFabric>> tx;
  std::unique_ptr<RingReceiver<ShmFabric>> rx;
  Link(ShmFabric& from, ShmFabric& to) {
    auto ring = *to.Register(kRing);
    auto head = *from.Register(4096);
    tx_queue = std::move(*from.CreateQueue());
    rx_queue = std::move(*to.CreateQueue());
    tx = std::move(*RingSender<ShmFabric>::Create(from, tx_queue.get(), {to.machine_id(), ring.key, 0},
                                                  kRing, static_cast<const uint64_t*>(head.base)));
    rx = std::move(*RingReceiver<ShmFabric>::Create(to, rx_queue.get(), static_cast<uint8_t*>(ring.base),
                                                    kRing, {from.machine_id(), head.key, 0}));
  }
};

struct Cluster {
  std::unique_ptr<ShmFabric> a, b;
  Cluster() {
    ShmFabric::Options o;
    o.machine_id = 1;
    a = std::move(*ShmFabric::Create(o));
    o.machine_id = 2;
    b = std::move(*ShmFabric::Create(o));
    (void)a->Connect(2, b->endpoint());
    (void)b->Connect(1, a->endpoint());
  }
};

void BM_RingSendReceive(benchmark::State& state) {
  Cluster c;
  Link link(*c.a, *c.b);
  const std::vector<uint8_t> msg(state.range(0), 1);
  for (auto _ : state) {
    (void)link.tx->Send(msg);
    (void)link.rx->Poll([](absl::Span<const uint8_t> m) { benchmark::DoNotOptimize(m.data()); }, 1);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RingSendReceive)->Arg(64)->Arg(1024);

void BM_RingPingPong(benchmark::State& state) {
  Cluster c;
  Link ab(*c.a, *c.b), ba(*c.b, *c.a);
  const std::vector<uint8_t> msg(state.range(0), 1);
  std::atomic<bool> stop{false};
  std::thread echo([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      (void)ab.rx->Poll([&](absl::Span<const uint8_t> m) {
        while (absl::IsResourceExhausted(ba.tx->Send(m))) {
        }
      }, 16);
    }
  });
  for (auto _ : state) {
    (void)ab.tx->Send(msg);
    int got = 0;
    while (got == 0) got = *ba.rx->Poll([](absl::Span<const uint8_t>) {}, 1);
  }
  stop = true;
  echo.join();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RingPingPong)->Arg(64)->UseRealTime();

// Baseline: a one-sided READ of the same size.
void BM_OneSidedRead(benchmark::State& state) {
  Cluster c;
  auto region = *c.b->Register(kRing);
  auto q = std::move(*c.a->CreateQueue());
  std::vector<uint8_t> buf(state.range(0));
  fabric::Completion done;
  for (auto _ : state) {
    (void)q->PostRead({2, region.key, 0}, buf.data(), buf.size(), 1);
    while (q->PollCompletions(absl::MakeSpan(&done, 1)) == 0) {
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_OneSidedRead)->Arg(64)->Arg(1024);

}  // namespace
}  // namespace dctk::farm::msg
