// SwitchCounters: a snapshot of a MOM switch's data-plane counters, taken on
// the data-plane thread and handed to whatever exports them (gRPC GetStats,
// Prometheus via SwitchMetrics). Plain integers: the per-packet path bumps
// unshared counters and never touches an atomic.
//
// Example:
//   SwitchCounters c = sw->Counters();      // on the data-plane thread
//   metrics.Publish(c);
#ifndef DCTK_MOM_SWITCH_SWITCH_COUNTERS_H_
#define DCTK_MOM_SWITCH_SWITCH_COUNTERS_H_

#include <array>
#include <cstdint>
#include <map>
#include <vector>

#include "mom/switch/drop_reason.h"

namespace dctk::mom {

// Strict-priority bands per port: 0 high (MOM), 1 best effort.
inline constexpr int kPortBands = 2;

struct PortCounters {
  uint64_t rx_packets = 0;
  uint64_t tx_packets = 0;
  // Frames the port's receive ring dropped before the switch read them (the
  // device's imissed + ierrors: the switch polled too slowly).
  uint64_t rx_missed = 0;
  uint64_t tx_full = 0;  // the device took fewer frames than offered
  uint64_t fragmented = 0;  // datagrams longer than the port's MTU, queued as fragments
  uint64_t probes_sent = 0;      // link probes sent (not in tx_packets)
  uint64_t probes_received = 0;  // link probes received (not in rx_packets)
  uint64_t stale_voided = 0;     // ring frames voided after the interface went down
  std::array<uint64_t, kPortBands> enqueued{};
  std::array<uint64_t, kPortBands> queue_full{};  // dropped: the band was full
  std::array<uint64_t, kPortBands> depth{};       // frames waiting now
};

struct SwitchCounters {
  uint64_t forwarded = 0;
  DropCounts drops{};
  std::map<uint32_t, uint64_t> group_seqs;  // group id -> last stamped sequence
  std::vector<PortCounters> ports;
};

}  // namespace dctk::mom

#endif  // DCTK_MOM_SWITCH_SWITCH_COUNTERS_H_
