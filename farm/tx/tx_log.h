// TxLog: a machine's transaction log on a file. Every protocol record a
// participant receives (LOCK at a primary, COMMIT-BACKUP at a backup, and the
// COMMIT-PRIMARY / ABORT / TRUNCATE / recovery decisions that follow) is
// appended before the participant acknowledges it, so with fsync on an
// acknowledged record survives a crash of the machine (FaRM keeps these logs
// in non-volatile memory; here they are files).
//
// Record on disk: [length u32][checksum u32][type u8][tx u64][payload]; a
// torn tail (a crash mid-append) fails its length or checksum and ends
// ReadTxLog's result there.
//
// Example:
//   absl::StatusOr<std::unique_ptr<TxLog>> log =
//       TxLog::Open("/var/farm/m1.log", FsyncPolicy::kEveryRecord);
//   (*log)->Append(LogType::kLock, tx, Encode(lock_request));
//   absl::StatusOr<std::vector<LogRecord>> records = ReadTxLog("/var/farm/m1.log");
#ifndef DCTK_FARM_TX_TX_LOG_H_
#define DCTK_FARM_TX_TX_LOG_H_

#include <cstdint>
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
  kRecoveredCommit = 6,
  kRecoveredAbort = 7,
};
const char* LogTypeName(LogType t);

enum class FsyncPolicy : uint8_t {
  kNever,        // the OS flushes when it likes: survives a process crash only
  kEveryRecord,  // fdatasync before each Append returns: survives power loss
};

struct LogRecord {
  LogType type;
  TxId tx;
  std::string payload;
};

class TxLog {
 public:
  // Appends to `path` (created if missing). An empty path keeps no file
  // (for tests and benchmarks of the protocol alone).
  static absl::StatusOr<std::unique_ptr<TxLog>> Open(const std::string& path, FsyncPolicy policy);
  ~TxLog();
  TxLog(const TxLog&) = delete;
  TxLog& operator=(const TxLog&) = delete;

  absl::Status Append(LogType type, TxId tx, absl::string_view payload);

  uint64_t records() const { return records_; }
  uint64_t bytes() const { return bytes_; }
  const std::string& path() const { return path_; }

 private:
  TxLog(std::string path, int fd, FsyncPolicy policy) : path_(std::move(path)), fd_(fd), policy_(policy) {}

  const std::string path_;
  const int fd_;
  const FsyncPolicy policy_;
  uint64_t records_ = 0;
  uint64_t bytes_ = 0;
  std::string buffer_;
};

// Every complete record of the log at `path`, in order.
absl::StatusOr<std::vector<LogRecord>> ReadTxLog(const std::string& path);

}  // namespace dctk::farm::tx

#endif  // DCTK_FARM_TX_TX_LOG_H_
