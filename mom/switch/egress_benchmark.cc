// What fragmenting costs the switch's packet path per datagram: receive copy
// into an mbuf, SwitchCore (parse, lookup, stamp), Egress::Enqueue, then
// dequeue and free every queued frame (what the transmit side does, less the
// device's copy). Baselines in the same run: the same 16 KB datagram to a port
// whose MTU takes it whole, and a 1042-byte frame. Needs root (DPDK EAL).
//
//   bazel run -c opt //mom/switch:egress_benchmark
#include <rte_eal.h>
#include <rte_mbuf.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "mom/switch/egress.h"
#include "mom/switch/test_frames.h"

namespace dctk::mom {
namespace {

constexpr uint32_t kGroupIp = 0xef000500;
rte_mempool* rx_pool = nullptr;

// A transport-framed MomPacket of `size` bytes (MomPacket.payload padding).
std::string Datagram(size_t size) {
  std::string d = testing::MomPayload(1, 1);
  MomPacket p;
  p.set_group_seq(0);
  p.set_group_id(5);
  p.set_sender_id(1);
  p.set_sender_seq(1);
  p.set_payload(std::string(size - d.size(), 'x'));
  const std::string body = p.SerializeAsString();
  char header[transport::kFrameHeaderSize];
  transport::EncodeFrameHeader(transport::TypeId<MomPacket>(), body.size(), header);
  return std::string(header, sizeof(header)) + body;
}

// state.range(0): UDP payload bytes; range(1): out ports; range(2): their MTU.
void BM_PacketPath(benchmark::State& state) {
  const int out_ports = static_cast<int>(state.range(1));
  SwitchConfig c;
  MulticastRule* r = c.add_rules();
  r->set_group_ip(kGroupIp);
  r->set_group_id(5);
  r->set_in_port(0);
  for (int p = 1; p <= out_ports; ++p) r->add_out_ports(p);
  r->set_high_priority(true);
  r->set_stamp_group_seq(true);
  absl::StatusOr<ForwardingTable> table = ForwardingTable::Create(c, out_ports + 1);
  SwitchCore core(*std::move(table));
  std::vector<uint16_t> mtus(out_ports + 1, static_cast<uint16_t>(state.range(2)));
  absl::StatusOr<std::unique_ptr<Egress>> egress = Egress::Create(mtus, 256);
  if (!egress.ok()) {
    state.SkipWithError(egress.status().ToString().c_str());
    return;
  }
  const std::vector<uint8_t> frame =
      testing::UdpFrame(0x0a000001, kGroupIp, 46, Datagram(static_cast<size_t>(state.range(0))));
  size_t frames_out = 0;
  for (auto _ : state) {
    rte_mbuf* m = rte_pktmbuf_alloc(rx_pool);
    std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size())), frame.data(),
                frame.size());
    Forwarding f;
    if (core.Process(0, absl::Span<uint8_t>(rte_pktmbuf_mtod(m, uint8_t*), frame.size()), &f)) {
      state.SkipWithError("dropped");
      break;
    }
    (*egress)->Enqueue(m, f, &core);
    for (int p = 1; p <= out_ports; ++p) {
      while (absl::optional<rte_mbuf*> out = (*egress)->Dequeue(p)) {
        rte_pktmbuf_free(*out);
        ++frames_out;
      }
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(frame.size()));
  state.counters["frames_out_per_datagram"] =
      static_cast<double>(frames_out) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_PacketPath)
    ->ArgNames({"payload", "ports", "mtu"})
    ->Args({1000, 1, 1500})    // baseline: one frame
    ->Args({16384, 1, 65535})  // baseline: the same datagram whole
    ->Args({16384, 1, 1500})   // 12 fragments
    ->Args({16384, 3, 1500})   // multicast: the 12 fragments shared by 3 ports
    ->Args({16384, 3, 65535})
    ->Args({4096, 1, 1500});

}  // namespace
}  // namespace dctk::mom

int main(int argc, char** argv) {
  std::vector<std::string> args = {"egress_benchmark", "--no-huge", "-m", "256", "--no-pci",
                                    "--no-telemetry", "--log-level=lib.eal:error",
                                    absl::StrCat("--file-prefix=egress_bench_", getpid())};
  std::vector<char*> eal_argv;
  for (std::string& a : args) eal_argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0) {
    std::cerr << "DPDK EAL init failed (needs root)\n";
    return 1;
  }
  dctk::mom::rx_pool = rte_pktmbuf_pool_create("egress_bench_rx", 1023, 0, 0,
                                               RTE_PKTMBUF_HEADROOM + 32 * 1024, rte_socket_id());
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  rte_mempool_free(dctk::mom::rx_pool);
  const std::string runtime_dir = rte_eal_get_runtime_dir();
  rte_eal_cleanup();
  std::error_code ignored;
  std::filesystem::remove_all(runtime_dir, ignored);
  return 0;
}
