// Fabric: a MOM fabric file (fabric.proto) loaded and checked: the topology,
// each switch's control address, host addresses and the groups, with names
// resolved to topology nodes. Every problem is reported with its file, line
// and field path ("fabric.conf:7: groups[0].senders[1]: unknown host 'h9'").
//
// Example:
//   absl::StatusOr<Fabric> f = LoadFabric("fabric.conf");
//   if (!f.ok()) { std::cerr << f.status(); return 1; }
//   for (const GroupSpec& g : f->groups) ...
#ifndef DCTK_MOM_CONTROLLER_FABRIC_H_
#define DCTK_MOM_CONTROLLER_FABRIC_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mom/controller/routes.h"
#include "mom/controller/topology.h"

namespace dctk::mom {

struct Fabric {
  Topology topology;
  std::map<int, std::string> control;  // switch node -> gRPC address
  std::map<int, uint32_t> host_ips;    // host node -> IPv4 (host order); empty: no unicast
  std::vector<GroupSpec> groups;
};

absl::StatusOr<Fabric> LoadFabric(absl::string_view path);
absl::StatusOr<Fabric> ParseFabric(absl::string_view text, absl::string_view filename);

}  // namespace dctk::mom

#endif  // DCTK_MOM_CONTROLLER_FABRIC_H_
