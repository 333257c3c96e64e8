#include "farm/alloc/region_allocator.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace dctk::farm {
namespace {
// How far a hinted region search looks for an id whose primary matches.
constexpr RegionId kPlacementSearch = 4096;
}  // namespace

RegionAllocator::RegionAllocator(const PlacementRing* ring, RegionTable* table, uint32_t replicas,
                                 uint64_t region_size, RegionHost host)
    : ring_(ring), table_(table), replicas_(replicas), region_size_(region_size), host_(std::move(host)) {
  // Callers pass a validated ClusterConfig (cluster_config.h).
  CHECK(region_size % kBlockBytes == 0 && region_size > 0 && region_size <= (uint64_t{1} << 32))
      << "region size " << region_size;
}

size_t RegionAllocator::regions() const {
  absl::MutexLock l(&mu_);
  return blocks_.size();
}

absl::StatusOr<RegionId> RegionAllocator::PickNewId(absl::optional<RegionId> near) const {
  const absl::optional<fabric::MachineId> want =
      near ? absl::optional<fabric::MachineId>(ring_->Primary(*near)) : absl::nullopt;
  for (RegionId id = 1; id <= kPlacementSearch + blocks_.size(); ++id) {
    if (blocks_.contains(id)) continue;
    if (!want || ring_->Primary(id) == *want) return id;
  }
  if (want) return PickNewId(absl::nullopt);  // no id lands there: any free id
  return absl::ResourceExhaustedError("region allocator: no free region id");
}

absl::StatusOr<RegionInfo> RegionAllocator::AllocateRegion(absl::optional<RegionId> near) {
  absl::MutexLock l(&mu_);
  return AllocateRegionLocked(near);
}

absl::StatusOr<RegionInfo> RegionAllocator::AllocateRegionLocked(absl::optional<RegionId> near) {
  absl::StatusOr<RegionId> id = PickNewId(near);
  if (!id.ok()) return id.status();
  absl::StatusOr<std::vector<fabric::MachineId>> machines = ring_->Place(*id, replicas_);
  if (!machines.ok()) return machines.status();
  RegionInfo info{*id, region_size_, {}};
  for (fabric::MachineId m : *machines) {
    absl::StatusOr<fabric::RegionKey> key = host_(m, *id, region_size_);
    if (!key.ok()) {
      return absl::Status(key.status().code(),
                          absl::StrCat("allocating region ", *id, " on machine ", m, ": ",
                                       key.status().message()));
    }
    info.replicas.push_back({m, *key});
  }
  absl::Status s = table_->Upsert(info);
  if (!s.ok()) return s;
  blocks_[*id] = std::make_unique<BlockAllocator>(*id, region_size_);
  return info;
}

std::vector<RegionId> RegionAllocator::CandidatesNear(RegionId near) const {
  const fabric::MachineId primary = ring_->Primary(near);
  std::vector<std::tuple<bool, uint64_t, RegionId>> order;
  for (const auto& [id, blocks] : blocks_) {
    order.emplace_back(ring_->Primary(id) != primary, PlacementRing::Distance(near, id), id);
  }
  std::sort(order.begin(), order.end());
  std::vector<RegionId> out;
  if (blocks_.contains(near)) out.push_back(near);
  for (const auto& [other_primary, distance, id] : order) {
    if (id != near) out.push_back(id);
  }
  return out;
}

absl::StatusOr<GlobalAddress> RegionAllocator::AllocateBlock(const void* owner,
                                                             absl::optional<RegionId> near) {
  absl::MutexLock l(&mu_);
  std::vector<RegionId> candidates;
  if (near) {
    candidates = CandidatesNear(*near);
  } else {
    for (const auto& [id, blocks] : blocks_) candidates.push_back(id);
    std::sort(candidates.begin(), candidates.end());
  }
  for (RegionId id : candidates) {
    BlockAllocator* blocks = blocks_.at(id).get();
    absl::StatusOr<uint32_t> b = blocks->Allocate(owner);
    if (b.ok()) return blocks->BlockStart(*b);
  }
  absl::StatusOr<RegionInfo> region = AllocateRegionLocked(near);
  if (!region.ok()) return region.status();
  BlockAllocator* blocks = blocks_.at(region->id).get();
  absl::StatusOr<uint32_t> b = blocks->Allocate(owner);
  if (!b.ok()) return b.status();
  return blocks->BlockStart(*b);
}

absl::Status RegionAllocator::FreeBlock(GlobalAddress block_start) {
  absl::MutexLock l(&mu_);
  auto it = blocks_.find(block_start.region());
  if (it == blocks_.end() || block_start.offset() % kBlockBytes != 0) {
    return absl::InvalidArgumentError(absl::StrCat("FreeBlock(", block_start.ToString(), "): not a block start"));
  }
  return it->second->Free(block_start.offset() / kBlockBytes);
}

const void* RegionAllocator::OwnerOf(GlobalAddress addr) const {
  absl::MutexLock l(&mu_);
  auto it = blocks_.find(addr.region());
  return it == blocks_.end() ? nullptr : it->second->OwnerOf(addr.offset());
}

}  // namespace dctk::farm
