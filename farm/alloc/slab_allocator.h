// SlabAllocator: FaRM's per-thread object allocator. One per thread; each
// keeps, per size class (size_classes.h), slabs carved from 1 MB blocks, and
// allocates and frees its own objects without locks: a free-slot stack and a
// bump pointer per slab, and a liveness bitmap that catches double frees.
// Only taking a new block (once per megabyte of a class) goes to the shared
// RegionAllocator. A Free of another thread's object is queued to its owner
// (mutex on that rare path) and applied on the owner's next allocation.
//
// Locality hints: Allocate(size, near) places the object in near's block if
// this thread has a slab of that class there with room, else in one of its
// slabs in the same region, else in a new block of that region, else in a
// block of the region closest on the ring (RegionAllocator::AllocateBlock).
//
// The allocator only manages address space: it never touches object memory
// (the transaction that allocates initialises the object, see object.h). It
// must outlive every Free of the objects it handed out.
//
// Example:
//   SlabAllocator slab(&regions);                           // per thread
//   absl::StatusOr<GlobalAddress> a = slab.Allocate(100);
//   absl::StatusOr<GlobalAddress> b = slab.Allocate(100, /*near=*/*a);  // same block
//   slab.Free(*a);
#ifndef DCTK_FARM_ALLOC_SLAB_ALLOCATOR_H_
#define DCTK_FARM_ALLOC_SLAB_ALLOCATOR_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "farm/alloc/region_allocator.h"
#include "farm/alloc/size_classes.h"
#include "farm/core/address.h"

namespace dctk::farm {

struct SlabStats {
  uint64_t allocations = 0;
  uint64_t frees = 0;
  uint64_t blocks_taken = 0;     // slow path: blocks fetched from the RegionAllocator
  uint64_t blocks_returned = 0;  // empty slabs given back
  uint64_t bad_remote_frees = 0; // cross-thread frees found invalid when applied
};

class SlabAllocator {
 public:
  explicit SlabAllocator(RegionAllocator* regions) : regions_(regions) {}
  SlabAllocator(const SlabAllocator&) = delete;
  SlabAllocator& operator=(const SlabAllocator&) = delete;

  // An object of at least `bytes` (<= 1 MB), aligned to 64 bytes, near `near`
  // when it is not null.
  absl::StatusOr<GlobalAddress> Allocate(size_t bytes, GlobalAddress near = GlobalAddress());
  // Frees an object this or another SlabAllocator returned. Errors: not the
  // start of an allocated object (including a double free).
  absl::Status Free(GlobalAddress addr);

  const SlabStats& stats() const { return stats_; }
  size_t slabs() const { return slabs_.size(); }

 private:
  struct Slab {
    GlobalAddress start;
    int size_class;
    uint32_t slot_size;
    uint32_t slots;
    uint32_t bump = 0;
    uint32_t live = 0;
    bool open = true;  // listed in open_[size_class]
    std::vector<uint32_t> free;
    std::vector<uint64_t> live_bits;
  };

  absl::StatusOr<Slab*> SlabFor(int size_class, GlobalAddress near);
  absl::StatusOr<Slab*> NewSlab(int size_class, absl::optional<RegionId> near);
  static bool HasRoom(const Slab& s) { return !s.free.empty() || s.bump < s.slots; }
  absl::Status FreeLocal(Slab* slab, GlobalAddress addr);
  void RemoteFree(GlobalAddress addr);
  void DrainRemoteFrees();

  RegionAllocator* const regions_;
  std::array<std::vector<Slab*>, kNumSizeClasses> open_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Slab>> slabs_;  // by block start
  SlabStats stats_;

  std::atomic<bool> has_remote_frees_{false};
  absl::Mutex remote_mu_;
  std::vector<GlobalAddress> remote_frees_ ABSL_GUARDED_BY(remote_mu_);
};

}  // namespace dctk::farm

#endif  // DCTK_FARM_ALLOC_SLAB_ALLOCATOR_H_
