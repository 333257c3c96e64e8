// Egress: the output half of the DPDK switch's packet path, from a frame that
// SwitchCore::Process forwarded to the frames waiting in each output port's
// strict-priority PortQueues.
//
// A frame that fits an out port's MTU is queued as it is: the same mbuf on
// every such port, reference-counted. A longer one is fragmented for that
// port. Such frames exist because DPDK's net_af_packet driver joins its
// sockets to a PACKET_FANOUT group with PACKET_FANOUT_FLAG_DEFRAG: the kernel
// hands the switch IPv4 datagrams reassembled from their fragments, longer than
// any port's MTU. Egress cuts them again with librte_ip_frag's
// rte_ipv4_fragment_packet (each fragment a small direct mbuf with the Ethernet
// and IPv4 headers, chained to an indirect mbuf over the original's payload:
// the payload is not copied), once per distinct MTU among the out ports, and
// queues the same fragments on every port of that MTU, all of them or none (a
// partial datagram is lost anyway). Fragmenting comes after SwitchCore stamped
// the datagram, so the group sequence number (UDP payload bytes 13-20) is in
// the first fragment and every copy carries the same one; the UDP checksum,
// over the whole datagram, stays the sender's (payload unchanged) or 0
// (stamped). Every fragment gets its own IPv4 header checksum.
//
// Needs an initialised DPDK EAL (it creates the fragment mbuf pools). All
// methods run on the data-plane thread.
//
// Example:
//   auto egress = Egress::Create({1500, 1500, 9000}, /*queue_packets=*/256);
//   if (!core.Process(in, frame, &f)) (*egress)->Enqueue(m, f, &core);
//   while (absl::optional<rte_mbuf*> m = (*egress)->Dequeue(port)) send(*m);
#ifndef DCTK_MOM_SWITCH_EGRESS_H_
#define DCTK_MOM_SWITCH_EGRESS_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/optional.h"
#include "mom/switch/drop_reason.h"
#include "mom/switch/forwarding_table.h"
#include "mom/switch/port_queues.h"
#include "mom/switch/switch_core.h"
#include "mom/switch/switch_counters.h"

struct rte_mbuf;
struct rte_mempool;

namespace dctk::mom {

class Egress {
 public:
  // At most this many fragments per datagram and port (more: DropReason::kTooBig).
  static constexpr int kMaxFragments = 64;

  // `mtus[p]`: port p's MTU (largest IPv4 datagram it sends, >= 68).
  // `queue_packets`: frames per port and band.
  static absl::StatusOr<std::unique_ptr<Egress>> Create(std::vector<uint16_t> mtus,
                                                        size_t queue_packets);
  ~Egress();  // frees what is still queued, then the pools
  Egress(const Egress&) = delete;
  Egress& operator=(const Egress&) = delete;

  // Queues frame `m` (whose reference the caller hands over) on each of
  // `f.out_ports`, in band `f.band`, fragmented where it exceeds the port's MTU.
  // Drops (queue full, not fragmentable, no mbufs) are counted per frame in
  // `core` and in the port's counters.
  void Enqueue(rte_mbuf* m, const Forwarding& f, SwitchCore* core);

  // The next frame to transmit on `port` (band 0 first); the caller owns it.
  absl::optional<rte_mbuf*> Dequeue(int port) { return queues_.Dequeue(port); }

  int num_ports() const { return static_cast<int>(mtus_.size()); }
  uint16_t mtu(int port) const { return mtus_[port]; }
  size_t depth(int port, int band) const { return queues_.size(port, band); }
  bool Idle() const;
  // enqueued, queue_full and fragmented are kept here; the caller adds its own.
  std::vector<PortCounters>& counters() { return counters_; }
  const std::vector<PortCounters>& counters() const { return counters_; }

 private:
  Egress(std::vector<uint16_t> mtus, size_t queue_packets, rte_mempool* direct,
         rte_mempool* indirect);
  // Fragments of `m` for `mtu` into out[0..*n), each with m's Ethernet header
  // and a valid IPv4 header checksum; m is unchanged and still the caller's.
  absl::optional<DropReason> Fragment(rte_mbuf* m, uint16_t mtu, rte_mbuf** out, int* n);
  // Queues frames[0..n) on every port of `ports`, all or none per port; takes
  // one reference to each frame per port (the caller's own included).
  void QueueOn(uint64_t ports, int band, rte_mbuf** frames, int n, SwitchCore* core);

  std::vector<uint16_t> mtus_;
  std::vector<PortCounters> counters_;
  PortQueues<rte_mbuf*> queues_;
  rte_mempool* direct_;    // fragment headers
  rte_mempool* indirect_;  // fragment payloads (attached to the original)
};

}  // namespace dctk::mom

#endif  // DCTK_MOM_SWITCH_EGRESS_H_
