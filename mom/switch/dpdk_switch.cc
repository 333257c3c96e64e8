#include "mom/switch/dpdk_switch.h"

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

static_assert(dctk::mom::kPortBands == dctk::mom::PortQueues<rte_mbuf*>::kBands);

namespace dctk::mom {
namespace {

constexpr uint16_t kRxDescriptors = 512;
constexpr uint16_t kTxDescriptors = 512;
constexpr unsigned kPoolMbufs = 4095;
constexpr double kShaperBurstBytes = 2 * 1514;

absl::Status DpdkError(absl::string_view what, int rc) {
  return absl::InternalError(absl::StrCat("DPDK ", what, " failed: ", rte_strerror(-rc)));
}

absl::Status StartPort(uint16_t port, rte_mempool* pool) {
  rte_eth_conf conf{};
  if (int rc = rte_eth_dev_configure(port, 1, 1, &conf); rc < 0) {
    return DpdkError(absl::StrCat("configure port ", port), rc);
  }
  const int socket = rte_eth_dev_socket_id(port);
  if (int rc = rte_eth_rx_queue_setup(port, 0, kRxDescriptors, socket, nullptr, pool); rc < 0) {
    return DpdkError(absl::StrCat("rx queue setup port ", port), rc);
  }
  if (int rc = rte_eth_tx_queue_setup(port, 0, kTxDescriptors, socket, nullptr); rc < 0) {
    return DpdkError(absl::StrCat("tx queue setup port ", port), rc);
  }
  if (int rc = rte_eth_dev_start(port); rc < 0) {
    return DpdkError(absl::StrCat("start port ", port), rc);
  }
  rte_eth_promiscuous_enable(port);
  return absl::OkStatus();
}

// rte_eal_cleanup, plus the runtime directory (/var/run/dpdk/<file-prefix>)
// that EAL leaves behind.
void CleanupEal() {
  const std::string runtime_dir = rte_eal_get_runtime_dir();
  rte_eal_cleanup();
  std::error_code ignored;
  std::filesystem::remove_all(runtime_dir, ignored);
}

}  // namespace

absl::StatusOr<std::unique_ptr<DpdkSwitch>> DpdkSwitch::Create(
    const std::vector<std::string>& vdevs, ForwardingTable table) {
  if (vdevs.empty() || static_cast<int>(vdevs.size()) != table.num_ports()) {
    return absl::InvalidArgumentError(absl::StrCat("MOM switch: ", vdevs.size(),
                                                   " vdevs for a table of ", table.num_ports(),
                                                   " ports"));
  }
  std::vector<std::string> args = {"mom_switch", "--no-huge", "-m", "128", "--no-pci",
                                   "--no-telemetry", "--log-level=lib.eal:error",
                                   absl::StrCat("--file-prefix=mom_switch_", getpid())};
  for (const std::string& v : vdevs) args.push_back(absl::StrCat("--vdev=", v));
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
    return absl::InternalError(
        absl::StrCat("DPDK EAL init failed: ", rte_strerror(rte_errno),
                     " (one switch per process; vdevs: ", absl::StrJoin(vdevs, " "), ")"));
  }
  if (rte_eth_dev_count_avail() != vdevs.size()) {
    CleanupEal();
    return absl::FailedPreconditionError(absl::StrCat(
        "MOM switch: DPDK found ", rte_eth_dev_count_avail(), " ports for ", vdevs.size(),
        " vdevs (is every iface present?)"));
  }
  rte_mempool* pool = rte_pktmbuf_pool_create("mom_switch_pool", kPoolMbufs, 256, 0,
                                              RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
  if (pool == nullptr) {
    CleanupEal();
    return absl::ResourceExhaustedError(
        absl::StrCat("DPDK mbuf pool: ", rte_strerror(rte_errno)));
  }
  std::vector<uint16_t> ports;
  uint16_t id;
  RTE_ETH_FOREACH_DEV(id) { ports.push_back(id); }
  for (uint16_t p : ports) {
    if (absl::Status s = StartPort(p, pool); !s.ok()) {
      for (uint16_t q : ports) rte_eth_dev_close(q);
      rte_mempool_free(pool);
      CleanupEal();
      return s;
    }
  }
  return std::unique_ptr<DpdkSwitch>(new DpdkSwitch(std::move(ports), pool, std::move(table)));
}

DpdkSwitch::DpdkSwitch(std::vector<uint16_t> ports, rte_mempool* pool, ForwardingTable table)
    : ports_(std::move(ports)), shapers_(ports_.size()), counters_(ports_.size()), pool_(pool), core_(std::move(table)),
      queues_(static_cast<int>(ports_.size()), kQueuePackets) {}

DpdkSwitch::~DpdkSwitch() {
  for (int p = 0; p < num_ports(); ++p) {
    while (absl::optional<rte_mbuf*> m = queues_.Dequeue(p)) rte_pktmbuf_free(*m);
    rte_eth_dev_stop(ports_[p]);
    rte_eth_dev_close(ports_[p]);
  }
  rte_mempool_free(pool_);
  CleanupEal();
}

int DpdkSwitch::Poll() {
  int received = 0;
  rte_mbuf* burst[kBurst];
  for (int in = 0; in < num_ports(); ++in) {
    const uint16_t n = rte_eth_rx_burst(ports_[in], 0, burst, kBurst);
    received += n;
    counters_[in].rx_packets += n;
    for (uint16_t i = 0; i < n; ++i) {
      rte_mbuf* m = burst[i];
      Forwarding f;
      // af_packet delivers each frame in one segment.
      absl::Span<uint8_t> frame(rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_data_len(m));
      if (core_.Process(in, frame, &f).has_value() || f.out_ports == 0) {
        rte_pktmbuf_free(m);
        continue;
      }
      const int copies = __builtin_popcountll(f.out_ports);
      rte_mbuf_refcnt_update(m, static_cast<int16_t>(copies - 1));
      for (int out = 0; out < num_ports(); ++out) {
        if (!(f.out_ports >> out & 1)) continue;
        if (queues_.Enqueue(out, f.band, m)) {
          ++counters_[out].enqueued[f.band];
        } else {
          ++counters_[out].queue_full[f.band];
          core_.CountDrop(DropReason::kQueueFull);
          rte_pktmbuf_free(m);  // drops this copy's reference
        }
      }
    }
  }
  for (int out = 0; out < num_ports(); ++out) Transmit(out);
  return received;
}

void DpdkSwitch::SetPortRate(int port, uint64_t bits_per_second) {
  Shaper& s = shapers_[port];
  s.bytes_per_cycle = static_cast<double>(bits_per_second) / 8 / rte_get_tsc_hz();
  s.tokens = kShaperBurstBytes;
  s.last_cycles = rte_get_tsc_cycles();
}

bool DpdkSwitch::Idle() const {
  for (int p = 0; p < num_ports(); ++p) {
    for (int band = 0; band < PortQueues<rte_mbuf*>::kBands; ++band) {
      if (queues_.size(p, band) != 0) return false;
    }
  }
  return true;
}

SwitchCounters DpdkSwitch::Counters() const {
  SwitchCounters c;
  c.forwarded = core_.forwarded();
  c.drops = core_.drops();
  c.group_seqs.insert(core_.group_seqs().begin(), core_.group_seqs().end());
  c.ports = counters_;
  for (int p = 0; p < num_ports(); ++p) {
    rte_eth_stats stats{};
    if (rte_eth_stats_get(ports_[p], &stats) == 0) {
      c.ports[p].rx_missed = stats.imissed + stats.ierrors;
    }
    for (int band = 0; band < kPortBands; ++band) c.ports[p].depth[band] = queues_.size(p, band);
  }
  return c;
}

void DpdkSwitch::Transmit(int port) {
  Shaper& shaper = shapers_[port];
  const bool shaped = shaper.bytes_per_cycle > 0;
  if (shaped) {
    const uint64_t now = rte_get_tsc_cycles();
    shaper.tokens = std::min(kShaperBurstBytes,
                             shaper.tokens + (now - shaper.last_cycles) * shaper.bytes_per_cycle);
    shaper.last_cycles = now;
  }
  rte_mbuf* burst[kBurst];
  for (;;) {
    uint16_t n = 0;
    while (n < kBurst && (!shaped || shaper.tokens > 0)) {
      absl::optional<rte_mbuf*> m = queues_.Dequeue(port);
      if (!m) break;
      if (shaped) shaper.tokens -= rte_pktmbuf_pkt_len(*m);
      burst[n++] = *m;
    }
    if (n == 0) return;
    const uint16_t sent = rte_eth_tx_burst(ports_[port], 0, burst, n);
    counters_[port].tx_packets += sent;
    counters_[port].tx_full += n - sent;
    // The device is full: count and free the rest rather than reorder queues.
    for (uint16_t i = sent; i < n; ++i) {
      core_.CountDrop(DropReason::kTxFull);
      rte_pktmbuf_free(burst[i]);
    }
    if (sent < n) return;
  }
}

}  // namespace dctk::mom
