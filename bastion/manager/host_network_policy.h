// Host-network (network-privileged) containers in the policy: the adapter between them
// and the compiler, which knows only containers with an address of their own.
//
// A host-network container shares the host's addresses: it has no endpoint or veth
// binding of its own (the cgroup programs know it by its cgroup), but services select it
// like any container, so its dependencies and port rules, and those of containers that
// depend on it, are compiled as usual. It goes into the compiler under a placeholder
// address in 0.0.0.0/8 (its id; never a packet's address), and FinishHostNetworkState
// removes that endpoint again. A container reaches a host-network container at the
// host's address on its bridge, which its own veth judges as the host `gateway`: every
// rule "container -> host-network container" is therefore mirrored as "container ->
// gateway" on the same ports (the cgroup ingress program then checks the dependency).
//
// Example:
//   std::vector<ContainerInfo> input = WithPlaceholderAddresses(containers);
//   absl::StatusOr<DatapathState> state = CompilePolicy(policy, input);
//   if (state.ok()) FinishHostNetworkState(containers, *state);
#ifndef DCTK_BASTION_MANAGER_HOST_NETWORK_POLICY_H_
#define DCTK_BASTION_MANAGER_HOST_NETWORK_POLICY_H_

#include <cstdint>
#include <set>
#include <vector>

#include "absl/status/statusor.h"
#include "bastion/policy/compiler.h"
#include "bastion/policy/container.h"

namespace dctk::bastion {

// Host network mode: ContainerInfo::network_mode "host" and no address.
bool IsHostNetwork(const ContainerInfo& c);

// The ids of the host-network containers among `containers`.
std::set<uint32_t> HostNetworkIds(const std::vector<ContainerInfo>& containers);

// `containers` with a placeholder address (0.0.0.0/8 + id) on every host-network one.
// Error if such an id does not fit in 24 bits.
absl::StatusOr<std::vector<ContainerInfo>> WithPlaceholderAddresses(
    const std::vector<ContainerInfo>& containers);

// Drops the placeholder endpoints of `host_network` ids from `state` and adds the
// gateway mirror of every rule from a container to one of them.
void FinishHostNetworkState(const std::set<uint32_t>& host_network, DatapathState& state);

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_MANAGER_HOST_NETWORK_POLICY_H_
