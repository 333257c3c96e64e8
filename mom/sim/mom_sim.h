// MOM at data-center scale in ns-3: reorder rate of a multicast group on a fat
// tree with background traffic, for each MOM design.
//
// One run builds a k-ary fat tree of point-to-point links (every port a strict
// two-band priority queue: DSCP 46 ahead of the rest; device queues of one
// packet so the queue disc, not the NIC, holds the backlog), installs the
// multicast forwarding rules the MOM controller computes for the design (one
// multicast address per channel, ns-3 static multicast routes keyed by group
// and input interface), starts background TCP flows with Poisson arrivals,
// sizes from a published distribution and uniformly random endpoints at the
// given offered load, and lets `senders` hosts multicast small messages (the
// MomPacket wire header) with Poisson timing to `receivers` hosts. Receivers
// feed their delivery order into a ReorderMeter.
//
// Everything random is drawn from `seed`, independently of the design, so runs
// with the same seed and different designs see the same placement, background
// flows and send times: differences come from the design alone.
//
// ns-3 is single-threaded and global: one run at a time per process.
//
// Example:
//   MomSimConfig c;
//   c.design = Design::kTopologyAwareQos;
//   c.load = 0.5;
//   absl::StatusOr<MomSimResult> r = RunMomSimulation(c);
//   std::cout << r->reorder.reorder_rate();
#ifndef DCTK_MOM_SIM_MOM_SIM_H_
#define DCTK_MOM_SIM_MOM_SIM_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "mom/design.h"
#include "mom/measure/reorder.h"
#include "mom/sim/flow_size.h"

namespace dctk::mom {

struct MomSimConfig {
  int k = 4;                       // fat tree parameter
  Design design = Design::kNaive;
  int senders = 4;                 // MOM sender hosts
  int receivers = 5;               // group members
  double messages_per_second = 20000;  // per sender, Poisson
  uint32_t message_bytes = 64;     // MOM payload carried in the MomPacket
  double load = 0.3;               // background offered load per host link, 0-1
  const FlowSizeCdf* flow_sizes = &FlowSizeCdf::WebSearch();
  uint64_t link_bps = 1'000'000'000;
  absl::Duration link_delay = absl::Microseconds(1);
  uint32_t queue_packets = 100;    // per band, per port
  absl::Duration warmup = absl::Milliseconds(5);     // background only
  absl::Duration duration = absl::Milliseconds(25);  // MOM traffic after warmup
  // Core-aggregation links to fail (chosen from the seed, independently of the
  // design): the controller then avoids roots that lost their only way into a
  // receiver's pod (root blacklisting), and ns-3 takes both interfaces down.
  int failed_core_links = 0;
  uint64_t seed = 1;
};

struct MomSimResult {
  ReorderReport reorder;
  uint64_t messages_sent = 0;
  uint64_t copies_received = 0;
  // One-way latency of MOM copies, sender to member, in microseconds.
  double latency_mean_us = 0;
  double latency_p99_us = 0;
  double latency_max_us = 0;
  uint64_t background_flows = 0;
  uint64_t background_bytes_offered = 0;
  uint64_t background_bytes_received = 0;
  int roots = 0;  // root switches in use (channels), 0 for naive
  int eligible_roots = 0;  // roots the controller may use after failures, 0 for naive
};

// Validates `config`, runs one simulation, returns its measurements.
absl::StatusOr<MomSimResult> RunMomSimulation(const MomSimConfig& config);

}  // namespace dctk::mom

#endif  // DCTK_MOM_SIM_MOM_SIM_H_
