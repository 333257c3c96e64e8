// PortQueues: per output port, two bounded FIFO bands served in strict
// priority (band 0 first), the MOM switch's egress scheduling.
//
// Fixed-size rings allocated once: no allocation per packet. P is the packet
// handle (rte_mbuf* in the DPDK switch, anything copyable in tests).
//
// Example:
//   PortQueues<rte_mbuf*> q(num_ports, /*capacity=*/256);
//   if (!q.Enqueue(port, band, m)) { core.CountDrop(DropReason::kQueueFull); rte_pktmbuf_free(m); }
//   while (auto m = q.Dequeue(port)) send(*m);
#ifndef DCTK_MOM_SWITCH_PORT_QUEUES_H_
#define DCTK_MOM_SWITCH_PORT_QUEUES_H_

#include <array>
#include <cstddef>
#include <vector>

#include "absl/types/optional.h"
#include "glog/logging.h"

namespace dctk::mom {

template <typename P>
class PortQueues {
 public:
  static constexpr int kBands = 2;

  PortQueues(int ports, size_t capacity) : capacity_(capacity), queues_(ports) {
    CHECK_GT(capacity, 0u);
    for (auto& port : queues_) {
      for (Ring& ring : port) ring.slots.resize(capacity);
    }
  }

  // False if the band is full (the caller drops and counts kQueueFull).
  bool Enqueue(int port, int band, P packet) {
    Ring& r = queues_[port][band];
    if (r.size == capacity_) return false;
    r.slots[(r.head + r.size) % capacity_] = std::move(packet);
    ++r.size;
    return true;
  }

  // The next packet to transmit on `port`: band 0 before band 1, FIFO within a band.
  absl::optional<P> Dequeue(int port) {
    for (Ring& r : queues_[port]) {
      if (r.size == 0) continue;
      P p = std::move(r.slots[r.head]);
      r.head = (r.head + 1) % capacity_;
      --r.size;
      return p;
    }
    return absl::nullopt;
  }

  size_t size(int port, int band) const { return queues_[port][band].size; }
  size_t capacity() const { return capacity_; }

 private:
  struct Ring {
    std::vector<P> slots;
    size_t head = 0;
    size_t size = 0;
  };
  size_t capacity_;
  std::vector<std::array<Ring, kBands>> queues_;
};

}  // namespace dctk::mom

#endif  // DCTK_MOM_SWITCH_PORT_QUEUES_H_
