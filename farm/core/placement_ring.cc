#include "farm/core/placement_ring.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace dctk::farm {
namespace {

// splitmix64: a fixed, well-mixed hash, identical on every machine and run.
uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t PlacementRing::PositionOf(RegionId region) { return Mix(uint64_t{region} | (1ULL << 40)); }

absl::StatusOr<PlacementRing> PlacementRing::Create(std::vector<fabric::MachineId> machines,
                                                    uint32_t virtual_nodes) {
  if (machines.empty()) return absl::InvalidArgumentError("placement ring: no machines");
  if (virtual_nodes == 0) return absl::InvalidArgumentError("placement ring: virtual_nodes must be > 0");
  std::sort(machines.begin(), machines.end());
  if (std::adjacent_find(machines.begin(), machines.end()) != machines.end()) {
    return absl::InvalidArgumentError("placement ring: a machine id appears twice");
  }
  PlacementRing ring;
  ring.machines_ = machines;
  ring.points_.reserve(machines.size() * virtual_nodes);
  for (fabric::MachineId m : machines) {
    for (uint32_t v = 0; v < virtual_nodes; ++v) {
      ring.points_.emplace_back(Mix((uint64_t{m} << 32) | v), m);
    }
  }
  std::sort(ring.points_.begin(), ring.points_.end());
  return ring;
}

size_t PlacementRing::Successor(uint64_t position) const {
  auto it = std::lower_bound(points_.begin(), points_.end(),
                             std::make_pair(position, fabric::MachineId{0}));
  return it == points_.end() ? 0 : static_cast<size_t>(it - points_.begin());
}

absl::StatusOr<std::vector<fabric::MachineId>> PlacementRing::Place(RegionId region,
                                                                    uint32_t replicas) const {
  if (replicas == 0 || replicas > machines_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("placement ring: ", replicas, " replicas with ",
                                                   machines_.size(), " machines"));
  }
  std::vector<fabric::MachineId> out;
  out.reserve(replicas);
  for (size_t i = Successor(PositionOf(region)); out.size() < replicas; i = (i + 1) % points_.size()) {
    const fabric::MachineId m = points_[i].second;
    if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  }
  return out;
}

fabric::MachineId PlacementRing::Primary(RegionId region) const {
  return points_[Successor(PositionOf(region))].second;
}

}  // namespace dctk::farm
