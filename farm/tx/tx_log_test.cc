#include "farm/tx/tx_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

#include "gtest/gtest.h"

namespace dctk::farm::tx {
namespace {

std::string TempPath(const char* name) {
  return std::string(getenv("TEST_TMPDIR")) + "/" + name + "-" + std::to_string(getpid());
}

TEST(TxLogTest, RecordsReadBackInOrder) {
  const std::string path = TempPath("log");
  {
    auto log = TxLog::Open(path, FsyncPolicy::kEveryRecord);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE((*log)->Append(LogType::kLock, 11, "entries").ok());
    ASSERT_TRUE((*log)->Append(LogType::kCommitPrimary, 11, "").ok());
    ASSERT_TRUE((*log)->Append(LogType::kTruncate, 11, "").ok());
    EXPECT_EQ((*log)->records(), 3u);
  }
  absl::StatusOr<std::vector<LogRecord>> r = ReadTxLog(path);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].type, LogType::kLock);
  EXPECT_EQ((*r)[0].payload, "entries");
  EXPECT_EQ((*r)[2].type, LogType::kTruncate);
  EXPECT_EQ((*r)[1].tx, 11u);
}

TEST(TxLogTest, TornTailIsIgnored) {
  const std::string path = TempPath("torn");
  {
    auto log = TxLog::Open(path, FsyncPolicy::kNever);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE((*log)->Append(LogType::kCommitBackup, 1, "first").ok());
    ASSERT_TRUE((*log)->Append(LogType::kCommitBackup, 2, "second record").ok());
  }
  // A crash mid-append: cut the last record short.
  ASSERT_EQ(truncate(path.c_str(), 17 + 5 + 10), 0);
  absl::StatusOr<std::vector<LogRecord>> r = ReadTxLog(path);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].payload, "first");
  EXPECT_TRUE(absl::IsNotFound(ReadTxLog(TempPath("missing")).status()));
}

TEST(TxLogTest, UnwritableDirectoryIsAnError) {
  auto log = TxLog::Open("/proc/no-such-dir/log", FsyncPolicy::kNever);
  EXPECT_FALSE(log.ok());
}

}  // namespace
}  // namespace dctk::farm::tx
