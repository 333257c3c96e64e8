// Test-only: a cluster of fake machines whose RegionHost hands out keys and
// records which machine hosts which region.
//
// Example:
//   FakeCluster cluster({1, 2, 3}, /*replicas=*/2, /*region_size=*/4 << 20);
//   SlabAllocator slab(&cluster.regions);
#ifndef DCTK_FARM_ALLOC_ALLOC_TEST_UTIL_H_
#define DCTK_FARM_ALLOC_ALLOC_TEST_UTIL_H_

#include <map>
#include <utility>
#include <vector>

#include "farm/alloc/region_allocator.h"
#include "farm/core/placement_ring.h"
#include "farm/core/region_table.h"

namespace dctk::farm {

struct FakeCluster {
  FakeCluster(std::vector<fabric::MachineId> machines, uint32_t replicas, uint64_t region_size)
      : ring(*PlacementRing::Create(std::move(machines), 16)),
        regions(&ring, &table, replicas, region_size,
                [this](fabric::MachineId m, RegionId id, uint64_t) -> absl::StatusOr<fabric::RegionKey> {
                  hosted[m].push_back(id);
                  return static_cast<fabric::RegionKey>(id + 100);
                }) {}

  PlacementRing ring;
  RegionTable table;
  std::map<fabric::MachineId, std::vector<RegionId>> hosted;
  RegionAllocator regions;
};

}  // namespace dctk::farm

#endif  // DCTK_FARM_ALLOC_ALLOC_TEST_UTIL_H_
