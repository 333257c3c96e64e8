// DpdkSwitch: the MOM switch on DPDK ports (virtual devices, no hugepages).
//
// Each port is a DPDK vdev, normally `net_af_packet,iface=VETH` on a veth whose
// peer sits in a host's network namespace (shared/PLATFORM.md: this machine has
// no UIO/VFIO, so no physical NIC drivers). Poll() runs one iteration of the
// data plane: receive a burst on every port, run each frame through SwitchCore,
// hand it to Egress (the same mbuf, reference-counted, or its fragments, on
// every output port's strict-priority PortQueues), and transmit each port's
// queue, band 0 first.
//
// Frames longer than an out port's MTU are sent as IPv4 fragments (Egress):
// the af_packet driver hands the switch datagrams the kernel reassembled from
// fragments (PACKET_FANOUT_FLAG_DEFRAG, always on in DPDK 22.11), so its
// receive rings and mbufs are sized for `max_datagram_bytes`, and its ports
// should be created with AfPacketVdev() to match.
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
//   absl::StatusOr<std::unique_ptr<DpdkSwitch>> sw = DpdkSwitch::Create(
//       {DpdkSwitch::AfPacketVdev(0, "sw0"), DpdkSwitch::AfPacketVdev(1, "sw1")}, table);
//   while (running) (*sw)->Poll();
#ifndef DCTK_MOM_SWITCH_DPDK_SWITCH_H_
#define DCTK_MOM_SWITCH_DPDK_SWITCH_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mom/switch/egress.h"
#include "mom/switch/forwarding_table.h"
#include "mom/switch/switch_core.h"
#include "mom/switch/switch_counters.h"

struct rte_mbuf;
struct rte_mempool;

namespace dctk::mom {

// A 32 KiB af_packet ring slot: its tpacket2 header and alignment take 80
// bytes before the IPv4 header (tpacket_rcv's netoff).
inline constexpr uint32_t kAfPacketFrameOverhead = 80;
inline constexpr uint32_t kDefaultMaxDatagramBytes = 32 * 1024 - kAfPacketFrameOverhead;

struct DpdkSwitchOptions {
  // The longest IPv4 datagram (total length) a port receives whole, 1500 to
  // 61360. The ring slot (this plus 80 bytes) is rounded up to a power of two
  // up to a page, to whole pages beyond, and what the slot holds is the real
  // limit (exact for 2^n - 80 and for pages - 80, e.g. 4016, 32688); a longer
  // datagram arrives truncated and is dropped as too_big. Each af_packet
  // port locks two rings of 512 slots (32 MiB per port by default), and the
  // receive pool holds 4095 mbufs of the slot's size.
  uint32_t max_datagram_bytes = kDefaultMaxDatagramBytes;
};

class DpdkSwitch {
 public:
  static constexpr uint16_t kBurst = 32;
  static constexpr size_t kQueuePackets = 256;  // per port and band
  // IEEE local experimental EtherTypes: link probes, and transmit ring frames
  // voided (cut to their Ethernet header, re-typed) so they leave as runts
  // every receiver drops.
  static constexpr uint16_t kProbeEtherType = 0x88B5;
  static constexpr uint16_t kVoidEtherType = 0x88B6;

  // The vdev spec of switch port `index`: net_af_packet on interface `iface`,
  // ring slots for `max_datagram_bytes`.
  static std::string AfPacketVdev(int index, absl::string_view iface,
                                  uint32_t max_datagram_bytes = kDefaultMaxDatagramBytes);

  // `vdevs`: one DPDK vdev spec per port, in port order.
  static absl::StatusOr<std::unique_ptr<DpdkSwitch>> Create(const std::vector<std::string>& vdevs,
                                                            ForwardingTable table,
                                                            DpdkSwitchOptions options = {});
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

  // Whether port `port`'s link is up: for af_packet, its interface is up and
  // has carrier (a veth whose peer is down has none), read from the kernel
  // now (DPDK's af_packet driver reports every started port as up); for other
  // devices, what DPDK reports.
  bool LinkUp(int port) const;

  // Call every ~10 ms on the switch's thread. While a port's link is down,
  // voids the frames waiting in its af_packet transmit ring
  // (VoidStaleFrames): the ring keeps taking frames while the interface is
  // down, and the kernel would send them, stale, when it comes back. (Frames
  // the ring took after the last call before the link came back still leave
  // late: at most one call period's worth. Voiding once more when the link is
  // seen back would also void frames sent since it came back.)
  // For each port whose link came back up since the last call, then clears
  // its socket's pending error and flushes its transmit ring: the kernel
  // leaves ENETDOWN pending on the socket when the interface goes down, the
  // next transmit's sendto returns it instead of sending, and DPDK's driver
  // sends nothing until its next burst, so a burst sent into a quiet link
  // after it came back sat in the ring (the frames counted sent, never on
  // the wire).
  void WatchLinks();

  // Sends one probe frame out of each port of `ports` whose link is up, ahead
  // of its queues (counted as the port's probes_sent, not tx_packets). A
  // switch counts the probes it receives per port (probes_received, not
  // rx_packets) and forwards none: the controller compares the two ends'
  // counts to find links that are up but drop.
  void SendProbes(const std::vector<uint32_t>& ports);
  // Sends an ARP probe for each (port, host IPv4 in host byte order) of
  // `hosts` out of the port, if its link is up (link_probe.h; counted as the
  // port's probes_sent). The host's ARP reply is counted as the port's
  // probes_received, not rx_packets, and not forwarded.
  void SendHostProbes(const std::vector<std::pair<uint32_t, uint32_t>>& hosts);

  SwitchCore& core() { return core_; }
  int num_ports() const { return static_cast<int>(ports_.size()); }
  // Port `port`'s MTU, read from its interface at start.
  uint16_t mtu(int port) const { return egress_->mtu(port); }

 private:
  DpdkSwitch(std::vector<uint16_t> ports, std::vector<std::string> ifaces,
             std::vector<int> if_indexes, int link_fd, rte_mempool* pool, ForwardingTable table,
             std::unique_ptr<Egress> egress, uint32_t max_frame, uint32_t ring_frame_size,
             uint32_t ring_frames);
  void Transmit(int port);
  // Sends one kProbeFrameBytes frame, filled by `write`, out of `port` if its
  // link is up, ahead of its queues; counts it as the port's probes_sent.
  template <typename Write>
  void SendProbe(uint32_t port, Write write);
  // WatchLinks for one port; Transmit also calls it before frames go to a
  // port seen down.
  void CheckLink(int port);
  // Rewrites every frame of port `port`'s transmit ring that waits to be sent
  // into a void frame (kVoidEtherType, Ethernet header only): the kernel
  // reads the ring only inside the sendto calls this thread makes, in order,
  // so the slots stay in step with DPDK's driver and nothing stale leaves.
  void VoidStaleFrames(int port);

  struct Shaper {
    double bytes_per_cycle = 0;  // 0: unshaped
    double tokens = 0;           // bytes that may be sent now (may go negative)
    uint64_t last_cycles = 0;
  };

  std::vector<uint16_t> ports_;  // DPDK port ids, by switch port
  std::vector<std::string> ifaces_;  // the kernel interface behind each port ("": none)
  std::vector<int> if_indexes_;      // its index in the ports' namespace (0: none)
  std::vector<bool> link_was_up_;    // at the last WatchLinks()
  int link_fd_;                      // a socket in the ports' namespace, for SIOCGIFFLAGS
  uint32_t max_frame_;           // the longest frame a receive ring slot holds
  uint32_t ring_frame_size_;     // af_packet ring slot bytes
  uint32_t ring_frames_;         // slots per ring
  // Each af_packet port's transmit ring as DPDK's driver mapped it (found by
  // its socket in /proc/self/maps; nullptr: not found, nothing is voided).
  std::vector<uint8_t*> tx_rings_;
  std::vector<Shaper> shapers_;
  rte_mempool* pool_;
  SwitchCore core_;
  std::unique_ptr<Egress> egress_;  // port queues and their counters
};

}  // namespace dctk::mom

#endif  // DCTK_MOM_SWITCH_DPDK_SWITCH_H_
