// Applies a CM Configuration to a machine's or client's RegionTable: every
// live region with its replicas (primary first) and their fabric keys; lost
// regions are removed.
#ifndef DCTK_FARM_SERVER_INSTALL_CONFIG_H_
#define DCTK_FARM_SERVER_INSTALL_CONFIG_H_

#include "farm/cm/cm.pb.h"
#include "farm/core/region_table.h"

namespace dctk::farm::server {

inline void InstallConfiguration(const cm::Configuration& c, RegionTable* table) {
  for (const cm::Region& region : c.regions()) {
    if (region.lost() || region.replicas().empty()) {
      (void)table->Remove(region.id());
      continue;
    }
    RegionInfo info{region.id(), region.size(), {}};
    for (const cm::Replica& rep : region.replicas()) info.replicas.push_back({rep.machine(), rep.key()});
    (void)table->Upsert(std::move(info));
  }
}

}  // namespace dctk::farm::server

#endif  // DCTK_FARM_SERVER_INSTALL_CONFIG_H_
