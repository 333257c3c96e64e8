// ControlledFabric: a Testbed's switches configured the way a deployment
// configures them: by the mom_controller process, from a fabric file.
//
// MeasureFabricText writes that file for a run of mom_measure: the testbed's
// leaf-spine, its switches' control addresses, every host as a node of the
// embedded cluster section (common/config's Cluster, IPs the testbed's), the
// measured senders and receivers as the cluster's multicast group
// "measured", and one MOM group per run (each of the one design) naming it
// as its cluster_group. Or, after UseClusterGroup, the user's own cluster
// file is the section (its nodes named as topology hosts, their IPs replaced
// by the testbed's, ports kept; hosts it does not name listed beside it) and
// its multicast group is the one measured.
//
// ControlledFabric::Start loads such a file with LoadFabric (so the groups
// measured are exactly the file's), starts mom_controller on it, waits for
// its first configuration and checks the controller routed every group as
// the file's healthy topology routes it (ComputeRoutes is deterministic:
// hosts need those routes' channel addresses to send and join). The
// controller keeps health-checking the switches; a later line it prints is a
// reconfiguration (a switch or link it found failed), which Reconfigurations()
// reports so a run it overlapped can be flagged. The controller stops when
// the object goes.
//
// Example:
//   absl::StatusOr<std::string> text = MeasureFabricText(*bed, shape, measured);
//   std::ofstream(path) << *text;
//   absl::StatusOr<std::unique_ptr<ControlledFabric>> f =
//       ControlledFabric::Start("mom/controller/mom_controller", path);
//   RunOnDataplane(*bed, (*f)->routes()[0], {.messages_per_sender = 100});
#ifndef DCTK_MOM_MEASURE_CONTROLLED_FABRIC_H_
#define DCTK_MOM_MEASURE_CONTROLLED_FABRIC_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config/cluster_config.h"
#include "mom/controller/fabric.h"
#include "mom/controller/fabric.pb.h"
#include "mom/controller/routes.h"
#include "mom/design.h"
#include "mom/testbed/controller_process.h"
#include "mom/testbed/testbed.h"

namespace dctk::mom {

struct MeasuredGroups {
  Design design = Design::kNaive;
  std::vector<uint32_t> group_ids;  // one MOM group per run, all of `design`
  std::vector<int> senders;         // host nodes
  std::vector<int> receivers;       // host nodes
  // A user's cluster and the name of its multicast group that gives
  // `senders` and `receivers` (set by UseClusterGroup); none: generated.
  std::optional<config::Cluster> cluster;
  std::string cluster_group;
};

// Measures multicast group `name` of `cluster` (a cluster file as
// ClusterConfig loads it; its nodes named as hosts of `topology`): its
// senders and its members become `groups`' senders and receivers, and the
// cluster the fabric file's section. Errors name the group or node.
absl::Status UseClusterGroup(const Topology& topology, const config::ClusterConfig& cluster,
                             const std::string& name, MeasuredGroups* groups);

// The fabric file (text format) for `bed`, whose topology is `shape`.
absl::StatusOr<std::string> MeasureFabricText(const Testbed& bed, const LeafSpineSpec& shape,
                                              const MeasuredGroups& groups);

class ControlledFabric {
 public:
  // `flags`: more mom_controller flags (e.g. "--interval_ms=100").
  static absl::StatusOr<std::unique_ptr<ControlledFabric>> Start(
      const std::string& controller_binary, const std::string& fabric_path,
      const std::vector<std::string>& flags = {});

  const Fabric& fabric() const { return fabric_; }
  // Each group's routes as the controller installed them, in the file's order.
  const std::vector<GroupRoutes>& routes() const { return routes_; }
  // The lines the controller printed since the first configuration or the
  // last call: configurations it pushed after finding a switch or link failed
  // (or back).
  std::vector<std::string> Reconfigurations();

 private:
  ControlledFabric(Fabric fabric, std::vector<GroupRoutes> routes)
      : fabric_(std::move(fabric)), routes_(std::move(routes)) {}

  Fabric fabric_;
  std::vector<GroupRoutes> routes_;
  ControllerProcess controller_;
};

}  // namespace dctk::mom

#endif  // DCTK_MOM_MEASURE_CONTROLLED_FABRIC_H_
