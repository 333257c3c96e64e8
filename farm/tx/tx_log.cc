#include "farm/tx/tx_log.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dctk::farm::tx {
namespace {

constexpr size_t kHeader = 4 + 4 + 1 + 8;
constexpr size_t kLsnDigits = 20;

uint32_t Checksum(absl::string_view bytes) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

std::string SegmentPath(const std::string& path, uint64_t first_lsn) {
  return absl::StrFormat("%s.%020u", path, first_lsn);
}

struct SegmentFile {
  uint64_t first_lsn;
  std::string path;
};

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
}

// The log's segments, by first LSN.
absl::StatusOr<std::vector<SegmentFile>> ListSegments(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = DirectoryOf(path);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::vector<SegmentFile> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    return absl::NotFoundError(absl::StrCat("transaction log ", path, ": directory ", dir, ": ", strerror(errno)));
  }
  while (struct dirent* e = readdir(d)) {
    const absl::string_view name = e->d_name;
    if (name.size() != base.size() + 1 + kLsnDigits || !absl::StartsWith(name, base) ||
        name[base.size()] != '.') {
      continue;
    }
    uint64_t lsn = 0;
    if (!absl::SimpleAtoi(name.substr(base.size() + 1), &lsn)) continue;
    out.push_back({lsn, absl::StrCat(dir, "/", name)});
  }
  closedir(d);
  std::sort(out.begin(), out.end(), [](const SegmentFile& a, const SegmentFile& b) { return a.first_lsn < b.first_lsn; });
  return out;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("transaction log segment ", path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Parses the complete records of one segment; `*valid` is the length of its
// well-formed prefix.
std::vector<LogRecord> ParseSegment(const std::string& data, uint64_t first_lsn, size_t* valid) {
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
    r.lsn = first_lsn + out.size();
    out.push_back(std::move(r));
    pos += kHeader + len;
  }
  *valid = pos;
  return out;
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
    case LogType::kCopied:
      return "COPIED";
  }
  return "UNKNOWN";
}

absl::StatusOr<FsyncPolicy> ParseFsyncPolicy(absl::string_view name) {
  if (name == "never") return FsyncPolicy::kNever;
  if (name == "every_record") return FsyncPolicy::kEveryRecord;
  return absl::InvalidArgumentError(
      absl::StrCat("fsync policy '", name, "': must be never or every_record"));
}

struct TxLog::File {
  explicit File(int fd) : fd(fd) {}
  ~File() { close(fd); }
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  const int fd;
};

TxLog::TxLog(std::string path, FsyncPolicy policy, uint64_t segment_bytes)
    : path_(std::move(path)), policy_(policy), segment_bytes_(segment_bytes) {}

absl::StatusOr<std::unique_ptr<TxLog>> TxLog::Open(const std::string& path, FsyncPolicy policy,
                                                   uint64_t segment_bytes) {
  std::unique_ptr<TxLog> log(new TxLog(path, policy, std::max<uint64_t>(segment_bytes, 1)));
  if (path.empty()) return log;
  absl::MutexLock l(&log->mu_);
  absl::StatusOr<std::vector<SegmentFile>> files = ListSegments(path);
  if (!files.ok()) return absl::InternalError(files.status().message());
  for (const SegmentFile& f : *files) {
    struct stat st;
    if (stat(f.path.c_str(), &st) != 0) {
      return absl::InternalError(absl::StrCat("transaction log ", f.path, ": stat: ", strerror(errno)));
    }
    log->segments_.push_back({f.first_lsn, f.path, static_cast<uint64_t>(st.st_size)});
  }
  if (log->segments_.empty()) {
    absl::Status s = log->OpenSegment(1);
    if (!s.ok()) return s;
    return log;
  }
  // Continue the last segment after its last complete record.
  Segment& last = log->segments_.back();
  absl::StatusOr<std::string> data = ReadFile(last.path);
  if (!data.ok()) return data.status();
  size_t valid = 0;
  const size_t n = ParseSegment(*data, last.first_lsn, &valid).size();
  if (valid < data->size() && truncate(last.path.c_str(), static_cast<off_t>(valid)) != 0) {
    return absl::InternalError(absl::StrCat("transaction log ", last.path, ": cutting its torn tail: ", strerror(errno)));
  }
  last.bytes = valid;
  log->next_lsn_ = last.first_lsn + n;
  const int fd = open(last.path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("transaction log ", last.path, ": open: ", strerror(errno)));
  }
  log->file_ = std::make_shared<File>(fd);
  // What a crashed process left may be in the page cache only: on disk
  // before anything new is written after it.
  if (policy == FsyncPolicy::kEveryRecord && ::fdatasync(fd) != 0) {
    return absl::InternalError(
        absl::StrCat("transaction log ", last.path, ": fdatasync: ", strerror(errno)));
  }
  log->durable_lsn_ = policy == FsyncPolicy::kEveryRecord ? log->next_lsn_ - 1 : 0;
  return log;
}

TxLog::~TxLog() = default;

void TxLog::SetFdatasyncForTest(std::function<int(int fd)> fdatasync) {
  fdatasync_ = std::move(fdatasync);
}

int TxLog::Fdatasync(const File& file) {
  return fdatasync_ ? fdatasync_(file.fd) : ::fdatasync(file.fd);
}

absl::Status TxLog::OpenSegment(uint64_t first_lsn) {
  // The finished segment's records go to disk before it is left, so that a
  // sync only ever has the current file to sync.
  if (policy_ == FsyncPolicy::kEveryRecord && file_ != nullptr && durable_lsn_ < next_lsn_ - 1) {
    ++syncs_;
    if (Fdatasync(*file_) != 0) {
      sync_error_ = absl::InternalError(
          absl::StrCat("transaction log ", path_, ": fdatasync: ", strerror(errno)));
      return sync_error_;
    }
    durable_lsn_ = next_lsn_ - 1;
  }
  const std::string p = SegmentPath(path_, first_lsn);
  const int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("transaction log ", p, ": open: ", strerror(errno)));
  file_ = std::make_shared<File>(fd);
  segments_.push_back({first_lsn, p, 0});
  if (policy_ == FsyncPolicy::kEveryRecord) {
    return SyncParentDirectory(p, "transaction log segment");
  }
  return absl::OkStatus();
}

absl::Status TxLog::Roll() {
  absl::MutexLock l(&mu_);
  if (file_ == nullptr || segments_.back().bytes == 0) return absl::OkStatus();
  return OpenSegment(next_lsn_);
}

absl::StatusOr<uint64_t> TxLog::Trim(uint64_t lsn) {
  absl::MutexLock l(&mu_);
  uint64_t reclaimed = 0;
  while (segments_.size() > 1 && segments_[1].first_lsn <= lsn) {
    if (unlink(segments_.front().path.c_str()) != 0 && errno != ENOENT) {
      return absl::InternalError(absl::StrCat("transaction log ", segments_.front().path, ": unlink: ", strerror(errno)));
    }
    reclaimed += segments_.front().bytes;
    segments_.pop_front();
  }
  return reclaimed;
}

uint64_t TxLog::retained_bytes() const {
  absl::ReaderMutexLock l(&mu_);
  uint64_t n = 0;
  for (const Segment& s : segments_) n += s.bytes;
  return n;
}

uint64_t TxLog::last_lsn() const {
  absl::ReaderMutexLock l(&mu_);
  return next_lsn_ - 1;
}

uint64_t TxLog::durable_lsn() const {
  absl::ReaderMutexLock l(&mu_);
  return durable_lsn_;
}

uint64_t TxLog::records() const {
  absl::ReaderMutexLock l(&mu_);
  return records_;
}

uint64_t TxLog::bytes() const {
  absl::ReaderMutexLock l(&mu_);
  return bytes_;
}

uint64_t TxLog::syncs() const {
  absl::ReaderMutexLock l(&mu_);
  return syncs_;
}

size_t TxLog::segments() const {
  absl::ReaderMutexLock l(&mu_);
  return segments_.size();
}

absl::StatusOr<uint64_t> TxLog::Write(LogType type, TxId tx, absl::string_view payload) {
  absl::MutexLock l(&mu_);
  const uint64_t lsn = next_lsn_++;
  ++records_;
  bytes_ += kHeader + payload.size();
  if (file_ == nullptr) return lsn;
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
    const ssize_t n = write(file_->fd, p + done, buffer_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::InternalError(absl::StrCat("transaction log ", path_, ": write: ", strerror(errno)));
    done += n;
  }
  segments_.back().bytes += buffer_.size();
  if (segments_.back().bytes >= segment_bytes_) {
    absl::Status s = OpenSegment(next_lsn_);
    if (!s.ok()) return s;
  }
  return lsn;
}

absl::Status TxLog::Sync(uint64_t lsn) {
  if (policy_ != FsyncPolicy::kEveryRecord) return absl::OkStatus();
  mu_.Lock();
  lsn = std::min(lsn, next_lsn_ - 1);
  while (sync_error_.ok() && durable_lsn_ < lsn && file_ != nullptr) {
    if (syncing_) {  // a follower: the sync in flight may cover `lsn`
      mu_.Await(absl::Condition(
          +[](bool* syncing) { return !*syncing; }, &syncing_));
      continue;
    }
    // The leader: one fdatasync for every record written so far; records
    // written while it runs wait for the next one.
    syncing_ = true;
    const uint64_t upto = next_lsn_ - 1;
    const std::shared_ptr<File> file = file_;
    mu_.Unlock();
    const int rc = Fdatasync(*file);
    const int err = errno;
    mu_.Lock();
    syncing_ = false;
    ++syncs_;
    if (rc != 0) {
      sync_error_ = absl::InternalError(
          absl::StrCat("transaction log ", path_, ": fdatasync: ", strerror(err)));
    } else {
      durable_lsn_ = std::max(durable_lsn_, upto);
    }
  }
  absl::Status s = sync_error_;
  mu_.Unlock();
  return s;
}

absl::Status TxLog::Append(LogType type, TxId tx, absl::string_view payload) {
  absl::StatusOr<uint64_t> lsn = Write(type, tx, payload);
  if (!lsn.ok()) return lsn.status();
  return Sync(*lsn);
}

absl::StatusOr<std::vector<LogRecord>> ReadTxLog(const std::string& path, uint64_t from) {
  absl::StatusOr<std::vector<SegmentFile>> files = ListSegments(path);
  if (!files.ok()) return files.status();
  if (files->empty()) return absl::NotFoundError(absl::StrCat("transaction log ", path, ": no segment"));
  std::vector<LogRecord> out;
  for (size_t i = 0; i < files->size(); ++i) {
    const SegmentFile& f = (*files)[i];
    const bool last = i + 1 == files->size();
    if (!last && (*files)[i + 1].first_lsn <= from) continue;
    absl::StatusOr<std::string> data = ReadFile(f.path);
    if (!data.ok()) return data.status();
    size_t valid = 0;
    std::vector<LogRecord> records = ParseSegment(*data, f.first_lsn, &valid);
    if (!last && (valid != data->size() || f.first_lsn + records.size() != (*files)[i + 1].first_lsn)) {
      return absl::DataLossError(absl::StrCat("transaction log segment ", f.path, ": ",
                                              valid != data->size() ? absl::StrCat("bad record at byte ", valid)
                                                                    : "records missing before the next segment"));
    }
    for (LogRecord& r : records) {
      if (r.lsn >= from) out.push_back(std::move(r));
    }
  }
  return out;
}

absl::Status SyncParentDirectory(const std::string& path, absl::string_view what) {
  const std::string dir = DirectoryOf(path);
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat(what, " ", path, ": open directory ", dir, ": ", strerror(errno)));
  }
  const int rc = fsync(fd);
  const int e = errno;
  close(fd);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat(what, " ", path, ": fsync directory ", dir, ": ", strerror(e)));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> FirstRetainedLsn(const std::string& path) {
  absl::StatusOr<std::vector<SegmentFile>> files = ListSegments(path);
  if (!files.ok()) return files.status();
  return files->empty() ? 0 : files->front().first_lsn;
}

}  // namespace dctk::farm::tx
