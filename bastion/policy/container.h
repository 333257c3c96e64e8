// ContainerInfo: what Bastion knows about one discovered container.
//
// Discovery (bastion/manager: podman/Docker API, dctk namespace containers) fills these;
// the policy compiler selects them by name and labels and turns them into map entries.
// `id` is the datapath identity (1 .. kHostIdFirst-1), assigned by the manager and stable
// for the container's life.
//
// Example:
//   ContainerInfo c{.id = 3, .name = "farm-1", .labels = {{"role", "farm"}},
//                   .ip = Ipv4(10, 88, 0, 5), .mac = *MacAddress::Parse("02:..."),
//                   .host_ifindex = 17, .gateway = Ipv4(10, 88, 0, 1)};
#ifndef DCTK_BASTION_POLICY_CONTAINER_H_
#define DCTK_BASTION_POLICY_CONTAINER_H_

#include <cstdint>
#include <map>
#include <string>

#include "bastion/datapath/datapath.h"

namespace dctk::bastion {

struct ContainerInfo {
  uint32_t id = 0;
  std::string name;
  std::map<std::string, std::string> labels;
  uint32_t ip = 0;  // host byte order
  MacAddress mac;
  int host_ifindex = 0;  // host-side veth on this host; 0 = elsewhere or unknown
  uint32_t gateway = 0;  // 0 = none
  std::string runtime_id;  // podman/Docker container id or netns name
  std::string network_mode;  // "bridge", "host", ...
};

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_POLICY_CONTAINER_H_
