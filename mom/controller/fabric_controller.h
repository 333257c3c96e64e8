// FabricController: keeps a fabric of MOM switches configured for its groups
// and routes around switches and links that fail.
//
// Reconcile() asks every switch for its stats over gRPC (the health check);
// a switch that does not answer is taken as failed: it is failed in the
// topology the routes are computed on and blacklisted as root, so every group
// whose root it was gets a new root at the same distance from all receivers
// (ComputeRoutes' root selection), and unicast routes avoid it too. The stats
// also give each port's link state (interface up with carrier, as the switch
// reads it from the kernel); a link either of whose ends reports it down is
// failed in that topology too, so a root that loses a link it needs (and with
// it its equal-length path to some receiver) is passed over, and no route
// uses the link. When the set of failed switches or links changes (or on the
// first call), routes are computed, verified and pushed to every live switch.
// A switch that answers again is used again; a link that is up again is used
// again once both ends have reported it up on `link_holddown_checks`
// consecutive checks (a link that has just come up may flap: routing over it
// at once would move groups back and forth).
// A link can also be up and drop what crosses it. So on every check each
// switch, after reporting its counters, sends one probe frame out of each port
// that faces another switch, and counts the probes it receives per port
// (mom/switch/dpdk_switch.h). A direction of a switch-to-switch link whose
// sender sent probes on `probe_misses` consecutive checks while its peer
// received none (and none arrived late) drops: the link is failed like a link
// down ("links dropping" in Describe), and used again once probes crossed it
// both ways on `link_holddown_checks` consecutive checks (probes keep being
// sent on a failed link). A link can also lose only part of what crosses it:
// a direction that lost at least `probe_loss` of the probes sent over the
// last `probe_loss_window` checks drops too (counted over a window, a probe
// that arrives late, e.g. at a switch starved of CPU, still counts). A link
// failed for that is used again once, over a whole window of checks since it
// failed, both directions lost less than half of `probe_loss` (and probes
// crossed for the hold-down). Links to hosts whose addresses the fabric
// gives are probed too: the switch sends the host an ARP probe for its own
// address and counts its kernel's replies (mom/switch/link_probe.h), judged
// the same way, but a host link that drops is only reported ("host links
// dropping"), not failed: a host has no other way in, and failing its link
// would leave no route to it.
// This is what mom_controller runs in a loop.
//
// Example:
//   absl::StatusOr<Fabric> fabric = LoadFabric(path);
//   FabricController controller(*std::move(fabric));
//   for (;;) {
//     absl::StatusOr<bool> changed = controller.Reconcile();
//     if (changed.ok() && *changed) std::cout << controller.Describe();
//     absl::SleepFor(absl::Milliseconds(200));
//   }
#ifndef DCTK_MOM_CONTROLLER_FABRIC_CONTROLLER_H_
#define DCTK_MOM_CONTROLLER_FABRIC_CONTROLLER_H_

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "mom/controller/fabric.h"
#include "mom/controller/routes.h"
#include "mom/controller/switch_client.h"

namespace dctk::mom {

// How links are judged; counts are health checks (Reconcile calls).
struct LinkCheckOptions {
  int holddown_checks = 1;     // a failed link's good checks before it is used again
  int probe_misses = 3;        // consecutive checks a direction lost every probe
  int probe_loss_window = 20;  // checks over which partial loss is counted
  double probe_loss = 0.25;    // fraction lost over the window that fails a link; 0: off
};

class FabricController {
 public:
  // `connect_timeout`: how long a switch may take to accept a connection.
  explicit FabricController(Fabric fabric, absl::Duration connect_timeout = absl::Seconds(1),
                            LinkCheckOptions options = {});

  // One health check of every switch and port, and a new configuration if
  // the set of failed switches or links changed. True if it pushed a configuration. Fails if no
  // valid routes exist any more (e.g. no eligible root) or a live switch
  // rejects its configuration; the next call tries again.
  absl::StatusOr<bool> Reconcile();

  const Fabric& fabric() const { return fabric_; }
  const std::set<int>& failed() const { return failed_; }
  // Topology links (indexes into fabric().topology.links()) reported down.
  const std::set<int>& links_down() const { return links_down_; }
  // Switch-to-switch links failed because probes did not cross them.
  const std::set<int>& links_dropping() const { return links_dropping_; }
  // Host links whose host did not answer the switch's probes (silent or
  // lossy, judged as switch-to-switch links are): reported, not failed (a
  // host has no other way into the fabric).
  const std::set<int>& host_links_dropping() const { return host_links_dropping_; }
  // Routes installed by the last successful push, in the fabric's group order.
  const std::vector<GroupRoutes>& routes() const { return routes_; }
  // One line: failed switches, links down and dropping, host links dropping
  // (if any) and each group's roots, e.g. "failed: none; links down:
  // leaf1-spine0; links dropping: leaf0-spine1; host links dropping:
  // leaf0-host0_1; group 5 (serialized) roots: spine1".
  std::string Describe() const;

 private:
  SwitchClient* Client(int node);
  absl::Status Push();
  // Probe counts of one switch port at the last check.
  struct ProbeCounts {
    uint64_t sent = 0;
    uint64_t received = 0;
  };
  // Updates links_dropping_ from this check's stats (of the switches that
  // answered); true if it changed.
  bool CheckProbes(const std::map<int, SwitchStats>& stats);
  // Whether probes crossed direction `from` -> `to` of link `link` since the
  // last check; counts a silent check in silent_checks_ and the probes sent
  // and received in the direction's loss window.
  bool ProbesCrossed(const std::map<int, SwitchStats>& stats, int link, int from, int to);
  // The fraction of probes `from` sent over link `link` that its peer did
  // not receive, over the window; -1 until the window holds
  // probe_loss_window checks.
  double WindowLoss(int link, int from) const;
  // Whether direction `from` of link `link` lost at least options_.probe_loss
  // over a full window.
  bool Lossy(int link, int from) const;
  // Whether dropping link `link`, whose probes crossed in all its probed
  // `directions` (from, to) on the last `crossed` checks, is to be used again.
  bool Recovered(int link, const std::vector<std::pair<int, int>>& directions, int crossed) const;

  Fabric fabric_;
  absl::Duration connect_timeout_;
  LinkCheckOptions options_;
  std::map<int, std::unique_ptr<SwitchClient>> clients_;
  std::set<int> failed_;
  std::set<int> links_down_;
  std::map<int, int> up_checks_;  // link in links_down_ -> consecutive checks reported up
  std::map<int, std::vector<uint32_t>> probe_ports_;  // switch -> its ports to other switches
  // switch -> (port, IPv4) of its hosts (when the fabric gives their addresses)
  std::map<int, std::vector<std::pair<uint32_t, uint32_t>>> host_probes_;
  std::map<std::pair<int, int>, ProbeCounts> probe_counts_;  // (switch, port) -> last counts
  // (link, sending switch) -> consecutive checks it sent probes its peer did not receive
  std::map<std::pair<int, int>, int> silent_checks_;
  // (link, sending switch) -> probes sent and received at each of its last
  // probe_loss_window checks; restarted when the link is failed or used again.
  std::map<std::pair<int, int>, std::deque<ProbeCounts>> loss_windows_;
  std::set<int> links_dropping_;
  // Those of links_dropping_ (or host_links_dropping_) failed for partial loss.
  std::set<int> links_lossy_;
  std::set<int> host_links_dropping_;
  std::map<int, int> crossed_checks_;  // link in links_dropping_ -> checks probes crossed
  bool configured_ = false;
  std::vector<GroupRoutes> routes_;
};

// Each group's part of Describe(): "; group 5 (serialized) roots: spine1" per
// group, e.g. to tell whether a controller routed groups as expected.
std::string DescribeGroups(const Topology& topology, const std::vector<GroupRoutes>& routes);

}  // namespace dctk::mom

#endif  // DCTK_MOM_CONTROLLER_FABRIC_CONTROLLER_H_
