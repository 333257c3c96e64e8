// DpdkSwitch: the MOM switch on DPDK ports (virtual devices, no hugepages).
//
// Each port is a DPDK vdev, normally `net_af_packet,iface=VETH` on a veth whose
// peer sits in a host's network namespace (shared/PLATFORM.md: this machine has
// no UIO/VFIO, so no physical NIC drivers). Poll() runs one iteration of the
// data plane: receive a burst on every port, run each frame through SwitchCore,
// hand the same mbuf (reference-counted) to every output port's strict-priority
// PortQueues, and transmit each port's queue, band 0 first.
//
// A port can be given a line rate (SetPortRate): a token bucket then paces its
// transmissions, so a veth port behaves like a slower link and its queues fill
// under overload (where strict priority matters); unshaped ports send as fast
// as the device takes frames.
//
// DPDK's EAL can be initialised once per process: create one DpdkSwitch per
// process. All methods run on one thread (the switch's lcore).
//
// Example:
//   absl::StatusOr<std::unique_ptr<DpdkSwitch>> sw =
//       DpdkSwitch::Create({"net_af_packet0,iface=sw0", "net_af_packet1,iface=sw1"}, table);
//   while (running) (*sw)->Poll();
#ifndef DCTK_MOM_SWITCH_DPDK_SWITCH_H_
#define DCTK_MOM_SWITCH_DPDK_SWITCH_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "mom/switch/forwarding_table.h"
#include "mom/switch/port_queues.h"
#include "mom/switch/switch_core.h"
#include "mom/switch/switch_counters.h"

struct rte_mbuf;
struct rte_mempool;

namespace dctk::mom {

class DpdkSwitch {
 public:
  static constexpr uint16_t kBurst = 32;
  static constexpr size_t kQueuePackets = 256;  // per port and band

  // `vdevs`: one DPDK vdev spec per port, in port order.
  static absl::StatusOr<std::unique_ptr<DpdkSwitch>> Create(const std::vector<std::string>& vdevs,
                                                            ForwardingTable table);
  ~DpdkSwitch();
  DpdkSwitch(const DpdkSwitch&) = delete;
  DpdkSwitch& operator=(const DpdkSwitch&) = delete;

  // One receive / forward / transmit pass over all ports; returns frames received.
  int Poll();

  // Paces `port` to `bits_per_second` (0: unshaped). Bursts up to two full frames.
  void SetPortRate(int port, uint64_t bits_per_second);

  // No frame is waiting in any port queue (the caller may sleep if Poll() also
  // received nothing).
  bool Idle() const;

  // Every counter now, the devices' receive misses included.
  SwitchCounters Counters() const;

  SwitchCore& core() { return core_; }
  int num_ports() const { return static_cast<int>(ports_.size()); }

 private:
  DpdkSwitch(std::vector<uint16_t> ports, rte_mempool* pool, ForwardingTable table);
  void Transmit(int port);

  struct Shaper {
    double bytes_per_cycle = 0;  // 0: unshaped
    double tokens = 0;           // bytes that may be sent now (may go negative)
    uint64_t last_cycles = 0;
  };

  std::vector<uint16_t> ports_;  // DPDK port ids, by switch port
  std::vector<Shaper> shapers_;
  std::vector<PortCounters> counters_;  // by switch port; depth and rx_missed unused
  rte_mempool* pool_;
  SwitchCore core_;
  PortQueues<rte_mbuf*> queues_;
};

}  // namespace dctk::mom

#endif  // DCTK_MOM_SWITCH_DPDK_SWITCH_H_
