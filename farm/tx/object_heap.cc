#include "farm/tx/object_heap.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/types/optional.h"
#include "farm/alloc/block_allocator.h"
#include "farm/alloc/size_classes.h"
#include "farm/core/object.h"

namespace dctk::farm::tx {

absl::StatusOr<uint32_t> SlotBytesFor(size_t payload) {
  if (payload == 0 || payload > kMaxObjectPayload) {
    return absl::InvalidArgumentError(absl::StrCat("object of ", payload,
                                                   " bytes: payload must be 1..", kMaxObjectPayload));
  }
  absl::StatusOr<int> c = SizeClassFor(ObjectBytes(payload));
  if (!c.ok()) return c.status();
  return ClassSize(*c);
}

ObjectHeap::ObjectHeap(RegionId region, uint8_t* base, uint64_t region_size)
    : region_(region), base_(base), blocks_(region_size / kBlockBytes) {}

uint32_t ObjectHeap::free_blocks() const {
  uint32_t n = 0;
  for (const Block& b : blocks_) n += b.used == 0;
  return n;
}

void ObjectHeap::Assign(uint32_t block, int size_class, uint32_t slot_bytes) {
  Block& b = blocks_[block];
  b.size_class = size_class;
  b.slot_bytes = slot_bytes;
  b.used = 0;
  b.slots.assign(kBlockBytes / slot_bytes, Slot::kFree);
}

void ObjectHeap::Format(uint32_t block) {
  const Block& b = blocks_[block];
  for (uint64_t i = 0; i < b.slots.size(); ++i) {
    __atomic_store_n(Header(uint64_t{block} * kBlockBytes + i * b.slot_bytes), b.floor,
                     __ATOMIC_RELEASE);
  }
}

void ObjectHeap::NoteVersion(GlobalAddress addr, uint64_t version) {
  const uint64_t block = addr.offset() / kBlockBytes;
  if (addr.region() == region_ && block < blocks_.size()) {
    blocks_[block].floor = std::max(blocks_[block].floor, version & kVersionMask);
  }
}

std::vector<std::pair<uint32_t, uint64_t>> ObjectHeap::Floors() const {
  std::vector<std::pair<uint32_t, uint64_t>> out;
  for (uint32_t b = 0; b < blocks_.size(); ++b) {
    if (blocks_[b].floor != 0) out.emplace_back(b, blocks_[b].floor);
  }
  return out;
}

void ObjectHeap::SetFloor(uint32_t block, uint64_t floor) {
  if (block < blocks_.size()) blocks_[block].floor = std::max(blocks_[block].floor, floor);
}

std::vector<std::pair<uint32_t, uint32_t>> ObjectHeap::Classes() const {
  std::vector<std::pair<uint32_t, uint32_t>> out;
  for (uint32_t b = 0; b < blocks_.size(); ++b) {
    if (blocks_[b].size_class >= 0) out.emplace_back(b, blocks_[b].slot_bytes);
  }
  return out;
}

std::vector<WriteEntry> ObjectHeap::BlockMarks(uint64_t from, uint64_t to) const {
  std::vector<WriteEntry> out;
  for (uint64_t b = from / kBlockBytes; b < blocks_.size() && b * kBlockBytes < to; ++b) {
    const Block& block = blocks_[b];
    if (block.size_class < 0 && block.floor == 0) continue;
    WriteEntry mark;
    mark.addr = GlobalAddress(region_, static_cast<uint32_t>(b * kBlockBytes));
    mark.kind = EntryKind::kBlockMark;
    mark.slot_bytes = block.size_class < 0 ? 0 : block.slot_bytes;
    mark.version = block.floor;
    out.push_back(std::move(mark));
  }
  return out;
}

void ObjectHeap::AdoptMark(const WriteEntry& mark) {
  const uint32_t block = mark.addr.offset() / kBlockBytes;
  if (mark.addr.region() != region_ || block >= blocks_.size()) return;
  Block& b = blocks_[block];
  if (b.size_class < 0 && mark.slot_bytes != 0 && !SetClass(block, mark.slot_bytes).ok()) return;
  if (b.size_class < 0 || b.slot_bytes == mark.slot_bytes) SetFloor(block, mark.version);
}

absl::Status ObjectHeap::SetClass(uint32_t block, uint32_t slot_bytes) {
  absl::StatusOr<int> size_class = SizeClassFor(slot_bytes);
  if (block >= blocks_.size() || !size_class.ok() || ClassSize(*size_class) != slot_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("block ", block, " of region ", region_, " with ", slot_bytes, "-byte slots"));
  }
  if (blocks_[block].used != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("block ", block, " of region ", region_, " is in use"));
  }
  Assign(block, *size_class, slot_bytes);
  return absl::OkStatus();
}

void ObjectHeap::Unuse(uint32_t block) {
  // An emptied block is free for any class but keeps its own until another
  // takes it (so it is not formatted again for the same class, Prepare).
  --blocks_[block].used;
}

absl::optional<uint32_t> ObjectHeap::FreeSlotIn(uint32_t block) const {
  const Block& b = blocks_[block];
  if (b.used == b.slots.size()) return absl::nullopt;
  for (uint32_t i = 0; i < b.slots.size(); ++i) {
    if (b.slots[i] == Slot::kFree) return i;
  }
  return absl::nullopt;
}

absl::StatusOr<GlobalAddress> ObjectHeap::Reserve(size_t payload, TxId tx, GlobalAddress near) {
  absl::StatusOr<uint32_t> slot_bytes = SlotBytesFor(payload);
  if (!slot_bytes.ok()) return slot_bytes.status();
  const int size_class = *SizeClassFor(*slot_bytes);
  absl::optional<uint32_t> block;
  absl::optional<uint32_t> slot;
  if (!near.is_null() && near.region() == region_) {
    const uint32_t b = near.offset() / kBlockBytes;
    if (b < blocks_.size() && blocks_[b].size_class == size_class) {
      slot = FreeSlotIn(b);
      if (slot) block = b;
    }
  }
  for (uint32_t b = 0; !slot && b < blocks_.size(); ++b) {
    if (blocks_[b].size_class != size_class) continue;
    slot = FreeSlotIn(b);
    if (slot) block = b;
  }
  for (uint32_t b = 0; !slot && b < blocks_.size(); ++b) {
    if (blocks_[b].used != 0) continue;
    Assign(b, size_class, *slot_bytes);
    Format(b);
    block = b;
    slot = 0;
  }
  if (!slot) {
    return absl::ResourceExhaustedError(absl::StrCat("region ", region_, " is full: no free ",
                                                     *slot_bytes, "-byte slot and no free 1 MB block"));
  }
  Block& b = blocks_[*block];
  b.slots[*slot] = Slot::kReserved;
  ++b.used;
  const GlobalAddress addr(region_, *block * kBlockBytes + *slot * b.slot_bytes);
  // A free slot's header holds its last free (or the format) here; a
  // promoted copy may hold less (re-replication copies live objects only).
  uint64_t* header = Header(addr.offset());
  const uint64_t h = __atomic_load_n(header, __ATOMIC_ACQUIRE);
  const uint64_t version =
      IsAllocated(h) || IsLocked(h) ? b.floor : std::max(VersionOf(h), b.floor);
  __atomic_store_n(header, version, __ATOMIC_RELEASE);
  reservations_[tx].push_back(addr);
  return addr;
}

absl::Status ObjectHeap::ReserveAgain(GlobalAddress addr, uint32_t slot_bytes, TxId tx,
                                      uint64_t version) {
  if (absl::Status s = Prepare(addr, slot_bytes); !s.ok()) return s;
  const uint32_t block = addr.offset() / kBlockBytes;
  Block& b = blocks_[block];
  Slot& slot = b.slots[(addr.offset() % kBlockBytes) / slot_bytes];
  if (slot != Slot::kFree) {
    return absl::FailedPreconditionError(
        absl::StrCat("reserving ", addr.ToString(), " again: the slot is not free"));
  }
  slot = Slot::kReserved;
  ++b.used;
  __atomic_store_n(Header(addr.offset()), version & kVersionMask, __ATOMIC_RELEASE);
  reservations_[tx].push_back(addr);
  return absl::OkStatus();
}

absl::StatusOr<ObjectHeap::Position> ObjectHeap::Locate(GlobalAddress addr) const {
  if (addr.region() != region_) {
    return absl::InvalidArgumentError(absl::StrCat(addr.ToString(), " is not in region ", region_));
  }
  const uint32_t block = addr.offset() / kBlockBytes;
  if (block >= blocks_.size()) {
    return absl::OutOfRangeError(absl::StrCat(addr.ToString(), " is beyond region ", region_, "'s end"));
  }
  const Block& b = blocks_[block];
  const uint32_t within = addr.offset() % kBlockBytes;
  if (b.size_class < 0 || within % b.slot_bytes != 0) {
    return absl::FailedPreconditionError(absl::StrCat("no object starts at ", addr.ToString()));
  }
  return Position{block, within / b.slot_bytes};
}

absl::Status ObjectHeap::CheckReserved(GlobalAddress addr, TxId tx) const {
  absl::StatusOr<Position> p = Locate(addr);
  if (!p.ok()) return p.status();
  auto it = reservations_.find(tx);
  const bool mine = it != reservations_.end() &&
                    std::find(it->second.begin(), it->second.end(), addr) != it->second.end();
  if (!mine || blocks_[p->block].slots[p->slot] != Slot::kReserved) {
    return absl::FailedPreconditionError(
        absl::StrCat(addr.ToString(), " was not allocated by this transaction"));
  }
  return absl::OkStatus();
}

void ObjectHeap::Release(TxId tx) {
  auto it = reservations_.find(tx);
  if (it == reservations_.end()) return;
  for (GlobalAddress addr : it->second) {
    absl::StatusOr<Position> p = Locate(addr);
    if (!p.ok()) continue;
    Block& b = blocks_[p->block];
    if (b.slots[p->slot] != Slot::kReserved) continue;  // committed meanwhile
    b.slots[p->slot] = Slot::kFree;
    Unuse(p->block);
  }
  reservations_.erase(it);
}

void ObjectHeap::ReleaseAll() {
  std::vector<TxId> txs;
  for (const auto& [tx, addrs] : reservations_) txs.push_back(tx);
  for (TxId tx : txs) Release(tx);
}

absl::Status ObjectHeap::Prepare(GlobalAddress addr, uint32_t slot_bytes) {
  absl::StatusOr<int> size_class = SizeClassFor(slot_bytes);
  const uint32_t block = addr.offset() / kBlockBytes;
  if (!size_class.ok() || ClassSize(*size_class) != slot_bytes || addr.region() != region_ ||
      block >= blocks_.size() || (addr.offset() % kBlockBytes) % slot_bytes != 0) {
    return absl::InvalidArgumentError(absl::StrCat("object ", addr.ToString(), " of ", slot_bytes,
                                                   " bytes: not a slot of region ", region_));
  }
  Block& b = blocks_[block];
  // Only a class change formats. A backup sees no reservations, so a block
  // can empty there while its primary still holds a slot reserved before
  // other objects came and went; formatting it again at the floor of now
  // would make that slot's object look older than its slot.
  if (b.size_class < 0 || (b.used == 0 && b.size_class != *size_class)) {
    Assign(block, *size_class, slot_bytes);
    Format(block);
  }
  if (b.size_class != *size_class) {
    return absl::FailedPreconditionError(absl::StrCat("object ", addr.ToString(), " of ",
                                                      slot_bytes, " bytes: its block holds ",
                                                      b.slot_bytes, "-byte slots"));
  }
  return absl::OkStatus();
}

absl::Status ObjectHeap::MarkLive(GlobalAddress addr, uint32_t slot_bytes) {
  absl::StatusOr<int> size_class = SizeClassFor(slot_bytes);
  if (!size_class.ok() || ClassSize(*size_class) != slot_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("MarkLive(", addr.ToString(), "): ", slot_bytes,
                                                   " is not a slot size"));
  }
  const uint32_t block = addr.offset() / kBlockBytes;
  if (addr.region() != region_ || block >= blocks_.size() ||
      (addr.offset() % kBlockBytes) % slot_bytes != 0) {
    return absl::InvalidArgumentError(absl::StrCat("MarkLive(", addr.ToString(), "): not a ",
                                                   slot_bytes, "-byte slot of region ", region_));
  }
  Block& b = blocks_[block];
  if (b.size_class < 0) Assign(block, *size_class, slot_bytes);
  if (b.size_class != *size_class) {
    return absl::FailedPreconditionError(absl::StrCat("MarkLive(", addr.ToString(), "): block holds ",
                                                      b.slot_bytes, "-byte slots, not ", slot_bytes));
  }
  Slot& s = b.slots[(addr.offset() % kBlockBytes) / slot_bytes];
  if (s == Slot::kLive) return absl::OkStatus();
  if (s == Slot::kFree) ++b.used;
  s = Slot::kLive;
  ++live_;
  return absl::OkStatus();
}

absl::Status ObjectHeap::MarkFree(GlobalAddress addr) {
  absl::StatusOr<Position> p = Locate(addr);
  if (!p.ok()) return p.status();
  Slot& s = blocks_[p->block].slots[p->slot];
  if (s != Slot::kLive) return absl::OkStatus();
  s = Slot::kFree;
  --live_;
  Unuse(p->block);
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> ObjectHeap::SlotBytes(GlobalAddress addr) const {
  absl::StatusOr<Position> p = Locate(addr);
  if (!p.ok()) return p.status();
  const Block& b = blocks_[p->block];
  if (b.slots[p->slot] == Slot::kFree) {
    return absl::FailedPreconditionError(absl::StrCat("no object allocated at ", addr.ToString()));
  }
  return b.slot_bytes;
}

bool ObjectHeap::IsLive(GlobalAddress addr) const {
  absl::StatusOr<Position> p = Locate(addr);
  return p.ok() && blocks_[p->block].slots[p->slot] == Slot::kLive;
}

std::vector<std::pair<GlobalAddress, uint32_t>> ObjectHeap::LiveFrom(uint64_t from, uint64_t max_bytes) const {
  std::vector<std::pair<GlobalAddress, uint32_t>> out;
  uint64_t bytes = 0;
  for (uint64_t b = from / kBlockBytes; b < blocks_.size() && bytes < max_bytes; ++b) {
    const Block& block = blocks_[b];
    if (block.size_class < 0) continue;
    for (uint32_t i = 0; i < block.slots.size() && bytes < max_bytes; ++i) {
      const uint64_t offset = b * kBlockBytes + uint64_t{i} * block.slot_bytes;
      if (offset < from || block.slots[i] != Slot::kLive) continue;
      out.emplace_back(GlobalAddress(region_, static_cast<uint32_t>(offset)), block.slot_bytes);
      bytes += block.slot_bytes;
    }
  }
  return out;
}

}  // namespace dctk::farm::tx
