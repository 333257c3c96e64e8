// RPC over message rings on the net fabric (loopback TCP), shaped like the
// main job: one client endpoint calling S server machines round-robin, each
// server a thread polling its endpoint as TxMachine::Serve does (yield after
// 16 empty polls) and the client yielding between polls as a transaction's
// calls do. Arg "wait": 0 = spin (NetFabric::Options::blocking_waits = false,
// the behaviour before doorbells: every waiter polls), 1 = block (the default:
// idle Polls and Calls sleep on a doorbell, completions in ppoll), measured in
// the same run. calls/s, latency per call (real time) and the CPU of the
// whole process per call (cpu_us_per_call) show what the spinning costs.
//
//   bazel run -c opt //farm/msg:rpc_benchmark
#include <sched.h>
#include <time.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "farm/fabric/net_fabric.h"
#include "farm/msg/rpc.h"

namespace dctk::farm::msg {
namespace {

using fabric::NetFabric;

constexpr uint16_t kEcho = 1;

double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Server {
  std::unique_ptr<NetFabric> fabric;
  std::unique_ptr<NetFabric::Queue> queue;
  std::unique_ptr<RpcEndpoint<NetFabric>> endpoint;
  std::thread thread;
};

void BM_NetRpcRoundTrip(benchmark::State& state) {
  const int servers = static_cast<int>(state.range(0));
  const bool blocking = state.range(1) != 0;
  auto make = [&](fabric::MachineId id) {
    return std::move(*NetFabric::Create({.machine_id = id, .blocking_waits = blocking}));
  };
  auto client_fabric = make(100);
  auto client_queue = std::move(*client_fabric->CreateQueue());
  RpcEndpoint<NetFabric> client(*client_fabric, client_queue.get(), 100);
  client.set_yield_while_waiting(true);
  std::vector<Server> s(servers);
  std::atomic<bool> stop{false};
  for (int i = 0; i < servers; ++i) {
    const fabric::MachineId id = static_cast<fabric::MachineId>(i + 1);
    s[i].fabric = make(id);
    s[i].queue = std::move(*s[i].fabric->CreateQueue());
    s[i].endpoint = std::make_unique<RpcEndpoint<NetFabric>>(*s[i].fabric, s[i].queue.get(), id);
    (void)client_fabric->Connect(id, s[i].fabric->endpoint());
    (void)s[i].fabric->Connect(100, client_fabric->endpoint());
    (void)WireRpc(client, *client_fabric, *s[i].endpoint, *s[i].fabric, 1 << 16);
    s[i].endpoint->Register(kEcho, [](fabric::MachineId, absl::Span<const uint8_t> req) {
      return std::string(req.begin(), req.end());
    });
  }
  for (Server& server : s) {
    server.thread = std::thread([&stop, ep = server.endpoint.get()] {
      int idle = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        absl::StatusOr<int> n = ep->Poll();
        if (n.ok() && *n > 0) {
          idle = 0;
        } else if (++idle > 16) {
          sched_yield();
        }
      }
    });
  }
  const std::string request(64, 'x');
  const auto bytes = absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(request.data()), request.size());
  const double cpu0 = ProcessCpuSeconds();
  int next = 0;
  for (auto _ : state) {
    absl::StatusOr<std::string> reply = client.Call(static_cast<fabric::MachineId>(next + 1), kEcho, bytes,
                                                    absl::Seconds(10));
    if (!reply.ok()) state.SkipWithError("call failed");
    next = (next + 1) % servers;
  }
  state.counters["cpu_us_per_call"] =
      (ProcessCpuSeconds() - cpu0) * 1e6 / static_cast<double>(state.iterations());
  state.SetItemsProcessed(state.iterations());
  stop = true;
  for (Server& server : s) server.thread.join();
}
BENCHMARK(BM_NetRpcRoundTrip)->ArgNames({"servers", "wait"})->ArgsProduct({{1, 3}, {0, 1}})->UseRealTime();

}  // namespace
}  // namespace dctk::farm::msg
