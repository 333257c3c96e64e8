#include "bastion/datapath/cgroup.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace dctk::bastion {
namespace {

absl::Status Errno(int err, absl::string_view what) {
  return absl::ErrnoToStatus(err, absl::StrCat("cgroup: ", what));
}

// On cgroup2 the file handle of a cgroup directory is its 64-bit id.
struct CgroupHandle {
  int type = 0;
  uint64_t id = 0;
};

absl::StatusOr<CgroupHandle> HandleOf(const std::string& cgroup_path) {
  struct {
    file_handle handle;
    uint64_t id;
  } h{};
  h.handle.handle_bytes = sizeof(uint64_t);
  int mount_id = 0;
  if (name_to_handle_at(AT_FDCWD, cgroup_path.c_str(), &h.handle, &mount_id, 0) != 0) {
    return Errno(errno, absl::StrCat("reading the cgroup id of ", cgroup_path));
  }
  CgroupHandle out{.type = h.handle.handle_type};
  std::memcpy(&out.id, h.handle.f_handle, sizeof(out.id));
  return out;
}

}  // namespace

absl::StatusOr<uint64_t> CgroupId(const std::string& cgroup_path) {
  absl::StatusOr<CgroupHandle> h = HandleOf(cgroup_path);
  if (!h.ok()) return h.status();
  return h->id;
}

absl::StatusOr<std::string> Cgroup2MountPoint() {
  std::ifstream mounts("/proc/self/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string device, dir, type;
    if (fields >> device >> dir >> type && type == "cgroup2") return dir;
  }
  return absl::NotFoundError("cgroup: no cgroup2 mount in /proc/self/mounts");
}

absl::StatusOr<int> OpenCgroupById(uint64_t cgroup_id) {
  absl::StatusOr<std::string> root = Cgroup2MountPoint();
  if (!root.ok()) return root.status();
  absl::StatusOr<CgroupHandle> root_handle = HandleOf(*root);  // for the handle type
  if (!root_handle.ok()) return root_handle.status();
  const int mount_fd = open(root->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (mount_fd < 0) return Errno(errno, "opening " + *root);
  struct {
    file_handle handle;
    uint64_t id;
  } h{};
  h.handle.handle_bytes = sizeof(uint64_t);
  h.handle.handle_type = root_handle->type;
  std::memcpy(h.handle.f_handle, &cgroup_id, sizeof(cgroup_id));
  const int fd = open_by_handle_at(mount_fd, &h.handle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const int err = errno;
  close(mount_fd);
  if (fd >= 0) return fd;
  if (err == ESTALE || err == ENOENT) {
    return absl::NotFoundError(
        absl::StrCat("cgroup: cgroup ", cgroup_id, " is gone"));
  }
  return Errno(err, absl::StrCat("opening cgroup ", cgroup_id, " by id"));
}

absl::StatusOr<std::string> ProcessCgroup(int pid) {
  absl::StatusOr<std::string> root = Cgroup2MountPoint();
  if (!root.ok()) return root.status();
  const std::string file = absl::StrCat("/proc/", pid, "/cgroup");
  std::ifstream in(file);
  if (!in) return absl::NotFoundError(absl::StrCat("cgroup: no ", file, " (process gone?)"));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "0::")) return *root + (line == "0::/" ? "" : line.substr(3));
  }
  return absl::NotFoundError(absl::StrCat("cgroup: no cgroup v2 line in ", file));
}

}  // namespace dctk::bastion
