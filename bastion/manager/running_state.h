// RunningState: the DatapathState the maps hold, indexed by container id, so that a
// container event or a policy change finds the entries of its containers (their slice)
// without scanning every entry.
//
// SliceOf(running, ids) (compiler.h) walks every dependency and rule block: at 1,000
// containers that is ~30,000 entries for a one-container event. RunningState keeps the
// dependencies and rule blocks also ordered by destination and the endpoints and
// bindings by container id, so Slice(ids) costs O(|ids| log n + the slice), and Patch
// (the journal's PatchState) keeps the indexes in step in O(the change).
//
// Example:
//   RunningState running;
//   running.Reset(*CompilePolicy(policy, containers));   // a full apply: O(all entries)
//   DatapathState old = running.Slice({3, 7});            // == SliceOf(running.state(), {3, 7})
//   running.Patch(old, *CompileSlice(policy, containers, {3, 7}));
#ifndef DCTK_BASTION_MANAGER_RUNNING_STATE_H_
#define DCTK_BASTION_MANAGER_RUNNING_STATE_H_

#include <cstdint>
#include <set>
#include <utility>

#include "bastion/policy/compiler.h"

namespace dctk::bastion {

class RunningState {
 public:
  const DatapathState& state() const { return state_; }

  // Replaces everything (a full apply, adoption); rebuilds the indexes.
  void Reset(DatapathState state);
  // Replaces in the state the entries of `remove` by those of `add` (PatchState
  // semantics: hosts and groups become add's) and sets audit to add's.
  void Patch(const DatapathState& remove, const DatapathState& add);
  // SliceOf(state(), ids): the endpoints, bindings, dependencies and rule blocks with a
  // container of `ids` (at either end); audit as the state's, no hosts or groups.
  DatapathState Slice(const std::set<uint32_t>& ids) const;

 private:
  void Index(const DatapathState& entries);
  void Unindex(const DatapathState& entries);

  DatapathState state_;
  // Reverse orders of state_'s sets (state_ orders by source), and owners of the keyed maps.
  std::set<std::pair<uint32_t, uint32_t>> deps_by_dst_;  // {dst, src}
  std::set<std::pair<uint32_t, RuleBlock>> rules_by_dst_;
  std::set<std::pair<uint32_t, uint32_t>> endpoints_by_id_;  // {container id, ip}
  std::set<std::pair<uint32_t, int>> bindings_by_id_;       // {container id, ifindex}
};

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_MANAGER_RUNNING_STATE_H_
