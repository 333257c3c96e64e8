// Incremental policy compile: a policy change recompiles only the containers it touches.
//
// CompilePolicyUpdate compares the running policy with the new one service by service
// (by name): a service added or removed, or whose depends_on/accepts mean different
// entries (targets, ports after `except`, host group ids), touches all its members, old
// and new; a service whose selector alone changed touches the containers that joined or
// left it. Every entry that differs between the two compiled states has an end in the
// touched set, so the new state is the running one with the touched containers' slice
// replaced by the new policy's slice. The cost is O(policy size + entries of the touched
// containers), with selector members found through a ContainerIndex; a one-rule change
// at 1,000 containers touches only the members of that one service.
//
// Host groups (policy addresses) are recomputed whole (the gateways are kept from the
// running state) with the errors CompilePolicy gives, so an invalid new policy is
// rejected exactly as by a full compile and nothing is returned to apply.
//
// Precondition: `running` is CompilePolicy(running_policy, containers) (the manager's
// invariant: every container event patches its slice). The update checks that the
// entries it removes are in `running`; if one is not, it falls back to a full compile
// (`full` set, `remove` = all of running).
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
  // Running's dependencies and rules with an end in `touched`, its hosts and audit.
  DatapathState remove;
  // The new policy's dependencies and rules with an end in `touched`, all its hosts, its
  // audit. No endpoints or bindings in either: a policy change leaves them alone.
  DatapathState add;
  // Whether `running` did not match the running policy and everything was recompiled.
  bool full = false;

  // Replaces `remove` by `add` in `state` (hosts: all of add's); O(size of the slices).
  void ApplyTo(DatapathState& state) const;
};

absl::StatusOr<PolicyUpdate> CompilePolicyUpdate(const Policy& running_policy,
                                                 const DatapathState& running,
                                                 const Policy& next_policy,
                                                 const ContainerIndex& containers);

// The containers whose entries may differ between the two policies' compiles (see above).
std::set<uint32_t> TouchedContainers(const Policy& from, const Policy& to,
                                     const ContainerIndex& containers);

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_POLICY_INCREMENTAL_H_
