#include "bastion/datapath/bpf_host_network.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "bastion/bpf/bastion_host_network.skel.h"
#include "bastion/bpf/lib/types.h"

namespace dctk::bastion {
namespace {

absl::Status Errno(int err, absl::string_view what) {
  err = err < 0 ? -err : err;
  return absl::ErrnoToStatus(err, absl::StrCat("bastion host network: ", what));
}

}  // namespace

absl::StatusOr<uint64_t> CgroupId(const std::string& cgroup_path) {
  // On cgroup2 the file handle of a cgroup directory is its 64-bit id.
  struct {
    file_handle handle;
    uint64_t id;
  } h{};
  h.handle.handle_bytes = sizeof(uint64_t);
  int mount_id = 0;
  if (name_to_handle_at(AT_FDCWD, cgroup_path.c_str(), &h.handle, &mount_id, 0) != 0) {
    return Errno(errno, absl::StrCat("reading the cgroup id of ", cgroup_path));
  }
  uint64_t id = 0;
  std::memcpy(&id, h.handle.f_handle, sizeof(id));
  return id;
}

absl::StatusOr<std::string> Cgroup2MountPoint() {
  std::ifstream mounts("/proc/self/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string device, dir, type;
    if (fields >> device >> dir >> type && type == "cgroup2") return dir;
  }
  return absl::NotFoundError("bastion host network: no cgroup2 mount in /proc/self/mounts");
}

void BpfHostNetwork::SkeletonDeleter::operator()(bastion_host_network* skel) const {
  bastion_host_network__destroy(skel);
}

void BpfHostNetwork::LinkDeleter::operator()(bpf_link* link) const { bpf_link__destroy(link); }

absl::StatusOr<std::unique_ptr<BpfHostNetwork>> BpfHostNetwork::Create(
    const BpfDatapath& datapath) {
  std::unique_ptr<bastion_host_network, SkeletonDeleter> skel(bastion_host_network__open());
  if (!skel) return Errno(errno, "opening the bastion_host_network skeleton");
  skel->rodata->bastion_ct_lifetime_ns = absl::ToInt64Nanoseconds(datapath.conntrack_lifetime());
  bpf_map* map;
  bpf_object__for_each_map(map, skel->obj) {
    if (bpf_map__is_internal(map)) continue;  // .rodata: this object's own
    int fd = datapath.MapFd(bpf_map__name(map));
    if (fd < 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "bastion host network: the container datapath has no map ", bpf_map__name(map)));
    }
    if (int err = bpf_map__reuse_fd(map, fd)) {
      return Errno(err, absl::StrCat("sharing map ", bpf_map__name(map)));
    }
  }
  if (int err = bastion_host_network__load(skel.get())) {
    return Errno(err, "loading the bastion_host_network programs");
  }
  return std::unique_ptr<BpfHostNetwork>(new BpfHostNetwork(std::move(skel)));
}

BpfHostNetwork::BpfHostNetwork(std::unique_ptr<bastion_host_network, SkeletonDeleter> skel)
    : skel_(std::move(skel)) {}

BpfHostNetwork::~BpfHostNetwork() {
  std::vector<std::string> paths;
  for (const auto& [path, attachment] : attached_) paths.push_back(path);
  for (const std::string& path : paths) DetachCgroup(path).IgnoreError();  // cgroup may be gone
}

int BpfHostNetwork::from_host_network_fd() const {
  return bpf_program__fd(skel_->progs.bastion_from_host_network);
}

int BpfHostNetwork::to_host_network_fd() const {
  return bpf_program__fd(skel_->progs.bastion_to_host_network);
}

absl::Status BpfHostNetwork::BindCgroup(uint64_t cgroup_id, uint32_t container_id) {
  if (container_id == BASTION_ID_NONE || container_id >= BASTION_ID_HOST_FIRST) {
    return absl::InvalidArgumentError(absl::StrCat("cgroup ", cgroup_id, ": container id ",
                                                   container_id, " outside 1..",
                                                   BASTION_ID_HOST_FIRST - 1));
  }
  bastion_cgroup_binding value{.container_id = container_id, .pad = 0};
  __u64 key = cgroup_id;
  if (int err = bpf_map__update_elem(skel_->maps.bastion_cgroups, &key, sizeof(key), &value,
                                     sizeof(value), BPF_ANY)) {
    return Errno(err, absl::StrCat("writing cgroup ", cgroup_id, " to map bastion_cgroups"));
  }
  return absl::OkStatus();
}

absl::Status BpfHostNetwork::UnbindCgroup(uint64_t cgroup_id) {
  __u64 key = cgroup_id;
  int err = bpf_map__delete_elem(skel_->maps.bastion_cgroups, &key, sizeof(key), 0);
  if (err == -ENOENT) {
    return absl::NotFoundError(
        absl::StrCat("bastion host network: cgroup ", cgroup_id, " is not bound"));
  }
  if (err) return Errno(err, absl::StrCat("deleting cgroup ", cgroup_id));
  return absl::OkStatus();
}

absl::Status BpfHostNetwork::AttachCgroup(const std::string& cgroup_path, uint32_t container_id) {
  if (attached_.contains(cgroup_path)) {
    return absl::AlreadyExistsError(
        absl::StrCat("bastion host network: cgroup ", cgroup_path, " is already attached"));
  }
  absl::StatusOr<uint64_t> id = CgroupId(cgroup_path);
  if (!id.ok()) return id.status();
  int fd = open(cgroup_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno(errno, absl::StrCat("opening cgroup ", cgroup_path));
  absl::Status status = BindCgroup(*id, container_id);  // identity before programs
  Attachment attachment{.cgroup_id = *id, .egress = nullptr, .ingress = nullptr};
  if (status.ok()) {
    attachment.egress.reset(
        bpf_program__attach_cgroup(skel_->progs.bastion_from_host_network, fd));
    if (!attachment.egress) status = Errno(errno, "linking the egress program to " + cgroup_path);
  }
  if (status.ok()) {
    attachment.ingress.reset(
        bpf_program__attach_cgroup(skel_->progs.bastion_to_host_network, fd));
    if (!attachment.ingress) {
      status = Errno(errno, "linking the ingress program to " + cgroup_path);
    }
  }
  close(fd);
  if (!status.ok()) {
    attachment.egress.reset();
    attachment.ingress.reset();
    UnbindCgroup(*id).IgnoreError();  // best effort; the error above wins
    return status;
  }
  attached_.emplace(cgroup_path, std::move(attachment));
  return absl::OkStatus();
}

absl::Status BpfHostNetwork::DetachCgroup(const std::string& cgroup_path) {
  auto it = attached_.find(cgroup_path);
  if (it == attached_.end()) {
    return absl::NotFoundError(
        absl::StrCat("bastion host network: cgroup ", cgroup_path, " is not attached"));
  }
  const uint64_t id = it->second.cgroup_id;
  attached_.erase(it);  // unlinks both programs
  return UnbindCgroup(id);
}

}  // namespace dctk::bastion
