// Atomic policy apply: moves the datapath from one DatapathState to another, all or
// nothing.
//
// The policy entries (hosts, groups, dependencies, rule blocks) switch in one instant: the
// datapath keeps them in two generations and judges every packet by the active one
// (Datapath::ActivateGeneration). ApplyState adds the new endpoints and bindings (and
// audit mode) first, changes the inactive generation from `from` to `to`, activates it
// (one map write: every packet before it is judged by the old policy only, every packet
// after by the new one only), repeats the change on the old generation so both copies
// are equal again, and removes vanished endpoints and bindings last. The cost is twice
// the difference, whatever the size of the states. If any write fails, the writes
// already done are undone in reverse (including the switch) and the old state is back
// (the returned error says so; if an undo fails too, the error says the datapath
// diverged and the caller must resynchronise).
//
// Example:
//   absl::Status s = ApplyState(datapath, running, next);
//   if (s.ok()) running = next;   // else the datapath still holds `running`
#ifndef DCTK_BASTION_POLICY_APPLY_H_
#define DCTK_BASTION_POLICY_APPLY_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "bastion/datapath/datapath.h"
#include "bastion/policy/compiler.h"

namespace dctk::bastion {

// Counts of map entries a change adds, changes and removes.
struct StateDiff {
  int added = 0;
  int changed = 0;
  int removed = 0;
  // One line per entry: "+ rule 3->5 tcp/8000-8003", "- dependency 3->5", ...
  std::vector<std::string> lines;
};

// `describe` turns an id into a name for the lines (containers, hosts); may be empty.
StateDiff DiffStates(const DatapathState& from, const DatapathState& to,
                     const std::function<std::string(uint32_t)>& describe = nullptr);

// With `tolerate_missing`, removing an entry that is not there counts as done (for
// adopting maps whose exact content is uncertain after a crash).
absl::Status ApplyState(Datapath& datapath, const DatapathState& from, const DatapathState& to,
                        bool tolerate_missing = false);

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_POLICY_APPLY_H_
