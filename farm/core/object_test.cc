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

// A copy taken at line 1 of an object whose payload there is a word that
// looks like a header (allocated, at the object's version; or locked): the
// start bit of line 0's version word is what tells it from an object.
TEST(ObjectWriterTest, LineInsideAnObjectIsNotTakenForAnObject) {
  Lines mem;
  const size_t lines = 3;
  InitObject(mem.bytes, lines);
  uint64_t payload[PayloadCapacity(lines) / 8] = {};
  payload[6] = kAllocatedBit | 2;  // payload bytes 48..55: line 1's first word
  ASSERT_TRUE(ObjectWriter::TryLock(mem.bytes, 1));
  ObjectWriter::Write(mem.bytes, lines, payload, sizeof(payload));
  ObjectWriter::Unlock(mem.bytes, /*bump_version=*/true);
  ASSERT_TRUE(CheckSnapshot(mem.bytes, lines).ok());
  EXPECT_TRUE(StartsObject(mem.bytes));
  const uint8_t* line1 = mem.bytes + kLineSize;
  EXPECT_FALSE(StartsObject(line1));
  absl::Status s = CheckSnapshot(line1, 1);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("not the start of an object"), absl::string_view::npos) << s;
  // Payload claiming a lock no writer holds: not retried as locked.
  payload[6] = kLockBit | kAllocatedBit | 3;
  ASSERT_TRUE(ObjectWriter::TryLock(mem.bytes, 2));
  ObjectWriter::Write(mem.bytes, lines, payload, sizeof(payload));
  ObjectWriter::Unlock(mem.bytes, /*bump_version=*/true);
  EXPECT_EQ(CheckSnapshot(line1, 1).code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace dctk::farm
