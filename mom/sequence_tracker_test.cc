#include "mom/sequence_tracker.h"

#include "gtest/gtest.h"

namespace dctk::mom {
namespace {

TEST(SequenceTrackerTest, InOrderStream) {
  SequenceTracker t;
  for (uint64_t s = 1; s <= 3000; ++s) {
    EXPECT_EQ(t.Observe(s).kind, Arrival::kInOrder) << s;
  }
  EXPECT_EQ(t.missing(), 0u);
  EXPECT_EQ(t.highest(), 3000u);
}

TEST(SequenceTrackerTest, GapThenLateFill) {
  SequenceTracker t;
  EXPECT_EQ(t.Observe(1).kind, Arrival::kInOrder);
  SequenceTracker::Result r = t.Observe(4);
  EXPECT_EQ(r.kind, Arrival::kAfterGap);
  EXPECT_EQ(r.skipped, 2u);
  EXPECT_EQ(t.missing(), 2u);
  EXPECT_EQ(t.Observe(3).kind, Arrival::kLate);
  EXPECT_EQ(t.missing(), 1u);
  EXPECT_EQ(t.Observe(2).kind, Arrival::kLate);
  EXPECT_EQ(t.missing(), 0u);
  EXPECT_EQ(t.Observe(5).kind, Arrival::kInOrder);
}

TEST(SequenceTrackerTest, Duplicates) {
  SequenceTracker t;
  t.Observe(1);
  t.Observe(2);
  EXPECT_EQ(t.Observe(2).kind, Arrival::kDuplicate);
  EXPECT_EQ(t.Observe(1).kind, Arrival::kDuplicate);
  t.Observe(5);
  EXPECT_EQ(t.Observe(4).kind, Arrival::kLate);
  EXPECT_EQ(t.Observe(4).kind, Arrival::kDuplicate);
  EXPECT_EQ(t.missing(), 1u);  // 3 still missing
}

TEST(SequenceTrackerTest, OlderThanWindowIsStale) {
  SequenceTracker t;
  t.Observe(1);
  t.Observe(SequenceTracker::kWindow + 10);
  EXPECT_EQ(t.missing(), SequenceTracker::kWindow + 8);
  EXPECT_EQ(t.Observe(2).kind, Arrival::kStale);
  EXPECT_EQ(t.Observe(1).kind, Arrival::kStale);
  // Inside the window: still classified exactly.
  EXPECT_EQ(t.Observe(20).kind, Arrival::kLate);
  EXPECT_EQ(t.Observe(20).kind, Arrival::kDuplicate);
}

TEST(SequenceTrackerTest, WindowSlotsAreReusedCorrectly) {
  // seq and seq + kWindow share a bitmap slot: a jump must clear it.
  SequenceTracker t;
  t.Observe(1);
  t.Observe(3);  // 2 missing
  t.Observe(SequenceTracker::kWindow + 3);
  EXPECT_EQ(t.Observe(SequenceTracker::kWindow + 2).kind, Arrival::kLate);
  EXPECT_EQ(t.Observe(SequenceTracker::kWindow + 1).kind, Arrival::kLate);
}

TEST(SequenceTrackerTest, ResetForgets) {
  SequenceTracker t;
  t.Observe(7);
  t.Reset();
  EXPECT_EQ(t.highest(), 0u);
  EXPECT_EQ(t.missing(), 0u);
  EXPECT_EQ(t.Observe(1).kind, Arrival::kInOrder);
}

}  // namespace
}  // namespace dctk::mom
