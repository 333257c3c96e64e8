// DpdkSwitch: the MOM switch on DPDK ports (virtual devices, no hugepages).
//
// Each port is a DPDK vdev, normally `net_af_packet,iface=VETH` on a veth whose
// peer sits in a host's network namespace (shared/PLATFORM.md: this machine has
// no UIO/VFIO, so no physical NIC drivers). Poll() runs one iteration of the
// data plane: receive a burst on every port, run each frame through SwitchCore,
// hand the same mbuf (reference-counted) to every output port's strict-priority
// PortQueues, and transmit each port's queue, band 0 first.
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

  SwitchCore& core() { return core_; }
  int num_ports() const { return static_cast<int>(ports_.size()); }

 private:
  DpdkSwitch(std::vector<uint16_t> ports, rte_mempool* pool, ForwardingTable table);
  void Transmit(int port);

  std::vector<uint16_t> ports_;  // DPDK port ids, by switch port
  rte_mempool* pool_;
  SwitchCore core_;
  PortQueues<rte_mbuf*> queues_;
};

}  // namespace dctk::mom

#endif  // DCTK_MOM_SWITCH_DPDK_SWITCH_H_
