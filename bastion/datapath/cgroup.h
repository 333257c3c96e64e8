// Cgroup v2 helpers: where the hierarchy is mounted, a cgroup's id, a process's cgroup,
// and reopening a cgroup from its id. Host-network containers are known to Bastion by
// their cgroup (bpf_host_network.h); discovery finds it from the container's init pid.
//
// Example:
//   absl::StatusOr<std::string> dir = ProcessCgroup(pid);  // /sys/fs/cgroup/unified/libpod_parent/libpod-ab12
//   absl::StatusOr<uint64_t> id = CgroupId(*dir);           // what bpf_skb_cgroup_id() returns
//   absl::StatusOr<int> fd = OpenCgroupById(*id);           // NotFound once the cgroup is gone
#ifndef DCTK_BASTION_DATAPATH_CGROUP_H_
#define DCTK_BASTION_DATAPATH_CGROUP_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace dctk::bastion {

// Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or .../unified in hybrid mode).
absl::StatusOr<std::string> Cgroup2MountPoint();
// The cgroup v2 id of a cgroup directory (what bpf_skb_cgroup_id() returns).
absl::StatusOr<uint64_t> CgroupId(const std::string& cgroup_path);
// The cgroup v2 directory of process `pid` (the mount point plus its "0::" line in
// /proc/PID/cgroup); NotFound if the process is gone.
absl::StatusOr<std::string> ProcessCgroup(int pid);
// The directory of the cgroup with this id, opened read-only (O_DIRECTORY, close-on-exec;
// the caller closes it); NotFound if that cgroup no longer exists. Needs
// CAP_DAC_READ_SEARCH (open_by_handle_at).
absl::StatusOr<int> OpenCgroupById(uint64_t cgroup_id);

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_DATAPATH_CGROUP_H_
