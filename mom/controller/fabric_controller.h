// FabricController: keeps a fabric of MOM switches configured for its groups
// and routes around switches that fail.
//
// Reconcile() asks every switch for its stats over gRPC (the health check);
// a switch that does not answer is taken as failed: it is failed in the
// topology the routes are computed on and blacklisted as root, so every group
// whose root it was gets a new root at the same distance from all receivers
// (ComputeRoutes' root selection), and unicast routes avoid it too. When the
// set of failed switches changes (or on the first call), routes are computed,
// verified and pushed to every live switch. A failed switch that answers
// again is used again. This is what mom_controller runs in a loop.
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

class FabricController {
 public:
  // `connect_timeout`: how long a switch may take to accept a connection.
  explicit FabricController(Fabric fabric, absl::Duration connect_timeout = absl::Seconds(1));

  // One health check of every switch, and a new configuration if the set of
  // failed switches changed. True if it pushed a configuration. Fails if no
  // valid routes exist any more (e.g. no eligible root) or a live switch
  // rejects its configuration; the next call tries again.
  absl::StatusOr<bool> Reconcile();

  const Fabric& fabric() const { return fabric_; }
  const std::set<int>& failed() const { return failed_; }
  // Routes installed by the last successful push, in the fabric's group order.
  const std::vector<GroupRoutes>& routes() const { return routes_; }
  // One line: failed switches and each group's roots, e.g.
  // "failed: spine0; group 5 (serialized) roots: spine1".
  std::string Describe() const;

 private:
  SwitchClient* Client(int node);
  absl::Status Push();

  Fabric fabric_;
  absl::Duration connect_timeout_;
  std::map<int, std::unique_ptr<SwitchClient>> clients_;
  std::set<int> failed_;
  bool configured_ = false;
  std::vector<GroupRoutes> routes_;
};

}  // namespace dctk::mom

#endif  // DCTK_MOM_CONTROLLER_FABRIC_CONTROLLER_H_
