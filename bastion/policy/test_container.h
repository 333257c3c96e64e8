// TestContainer: a ContainerInfo for policy tests, with every address derived from
// its id (10.0.0.(10+id), MAC 02:00:00:00:00:id, host veth ifindex 100+id, gateway
// 10.0.0.1), so tests name only what they are about.
//
// Example:
//   std::vector<ContainerInfo> cs = {TestContainer(1, "web-1", {{"role", "web"}}),
//                                    TestContainer(2, "db")};
#ifndef DCTK_BASTION_POLICY_TEST_CONTAINER_H_
#define DCTK_BASTION_POLICY_TEST_CONTAINER_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "bastion/policy/container.h"

namespace dctk::bastion {

inline ContainerInfo TestContainer(uint32_t id, std::string name,
                                   std::map<std::string, std::string> labels = {}) {
  ContainerInfo c;
  c.id = id;
  c.name = std::move(name);
  c.labels = std::move(labels);
  c.ip = Ipv4(10, 0, 0, static_cast<uint8_t>(10 + id));
  c.mac.bytes = {2, 0, 0, 0, 0, static_cast<uint8_t>(id)};
  c.host_ifindex = static_cast<int>(100 + id);
  c.gateway = Ipv4(10, 0, 0, 1);
  return c;
}

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_POLICY_TEST_CONTAINER_H_
