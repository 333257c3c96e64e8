// Policy compiler: a Policy plus the discovered containers -> the datapath's map entries.
//
// The result, a DatapathState, is exactly what the Bastion maps must hold: every
// container's endpoint and veth binding, host/gateway addresses, the dependency map
// (src container -> dst container) and the port policy, as aligned port blocks (each
// block is one trie prefix or one exact port, so two states can be diffed entry by
// entry; see apply.h). `except` carve-outs are subtracted here, so the maps hold only
// allow entries, and overlapping rules from different services merge.
//
// Identities: containers keep their ContainerInfo::id (below kGroupIdFirst); the
// built-in host group `gateway` is kHostIdFirst, the policy's host groups
// kHostIdFirst+1, +2, ... in file order; multicast groups kGroupIdFirst, +1, ... in file
// order; everything else is kWorldId.
//
// Multicast groups: each becomes a group entry (address -> id, port, its members'
// container ids, host veths and MACs), and every member of a service that depends on it
// a dependency {member, group id}. Group entries are container facts plus policy: like
// hosts they are recomputed whole by every compile, slice and update (a slice carries
// all groups), so members coming and going are always reflected.
//
// A container event recompiles only its containers (CompileSlice); a policy change only
// the containers it touches (CompilePolicyUpdate, incremental.h).
//
// Example:
//   absl::StatusOr<DatapathState> state = CompilePolicy(policy, containers);
//   if (!state.ok()) return state.status();  // e.g. two containers with one IP
//   RETURN_IF_ERROR(ApplyState(datapath, running, *state));
#ifndef DCTK_BASTION_POLICY_COMPILER_H_
#define DCTK_BASTION_POLICY_COMPILER_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "bastion/datapath/datapath.h"
#include "bastion/policy/container.h"
#include "bastion/policy/policy.h"
#include "bastion/policy/selector_index.h"  // Selects()

namespace dctk::bastion {

// One map entry of port policy: an aligned block of destination ports on an edge.
struct RuleBlock {
  uint32_t src_id = 0;
  uint32_t dst_id = 0;
  uint8_t proto = 0;
  uint16_t first_port = 0;
  uint16_t last_port = 65535;
  auto Tie() const { return std::tie(src_id, dst_id, proto, first_port, last_port); }
  friend bool operator<(const RuleBlock& a, const RuleBlock& b) { return a.Tie() < b.Tie(); }
  friend bool operator==(const RuleBlock& a, const RuleBlock& b) { return a.Tie() == b.Tie(); }
};

struct DatapathState {
  bool audit = false;
  std::map<uint32_t, ContainerEndpoint> endpoints;  // container IP ->
  std::map<int, Binding> bindings;                   // host veth ifindex ->
  std::map<uint32_t, uint32_t> hosts;                // host/gateway IP -> host id
  std::map<uint32_t, Group> groups;                  // multicast group IP ->
  std::set<std::pair<uint32_t, uint32_t>> dependencies;  // {src, dst} containers
  std::set<RuleBlock> rules;
};

// Host id of the policy's i-th host group (0-based); the gateway group is kHostIdFirst.
constexpr uint32_t HostGroupId(size_t index) {
  return kHostIdFirst + 1 + static_cast<uint32_t>(index);
}

// Group id of the policy's i-th multicast group (0-based).
constexpr uint32_t GroupId(size_t index) {
  return kGroupIdFirst + static_cast<uint32_t>(index);
}

// Errors: invalid container ids, two containers with one IP or one veth, a host address
// that is also a container's, a group with more than kMaxGroupMembers members.
absl::StatusOr<DatapathState> CompilePolicy(const Policy& policy,
                                            const std::vector<ContainerInfo>& containers);

// Only the entries of CompilePolicy(policy, containers) that involve a container in
// `ids`: its endpoint and binding, dependencies and rules with it at either end; plus all
// hosts and all groups (with their members now). Costs O(entries involving `ids` + containers), not O(all entries), so a
// container event need not recompile everything:
//   next = Union(Minus(running, SliceOf(running, ids)), *CompileSlice(policy, now, ids))
// Selector matching goes through a ContainerIndex and looks only at the services that
// select a container of `ids` or depend on one that does.
absl::StatusOr<DatapathState> CompileSlice(const Policy& policy,
                                           const std::vector<ContainerInfo>& containers,
                                           const std::set<uint32_t>& ids);
// The entries of `state` that involve a container in `ids` (hosts and groups excluded).
DatapathState SliceOf(const DatapathState& state, const std::set<uint32_t>& ids);
// Entries of `a` whose keys `b` lacks; audit if a has it and b not.
DatapathState Minus(const DatapathState& a, const DatapathState& b);
// Every entry of either (b's value wins on a shared key).
DatapathState Union(const DatapathState& a, const DatapathState& b);

// Disjoint, sorted, merged ranges of `ports` minus `except` per protocol.
std::vector<PortRange> NormalizePorts(const std::vector<PortRange>& ports,
                                      const std::vector<PortRange>& except);

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_POLICY_COMPILER_H_
