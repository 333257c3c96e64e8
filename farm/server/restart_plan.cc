#include "farm/server/restart_plan.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dctk::farm::server {

absl::StatusOr<cm::Configuration> PlanRestart(const cm::Configuration& saved, const cm::Configuration& joined,
                                              const absl::flat_hash_set<uint32_t>& with_files,
                                              std::vector<LostRegion>* lost) {
  if (saved.replicas() != joined.replicas() || saved.region_size() != joined.region_size() ||
      saved.lease_ms() != joined.lease_ms()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "CM restart: the machines' files were written with replicas=", saved.replicas(), " region_size=",
        saved.region_size(), " lease_ms=", saved.lease_ms(), ", the CM now runs with replicas=", joined.replicas(),
        " region_size=", joined.region_size(), " lease_ms=", joined.lease_ms()));
  }
  absl::flat_hash_set<uint32_t> back;
  for (const cm::Machine& m : joined.machines()) back.insert(m.id());
  cm::Configuration out = saved;
  *out.mutable_machines() = joined.machines();
  out.set_id(std::max(saved.id(), joined.id()) + 1);
  out.clear_failed();
  for (uint32_t id : saved.failed()) {
    if (!back.contains(id)) out.add_failed(id);
  }
  for (const cm::Machine& m : saved.machines()) {
    if (!m.client() && !back.contains(m.id())) out.add_failed(m.id());
  }
  for (cm::Region& region : *out.mutable_regions()) {
    if (region.lost()) continue;
    std::vector<std::string> held;
    cm::Region kept = region;
    kept.clear_replicas();
    bool complete = false;
    for (const cm::Replica& rep : region.replicas()) {
      held.push_back(absl::StrCat(rep.machine(), rep.copying() ? " (copying)" : ""));
      if (!back.contains(rep.machine()) || !with_files.contains(rep.machine())) continue;
      cm::Replica* r = kept.add_replicas();
      *r = rep;
      r->set_key(0);
      complete |= !rep.copying();
    }
    if (!complete) {
      std::string why = absl::StrCat("region ", region.id(), " was held by machines [", absl::StrJoin(held, ", "),
                                     "] and none of its complete copies is back");
      if (lost == nullptr) return absl::FailedPreconditionError(absl::StrCat("CM restart: ", why));
      lost->push_back({region.id(), std::move(why)});
      region.clear_replicas();
      region.set_lost(true);
      continue;
    }
    // Complete copies first (the first one is the primary), as the CM keeps them.
    std::stable_partition(kept.mutable_replicas()->begin(), kept.mutable_replicas()->end(),
                          [](const cm::Replica& r) { return !r.copying(); });
    region = std::move(kept);
  }
  return out;
}

}  // namespace dctk::farm::server
