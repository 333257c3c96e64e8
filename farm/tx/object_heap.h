// ObjectHeap: the object allocator of one region, kept identically at the
// region's primary and at each backup. Blocks of 1 MB (farm/alloc's block
// size) each hold slots of one size class (farm/alloc/size_classes.h).
//
// A transaction's Alloc reserves a slot at the primary (Reserve, owned by the
// transaction); the allocation becomes real only when the transaction commits
// (MarkLive, applied at the primary and, from the COMMIT-BACKUP record, at
// every backup), and an abort releases it. Frees likewise take effect at
// commit (MarkFree). So the heap state of a backup that is promoted is
// exactly the committed allocations: reservations of unfinished transactions
// simply vanish with the old primary.
//
// The heap also answers "is this the start of an object, and how big is its
// slot?", which is how participants reject invalid addresses.
//
// Example:
//   ObjectHeap heap(/*region=*/7, /*size=*/8 << 20);
//   absl::StatusOr<GlobalAddress> a = heap.Reserve(100, tx, GlobalAddress());
//   heap.MarkLive(*a, SlotBytesFor(100));     // at commit
//   heap.MarkFree(*a);                          // a later transaction frees it
#ifndef DCTK_FARM_TX_OBJECT_HEAP_H_
#define DCTK_FARM_TX_OBJECT_HEAP_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "farm/core/address.h"
#include "farm/tx/wire.h"

namespace dctk::farm::tx {

// Largest object payload a transaction may allocate: its slot (header and
// line versions included) must fit the largest size class, 1 MB.
inline constexpr size_t kMaxObjectPayload = 917496;  // PayloadCapacity(16384 lines)
// The slot size an object with `payload` bytes gets; InvalidArgument if too big.
absl::StatusOr<uint32_t> SlotBytesFor(size_t payload);

class ObjectHeap {
 public:
  ObjectHeap(RegionId region, uint64_t region_size);

  // A free slot for `payload` bytes owned by `tx`: in near's block if it has
  // one of that size with room, else any block of that size, else a free block.
  absl::StatusOr<GlobalAddress> Reserve(size_t payload, TxId tx, GlobalAddress near);
  // OK iff `addr` is a slot reserved by `tx`.
  absl::Status CheckReserved(GlobalAddress addr, TxId tx) const;
  // Drops `tx`'s remaining reservations (abort, or after commit).
  void Release(TxId tx);
  // Drops every reservation (recovery).
  void ReleaseAll();
  // A committed allocation of a `slot_bytes` slot at `addr` (idempotent).
  absl::Status MarkLive(GlobalAddress addr, uint32_t slot_bytes);
  // A committed free (idempotent).
  absl::Status MarkFree(GlobalAddress addr);
  // The slot size of the live or reserved object starting at `addr`;
  // FailedPrecondition if no object starts there.
  absl::StatusOr<uint32_t> SlotBytes(GlobalAddress addr) const;
  bool IsLive(GlobalAddress addr) const;
  // Live objects (address, slot size) starting at offsets >= `from`, in
  // address order, until their slots add up to at least `max_bytes`.
  std::vector<std::pair<GlobalAddress, uint32_t>> LiveFrom(uint64_t from, uint64_t max_bytes) const;

  uint64_t live_objects() const { return live_; }
  uint32_t free_blocks() const;

 private:
  enum class Slot : uint8_t { kFree = 0, kReserved = 1, kLive = 2 };
  struct Block {
    int size_class = -1;  // -1: free block
    uint32_t slot_bytes = 0;
    uint32_t used = 0;    // reserved + live slots
    std::vector<Slot> slots;
  };
  struct Position {
    uint32_t block;
    uint32_t slot;
  };

  absl::StatusOr<Position> Locate(GlobalAddress addr) const;
  void Assign(uint32_t block, int size_class, uint32_t slot_bytes);
  void Unuse(uint32_t block);
  absl::optional<uint32_t> FreeSlotIn(uint32_t block) const;

  const RegionId region_;
  std::vector<Block> blocks_;
  absl::flat_hash_map<TxId, std::vector<GlobalAddress>> reservations_;
  uint64_t live_ = 0;
};

}  // namespace dctk::farm::tx

#endif  // DCTK_FARM_TX_OBJECT_HEAP_H_
