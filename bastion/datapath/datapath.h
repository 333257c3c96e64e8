// Datapath: the narrow interface between the Bastion manager and the kernel datapath.
//
// Everything the manager (and later the policy compiler) does to the eBPF datapath goes
// through this interface: which container owns which address and veth, which containers
// are dependencies of which, which ports are allowed, audit mode, attaching the programs
// to a veth, and reading counters and verdict events back. BpfDatapath implements it
// with libbpf; manager tests can use a fake.
//
// Example:
//   absl::StatusOr<std::unique_ptr<BpfDatapath>> dp = BpfDatapath::Create({});
//   (*dp)->UpsertEndpoint(Ipv4(10, 0, 0, 2), {.container_id = 7, .mac = mac, .host_ifindex = 12});
//   (*dp)->BindInterface(12, {.container_id = 7, .ip = Ipv4(10, 0, 0, 2), .mac = mac});
//   (*dp)->AddDependency(7, 8, /*generation=*/1);
//   (*dp)->UpsertPolicy({.src_id = 7, .dst_id = 8, .proto = kTcp, .first_port = 80, .last_port = 80});
//   (*dp)->Attach(12);
//   // A MOM group: 7 may send to 239.7.0.1:7000, members 8 and 9 receive.
//   (*dp)->UpsertGroup(Ipv4(239, 7, 0, 1), {.id = kGroupIdFirst, .port = 7000,
//                                          .members = {{8, 13, mac8}, {9, 14, mac9}}});
//   (*dp)->AddDependency(7, kGroupIdFirst, 1);
//   // A policy change as one instant: prepare it in the inactive copy, then switch.
//   (*dp)->SetWriteGeneration(1 - (*dp)->ActiveGeneration());
//   ... writes ...
//   (*dp)->ActivateGeneration(1 - (*dp)->ActiveGeneration());
//
// Addresses are IPv4 in host byte order (as in dctk::transport::Address); ids are the
// identity space of bastion/bpf/lib/types.h (containers below kHostIdFirst).
#ifndef DCTK_BASTION_DATAPATH_DATAPATH_H_
#define DCTK_BASTION_DATAPATH_DATAPATH_H_

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "bastion/bpf/lib/drop_reasons.h"
#include "bastion/bpf/lib/types.h"

namespace dctk::bastion {

constexpr uint32_t kGroupIdFirst = BASTION_ID_GROUP_FIRST;  // containers are below
constexpr uint32_t kHostIdFirst = BASTION_ID_HOST_FIRST;
constexpr uint32_t kWorldId = BASTION_ID_WORLD;

constexpr uint8_t kAnyProtocol = 0;
constexpr uint8_t kIcmp = 1;
constexpr uint8_t kTcp = 6;
constexpr uint8_t kUdp = 17;

constexpr uint32_t Ipv4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return (uint32_t{a} << 24) | (uint32_t{b} << 16) | (uint32_t{c} << 8) | d;
}
std::string Ipv4ToString(uint32_t ip);

struct MacAddress {
  std::array<uint8_t, 6> bytes{};
  // Parses "aa:bb:cc:dd:ee:ff".
  static absl::StatusOr<MacAddress> Parse(absl::string_view text);
  std::string ToString() const;
  friend bool operator==(const MacAddress& a, const MacAddress& b) { return a.bytes == b.bytes; }
};

// A container on the network. host_ifindex is its host-side veth on this host, 0 if it
// lives elsewhere (then allowed traffic goes to the stack instead of direct forwarding).
struct ContainerEndpoint {
  uint32_t container_id = 0;
  MacAddress mac;
  int host_ifindex = 0;
};

// The container that owns a host-side veth: the only source addresses allowed on it.
struct Binding {
  uint32_t container_id = 0;
  uint32_t ip = 0;
  MacAddress mac;
};

enum class PolicyVerdict : uint32_t {
  kAllow = BASTION_POLICY_ALLOW,
  kDeny = BASTION_POLICY_DENY,  // carve-out inside a wider allowed range
};

// src may reach dst on proto and destination ports [first_port, last_port]. dst may be a
// container, a host id (>= kHostIdFirst) or kWorldId; so may src (inbound to a container).
// proto kAnyProtocol needs the full port range. Exact ports beat ranges; among ranges the
// narrowest (longest prefix) wins.
struct PolicyRule {
  uint32_t src_id = 0;
  uint32_t dst_id = 0;
  uint8_t proto = kAnyProtocol;
  uint16_t first_port = 0;
  uint16_t last_port = 65535;
  PolicyVerdict verdict = PolicyVerdict::kAllow;
  uint32_t generation = 0;
};

// A multicast group on this host (bastion/bpf/lib/group.h): UDP datagrams a dependent
// container sends to address:port are copied to each member's host veth (members
// elsewhere, host_ifindex 0, are skipped); with `sequenced`, each gets the group's next
// sequence number stamped into its MomPacket.group_seq. Senders depend on `id` through
// AddDependency(sender, id).
struct GroupMember {
  uint32_t container_id = 0;
  int host_ifindex = 0;
  MacAddress mac;
  friend bool operator==(const GroupMember& a, const GroupMember& b) {
    return a.container_id == b.container_id && a.host_ifindex == b.host_ifindex &&
           a.mac == b.mac;
  }
};
constexpr size_t kMaxGroupMembers = BASTION_GROUP_MAX_MEMBERS;
struct Group {
  uint32_t id = 0;  // in [kGroupIdFirst, kHostIdFirst)
  uint16_t port = 0;
  bool sequenced = true;
  std::vector<GroupMember> members;  // at most kMaxGroupMembers
  friend bool operator==(const Group& a, const Group& b) {
    return a.id == b.id && a.port == b.port && a.sequenced == b.sequenced &&
           a.members == b.members;
  }
};
bool IsMulticast(uint32_t ip);  // in 224.0.0.0/4

// One drop (or, in audit mode, would-drop) reported by the datapath.
struct VerdictEvent {
  uint64_t timestamp_ns = 0;  // CLOCK_MONOTONIC
  int ifindex = 0;
  uint32_t container_id = 0;
  uint32_t saddr = 0;  // host order; for ARP the sender/target protocol addresses
  uint32_t daddr = 0;
  uint16_t sport = 0;
  uint16_t dport = 0;
  uint16_t l3_proto = 0;  // ethertype
  uint8_t proto = 0;
  uint32_t reason = 0;  // a BASTION_DROP_* code; see VerdictName()
  bool audit = false;   // let through because audit mode is on
  bool to_container = false;
  bool host_network = false;  // seen by a host-network container's cgroup program
};

// Totals over all CPUs, indexed by enum bastion_verdict.
using VerdictCounters = std::array<uint64_t, BASTION_COUNTER_MAX>;

// "spoofed_ip", "forwarded", ...; "unknown" for codes outside the lists.
absl::string_view VerdictName(uint32_t code);
bool IsDropReason(uint32_t code);

class Datapath {
 public:
  virtual ~Datapath() = default;

  virtual absl::Status UpsertEndpoint(uint32_t ip, const ContainerEndpoint& endpoint) = 0;
  virtual absl::Status RemoveEndpoint(uint32_t ip) = 0;
  virtual absl::Status BindInterface(int host_ifindex, const Binding& binding) = 0;
  virtual absl::Status UnbindInterface(int host_ifindex) = 0;
  // `host_id` in [kHostIdFirst, kWorldId).
  virtual absl::Status UpsertHost(uint32_t ip, uint32_t host_id) = 0;
  virtual absl::Status RemoveHost(uint32_t ip) = 0;
  // `ip` multicast; a policy entry, in two generations like hosts.
  virtual absl::Status UpsertGroup(uint32_t ip, const Group& group) = 0;
  virtual absl::Status RemoveGroup(uint32_t ip) = 0;
  virtual absl::Status AddDependency(uint32_t src_id, uint32_t dst_id,
                                     uint32_t generation) = 0;
  virtual absl::Status RemoveDependency(uint32_t src_id, uint32_t dst_id) = 0;
  virtual absl::Status UpsertPolicy(const PolicyRule& rule) = 0;
  virtual absl::Status RemovePolicy(const PolicyRule& rule) = 0;
  virtual absl::Status SetAuditMode(bool audit) = 0;

  // Policy generations (bastion/bpf/lib/types.h): hosts, dependencies and policy rules
  // are kept in two copies, generation 0 and 1, and the programs judge each packet by
  // the active one only. Host/dependency/policy writes and removals go to the write
  // generation (initially the active one). Switching the active generation is one map
  // write: the instant a change prepared in the other copy takes effect as a whole.
  virtual uint32_t ActiveGeneration() const = 0;
  virtual absl::Status ActivateGeneration(uint32_t generation) = 0;
  virtual void SetWriteGeneration(uint32_t generation) = 0;
  // Forgets tracked connections, so replies of revoked flows stop passing at once.
  virtual absl::Status FlushConnections() = 0;

  // Installs the programs on a host-side veth (tc clsact ingress and egress).
  virtual absl::Status Attach(int host_ifindex) = 0;
  virtual absl::Status Detach(int host_ifindex) = 0;

  virtual absl::StatusOr<VerdictCounters> ReadCounters() = 0;
  // Delivers pending verdict events, waiting up to `timeout` for the first. Returns how
  // many were delivered.
  virtual absl::StatusOr<int> PollEvents(absl::Duration timeout,
                                         const std::function<void(const VerdictEvent&)>& fn) = 0;
};

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_DATAPATH_DATAPATH_H_
