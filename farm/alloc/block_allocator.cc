#include "farm/alloc/block_allocator.h"

#include "absl/strings/str_cat.h"

namespace dctk::farm {

BlockAllocator::BlockAllocator(RegionId region, uint64_t region_size)
    : region_(region), owners_(region_size / kBlockBytes, nullptr) {
  for (uint32_t b = static_cast<uint32_t>(owners_.size()); b > 0; --b) free_.push_back(b - 1);
}

absl::StatusOr<uint32_t> BlockAllocator::Allocate(const void* owner) {
  absl::MutexLock l(&mu_);
  if (free_.empty()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("region ", region_, ": all ", owners_.size(), " blocks allocated"));
  }
  const uint32_t b = free_.back();
  free_.pop_back();
  owners_[b] = owner;
  return b;
}

absl::Status BlockAllocator::Free(uint32_t block) {
  absl::MutexLock l(&mu_);
  if (block >= owners_.size() || owners_[block] == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("region ", region_, ": block ", block, " is not allocated"));
  }
  owners_[block] = nullptr;
  free_.push_back(block);
  return absl::OkStatus();
}

const void* BlockAllocator::OwnerOf(uint32_t offset) const {
  absl::MutexLock l(&mu_);
  const uint32_t b = offset / kBlockBytes;
  return b < owners_.size() ? owners_[b] : nullptr;
}

uint32_t BlockAllocator::free_blocks() const {
  absl::MutexLock l(&mu_);
  return static_cast<uint32_t>(free_.size());
}

}  // namespace dctk::farm
