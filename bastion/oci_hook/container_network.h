// The network facts of a container that is being created, read from the kernel: its
// interface's IPv4 address and MAC and the host-side peer of its veth (the interface
// bastiond attaches the stack to), or that it shares the host's network namespace.
// Sockets made inside the container's namespace (setns to /proc/PID/ns/net and back) are
// asked: a netlink RTM_GETLINK for the MAC and the veth peer (IFLA_LINK), SIOCGIFADDR for
// the address; the gateway comes from /proc/PID/net/route.
//
// Example:
//   absl::StatusOr<ContainerNetwork> net = ReadContainerNetwork(state.pid, "eth0");
//   if (net->host_network) { ...the container's cgroup... } else { net->host_veth ... }
#ifndef DCTK_BASTION_OCI_HOOK_CONTAINER_NETWORK_H_
#define DCTK_BASTION_OCI_HOOK_CONTAINER_NETWORK_H_

#include <string>

#include "absl/status/statusor.h"

namespace dctk::bastion::oci_hook {

struct ContainerNetwork {
  bool host_network = false;  // the process shares the caller's network namespace
  bool has_interface = true;  // false: no `ifname` (e.g. podman --network none)
  std::string host_veth;      // in the caller's namespace
  std::string ip;             // dotted
  std::string mac;            // lower case
  std::string gateway;        // dotted; empty without a default route
};

// NotFound if the process is gone; FailedPrecondition if `ifname` is not a veth whose
// peer is in the caller's namespace or has no IPv4 address; Internal for system errors.
// Must be called from a single-threaded process (it moves the calling thread's netns).
absl::StatusOr<ContainerNetwork> ReadContainerNetwork(int pid, const std::string& ifname);

}  // namespace dctk::bastion::oci_hook

#endif  // DCTK_BASTION_OCI_HOOK_CONTAINER_NETWORK_H_
