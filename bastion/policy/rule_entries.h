// Internal to //bastion/policy:compiler: how a policy's host groups and services become
// map entries. Shared by the full compile, container slices (CompileSlice) and
// incremental policy updates (incremental.h), so all three produce the same entries.
//
// Example (the entries of a policy that involve containers 3 and 7):
//   ContainerIndex index(containers);
//   internal::AddSliceEntries(policy, index, {3, 7}, state);
#ifndef DCTK_BASTION_POLICY_RULE_ENTRIES_H_
#define DCTK_BASTION_POLICY_RULE_ENTRIES_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "bastion/policy/compiler.h"
#include "bastion/policy/selector_index.h"

namespace dctk::bastion::internal {

// Adds address `ip` as host `id` (of host group `group`, for messages). Errors, naming
// policy.file: the address is a container's (in `endpoints`), or in another group.
absl::Status AddHost(const Policy& policy, const std::map<uint32_t, ContainerEndpoint>& endpoints,
                     uint32_t ip, uint32_t id, absl::string_view group,
                     std::map<uint32_t, uint32_t>& hosts);

// Adds the addresses of the policy's host groups, in file order (after the gateways).
absl::Status AddHostGroups(const Policy& policy,
                           const std::map<uint32_t, ContainerEndpoint>& endpoints,
                           std::map<uint32_t, uint32_t>& hosts);

// The containers a selector picks, sorted by id.
using SelectFn =
    absl::FunctionRef<std::vector<const ContainerInfo*>(const Selector& selector)>;

// Adds the policy's multicast groups with their members (GroupId(i) in file order).
// Error, naming policy.file and the group's line: more than kMaxGroupMembers members.
absl::Status AddGroups(const Policy& policy, SelectFn select, std::map<uint32_t, Group>& groups);
absl::Status AddGroups(const Policy& policy, const ContainerIndex& index,
                       std::map<uint32_t, Group>& groups);

// Ids of a service's members; called with services of the policy only.
using MembersFn = absl::FunctionRef<const std::vector<uint32_t>&(const std::string& service)>;

// Adds the dependencies and rule blocks that `services` (of `policy`) yield: every
// (member, target) pair of their depends_on and accepts entries, or with `only`, the
// pairs with at least one end in *only.
void AddServiceEntries(const Policy& policy, const std::vector<const Service*>& services,
                       MembersFn members, const std::set<uint32_t>* only,
                       DatapathState& state);

// The dependencies and rule blocks of `policy` with an end in `only`, looking only at the
// services that select a container of `only`, those that depend on them and their
// targets (members through `index`): O(the entries involving `only` + |only| x services),
// not O(all containers).
void AddSliceEntries(const Policy& policy, const ContainerIndex& index,
                     const std::set<uint32_t>& only, DatapathState& state);

}  // namespace dctk::bastion::internal

#endif  // DCTK_BASTION_POLICY_RULE_ENTRIES_H_
