#include "farm/tx/object_heap.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "farm/core/object.h"
#include "gtest/gtest.h"

namespace dctk::farm::tx {
namespace {

// A region copy's memory and its heap.
struct Copy {
  explicit Copy(uint64_t size) : memory(size / 8), heap(5, base(), size) {}
  uint8_t* base() { return reinterpret_cast<uint8_t*>(memory.data()); }
  uint64_t& word(uint64_t offset) { return memory[offset / 8]; }
  std::vector<uint64_t> memory;
  ObjectHeap heap;
};

TEST(ObjectHeapTest, ReserveCommitFreeCycle) {
  Copy c(4 << 20);
  ObjectHeap& heap = c.heap;
  absl::StatusOr<GlobalAddress> a = heap.Reserve(100, /*tx=*/1, GlobalAddress());
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->region(), 5u);
  EXPECT_TRUE(heap.CheckReserved(*a, 1).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(heap.CheckReserved(*a, 2)));
  ASSERT_TRUE(heap.MarkLive(*a, *SlotBytesFor(100)).ok());
  heap.Release(1);  // after commit: nothing left to release
  EXPECT_TRUE(heap.IsLive(*a));
  EXPECT_EQ(*heap.SlotBytes(*a), *SlotBytesFor(100));
  ASSERT_TRUE(heap.MarkFree(*a).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(heap.SlotBytes(*a).status()));
  EXPECT_EQ(heap.free_blocks(), 4u);  // the empty block went back
}

TEST(ObjectHeapTest, AbortReleasesReservations) {
  Copy c(1 << 20);
  ObjectHeap& heap = c.heap;
  absl::StatusOr<GlobalAddress> a = heap.Reserve(64, 7, GlobalAddress());
  ASSERT_TRUE(a.ok());
  heap.Release(7);
  EXPECT_EQ(heap.free_blocks(), 1u);
  absl::StatusOr<GlobalAddress> b = heap.Reserve(64, 8, GlobalAddress());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b);
}

TEST(ObjectHeapTest, NearHintAndCapacity) {
  Copy c(2 << 20);
  ObjectHeap& heap = c.heap;
  absl::StatusOr<GlobalAddress> small = heap.Reserve(8, 1, GlobalAddress());
  absl::StatusOr<GlobalAddress> other = heap.Reserve(4000, 1, GlobalAddress());  // second block
  ASSERT_TRUE(small.ok() && other.ok());
  EXPECT_NE(small->offset() >> 20, other->offset() >> 20);
  absl::StatusOr<GlobalAddress> near = heap.Reserve(8, 1, *small);
  ASSERT_TRUE(near.ok());
  EXPECT_EQ(near->offset() >> 20, small->offset() >> 20);
  absl::StatusOr<GlobalAddress> full = heap.Reserve(600 << 10, 1, GlobalAddress());
  EXPECT_TRUE(absl::IsResourceExhausted(full.status())) << full.status();
  EXPECT_TRUE(absl::IsInvalidArgument(heap.Reserve(2 << 20, 1, GlobalAddress()).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(SlotBytesFor(0).status()));
}

TEST(ObjectHeapTest, BackupMirrorLearnsBlocksFromCommits) {
  Copy primary(2 << 20), backup(2 << 20);
  absl::StatusOr<GlobalAddress> a = primary.heap.Reserve(300, 1, GlobalAddress());
  ASSERT_TRUE(a.ok());
  const uint32_t slot = *SlotBytesFor(300);
  ASSERT_TRUE(primary.heap.MarkLive(*a, slot).ok());
  ASSERT_TRUE(backup.heap.Prepare(*a, slot).ok());
  ASSERT_TRUE(backup.heap.MarkLive(*a, slot).ok());
  EXPECT_EQ(*backup.heap.SlotBytes(*a), slot);
  EXPECT_TRUE(absl::IsInvalidArgument(backup.heap.MarkLive(a->Plus(8), slot)));
  EXPECT_TRUE(absl::IsInvalidArgument(backup.heap.Prepare(a->Plus(8), slot)));
  EXPECT_TRUE(
      absl::IsFailedPrecondition(backup.heap.Prepare(*a, 2304)));  // the block holds smaller slots
  EXPECT_TRUE(absl::IsFailedPrecondition(backup.heap.SlotBytes(a->Plus(64)).status()));
  EXPECT_TRUE(absl::IsOutOfRange(backup.heap.SlotBytes(GlobalAddress(5, 3 << 20)).status()));
}

// The class of a block's old objects; the block is then reused for 128-byte
// slots, most of whose headers fall in the old objects' payload.
uint32_t Big() { return *SlotBytesFor(2000); }

// A 1 MB block's first two big objects, whose payload has every bit set (so
// what is a header for 128-byte slots looks allocated and locked), committed
// at version 5, one written up to 9, all freed at version 6 (the written one
// at 10): the block's floor is 10.
void FillAndEmpty(Copy& c, bool primary) {
  std::vector<GlobalAddress> objects;
  for (uint32_t i = 0; i < 2; ++i) {
    absl::StatusOr<GlobalAddress> a =
        primary ? c.heap.Reserve(2000, 1, GlobalAddress())
                : absl::StatusOr<GlobalAddress>(GlobalAddress(5, i * Big()));
    ASSERT_TRUE(a.ok()) << a.status();
    if (!primary) {
      ASSERT_TRUE(c.heap.Prepare(*a, Big()).ok());
    }
    ASSERT_TRUE(c.heap.MarkLive(*a, Big()).ok());
    c.word(a->offset()) = kAllocatedBit | 5;
    for (uint64_t w = 8; w < Big(); w += 8) c.word(a->offset() + w) = ~uint64_t{0};
    c.heap.NoteVersion(*a, 5);
    objects.push_back(*a);
  }
  c.heap.Release(1);
  c.heap.NoteVersion(objects[1], 9);
  for (GlobalAddress a : objects) {
    const uint64_t version = a == objects[1] ? 10 : 6;
    c.word(a.offset()) = version;
    c.heap.NoteVersion(a, version);
    ASSERT_TRUE(c.heap.MarkFree(a).ok());
  }
  ASSERT_EQ(c.heap.free_blocks(), 1u);
}

TEST(ObjectHeapTest, ABlockReusedForAnotherClassIsFormattedAtItsVersionFloor) {
  Copy c(1 << 20);
  FillAndEmpty(c, /*primary=*/true);
  absl::StatusOr<GlobalAddress> a = c.heap.Reserve(100, 2, GlobalAddress());
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(*c.heap.SlotBytes(*a), 128u);
  for (uint64_t slot = 0; slot < (1 << 20) / 128; ++slot) {
    const uint64_t h = c.word(slot * 128);
    ASSERT_FALSE(IsAllocated(h) || IsLocked(h)) << "slot " << slot << " header " << std::hex << h;
    ASSERT_EQ(VersionOf(h), 10u) << "slot " << slot
                                 << ": the block's floor, at least every old version";
  }
  // The next allocation takes slot 1, in the old object's payload, at the floor.
  absl::StatusOr<GlobalAddress> b = c.heap.Reserve(100, 2, GlobalAddress());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->offset(), 128u);
  EXPECT_EQ(c.word(128), 10u);
}

TEST(ObjectHeapTest, ABackupFormatsAReusedBlockAsItsPrimaryDid) {
  Copy primary(1 << 20), backup(1 << 20);
  FillAndEmpty(primary, /*primary=*/true);
  FillAndEmpty(backup, /*primary=*/false);
  absl::StatusOr<GlobalAddress> a = primary.heap.Reserve(100, 2, GlobalAddress());
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(backup.heap.Prepare(*a, 128).ok());
  EXPECT_EQ(backup.memory, primary.memory);
  // A block whose objects are not all freed keeps its class.
  Copy busy(1 << 20);
  ASSERT_TRUE(busy.heap.Prepare(GlobalAddress(5, 0), Big()).ok());
  ASSERT_TRUE(busy.heap.MarkLive(GlobalAddress(5, 0), Big()).ok());
  absl::Status s = busy.heap.Prepare(GlobalAddress(5, 128), 128);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find(absl::StrCat(Big(), "-byte slots")), absl::string_view::npos) << s;
}

TEST(ObjectHeapTest, ReserveLiftsASlotBelowTheFloorAndFloorsRoundTrip) {
  // A promoted copy made by re-replication: its free slots hold no history
  // (zero memory, or old payload), but the block's floor came with it.
  Copy c(2 << 20);
  c.heap.SetFloor(1, 40);
  ASSERT_TRUE(c.heap.MarkLive(GlobalAddress(5, (1 << 20) + 64), 64).ok());
  c.word(1 << 20) = ~uint64_t{0};  // garbage where slot 0's header is
  absl::StatusOr<GlobalAddress> a = c.heap.Reserve(8, 1, GlobalAddress(5, 1 << 20));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->offset(), 1u << 20);
  EXPECT_EQ(c.word(1 << 20), 40u) << "unallocated, unlocked, at the floor";
  EXPECT_EQ(c.heap.Floors(), (std::vector<std::pair<uint32_t, uint64_t>>{{1, 40}}));
  c.heap.NoteVersion(*a, 41);
  c.heap.SetFloor(1, 7);  // never lowers
  EXPECT_EQ(c.heap.Floors(), (std::vector<std::pair<uint32_t, uint64_t>>{{1, 41}}));
}

TEST(ObjectHeapTest, AnEmptiedBlockKeepsItsClassUntilAnotherTakesIt) {
  // A backup's block empties (its only object freed) while its primary
  // still holds a reservation there; the floor rose meanwhile.
  Copy backup(1 << 20);
  ASSERT_TRUE(backup.heap.Prepare(GlobalAddress(5, 128), 128).ok());
  ASSERT_TRUE(backup.heap.MarkLive(GlobalAddress(5, 128), 128).ok());
  backup.heap.NoteVersion(GlobalAddress(5, 128), 7);
  ASSERT_TRUE(backup.heap.MarkFree(GlobalAddress(5, 128)).ok());
  EXPECT_EQ(backup.heap.free_blocks(), 1u);
  EXPECT_EQ(backup.heap.Classes(), (std::vector<std::pair<uint32_t, uint32_t>>{{0, 128}}));
  // The reserved slot's object (locked at version 0) arrives: no format.
  ASSERT_TRUE(backup.heap.Prepare(GlobalAddress(5, 0), 128).ok());
  EXPECT_EQ(backup.word(0), 0u) << "formatted again at the floor: the object would look older";
  // Another class takes the empty block, formatted at the floor.
  ASSERT_TRUE(backup.heap.Prepare(GlobalAddress(5, 0), 64).ok());
  EXPECT_EQ(backup.word(64), 7u);
  // A checkpoint's classes come back unformatted, on unused blocks only.
  Copy restored(2 << 20);
  ASSERT_TRUE(restored.heap.SetClass(1, 128).ok());
  ASSERT_TRUE(restored.heap.MarkLive(GlobalAddress(5, (1 << 20) + 128), 128).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(restored.heap.SetClass(1, 64)));
  EXPECT_TRUE(absl::IsInvalidArgument(restored.heap.SetClass(0, 100)));
  EXPECT_TRUE(absl::IsInvalidArgument(restored.heap.SetClass(2, 128)));
  EXPECT_EQ(restored.memory, std::vector<uint64_t>((2 << 20) / 8));
}

TEST(ObjectHeapTest, ReserveAgainRebuildsAReservationAsTheLockFoundIt) {
  // Live: the reused block is formatted at its floor (10) for a, b is
  // reserved and lifted to it, a commits (the floor rises to 11), then b's
  // LOCK finds its header at 10.
  Copy live(1 << 20), replayed(1 << 20);
  FillAndEmpty(live, /*primary=*/true);
  FillAndEmpty(replayed, /*primary=*/true);
  absl::StatusOr<GlobalAddress> a = live.heap.Reserve(100, 2, GlobalAddress());
  absl::StatusOr<GlobalAddress> b = live.heap.Reserve(100, 3, GlobalAddress());
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(live.heap.MarkLive(*a, 128).ok());
  live.heap.NoteVersion(*a, 11);
  const uint64_t locked_at = live.word(b->offset());
  ASSERT_EQ(locked_at, 10u);
  // Replay of the log: a's LOCK and commit, then b's LOCK.
  ASSERT_TRUE(replayed.heap.ReserveAgain(*a, 128, 2, 10).ok());
  ASSERT_TRUE(replayed.heap.MarkLive(*a, 128).ok());
  replayed.heap.NoteVersion(*a, 11);
  ASSERT_TRUE(replayed.heap.ReserveAgain(*b, 128, 3, locked_at).ok());
  EXPECT_EQ(replayed.word(b->offset()), 10u) << "as the LOCK found it, not the floor of now";
  EXPECT_EQ(replayed.memory, live.memory) << "the same format, the same headers";
  EXPECT_TRUE(replayed.heap.CheckReserved(*b, 3).ok());
  absl::Status again = replayed.heap.ReserveAgain(*b, 128, 4, locked_at);
  EXPECT_TRUE(absl::IsFailedPrecondition(again)) << again;
  EXPECT_TRUE(absl::IsInvalidArgument(replayed.heap.ReserveAgain(GlobalAddress(5, 256), 0, 4, 0)))
      << "an allocation entry without its slot size";
  replayed.heap.Release(3);
  EXPECT_EQ(replayed.heap.SlotBytes(*b).status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace dctk::farm::tx
