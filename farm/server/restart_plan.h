// PlanRestart: the configuration a CM bootstraps into when the whole cluster
// restarts from its files. Machines keep the last configuration installed at
// them (machine_files.h); the CM takes the newest one any machine kept
// (`saved`: the placement the files were written under) and the machines
// that joined it now (`joined`: a fresh CM state) of which `with_files`
// kept a configuration on file, and returns the configuration to restore:
//   - machines: the joined ones (their new endpoints and control addresses);
//   - regions: the saved placement, each replica kept iff its machine joined
//     again (same id) with its files, keys cleared (each machine registers new memory);
//     copying backups stay copying (the copy starts over). A region none of
//     whose complete copies came back cannot be restored:
//     FailedPrecondition naming it and the machines that held it; or, with
//     `lost` set (the CM gave up waiting for the missing machines), the
//     region stays lost in the plan and is listed in `*lost` with that reason;
//   - failed: the saved list plus the saved members that did not come back,
//     minus machines that joined (a new incarnation of the whole cluster; one
//     that joined without its files holds nothing, like a new machine);
//   - id: above both, so no machine follows an older configuration;
//   - replicas, region size, lease: the saved ones, which must equal `joined`'s.
//
// Example:
//   absl::StatusOr<cm::Configuration> r = PlanRestart(newest_saved, cm_state.config(), {1, 2, 3});
//   std::vector<LostRegion> lost;   // restore what came back, the rest stays lost
//   r = PlanRestart(newest_saved, cm_state.config(), {1, 2}, &lost);
#ifndef DCTK_FARM_SERVER_RESTART_PLAN_H_
#define DCTK_FARM_SERVER_RESTART_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "farm/cm/cm.pb.h"

namespace dctk::farm::server {

struct LostRegion {
  uint32_t region = 0;
  std::string why;  // "region 4 was held by machines [2, 3] and none of its complete copies is back"
};

absl::StatusOr<cm::Configuration> PlanRestart(const cm::Configuration& saved, const cm::Configuration& joined,
                                              const absl::flat_hash_set<uint32_t>& with_files,
                                              std::vector<LostRegion>* lost = nullptr);

}  // namespace dctk::farm::server

#endif  // DCTK_FARM_SERVER_RESTART_PLAN_H_
