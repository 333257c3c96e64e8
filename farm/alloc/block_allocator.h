// BlockAllocator: hands out the 1 MB blocks of one region. Each block records
// its owner (an opaque slab tag), so a free of an object can find the slab
// that owns it. Thread-safe (a mutex; blocks are taken rarely: a slab refills
// once per megabyte).
//
// Example:
//   BlockAllocator blocks(/*region=*/7, /*region_size=*/64 << 20);
//   absl::StatusOr<uint32_t> b = blocks.Allocate(owner);   // block index
//   GlobalAddress start = blocks.BlockStart(*b);
#ifndef DCTK_FARM_ALLOC_BLOCK_ALLOCATOR_H_
#define DCTK_FARM_ALLOC_BLOCK_ALLOCATOR_H_

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "farm/core/address.h"

namespace dctk::farm {

inline constexpr uint32_t kBlockBytes = 1 << 20;

class BlockAllocator {
 public:
  BlockAllocator(RegionId region, uint64_t region_size);

  // A free block, marked as owned by `owner` (non-null). ResourceExhausted
  // when the region is full.
  absl::StatusOr<uint32_t> Allocate(const void* owner);
  absl::Status Free(uint32_t block);
  // The owner recorded for the block containing `offset`, or null if free.
  const void* OwnerOf(uint32_t offset) const;

  RegionId region() const { return region_; }
  uint32_t blocks() const { return static_cast<uint32_t>(owners_.size()); }
  uint32_t free_blocks() const;
  GlobalAddress BlockStart(uint32_t block) const { return GlobalAddress(region_, block * kBlockBytes); }

 private:
  const RegionId region_;
  mutable absl::Mutex mu_;
  std::vector<const void*> owners_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> free_ ABSL_GUARDED_BY(mu_);  // stack; lowest index on top
};

}  // namespace dctk::farm

#endif  // DCTK_FARM_ALLOC_BLOCK_ALLOCATOR_H_
