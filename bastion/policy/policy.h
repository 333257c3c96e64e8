// Policy: Bastion's hand-written, container-aware policy language and its parser.
//
// A policy names services (sets of containers chosen by name or labels, never by IP),
// what each depends on (other services, named hosts, the world) on which protocols and
// ports, what it accepts from outside the container network, and whether the datapath
// only audits (logs would-drops, drops nothing by policy). Everything not listed is
// denied. The format (YAML; see bastion/policy/README.md and testdata/):
//
//   version: 1
//   audit: false
//   hosts:
//     - name: dns
//       addresses: [192.168.1.53]
//   groups:                          # multicast groups delivered by the datapath
//     - name: cm
//       address: 239.7.0.1           # in 224.0.0.0/4
//       port: 7000                   # UDP
//       members: {labels: {role: cm}}  # a selector; at most 16 containers
//   services:
//     - name: client
//       select: {labels: {role: client}}
//       depends_on:
//         - service: farm
//           ports: [tcp/9000-9010, udp/9100]
//           except: [tcp/9005]
//         - host: gateway            # built in: each container's own gateway
//           ports: [udp/53]
//         - group: cm                # may send to the group (its address and port)
//     - name: farm
//       select: {names: ["farm-*"]}  # a trailing * matches a name prefix
//       accepts:
//         - world: true
//           ports: [tcp/80]
//
// Example:
//   absl::StatusOr<Policy> p = ParsePolicy(text, "cluster.yaml");
//   if (!p.ok()) LOG(ERROR) << p.status();  // "cluster.yaml:12:9: unknown protocol 'tpc'"
#ifndef DCTK_BASTION_POLICY_POLICY_H_
#define DCTK_BASTION_POLICY_POLICY_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "bastion/datapath/datapath.h"

namespace dctk::bastion {

// A protocol and an inclusive destination-port range. proto 0 = any protocol (then the
// range is all ports).
struct PortRange {
  uint8_t proto = 0;
  uint16_t first = 0;
  uint16_t last = 65535;
  friend bool operator==(const PortRange& a, const PortRange& b) {
    return a.proto == b.proto && a.first == b.first && a.last == b.last;
  }
};

// Parses "tcp/80", "udp/8000-8010", "tcp" (all TCP ports), "icmp", "any".
absl::StatusOr<PortRange> ParsePortRange(absl::string_view text);
std::string PortRangeToString(const PortRange& range);

// Containers whose name matches one of `names` (exact, or prefix with a trailing '*'),
// if any are given, and that carry every one of `labels`.
struct Selector {
  std::vector<std::string> names;
  std::map<std::string, std::string> labels;
};

// A peer of a service: exactly one of service, host, world, group (depends_on only; no
// ports: the group's UDP port).
struct Peer {
  enum class Kind { kService, kHost, kWorld, kGroup };
  Kind kind = Kind::kService;
  std::string name;  // service, host or group name
  std::vector<PortRange> ports;
  std::vector<PortRange> except;  // carved out of `ports` (same protocols only)
  int line = 0;                   // 1-based, for compile errors
};

struct Service {
  std::string name;
  Selector select;
  std::vector<Peer> depends_on;  // outbound: members may reach these
  std::vector<Peer> accepts;     // inbound from hosts or the world
  int line = 0;
};

struct HostGroup {
  std::string name;
  std::vector<uint32_t> addresses;  // host byte order
  int line = 0;
};

// A multicast group (bastion/bpf/lib/group.h): UDP datagrams to address:port from
// services that depend on it are copied by the datapath to each member; with
// `sequenced` (the default), each carries the group's next MOM group sequence number.
struct GroupDef {
  std::string name;
  uint32_t address = 0;  // host byte order, in 224.0.0.0/4
  uint16_t port = 0;
  bool sequenced = true;
  Selector members;
  int line = 0;
};

// The built-in host group: every discovered container's gateway.
inline constexpr char kGatewayHost[] = "gateway";

struct Policy {
  std::string file;  // where it came from, for messages
  bool audit = false;
  std::vector<HostGroup> hosts;
  std::vector<GroupDef> groups;
  std::vector<Service> services;
};

// Parses and checks a policy (unknown keys, bad ports, references to undefined services,
// hosts or groups, a group address that is not multicast are errors). Errors read "<file>:<line>:<column>: <reason>".
absl::StatusOr<Policy> ParsePolicy(absl::string_view text, absl::string_view file);
absl::StatusOr<Policy> LoadPolicyFile(const std::string& path);

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_POLICY_POLICY_H_
