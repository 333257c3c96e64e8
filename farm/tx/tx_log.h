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
// Example:
//   absl::StatusOr<std::unique_ptr<TxLog>> log =
//       TxLog::Open("/var/farm/m1.log", FsyncPolicy::kEveryRecord);
//   (*log)->Append(LogType::kLock, tx, Encode(lock_request));   // LSN (*log)->last_lsn()
//   absl::StatusOr<std::vector<LogRecord>> records = ReadTxLog("/var/farm/m1.log");
#ifndef DCTK_FARM_TX_TX_LOG_H_
#define DCTK_FARM_TX_TX_LOG_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
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
  kEveryRecord,  // fdatasync before each Append returns: survives power loss
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

  absl::Status Append(LogType type, TxId tx, absl::string_view payload);
  // Starts a new segment (the next record's LSN begins it).
  absl::Status Roll();
  // Deletes the segments holding only records with LSN < `lsn` (never the
  // current one). Returns how many bytes it reclaimed.
  absl::StatusOr<uint64_t> Trim(uint64_t lsn);

  uint64_t last_lsn() const { return next_lsn_ - 1; }  // 0: no record yet
  uint64_t records() const { return records_; }      // appended by this TxLog
  uint64_t bytes() const { return bytes_; }          // appended by this TxLog
  uint64_t retained_bytes() const;                   // in the segment files now
  size_t segments() const { return segments_.size(); }
  const std::string& path() const { return path_; }

 private:
  struct Segment {
    uint64_t first_lsn;
    std::string path;
    uint64_t bytes;
  };
  TxLog(std::string path, FsyncPolicy policy, uint64_t segment_bytes)
      : path_(std::move(path)), policy_(policy), segment_bytes_(segment_bytes) {}
  absl::Status OpenSegment(uint64_t first_lsn);

  const std::string path_;
  const FsyncPolicy policy_;
  const uint64_t segment_bytes_;
  int fd_ = -1;
  std::deque<Segment> segments_;
  uint64_t next_lsn_ = 1;
  uint64_t records_ = 0;
  uint64_t bytes_ = 0;
  std::string buffer_;
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
