// HostNetworkDatapath: Bastion for network-privileged (host network mode) containers.
//
// Such a container has no veth: it shares the host's interfaces and addresses, so the
// veth programs cannot tell it from the host. Its identity is its cgroup (v2): every
// socket its processes open belongs to it. Attaching a container's cgroup binds the
// cgroup to the container id and installs programs on it, so its traffic with other
// containers obeys the same dependency/port policy as any container (both directions;
// replies by conntrack), a container address in its source is spoofing, and the
// destination veth judges its packets as the container's, not the host's. Its traffic
// with the host and the world is not restricted.
//
// Attachments belong to the cgroup, not to the process that made them (like tc filters
// on a veth): they outlive the manager, go away with the cgroup, and a restarted manager
// takes them over with AttachCgroup (the new programs replace the old ones in one step)
// and removes the ones nobody claims with DetachUnclaimed.
//
// Example:
//   absl::StatusOr<std::unique_ptr<BpfHostNetwork>> hn = BpfHostNetwork::Create(*datapath);
//   RETURN_IF_ERROR((*hn)->AttachCgroup("/sys/fs/cgroup/unified/machine/ctr-42", 42));
//   RETURN_IF_ERROR(datapath->AddDependency(42, 7, 1));   // 42 uses container 7
//   ...                                                    // after a restart, once every
//   RETURN_IF_ERROR((*hn)->DetachUnclaimed());             // live container is attached
#ifndef DCTK_BASTION_DATAPATH_HOST_NETWORK_H_
#define DCTK_BASTION_DATAPATH_HOST_NETWORK_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace dctk::bastion {

class HostNetworkDatapath {
 public:
  virtual ~HostNetworkDatapath() = default;

  // Puts the host-network container whose processes live in the cgroup v2 directory
  // `cgroup_path` (and below it) under policy as `container_id`. Idempotent; takes over
  // programs an earlier instance (a previous manager) left on the cgroup.
  virtual absl::Status AttachCgroup(const std::string& cgroup_path, uint32_t container_id) = 0;
  // Removes the programs and the binding; the cgroup may already be gone (then only the
  // binding is left to remove).
  virtual absl::Status DetachCgroup(const std::string& cgroup_path) = 0;
  // Removes every cgroup binding (and the programs on those cgroups, if they still
  // exist) that no AttachCgroup of this instance claimed: what a previous manager left
  // for containers that are gone.
  virtual absl::Status DetachUnclaimed() = 0;
};

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_DATAPATH_HOST_NETWORK_H_
