#include "farm/tx/checkpoint.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace dctk::farm::tx {
namespace {

std::string TempPath(const char* name) {
  return std::string(getenv("TEST_TMPDIR")) + "/" + name + "-" + std::to_string(getpid());
}

Checkpoint Sample() {
  Checkpoint c;
  c.lsn = 42;
  c.config = 7;
  c.watermarks = {{MakeTxId(3, 0, 40), 1700000000000000}, {MakeTxId(4, 1, 7), 0}};
  c.outcomes = {{MakeTxId(3, 0, 41), true}, {MakeTxId(3, 0, 43), false}};
  LockRequest r{7, 11, {3}, {{GlobalAddress(3, 64), 2, EntryKind::kWrite, 64, "abc"}}};
  c.pending.push_back({11, true, false, r});
  c.pending.push_back({12, true, /*committed, waiting=*/true, r});
  RegionImage image{3, 1 << 20, {{GlobalAddress(3, 64), 64}}, {{0, 17}}, {{0, 64}, {1, 128}}, {}};
  image.pages.push_back({0, std::string(kCheckpointPage, 'x')});
  c.regions.push_back(image);
  return c;
}

TEST(CheckpointTest, RoundTrip) {
  const std::string path = TempPath("ckpt");
  ASSERT_TRUE(WriteCheckpoint(path, Sample(), /*sync=*/true).ok());
  absl::StatusOr<Checkpoint> c = ReadCheckpoint(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->lsn, 42u);
  EXPECT_EQ(c->config, 7u);
  EXPECT_EQ(c->watermarks, (std::vector<Watermark>{{MakeTxId(3, 0, 40), 1700000000000000},
                                                   {MakeTxId(4, 1, 7), 0}}));
  EXPECT_EQ(c->outcomes, (std::vector<std::pair<TxId, bool>>{{MakeTxId(3, 0, 41), true},
                                                             {MakeTxId(3, 0, 43), false}}));
  ASSERT_EQ(c->pending.size(), 2u);
  EXPECT_TRUE(c->pending[0].backup);
  EXPECT_FALSE(c->pending[0].primary_committed);
  EXPECT_EQ(c->pending[1].tx, 12u);
  EXPECT_TRUE(c->pending[1].primary_committed);
  EXPECT_EQ(c->pending[0].request.entries[0].data, "abc");
  ASSERT_EQ(c->regions.size(), 1u);
  EXPECT_EQ(c->regions[0].live[0].second, 64u);
  EXPECT_EQ(c->regions[0].floors, (std::vector<std::pair<uint32_t, uint64_t>>{{0, 17}}));
  EXPECT_EQ(c->regions[0].classes, (std::vector<std::pair<uint32_t, uint32_t>>{{0, 64}, {1, 128}}));
  EXPECT_EQ(c->regions[0].pages[0].second, std::string(kCheckpointPage, 'x'));
  EXPECT_NE(access((path + ".tmp").c_str(), F_OK), 0);  // renamed into place
}

TEST(CheckpointTest, TornOrDamagedFileIsDataLoss) {
  const std::string path = TempPath("torn-ckpt");
  ASSERT_TRUE(WriteCheckpoint(path, Sample(), false).ok());
  std::ifstream in(path, std::ios::binary);
  std::string whole((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Cut short anywhere: no end marker.
  for (size_t keep : {size_t{0}, size_t{5}, size_t{100}, whole.size() - 1}) {
    ASSERT_EQ(truncate(path.c_str(), static_cast<off_t>(keep)), 0);
    absl::StatusOr<Checkpoint> c = ReadCheckpoint(path);
    EXPECT_TRUE(absl::IsDataLoss(c.status())) << keep << ": " << c.status();
    EXPECT_NE(c.status().message().find(path), std::string::npos);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << whole;
  }
  // One byte flipped inside the image.
  std::string bad = whole;
  bad[bad.size() / 2] ^= 1;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bad;
  EXPECT_TRUE(absl::IsDataLoss(ReadCheckpoint(path).status()));
  EXPECT_TRUE(absl::IsNotFound(ReadCheckpoint(TempPath("missing")).status()));
}

TEST(CheckpointTest, OlderFormatIsRefusedByName) {
  const std::string path = TempPath("old-ckpt");
  ASSERT_TRUE(WriteCheckpoint(path, Sample(), false).ok());
  std::ifstream in(path, std::ios::binary);
  std::string whole((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(whole.compare(0, 8, "FARMCKP6"), 0);
  for (const char* older :
       {"FARMCKP5 of an older farmd (truncation watermarks without coordinator incarnations",
        "FARMCKP4 of an older farmd (committed ids without truncation watermarks",
        "FARMCKP3 of an older farmd (objects without start bits"}) {
    whole[7] = older[7];
    std::ofstream(path, std::ios::binary | std::ios::trunc) << whole;
    absl::Status s = ReadCheckpoint(path).status();
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
    EXPECT_NE(s.message().find(absl::StrCat("format ", older)), std::string::npos) << s;
    EXPECT_NE(s.message().find(path), std::string::npos) << s;
  }
}

// The outcome list is read only as committed (1) or aborted (2), named when
// it is not (a writer's bug, since the checksum matched).
TEST(CheckpointTest, AnOutcomeThatIsNeitherCommittedNorAbortedIsNamed) {
  const std::string path = TempPath("bad-outcome-ckpt");
  Checkpoint c = Sample();
  c.pending.clear();
  c.regions.clear();
  ASSERT_TRUE(WriteCheckpoint(path, c, false).ok());
  std::ifstream in(path, std::ios::binary);
  std::string whole((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The body ends with the last outcome's byte and the region count (0).
  const size_t body_end = whole.size() - 16;
  const size_t last_outcome = body_end - 8 - 1;
  ASSERT_EQ(whole[last_outcome], 2);
  whole[last_outcome] = 7;
  // Fix the checksum (FNV-1a 64 of the body), so only the byte is wrong.
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 8; i < body_end; ++i) {
    h ^= static_cast<unsigned char>(whole[i]);
    h *= 1099511628211ull;
  }
  whole.replace(body_end, 8, reinterpret_cast<const char*>(&h), 8);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << whole;
  absl::Status s = ReadCheckpoint(path).status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(s.message().find(
                absl::StrCat("malformed outcome of transaction ", MakeTxId(3, 0, 43), " (7)")),
            std::string::npos)
      << s;
}

}  // namespace
}  // namespace dctk::farm::tx
