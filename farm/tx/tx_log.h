// TxLog: a machine's transaction log on files. Every protocol record a
// participant receives (LOCK at a primary, COMMIT-BACKUP at a backup, and the
// COMMIT-PRIMARY / ABORT / TRUNCATE / recovery decisions that follow) is
// appended before the participant acknowledges it, so with fsync on an
// acknowledged record survives a crash of the machine (FaRM keeps these logs
// in non-volatile memory; here they are files).
//
// Each record gets a log sequence number (LSN, 1, 2, ...). The log is a
// series of segment files `<path>.<first LSN, 20 digits>`; Roll() starts a
// new segment and Trim(lsn) deletes every segment whose records all precede
// `lsn` (a checkpoint covers them, checkpoint.h), so the files stay bounded.
// Open() of an existing log continues after its last complete record; a torn
// tail (a crash mid-append) is cut off first, so it is never read back or
// followed by new records.
//
// Record on disk: [length u32][checksum u32][type u8][tx u64][payload]; a
// torn tail fails its length or checksum.
//
// Group commit: Write() appends a record (to the page cache) and returns its
// LSN; Sync(lsn) returns once every record up to `lsn` is on disk
// (kEveryRecord). Threads may Write while another one syncs; a Sync finding
// no fdatasync in flight runs one at once for every record written so far
// (the leader: no added latency when idle), one finding a sync in flight
// waits for it and, if its record came too late for it, the first such
// waiter runs the next one for all of them (followers). So records written
// while an fdatasync runs share the next one. Append() is Write + Sync.
//
// Example:
//   absl::StatusOr<std::unique_ptr<TxLog>> log =
//       TxLog::Open("/var/farm/m1.log", FsyncPolicy::kEveryRecord);
//   absl::StatusOr<uint64_t> lsn = (*log)->Write(LogType::kLock, tx, Encode(lock_request));
//   (*log)->Sync(*lsn);   // then reply: the record survives a power loss
//   absl::StatusOr<std::vector<LogRecord>> records = ReadTxLog("/var/farm/m1.log");
#ifndef DCTK_FARM_TX_TX_LOG_H_
#define DCTK_FARM_TX_TX_LOG_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "farm/tx/wire.h"

namespace dctk::farm::tx {

enum class LogType : uint8_t {
  kLock = 1,
  kCommitBackup = 2,
  kCommitPrimary = 3,
  kAbort = 4,
  kTruncate = 5,
  kRecoveredCommit = 6,  // payload: the committed entries (a LockRequest)
  kRecoveredAbort = 7,
  kCopied = 8,  // payload: objects a re-replication chunk installed (a LockRequest)
};
const char* LogTypeName(LogType t);

enum class FsyncPolicy : uint8_t {
  kNever,        // the OS flushes when it likes: survives a process crash only
  kEveryRecord,  // a record is fdatasynced before Sync/Append returns: survives power loss
};
// "never" | "every_record" (as flags spell them); InvalidArgument otherwise.
absl::StatusOr<FsyncPolicy> ParseFsyncPolicy(absl::string_view name);

struct LogRecord {
  LogType type;
  TxId tx;
  std::string payload;
  uint64_t lsn = 0;
};

class TxLog {
 public:
  // Appends to the log at `path` (segments created as needed), after its
  // last complete record. An empty path keeps no file (for tests and
  // benchmarks of the protocol alone). A segment is rolled once it holds
  // `segment_bytes`.
  static absl::StatusOr<std::unique_ptr<TxLog>> Open(const std::string& path, FsyncPolicy policy,
                                                     uint64_t segment_bytes = 4 << 20);
  ~TxLog();
  TxLog(const TxLog&) = delete;
  TxLog& operator=(const TxLog&) = delete;

  // Appends a record; it is durable once Sync(its LSN) returned. Thread
  // safe (records take LSNs in the order their Writes run).
  absl::StatusOr<uint64_t> Write(LogType type, TxId tx, absl::string_view payload);
  // With kEveryRecord, returns once every record up to `lsn` is on disk,
  // sharing one fdatasync with every other record written meanwhile (group
  // commit, above). kNever: returns at once. A failed fdatasync fails this
  // and every later Sync (what it left on disk is unknown).
  absl::Status Sync(uint64_t lsn);
  // Write + Sync.
  absl::Status Append(LogType type, TxId tx, absl::string_view payload);
  // Starts a new segment (the next record's LSN begins it).
  absl::Status Roll();
  // Fault injection: `fdatasync` replaces ::fdatasync for this log's record
  // syncs (tests stall a sync to watch records queue behind it, or fail it).
  void SetFdatasyncForTest(std::function<int(int fd)> fdatasync);
  // Deletes the segments holding only records with LSN < `lsn` (never the
  // current one). Returns how many bytes it reclaimed.
  absl::StatusOr<uint64_t> Trim(uint64_t lsn);

  uint64_t last_lsn() const;        // 0: no record yet
  uint64_t durable_lsn() const;     // kEveryRecord: synced up to here (kNever: 0)
  uint64_t records() const;         // appended by this TxLog
  uint64_t bytes() const;           // appended by this TxLog
  uint64_t syncs() const;           // fdatasyncs of records (group commits) by this TxLog
  uint64_t retained_bytes() const;  // in the segment files now
  size_t segments() const;
  const std::string& path() const { return path_; }
  FsyncPolicy policy() const { return policy_; }

 private:
  struct Segment {
    uint64_t first_lsn;
    std::string path;
    uint64_t bytes;
  };
  // An open segment file; a sync in flight keeps it open across a roll.
  struct File;
  TxLog(std::string path, FsyncPolicy policy, uint64_t segment_bytes);
  absl::Status OpenSegment(uint64_t first_lsn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One fdatasync of `file` (the injected one if set), errno-style.
  int Fdatasync(const File& file);

  const std::string path_;
  const FsyncPolicy policy_;
  const uint64_t segment_bytes_;
  mutable absl::Mutex mu_;
  std::shared_ptr<File> file_ ABSL_GUARDED_BY(mu_);  // the segment appended to
  std::deque<Segment> segments_ ABSL_GUARDED_BY(mu_);
  uint64_t next_lsn_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t records_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  std::string buffer_ ABSL_GUARDED_BY(mu_);
  // Group commit: records up to durable_lsn_ are on disk; `syncing_` while
  // a leader's fdatasync runs (mu_ released).
  uint64_t durable_lsn_ ABSL_GUARDED_BY(mu_) = 0;
  bool syncing_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t syncs_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status sync_error_ ABSL_GUARDED_BY(mu_);
  std::function<int(int)> fdatasync_;  // set before use (tests)
};

// Every complete record of the log at `path` with LSN >= `from`, in order.
// NotFound if the log has no segment; a torn tail of the last segment ends
// the result; a bad record anywhere else, or a gap between segments, is
// DataLoss.
absl::StatusOr<std::vector<LogRecord>> ReadTxLog(const std::string& path, uint64_t from = 0);
// The LSN of the log's oldest retained record (0: no segment).
absl::StatusOr<uint64_t> FirstRetainedLsn(const std::string& path);

// fsyncs the directory holding `path`, so that a file just created in it or
// renamed to `path` survives power loss (POSIX makes a directory entry
// durable only when the directory itself is synced). `what` names the file
// in the error ("checkpoint", "transaction log", ...).
absl::Status SyncParentDirectory(const std::string& path, absl::string_view what);

}  // namespace dctk::farm::tx

#endif  // DCTK_FARM_TX_TX_LOG_H_
