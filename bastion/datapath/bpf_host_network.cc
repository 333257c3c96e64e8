#include "bastion/datapath/bpf_host_network.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "bastion/bpf/bastion_host_network.skel.h"
#include "bastion/bpf/lib/types.h"
#include "bastion/datapath/cgroup.h"

namespace dctk::bastion {
namespace {

absl::Status Errno(int err, absl::string_view what) {
  err = err < 0 ? -err : err;
  return absl::ErrnoToStatus(err, absl::StrCat("bastion host network: ", what));
}

bpf_attach_type AttachType(int type) { return static_cast<bpf_attach_type>(type); }

struct ProgramInfo {
  uint32_t id = 0;
  std::string name;  // as the kernel keeps it: at most BPF_OBJ_NAME_LEN - 1 characters
};

absl::StatusOr<ProgramInfo> InfoOf(int prog_fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (int err = bpf_obj_get_info_by_fd(prog_fd, &info, &len))
    return Errno(err, "reading program info");
  return ProgramInfo{.id = info.id, .name = info.name};
}

// Ids of the programs attached directly to a cgroup at `type`.
absl::StatusOr<std::vector<uint32_t>> AttachedIds(int cgroup_fd, bpf_attach_type type) {
  std::vector<uint32_t> ids(64);
  uint32_t count = ids.size();
  uint32_t flags = 0;
  if (int err = bpf_prog_query(cgroup_fd, type, 0, &flags, ids.data(), &count)) {
    return Errno(err, "querying the cgroup's programs");
  }
  ids.resize(count);
  return ids;
}

// An fd per program attached at `type` that is our `prog` (`own`) or carries its name (an earlier
// instance of it); `own_attached` says whether `own` itself is there.
struct Found {
  bool own_attached = false;
  std::vector<int> stale_fds;
};

absl::StatusOr<Found> FindOurs(int cgroup_fd, bpf_attach_type type, const bpf_program* prog) {
  absl::StatusOr<ProgramInfo> own = InfoOf(bpf_program__fd(prog));
  if (!own.ok()) return own.status();
  absl::StatusOr<std::vector<uint32_t>> ids = AttachedIds(cgroup_fd, type);
  if (!ids.ok()) return ids.status();
  Found found;
  for (uint32_t id : *ids) {
    if (id == own->id) {
      found.own_attached = true;
      continue;
    }
    const int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) continue;  // detached meanwhile
    absl::StatusOr<ProgramInfo> info = InfoOf(fd);
    if (info.ok() && info->name == own->name) {
      found.stale_fds.push_back(fd);
    } else {
      close(fd);
    }
  }
  return found;
}

}  // namespace

void BpfHostNetwork::SkeletonDeleter::operator()(bastion_host_network* skel) const {
  bastion_host_network__destroy(skel);
}

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
  if (leave_attached_) return;
  std::vector<std::string> paths = AttachedCgroups();
  for (const std::string& path : paths) DetachCgroup(path).IgnoreError();  // cgroup may be gone
}

std::vector<std::string> BpfHostNetwork::AttachedCgroups() const {
  std::vector<std::string> paths;
  for (const auto& [path, id] : attached_) paths.push_back(path);
  return paths;
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

std::array<BpfHostNetwork::Hook, 2> BpfHostNetwork::Hooks() const {
  return {Hook{skel_->progs.bastion_from_host_network, BPF_CGROUP_INET_EGRESS, "egress"},
          Hook{skel_->progs.bastion_to_host_network, BPF_CGROUP_INET_INGRESS, "ingress"}};
}

absl::Status BpfHostNetwork::AttachCgroup(const std::string& cgroup_path, uint32_t container_id) {
  absl::StatusOr<uint64_t> id = CgroupId(cgroup_path);
  if (!id.ok()) return id.status();
  if (auto it = attached_.find(cgroup_path); it != attached_.end() && it->second != *id) {
    // The directory was re-made (a new cgroup under the old name): forget the old one.
    UnbindCgroup(it->second).IgnoreError();
    attached_.erase(it);
  }
  const int fd = open(cgroup_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno(errno, absl::StrCat("opening cgroup ", cgroup_path));
  const bool fresh = !attached_.contains(cgroup_path);
  absl::Status status = BindCgroup(*id, container_id);  // identity before programs
  for (const Hook& hook : Hooks()) {
    if (!status.ok()) break;
    absl::StatusOr<Found> found = FindOurs(fd, AttachType(hook.type), hook.prog);
    if (!found.ok()) {
      status = found.status();
      break;
    }
    if (!found->own_attached) {
      // An earlier instance's program is replaced in one step; else ours is added.
      struct bpf_prog_attach_opts opts {};
      opts.sz = sizeof(opts);
      opts.flags = BPF_F_ALLOW_MULTI;
      if (!found->stale_fds.empty()) {
        opts.flags |= BPF_F_REPLACE;
        opts.replace_prog_fd = found->stale_fds.front();
      }
      if (int err =
              bpf_prog_attach_opts(bpf_program__fd(hook.prog), fd, AttachType(hook.type), &opts)) {
        status = Errno(err, absl::StrCat("attaching the ", hook.what, " program to ", cgroup_path));
      } else if (!found->stale_fds.empty()) {
        close(found->stale_fds.front());
        found->stale_fds.erase(found->stale_fds.begin());
      }
    }
    for (int stale : found->stale_fds) {  // more than one earlier copy: not ours to keep
      if (status.ok()) bpf_prog_detach2(stale, fd, AttachType(hook.type));
      close(stale);
    }
  }
  if (!status.ok() && fresh) {
    DetachFrom(fd, cgroup_path).IgnoreError();  // best effort; the error above wins
    UnbindCgroup(*id).IgnoreError();
  }
  close(fd);
  if (!status.ok()) return status;
  attached_[cgroup_path] = *id;
  return absl::OkStatus();
}

absl::Status BpfHostNetwork::DetachFrom(int cgroup_fd, const std::string& what) const {
  for (const Hook& hook : Hooks()) {
    absl::StatusOr<Found> found = FindOurs(cgroup_fd, AttachType(hook.type), hook.prog);
    if (!found.ok()) return found.status();
    int err = 0;
    if (found->own_attached)
      err = bpf_prog_detach2(bpf_program__fd(hook.prog), cgroup_fd, AttachType(hook.type));
    for (int stale : found->stale_fds) {
      if (int e = bpf_prog_detach2(stale, cgroup_fd, AttachType(hook.type)); e && !err) err = e;
      close(stale);
    }
    if (err && err != -ENOENT) {
      return Errno(err, absl::StrCat("detaching the ", hook.what, " program from ", what));
    }
  }
  return absl::OkStatus();
}

absl::Status BpfHostNetwork::DetachCgroup(const std::string& cgroup_path) {
  auto it = attached_.find(cgroup_path);
  if (it == attached_.end()) {
    return absl::NotFoundError(
        absl::StrCat("bastion host network: cgroup ", cgroup_path, " is not attached"));
  }
  const uint64_t id = it->second;
  // Gone with its container: the kernel dropped the programs with the cgroup.
  if (absl::StatusOr<int> fd = OpenCgroupById(id); fd.ok()) {
    absl::Status s = DetachFrom(*fd, cgroup_path);
    close(*fd);
    if (!s.ok()) return s;
  } else if (!absl::IsNotFound(fd.status())) {
    return fd.status();
  }
  attached_.erase(it);
  absl::Status s = UnbindCgroup(id);
  return absl::IsNotFound(s) ? absl::OkStatus() : s;
}

absl::Status BpfHostNetwork::DetachUnclaimed() {
  absl::flat_hash_set<uint64_t> claimed;
  for (const auto& [path, id] : attached_) claimed.insert(id);
  std::vector<uint64_t> unclaimed;
  __u64 key = 0, next = 0;
  const void* prev = nullptr;
  while (bpf_map__get_next_key(skel_->maps.bastion_cgroups, prev, &next, sizeof(next)) == 0) {
    if (!claimed.contains(next)) unclaimed.push_back(next);
    key = next;
    prev = &key;
  }
  for (uint64_t id : unclaimed) {
    if (absl::StatusOr<int> fd = OpenCgroupById(id); fd.ok()) {
      absl::Status s = DetachFrom(*fd, absl::StrCat("cgroup ", id));
      close(*fd);
      if (!s.ok()) return s;
    } else if (!absl::IsNotFound(fd.status())) {
      return fd.status();
    }
    if (absl::Status s = UnbindCgroup(id); !s.ok() && !absl::IsNotFound(s)) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<BpfHostNetwork::CgroupPrograms> BpfHostNetwork::Inspect(
    const std::string& cgroup_path) const {
  const int fd = open(cgroup_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno(errno, absl::StrCat("opening cgroup ", cgroup_path));
  CgroupPrograms out;
  absl::Status status;
  for (const Hook& hook : Hooks()) {
    absl::StatusOr<Found> found = FindOurs(fd, AttachType(hook.type), hook.prog);
    if (!found.ok()) {
      status = found.status();
      break;
    }
    (hook.type == BPF_CGROUP_INET_EGRESS ? out.egress : out.ingress) = found->own_attached;
    out.stale += found->stale_fds.size();
    for (int stale : found->stale_fds) close(stale);
  }
  close(fd);
  if (!status.ok()) return status;
  return out;
}

}  // namespace dctk::bastion
