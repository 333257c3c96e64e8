#include "farm/tx/tx_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
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
  const std::string segment = path + ".00000000000000000001";
  ASSERT_EQ(truncate(segment.c_str(), 17 + 5 + 10), 0);
  absl::StatusOr<std::vector<LogRecord>> r = ReadTxLog(path);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].payload, "first");
  EXPECT_TRUE(absl::IsNotFound(ReadTxLog(TempPath("missing")).status()));
  // Reopened, the log cuts the torn tail and goes on after the complete record.
  {
    auto log = TxLog::Open(path, FsyncPolicy::kNever);
    ASSERT_TRUE(log.ok());
    EXPECT_EQ((*log)->last_lsn(), 1u);
    ASSERT_TRUE((*log)->Append(LogType::kTruncate, 1, "").ok());
  }
  r = ReadTxLog(path);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[1].type, LogType::kTruncate);
  EXPECT_EQ((*r)[1].lsn, 2u);
}

TEST(TxLogTest, SegmentsRollAndTrimReclaimsThem) {
  const std::string path = TempPath("segments");
  auto log = TxLog::Open(path, FsyncPolicy::kNever, /*segment_bytes=*/100);
  ASSERT_TRUE(log.ok());
  const std::string payload(40, 'p');  // 57 bytes a record: two per segment
  for (int i = 0; i < 10; ++i) ASSERT_TRUE((*log)->Append(LogType::kCommitBackup, i, payload).ok());
  EXPECT_EQ((*log)->last_lsn(), 10u);
  EXPECT_EQ((*log)->segments(), 6u);  // 5 full + the empty current one
  EXPECT_EQ((*log)->retained_bytes(), 570u);
  absl::StatusOr<std::vector<LogRecord>> r = ReadTxLog(path, 4);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 7u);
  EXPECT_EQ((*r)[0].lsn, 4u);
  EXPECT_EQ((*r)[0].tx, 3u);
  // Records 1..6 are covered elsewhere: their three segments go.
  absl::StatusOr<uint64_t> reclaimed = (*log)->Trim(7);
  ASSERT_TRUE(reclaimed.ok());
  EXPECT_EQ(*reclaimed, 3 * 114u);
  EXPECT_EQ(*FirstRetainedLsn(path), 7u);
  r = ReadTxLog(path);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 4u);
  EXPECT_EQ(r->front().lsn, 7u);
  // Trim never deletes the segment being written.
  ASSERT_TRUE((*log)->Trim(1000).ok());
  EXPECT_EQ((*log)->segments(), 1u);
  ASSERT_TRUE((*log)->Append(LogType::kTruncate, 1, "").ok());
  EXPECT_EQ(ReadTxLog(path)->back().lsn, 11u);
}

TEST(TxLogTest, MissingRecordsBetweenSegmentsAreDataLoss) {
  const std::string path = TempPath("gap");
  {
    auto log = TxLog::Open(path, FsyncPolicy::kNever, 100);
    ASSERT_TRUE(log.ok());
    for (int i = 0; i < 6; ++i) ASSERT_TRUE((*log)->Append(LogType::kCommitBackup, i, std::string(40, 'p')).ok());
  }
  ASSERT_EQ(truncate((path + ".00000000000000000003").c_str(), 57), 0);  // a middle segment loses a record
  absl::StatusOr<std::vector<LogRecord>> r = ReadTxLog(path);
  EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
}

// kEveryRecord syncs the directory after creating each segment (power loss
// itself is not testable here: this runs the path and checks its errors).
TEST(TxLogTest, EveryRecordSyncsTheDirectoryOfNewSegments) {
  const std::string path = TempPath("synced");
  {
    auto log = TxLog::Open(path, FsyncPolicy::kEveryRecord, /*segment_bytes=*/100);
    ASSERT_TRUE(log.ok()) << log.status();
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE((*log)->Append(LogType::kCommitBackup, i, std::string(40, 'p')).ok());
    }
    EXPECT_EQ((*log)->segments(), 3u);
    ASSERT_TRUE((*log)->Roll().ok());
    EXPECT_EQ((*log)->segments(), 4u);
  }
  absl::StatusOr<std::vector<LogRecord>> r = ReadTxLog(path);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->size(), 5u);
  EXPECT_TRUE(SyncParentDirectory(path, "transaction log").ok());
  const absl::Status missing = SyncParentDirectory(TempPath("no-such-dir") + "/log", "checkpoint");
  EXPECT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("no-such-dir"), absl::string_view::npos) << missing;
  EXPECT_NE(missing.message().find("checkpoint"), absl::string_view::npos) << missing;
}

// Group commit: a leader's fdatasync is stalled; records eight other threads
// write meanwhile all wait, and one next fdatasync makes them all durable.
TEST(TxLogTest, RecordsWrittenDuringASyncShareTheNextOne) {
  const std::string path = TempPath("group");
  auto log = TxLog::Open(path, FsyncPolicy::kEveryRecord);
  ASSERT_TRUE(log.ok()) << log.status();
  TxLog& l = **log;
  absl::Notification first_sync_started, release_first_sync;
  std::atomic<int> fdatasyncs{0};
  l.SetFdatasyncForTest([&](int fd) {
    if (fdatasyncs.fetch_add(1) == 0) {
      first_sync_started.Notify();
      release_first_sync.WaitForNotification();
    }
    return ::fdatasync(fd);
  });
  std::thread leader([&] { EXPECT_TRUE(l.Append(LogType::kLock, 1, "leader").ok()); });
  first_sync_started.WaitForNotification();
  constexpr int kThreads = 8;
  std::atomic<int> written{0};
  std::vector<std::thread> followers;
  for (int i = 0; i < kThreads; ++i) {
    followers.emplace_back([&, i] {
      absl::StatusOr<uint64_t> lsn = l.Write(LogType::kCommitBackup, 10 + i, "follower");
      ASSERT_TRUE(lsn.ok()) << lsn.status();
      written.fetch_add(1);
      EXPECT_TRUE(l.Sync(*lsn).ok());
      EXPECT_GE(l.durable_lsn(), *lsn) << "Sync returned before its record was on disk";
    });
  }
  while (written.load() < kThreads) std::this_thread::yield();
  EXPECT_EQ(l.durable_lsn(), 0u) << "the stalled sync reported nothing yet";
  release_first_sync.Notify();
  leader.join();
  for (std::thread& t : followers) t.join();
  EXPECT_EQ(l.syncs(), 2u) << "the leader's record, then one sync for the eight written during it";
  EXPECT_EQ(fdatasyncs.load(), 2);
  EXPECT_EQ(l.durable_lsn(), 1u + kThreads);
  absl::StatusOr<std::vector<LogRecord>> r = ReadTxLog(path);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->size(), 1u + kThreads);
  // Nothing new: a Sync returns without an fdatasync (no latency when idle).
  EXPECT_TRUE(l.Sync(l.last_lsn()).ok());
  EXPECT_EQ(l.syncs(), 2u);
}

TEST(TxLogTest, NeverPolicyNeverSyncs) {
  auto log = TxLog::Open(TempPath("never"), FsyncPolicy::kNever);
  ASSERT_TRUE(log.ok()) << log.status();
  (*log)->SetFdatasyncForTest([](int) {
    ADD_FAILURE() << "fdatasync with kNever";
    return 0;
  });
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*log)->Append(LogType::kTruncate, i, "").ok());
  EXPECT_TRUE((*log)->Sync(3).ok());
  EXPECT_EQ((*log)->syncs(), 0u);
  EXPECT_EQ((*log)->durable_lsn(), 0u);
}

// A full segment is synced before the log moves to the next one, so a sync
// only ever has the current file to sync.
TEST(TxLogTest, RollingSyncsTheFinishedSegment) {
  auto log = TxLog::Open(TempPath("roll-sync"), FsyncPolicy::kEveryRecord, /*segment_bytes=*/100);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_TRUE((*log)->Write(LogType::kCommitBackup, 1, std::string(40, 'p')).ok());
  EXPECT_EQ((*log)->durable_lsn(), 0u);
  // 114 bytes: it rolls.
  ASSERT_TRUE((*log)->Write(LogType::kCommitBackup, 2, std::string(40, 'p')).ok());
  EXPECT_EQ((*log)->segments(), 2u);
  EXPECT_EQ((*log)->durable_lsn(), 2u);
  EXPECT_EQ((*log)->syncs(), 1u);
}

// After a failed fdatasync nobody knows what reached the disk: that Sync
// and every later one fail, naming the log.
TEST(TxLogTest, AFailedSyncFailsEveryLaterSync) {
  const std::string path = TempPath("eio");
  auto log = TxLog::Open(path, FsyncPolicy::kEveryRecord);
  ASSERT_TRUE(log.ok()) << log.status();
  (*log)->SetFdatasyncForTest([](int) {
    errno = EIO;
    return -1;
  });
  const absl::Status s = (*log)->Append(LogType::kLock, 1, "x");
  EXPECT_TRUE(absl::IsInternal(s)) << s;
  EXPECT_NE(s.message().find(path), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("fdatasync"), absl::string_view::npos) << s;
  (*log)->SetFdatasyncForTest(nullptr);
  EXPECT_FALSE((*log)->Append(LogType::kLock, 2, "y").ok());
  EXPECT_EQ((*log)->durable_lsn(), 0u);
}

TEST(TxLogTest, FsyncPolicyNames) {
  EXPECT_EQ(*ParseFsyncPolicy("never"), FsyncPolicy::kNever);
  EXPECT_EQ(*ParseFsyncPolicy("every_record"), FsyncPolicy::kEveryRecord);
  EXPECT_TRUE(absl::IsInvalidArgument(ParseFsyncPolicy("always").status()));
}

TEST(TxLogTest, UnwritableDirectoryIsAnError) {
  auto log = TxLog::Open("/proc/no-such-dir/log", FsyncPolicy::kNever);
  EXPECT_FALSE(log.ok());
}

}  // namespace
}  // namespace dctk::farm::tx
