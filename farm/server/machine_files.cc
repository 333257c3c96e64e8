#include "farm/server/machine_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace dctk::farm::server {
namespace {

// "<dir>", "<base>" of a path.
std::pair<std::string, std::string> Split(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  return {path.substr(0, slash == 0 ? 1 : slash), path.substr(slash + 1)};
}

// The log's segment files: `<base>.<digits>`.
absl::StatusOr<std::vector<std::string>> Segments(const std::string& log) {
  const auto [dir, base] = Split(log);
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return out;
    return absl::InternalError(absl::StrCat("transaction log ", log, ": directory ", dir, ": ", strerror(errno)));
  }
  while (struct dirent* e = readdir(d)) {
    const absl::string_view name = e->d_name;
    uint64_t lsn = 0;
    if (name.size() > base.size() + 1 && absl::StartsWith(name, base) && name[base.size()] == '.' &&
        absl::SimpleAtoi(name.substr(base.size() + 1), &lsn)) {
      out.push_back(absl::StrCat(dir, "/", name));
    }
  }
  closedir(d);
  return out;
}

absl::StatusOr<bool> Unlink(const std::string& path) {
  if (unlink(path.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  return absl::InternalError(absl::StrCat(path, ": unlink: ", strerror(errno)));
}

}  // namespace

absl::StatusOr<absl::optional<MachineState>> ReadMachineState(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::optional<MachineState>();
  std::stringstream bytes;
  bytes << in.rdbuf();
  MachineState s;
  if (!s.ParseFromString(bytes.str()) || s.id() == 0) {
    return absl::DataLossError(absl::StrCat("machine state file ", path, ": malformed (", bytes.str().size(),
                                            " bytes); delete it to start this machine fresh"));
  }
  return absl::optional<MachineState>(std::move(s));
}

absl::Status WriteMachineState(const std::string& path, const MachineState& state, bool sync) {
  const std::string tmp = path + ".tmp";
  const std::string bytes = state.SerializeAsString();
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("machine state file ", tmp, ": open: ", strerror(errno)));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      close(fd);
      return absl::InternalError(absl::StrCat("machine state file ", tmp, ": write: ", strerror(e)));
    }
    done += static_cast<size_t>(n);
  }
  if (sync && fdatasync(fd) != 0) {
    const int e = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("machine state file ", tmp, ": fdatasync: ", strerror(e)));
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("machine state file ", path, ": rename: ", strerror(errno)));
  }
  if (sync) return tx::SyncParentDirectory(path, "machine state file");
  return absl::OkStatus();
}

absl::StatusOr<int> DiscardMachineFiles(const MachinePaths& paths) {
  std::vector<std::string> files;
  if (!paths.log.empty()) {
    absl::StatusOr<std::vector<std::string>> segments = Segments(paths.log);
    if (!segments.ok()) return segments.status();
    files = std::move(*segments);
  }
  for (const std::string& p : {paths.checkpoint, paths.state}) {
    if (p.empty()) continue;
    files.push_back(p);
    files.push_back(p + ".tmp");
  }
  int deleted = 0;
  for (const std::string& f : files) {
    absl::StatusOr<bool> gone = Unlink(f);
    if (!gone.ok()) return gone.status();
    deleted += *gone;
  }
  return deleted;
}

absl::StatusOr<RestoreInputs> ReadRestoreInputs(const MachinePaths& paths) {
  const absl::Time start = absl::Now();
  RestoreInputs in;
  absl::StatusOr<tx::Checkpoint> c = tx::ReadCheckpoint(paths.checkpoint);
  if (!c.ok() && !absl::IsNotFound(c.status())) return c.status();
  if (c.ok()) in.checkpoint = std::move(*c);
  const uint64_t from = in.checkpoint ? in.checkpoint->lsn + 1 : 1;
  absl::StatusOr<uint64_t> first = tx::FirstRetainedLsn(paths.log);
  if (!first.ok()) return first.status();
  if (*first > from) {
    return absl::DataLossError(absl::StrCat(
        "transaction log ", paths.log, " starts at record ", *first, " but ",
        in.checkpoint ? absl::StrCat("the checkpoint ", paths.checkpoint, " covers only up to record ",
                                     in.checkpoint->lsn)
                      : absl::StrCat("there is no checkpoint ", paths.checkpoint)));
  }
  if (*first != 0) {
    absl::StatusOr<std::vector<tx::LogRecord>> records = tx::ReadTxLog(paths.log, from);
    if (!records.ok()) return records.status();
    in.records = std::move(*records);
  }
  for (const tx::LogRecord& r : in.records) in.log_bytes += r.payload.size() + 17;  // + record header
  in.read_time = absl::Now() - start;
  return in;
}

bool IsStorageMember(fabric::MachineId id, const cm::Configuration& c) {
  for (const cm::Machine& m : c.machines()) {
    if (m.id() == id && !m.client()) return true;
  }
  return false;
}

absl::StatusOr<fabric::MachineId> NextIncarnation(fabric::MachineId slot, uint32_t slots, const cm::Configuration& c) {
  if (slot == 0 || slot > slots || slots >= kFirstClientId) {
    return absl::InvalidArgumentError(
        absl::StrCat("machine slot ", slot, " of ", slots, ": a group has 1..", kFirstClientId - 1, " machines"));
  }
  auto known = [&](fabric::MachineId id) {
    for (const cm::Machine& m : c.machines()) {
      if (m.id() == id) return true;
    }
    return std::find(c.failed().begin(), c.failed().end(), id) != c.failed().end();
  };
  for (fabric::MachineId id = slot; id < kFirstClientId; id += slots) {
    if (!known(id)) return id;
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "machine slot ", slot, ": every machine id below ", kFirstClientId, " for it (", slot, " + ", slots,
      " k) was removed once and cannot be re-admitted; restart the whole cluster with fresh files"));
}

}  // namespace dctk::farm::server
