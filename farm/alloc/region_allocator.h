// RegionAllocator: the cluster-level allocator of regions (FaRM's CM role).
// A new region gets an id, is placed on the consistent-hashing ring (primary +
// backups), is made to exist on every replica through a RegionHost (which
// registers memory with that machine's fabric and returns its key), and is
// published in the RegionTable. It also owns each region's BlockAllocator and
// implements the block-level locality hint: a block in the hinted region, else
// in the region closest to it on the ring (same primary first), else in a new
// region placed on the same primary.
//
// Example:
//   RegionAllocator regions(&ring, &table, /*replicas=*/2, /*region_size=*/64 << 20,
//       [&](fabric::MachineId m, RegionId, uint64_t size) -> absl::StatusOr<fabric::RegionKey> {
//         auto r = fabrics[m]->Register(size);
//         if (!r.ok()) return r.status();
//         return r->key;
//       });
//   absl::StatusOr<GlobalAddress> block = regions.AllocateBlock(owner, /*near=*/absl::nullopt);
#ifndef DCTK_FARM_ALLOC_REGION_ALLOCATOR_H_
#define DCTK_FARM_ALLOC_REGION_ALLOCATOR_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/optional.h"
#include "farm/alloc/block_allocator.h"
#include "farm/core/placement_ring.h"
#include "farm/core/region_table.h"

namespace dctk::farm {

using RegionHost = std::function<absl::StatusOr<fabric::RegionKey>(
    fabric::MachineId machine, RegionId region, uint64_t size)>;

class RegionAllocator {
 public:
  RegionAllocator(const PlacementRing* ring, RegionTable* table, uint32_t replicas,
                  uint64_t region_size, RegionHost host);

  // A new region; with `near`, one whose primary is near's primary.
  absl::StatusOr<RegionInfo> AllocateRegion(absl::optional<RegionId> near = absl::nullopt);
  // A free 1 MB block (see the locality order above), owned by `owner`.
  absl::StatusOr<GlobalAddress> AllocateBlock(const void* owner, absl::optional<RegionId> near);
  absl::Status FreeBlock(GlobalAddress block_start);
  // The owner of the block holding `addr`, or null if it is free or unknown.
  const void* OwnerOf(GlobalAddress addr) const;

  uint64_t region_size() const { return region_size_; }
  size_t regions() const;

 private:
  // Region ids to try for a block near `near`, best first.
  std::vector<RegionId> CandidatesNear(RegionId near) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<RegionId> PickNewId(absl::optional<RegionId> near) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<RegionInfo> AllocateRegionLocked(absl::optional<RegionId> near)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const PlacementRing* ring_;
  RegionTable* table_;
  const uint32_t replicas_;
  const uint64_t region_size_;
  RegionHost host_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<RegionId, std::unique_ptr<BlockAllocator>> blocks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dctk::farm

#endif  // DCTK_FARM_ALLOC_REGION_ALLOCATOR_H_
