#include "farm/tx/object_heap.h"

#include "gtest/gtest.h"

namespace dctk::farm::tx {
namespace {

TEST(ObjectHeapTest, ReserveCommitFreeCycle) {
  ObjectHeap heap(5, 4 << 20);
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
  ObjectHeap heap(5, 1 << 20);
  absl::StatusOr<GlobalAddress> a = heap.Reserve(64, 7, GlobalAddress());
  ASSERT_TRUE(a.ok());
  heap.Release(7);
  EXPECT_EQ(heap.free_blocks(), 1u);
  absl::StatusOr<GlobalAddress> b = heap.Reserve(64, 8, GlobalAddress());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b);
}

TEST(ObjectHeapTest, NearHintAndCapacity) {
  ObjectHeap heap(5, 2 << 20);
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
  ObjectHeap primary(5, 2 << 20), backup(5, 2 << 20);
  absl::StatusOr<GlobalAddress> a = primary.Reserve(300, 1, GlobalAddress());
  ASSERT_TRUE(a.ok());
  const uint32_t slot = *SlotBytesFor(300);
  ASSERT_TRUE(primary.MarkLive(*a, slot).ok());
  ASSERT_TRUE(backup.MarkLive(*a, slot).ok());
  EXPECT_EQ(*backup.SlotBytes(*a), slot);
  EXPECT_TRUE(absl::IsInvalidArgument(backup.MarkLive(a->Plus(8), slot)));
  EXPECT_TRUE(absl::IsFailedPrecondition(backup.SlotBytes(a->Plus(64)).status()));
  EXPECT_TRUE(absl::IsOutOfRange(backup.SlotBytes(GlobalAddress(5, 3 << 20)).status()));
}

}  // namespace
}  // namespace dctk::farm::tx
