// Incremental policy compile: a policy change recompiles only the containers it touches.
//
// CompilePolicyUpdate compares the running policy with the new one service by service
// (by name): a service added or removed, or whose depends_on/accepts mean different
// entries (targets, ports after `except`, host group ids), touches all its members, old
// and new; a service whose selector alone changed touches the containers that joined or
// left it. Every entry that differs between the two compiled states has an end in the
// touched set, so the new state is the running one with the touched containers' slice
// replaced by the new policy's slice; the update carries only the slices' difference.
// The cost is O(policy size + entries of the touched containers), with selector members
// found through a ContainerIndex; a one-rule change at 1,000 containers touches only the
// members of that one service.
//
// Host groups (policy addresses) and multicast groups (with their members) are
// recomputed whole (the gateways are kept from the running state) with the errors
// CompilePolicy gives, so an invalid new policy is rejected exactly as by a full compile
// and nothing is returned to apply. A service whose group dependencies change (a group
// added or removed from depends_on, or renumbered by reordering `groups`) touches its
// members like any other changed peer.
//
// When more than `whole_above` of the containers are touched, two slices that large
// cost more than one full compile: the new policy is then compiled whole and diffed
// against `running` (`whole` set; the same update, O(all entries)).
//
// Precondition: `running` is CompilePolicy(running_policy, containers) (the manager's
// invariant: every container event patches its slice). The update checks that the
// entries it removes are in `running`; if one is not, it compiles whole too.
//
// Example (bastiond's SetPolicy):
//   ContainerIndex index(containers);
//   absl::StatusOr<PolicyUpdate> u = CompilePolicyUpdate(policy, running, next, index);
//   if (!u.ok()) return u.status();             // invalid: the running policy stays
//   RETURN_IF_ERROR(ApplyState(datapath, u->remove, u->add));  // twice the slice diff
//   u->ApplyTo(running);                        // == CompilePolicy(next, containers)
#ifndef DCTK_BASTION_POLICY_INCREMENTAL_H_
#define DCTK_BASTION_POLICY_INCREMENTAL_H_

#include <cstdint>
#include <set>

#include "absl/status/statusor.h"
#include "bastion/policy/compiler.h"
#include "bastion/policy/policy.h"
#include "bastion/policy/selector_index.h"

namespace dctk::bastion {

struct PolicyUpdate {
  // Containers whose entries may change (every changed entry has an end here).
  std::set<uint32_t> touched;
  // The dependencies and rules with an end in `touched` that running has and the new
  // policy does not; running's hosts, groups and audit.
  DatapathState remove;
  // Those the new policy has and running does not; all the new hosts and groups, the
  // new audit. No
  // endpoints or bindings in either (a policy change leaves them alone), unless `whole`
  // found running's differ from the containers.
  DatapathState add;
  // Whether the new policy was compiled whole (a large change, or `running` did not
  // match the running policy).
  bool whole = false;

  // Replaces `remove` by `add` in `state` (hosts, groups: all of add's); O(size of the
  // slices).
  void ApplyTo(DatapathState& state) const;
};

absl::StatusOr<PolicyUpdate> CompilePolicyUpdate(const Policy& running_policy,
                                                 const DatapathState& running,
                                                 const Policy& next_policy,
                                                 const ContainerIndex& containers,
                                                 double whole_above = 0.5);

// The containers whose entries may differ between the two policies' compiles (see above).
std::set<uint32_t> TouchedContainers(const Policy& from, const Policy& to,
                                     const ContainerIndex& containers);

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_POLICY_INCREMENTAL_H_
