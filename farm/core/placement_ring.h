// PlacementRing: maps regions to machines with consistent hashing, as FaRM's
// configuration manager does (NSDI'14 §4). Each machine owns `virtual_nodes`
// points on a 64-bit ring; a region hashes to a point and its replicas are the
// first `replicas` distinct machines clockwise from it: the first is the
// primary, the rest are backups. Adding or removing a machine moves only the
// regions whose arc it takes or frees (about 1/N of them).
//
// Example:
//   absl::StatusOr<PlacementRing> ring = PlacementRing::Create({1, 2, 3}, 64);
//   absl::StatusOr<std::vector<fabric::MachineId>> r = ring->Place(/*region=*/7, 2);
//   // (*r)[0] is region 7's primary, (*r)[1] its backup.
#ifndef DCTK_FARM_CORE_PLACEMENT_RING_H_
#define DCTK_FARM_CORE_PLACEMENT_RING_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "farm/core/address.h"
#include "farm/fabric/fabric.h"

namespace dctk::farm {

class PlacementRing {
 public:
  static absl::StatusOr<PlacementRing> Create(std::vector<fabric::MachineId> machines,
                                              uint32_t virtual_nodes);

  // The first `replicas` distinct machines clockwise from the region's point.
  absl::StatusOr<std::vector<fabric::MachineId>> Place(RegionId region, uint32_t replicas) const;
  fabric::MachineId Primary(RegionId region) const;

  // Where a region sits on the ring, and the clockwise distance between two
  // regions' points (used to find "nearby" regions for locality hints).
  static uint64_t PositionOf(RegionId region);
  static uint64_t Distance(RegionId from, RegionId to) { return PositionOf(to) - PositionOf(from); }

  const std::vector<fabric::MachineId>& machines() const { return machines_; }

 private:
  PlacementRing() = default;
  // Index into points_ of the first point at or after `position` (wrapping).
  size_t Successor(uint64_t position) const;

  std::vector<fabric::MachineId> machines_;
  std::vector<std::pair<uint64_t, fabric::MachineId>> points_;  // sorted by position
};

}  // namespace dctk::farm

#endif  // DCTK_FARM_CORE_PLACEMENT_RING_H_
