#include "farm/tx/tx_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace dctk::farm::tx {
namespace {

constexpr size_t kHeader = 4 + 4 + 1 + 8;

uint32_t Checksum(absl::string_view bytes) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

}  // namespace

const char* LogTypeName(LogType t) {
  switch (t) {
    case LogType::kLock: return "LOCK";
    case LogType::kCommitBackup: return "COMMIT-BACKUP";
    case LogType::kCommitPrimary: return "COMMIT-PRIMARY";
    case LogType::kAbort: return "ABORT";
    case LogType::kTruncate: return "TRUNCATE";
    case LogType::kRecoveredCommit: return "RECOVERED-COMMIT";
    case LogType::kRecoveredAbort: return "RECOVERED-ABORT";
  }
  return "UNKNOWN";
}

absl::StatusOr<std::unique_ptr<TxLog>> TxLog::Open(const std::string& path, FsyncPolicy policy) {
  int fd = -1;
  if (!path.empty()) {
    fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
      return absl::InternalError(absl::StrCat("transaction log ", path, ": open: ", strerror(errno)));
    }
  }
  return std::unique_ptr<TxLog>(new TxLog(path, fd, policy));
}

TxLog::~TxLog() {
  if (fd_ >= 0) close(fd_);
}

absl::Status TxLog::Append(LogType type, TxId tx, absl::string_view payload) {
  ++records_;
  bytes_ += kHeader + payload.size();
  if (fd_ < 0) return absl::OkStatus();
  buffer_.resize(kHeader + payload.size());
  char* p = buffer_.data();
  const uint32_t len = static_cast<uint32_t>(payload.size());
  const uint8_t t = static_cast<uint8_t>(type);
  std::memcpy(p + 8, &t, 1);
  std::memcpy(p + 9, &tx, 8);
  std::memcpy(p + kHeader, payload.data(), payload.size());
  const uint32_t sum = Checksum(absl::string_view(p + 8, buffer_.size() - 8));
  std::memcpy(p, &len, 4);
  std::memcpy(p + 4, &sum, 4);
  size_t done = 0;
  while (done < buffer_.size()) {
    const ssize_t n = write(fd_, p + done, buffer_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::InternalError(absl::StrCat("transaction log ", path_, ": write: ", strerror(errno)));
    done += n;
  }
  if (policy_ == FsyncPolicy::kEveryRecord && fdatasync(fd_) != 0) {
    return absl::InternalError(absl::StrCat("transaction log ", path_, ": fdatasync: ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<LogRecord>> ReadTxLog(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("transaction log ", path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string data = ss.str();
  std::vector<LogRecord> out;
  size_t pos = 0;
  while (pos + kHeader <= data.size()) {
    uint32_t len, sum;
    std::memcpy(&len, &data[pos], 4);
    std::memcpy(&sum, &data[pos + 4], 4);
    if (pos + kHeader + len > data.size()) break;  // torn tail
    if (Checksum(absl::string_view(&data[pos + 8], kHeader - 8 + len)) != sum) break;
    LogRecord r;
    uint8_t t;
    std::memcpy(&t, &data[pos + 8], 1);
    std::memcpy(&r.tx, &data[pos + 9], 8);
    r.type = static_cast<LogType>(t);
    r.payload = data.substr(pos + kHeader, len);
    out.push_back(std::move(r));
    pos += kHeader + len;
  }
  return out;
}

}  // namespace dctk::farm::tx
