// ContainerSource: where the manager learns which containers exist.
//
// A source lists the containers it sees now (a full snapshot, so the manager reconciles
// by difference and never depends on having seen every event), and can block until
// something probably changed (runtime events, inotify), so discovery is event-driven
// with the manager's periodic poll only as a fallback. Implementations: dctk namespace
// containers (netns_containers.h) and the Docker Engine API as podman serves it
// (docker_source.h); tests use a fake. For a host-network container (no veth, the host's
// addresses) a source also tells its cgroup, which is what identifies its traffic.
//
// Example:
//   absl::StatusOr<std::vector<ContainerInfo>> now = source->List();
//   source->WaitForChange(absl::Seconds(5));   // returns early on an event
#ifndef DCTK_BASTION_MANAGER_CONTAINER_SOURCE_H_
#define DCTK_BASTION_MANAGER_CONTAINER_SOURCE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bastion/policy/container.h"

namespace dctk::bastion {

class ContainerSource {
 public:
  virtual ~ContainerSource() = default;
  // "netns:/run/dctk/containers", "docker:/run/podman/podman.sock", for messages.
  virtual std::string name() const = 0;
  // Containers now, ids unset (the manager assigns them); runtime_id unique in the source.
  virtual absl::StatusOr<std::vector<ContainerInfo>> List() = 0;
  // Blocks until a change is likely or `timeout` passes; true if woken by an event.
  virtual bool WaitForChange(absl::Duration timeout) = 0;
  // The cgroup v2 directory of a host-network container (network_mode "host") of the
  // last List(), where its processes run; NotFound if this source cannot tell.
  virtual absl::StatusOr<std::string> HostNetworkCgroup(const std::string& runtime_id) const {
    return absl::NotFoundError(name() + ": no cgroup known for container " + runtime_id);
  }
};

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_MANAGER_CONTAINER_SOURCE_H_
