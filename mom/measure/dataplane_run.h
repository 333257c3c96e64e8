// RunOnDataplane: one MOM measurement on the real software data plane.
//
// On a Testbed (namespaces + mom_switch processes) whose switches already
// forward the group's routes (installed by mom_controller, see
// controlled_fabric.h), lets every sender host of the group multicast MOM
// datagrams with Poisson timing while optional background pairs blast UDP at
// a fixed rate (to load the shaped host ports), and has every receiver host
// record what it delivers, in arrival order. Reports the reorder rate
// (measure/reorder.h), losses (copies never delivered, and gaps in stamped
// group sequence numbers for the serialized design), one-way latency
// (CLOCK_MONOTONIC is shared by all namespaces) and the switches' queue_full
// and tx_full drops during the run.
//
// Example:
//   // routes: the group's GroupRoutes as the controller installed them
//   absl::StatusOr<DataplaneRunResult> r =
//       RunOnDataplane(*bed, routes, {.messages_per_sender = 500, .rate = 2000});
//   std::cout << r->reorder.reorder_rate();
#ifndef DCTK_MOM_MEASURE_DATAPLANE_RUN_H_
#define DCTK_MOM_MEASURE_DATAPLANE_RUN_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "mom/controller/routes.h"
#include "mom/measure/reorder.h"
#include "mom/testbed/testbed.h"

namespace dctk::mom {

// The UDP port measurement receivers bind (and the cluster section names).
inline constexpr uint16_t kMeasurePort = 7000;

// The traffic of one run; the group (design, senders, receivers) is the routes'.
struct DataplaneRunConfig {
  int messages_per_sender = 500;
  double rate = 2000;          // messages per second per sender (Poisson)
  // Background UDP (1000-byte datagrams, best effort), from -> to host.
  std::vector<std::pair<int, int>> background;
  double background_mbps = 0;  // per background pair
  uint64_t seed = 1;
};

struct DataplaneRunResult {
  ReorderReport reorder;
  uint64_t messages_sent = 0;
  uint64_t copies_expected = 0;
  uint64_t copies_received = 0;
  uint64_t group_seq_gaps = 0;  // stamped numbers receivers never saw (serialized)
  double latency_p50_us = 0;
  double latency_p99_us = 0;
  // All switches, during this run: port queue overflows and frames the device
  // (af_packet tx ring) refused.
  uint64_t queue_full_drops = 0;
  uint64_t tx_full_drops = 0;
  int roots = 0;                  // channels in use (root switches; senders for naive)
};

absl::StatusOr<DataplaneRunResult> RunOnDataplane(Testbed& bed, const GroupRoutes& routes,
                                                  const DataplaneRunConfig& config);

}  // namespace dctk::mom

#endif  // DCTK_MOM_MEASURE_DATAPLANE_RUN_H_
