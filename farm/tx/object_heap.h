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
// Reuse of a block. A block whose objects are all freed goes back to the free
// blocks and may next hold another size class, whose slots start where the
// old objects' payload was (it keeps its class until then, in checkpoints
// too). The heap writes every slot header of a block it gives another class
// (Format): unallocated, unlocked, at the block's version floor,
// the highest version any object of the block ever committed (NoteVersion,
// for every applied write, allocation and free). So a LOCK of an allocation
// finds a clean header, and versions stay monotonic at every address: an
// object allocated there gets floor + 1 or more, so a reader still holding the
// address of an older object can never validate it against the new one by its
// version; an old address that falls inside a new object is refused by any
// read, as that line's version word has no start bit (farm/core/object.h). The primary formats when Reserve gives a free block another class;
// a backup when the first committed object of the new class reaches it
// (Prepare), with the same floor, because it applies the same entries in the
// same order per block (participant.h). A block emptied for good holds only
// frees, so it needs no format to serve its own class again; a block that
// empties at a backup only (the backup sees no reservations) must not be
// formatted there again, which is why the class stays. Reserve also lifts the
// reserved slot's header to the floor (a copy made by re-replication may not
// know a free slot's last version).
//
// Example:
//   ObjectHeap heap(/*region=*/7, base, /*size=*/8 << 20);
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
  // `base`: this copy of the region (slot headers are written there when a
  // block gets a size class).
  ObjectHeap(RegionId region, uint8_t* base, uint64_t region_size);

  // A free slot for `payload` bytes owned by `tx`: in near's block if it has
  // one of that size with room, else any block of that size, else a free
  // block (formatted for the size class). The slot's header is unallocated
  // and at least at its block's floor.
  absl::StatusOr<GlobalAddress> Reserve(size_t payload, TxId tx, GlobalAddress near);
  // Replay of a logged LOCK of an allocation (restart from files): `addr`,
  // a `slot_bytes` slot Reserve gave `tx`, reserved for it again, its block
  // taking the class as Reserve gave it (Prepare), and its header set to the
  // unallocated `version` the LOCK found there. Reserve is not logged, and
  // its lift to the floor may predate commits that raised the floor since.
  // FailedPrecondition if the slot is not free.
  absl::Status ReserveAgain(GlobalAddress addr, uint32_t slot_bytes, TxId tx, uint64_t version);
  // Before a committed object of `slot_bytes` is installed at `addr` (a
  // backup, a copy): a free block gets that class and is formatted; OK if the
  // block already holds such slots and `addr` starts one; FailedPrecondition
  // if it holds another class (the object would overlap other slots).
  absl::Status Prepare(GlobalAddress addr, uint32_t slot_bytes);
  // An object of the block of `addr` was committed at `version`.
  void NoteVersion(GlobalAddress addr, uint64_t version);
  // OK iff `addr` is a slot reserved by `tx`.
  absl::Status CheckReserved(GlobalAddress addr, TxId tx) const;
  // Drops `tx`'s remaining reservations (abort, or after commit).
  void Release(TxId tx);
  // Drops every reservation (recovery).
  void ReleaseAll();
  // A committed allocation of a `slot_bytes` slot at `addr` (idempotent). A
  // free block takes that class without being formatted (restore from a
  // checkpoint image; the commit paths Reserve or Prepare first).
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

  // Blocks whose floor is not 0, (block index, floor), for checkpoints.
  std::vector<std::pair<uint32_t, uint64_t>> Floors() const;
  void SetFloor(uint32_t block, uint64_t floor);
  // Blocks with a size class, empty ones included, (block index, slot size),
  // for checkpoints; SetClass gives an unused block its class back (no format).
  std::vector<std::pair<uint32_t, uint32_t>> Classes() const;
  absl::Status SetClass(uint32_t block, uint32_t slot_bytes);
  // Re-replication: the marks (EntryKind::kBlockMark) of the blocks that
  // overlap offsets [from, to) and have a class or a floor.
  std::vector<WriteEntry> BlockMarks(uint64_t from, uint64_t to) const;
  // At a copying backup, before the copy's objects of that block: a block
  // that never had a class here takes the primary's, unformatted (a fresh
  // copy's headers are zero, below every version, and the primary's epoch of
  // the block may hold slots reserved at a floor below the one marked); the
  // floor rises unless the block holds another class here (a later epoch).
  void AdoptMark(const WriteEntry& mark);

  uint64_t live_objects() const { return live_; }
  uint32_t free_blocks() const;

 private:
  enum class Slot : uint8_t { kFree = 0, kReserved = 1, kLive = 2 };
  struct Block {
    int size_class = -1;  // -1: never had one
    uint32_t slot_bytes = 0;
    uint32_t used = 0;    // reserved + live slots
    uint64_t floor = 0;   // highest version committed in the block, ever
    std::vector<Slot> slots;
  };
  struct Position {
    uint32_t block;
    uint32_t slot;
  };

  absl::StatusOr<Position> Locate(GlobalAddress addr) const;
  void Assign(uint32_t block, int size_class, uint32_t slot_bytes);
  // Every slot header of `block`: unallocated at the block's floor.
  void Format(uint32_t block);
  uint64_t* Header(uint64_t offset) const { return reinterpret_cast<uint64_t*>(base_ + offset); }
  void Unuse(uint32_t block);
  absl::optional<uint32_t> FreeSlotIn(uint32_t block) const;

  const RegionId region_;
  uint8_t* const base_;
  std::vector<Block> blocks_;
  absl::flat_hash_map<TxId, std::vector<GlobalAddress>> reservations_;
  uint64_t live_ = 0;
};

}  // namespace dctk::farm::tx

#endif  // DCTK_FARM_TX_OBJECT_HEAP_H_
