#include "farm/core/object.h"

#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace dctk::farm {
namespace {

struct alignas(64) Lines {
  uint8_t bytes[64 * 8] = {};
};

TEST(ObjectLayoutTest, LinesAndCapacity) {
  EXPECT_EQ(ObjectLines(0), 1u);
  EXPECT_EQ(ObjectLines(48), 1u);
  EXPECT_EQ(ObjectLines(49), 2u);
  EXPECT_EQ(ObjectLines(48 + 56), 2u);
  EXPECT_EQ(ObjectLines(48 + 57), 3u);
  EXPECT_EQ(PayloadCapacity(3), 48u + 112u);
  EXPECT_EQ(ObjectBytes(4000), ObjectLines(4000) * 64);
}

TEST(ObjectWriterTest, WriteThenSnapshotRoundTrips) {
  Lines mem;
  const size_t len = 150, lines = ObjectLines(len);
  InitObject(mem.bytes, lines);
  std::vector<uint8_t> data(len);
  for (size_t i = 0; i < len; ++i) data[i] = static_cast<uint8_t>(i * 3 + 1);
  ASSERT_TRUE(ObjectWriter::TryLock(mem.bytes, 1));
  EXPECT_EQ(CheckSnapshot(mem.bytes, lines).code(), absl::StatusCode::kUnavailable);  // locked
  ObjectWriter::Write(mem.bytes, lines, data.data(), len);
  ObjectWriter::Unlock(mem.bytes, /*bump_version=*/true);
  ASSERT_TRUE(CheckSnapshot(mem.bytes, lines).ok());
  std::vector<uint8_t> out(len);
  ExtractPayload(mem.bytes, out.data(), len);
  EXPECT_EQ(out, data);
  uint64_t header;
  std::memcpy(&header, mem.bytes, 8);
  EXPECT_EQ(VersionOf(header), 2u);
}

TEST(ObjectWriterTest, LockNeedsTheExpectedVersionAndAnUnlockedAllocatedObject) {
  Lines mem;
  EXPECT_FALSE(ObjectWriter::TryLock(mem.bytes, 0));  // not allocated
  InitObject(mem.bytes, 1);
  EXPECT_FALSE(ObjectWriter::TryLock(mem.bytes, 2));  // stale version
  ASSERT_TRUE(ObjectWriter::TryLock(mem.bytes, 1));
  EXPECT_FALSE(ObjectWriter::TryLock(mem.bytes, 1));  // already locked
  ObjectWriter::Unlock(mem.bytes, /*bump_version=*/false);  // abort: version kept
  EXPECT_TRUE(ObjectWriter::TryLock(mem.bytes, 1));
  FreeObjectLocked(mem.bytes);
  EXPECT_EQ(CheckSnapshot(mem.bytes, 1).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ObjectWriterTest, SnapshotMixingTwoWritesIsRejected) {
  Lines before, after, mixed;
  const size_t lines = 3;
  InitObject(before.bytes, lines);
  std::memcpy(after.bytes, before.bytes, sizeof(after.bytes));
  ASSERT_TRUE(ObjectWriter::TryLock(after.bytes, 1));
  const char data[] = "new contents";
  ObjectWriter::Write(after.bytes, lines, data, sizeof(data));
  ObjectWriter::Unlock(after.bytes, true);
  // Header and line 0 from before the write, lines 1-2 from after it.
  std::memcpy(mixed.bytes, before.bytes, 64);
  std::memcpy(mixed.bytes + 64, after.bytes + 64, 128);
  EXPECT_EQ(CheckSnapshot(mixed.bytes, lines).code(), absl::StatusCode::kUnavailable);
  // One new payload word in line 0 with its old version word: cannot happen,
  // since the writer stores the version first; a new version alone is caught.
  std::memcpy(mixed.bytes, before.bytes, 192);
  std::memcpy(mixed.bytes + 56, after.bytes + 56, 8);
  EXPECT_EQ(CheckSnapshot(mixed.bytes, lines).code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace dctk::farm
