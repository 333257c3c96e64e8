#include "farm/alloc/slab_allocator.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace dctk::farm {
namespace {

uint64_t BlockKey(GlobalAddress a) {
  return GlobalAddress(a.region(), a.offset() & ~(kBlockBytes - 1)).raw();
}

}  // namespace

absl::StatusOr<SlabAllocator::Slab*> SlabAllocator::NewSlab(int size_class,
                                                            absl::optional<RegionId> near) {
  absl::StatusOr<GlobalAddress> block = regions_->AllocateBlock(this, near);
  if (!block.ok()) return block.status();
  ++stats_.blocks_taken;
  auto slab = std::make_unique<Slab>();
  slab->start = *block;
  slab->size_class = size_class;
  slab->slot_size = ClassSize(size_class);
  slab->slots = kBlockBytes / slab->slot_size;
  slab->live_bits.assign((slab->slots + 63) / 64, 0);
  Slab* raw = slab.get();
  slabs_[block->raw()] = std::move(slab);
  open_[size_class].push_back(raw);
  return raw;
}

absl::StatusOr<SlabAllocator::Slab*> SlabAllocator::SlabFor(int size_class, GlobalAddress near) {
  std::vector<Slab*>& open = open_[size_class];
  if (near.is_null()) {
    if (!open.empty()) return open.back();
    return NewSlab(size_class, absl::nullopt);
  }
  Slab* same_region = nullptr;
  for (Slab* s : open) {
    if (s->start.raw() == BlockKey(near)) return s;  // same block
    if (s->start.region() == near.region() && same_region == nullptr) same_region = s;
  }
  if (same_region != nullptr) return same_region;
  return NewSlab(size_class, near.region());
}

absl::StatusOr<GlobalAddress> SlabAllocator::Allocate(size_t bytes, GlobalAddress near) {
  if (has_remote_frees_.load(std::memory_order_relaxed)) DrainRemoteFrees();
  absl::StatusOr<int> size_class = SizeClassFor(bytes);
  if (!size_class.ok()) return size_class.status();
  absl::StatusOr<Slab*> slab_or = SlabFor(*size_class, near);
  if (!slab_or.ok()) return slab_or.status();
  Slab* slab = *slab_or;
  uint32_t slot;
  if (!slab->free.empty()) {
    slot = slab->free.back();
    slab->free.pop_back();
  } else {
    slot = slab->bump++;
  }
  slab->live_bits[slot / 64] |= uint64_t{1} << (slot % 64);
  ++slab->live;
  ++stats_.allocations;
  if (!HasRoom(*slab)) {
    auto& open = open_[slab->size_class];
    open.erase(std::find(open.begin(), open.end(), slab));
    slab->open = false;
  }
  return slab->start.Plus(slot * slab->slot_size);
}

absl::Status SlabAllocator::FreeLocal(Slab* slab, GlobalAddress addr) {
  const uint32_t within = addr.offset() - slab->start.offset();
  const uint32_t slot = within / slab->slot_size;
  if (within % slab->slot_size != 0 || slot >= slab->slots ||
      (slab->live_bits[slot / 64] & (uint64_t{1} << (slot % 64))) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Free(", addr.ToString(), "): not an allocated object (double free or interior address)"));
  }
  slab->live_bits[slot / 64] &= ~(uint64_t{1} << (slot % 64));
  slab->free.push_back(slot);
  --slab->live;
  ++stats_.frees;
  auto& open = open_[slab->size_class];
  if (!slab->open) {
    open.push_back(slab);
    slab->open = true;
  }
  // Give an empty block back unless it is this class's only slab with room.
  if (slab->live == 0 && open.size() > 1) {
    open.erase(std::find(open.begin(), open.end(), slab));
    const GlobalAddress start = slab->start;
    slabs_.erase(start.raw());
    const absl::Status freed = regions_->FreeBlock(start);
    CHECK(freed.ok()) << freed;  // we owned it
    ++stats_.blocks_returned;
  }
  return absl::OkStatus();
}

absl::Status SlabAllocator::Free(GlobalAddress addr) {
  auto it = slabs_.find(BlockKey(addr));
  if (it != slabs_.end()) return FreeLocal(it->second.get(), addr);
  const auto* owner = static_cast<const SlabAllocator*>(regions_->OwnerOf(addr));
  if (owner == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("Free(", addr.ToString(), "): no allocated block holds this address"));
  }
  const_cast<SlabAllocator*>(owner)->RemoteFree(addr);
  return absl::OkStatus();
}

void SlabAllocator::RemoteFree(GlobalAddress addr) {
  absl::MutexLock l(&remote_mu_);
  remote_frees_.push_back(addr);
  has_remote_frees_.store(true, std::memory_order_release);
}

void SlabAllocator::DrainRemoteFrees() {
  std::vector<GlobalAddress> frees;
  {
    absl::MutexLock l(&remote_mu_);
    frees.swap(remote_frees_);
    has_remote_frees_.store(false, std::memory_order_relaxed);
  }
  for (GlobalAddress a : frees) {
    auto it = slabs_.find(BlockKey(a));
    absl::Status s = it == slabs_.end()
                         ? absl::InvalidArgumentError("block no longer owned")
                         : FreeLocal(it->second.get(), a);
    if (!s.ok()) {
      ++stats_.bad_remote_frees;
      LOG(ERROR) << "slab allocator: cross-thread Free(" << a.ToString() << ") rejected: " << s;
    }
  }
}

}  // namespace dctk::farm
