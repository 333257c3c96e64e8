// The manager's saved state: what the maps hold, the container ids, and the policy text,
// so a restarted bastiond can adopt pinned maps (manager.h). JSON, written to a temp
// file and renamed, so a crash leaves either the old or the new file.
//
// Container events and policy changes change a slice of the state; rewriting the whole
// file for each would cost O(all entries). They are appended instead to a journal beside
// it (PATH.log, one JSON line per record): the delta before it is applied (a policy
// change's with the new policy text), then "done" (or "undone" if the apply was rolled
// back). ReadStateFile replays the journal over the snapshot; a last delta without
// "done" becomes `pending` (its ids too, but not its policy text: an interrupted policy
// change never returned, so the policy before it is the one a restart enforces, over
// maps that may hold either). WriteStateFile (a full snapshot) empties the journal; the
// manager does that when the journal outgrows the snapshot, so the cost per change stays
// proportional to its slice (amortised).
//
// Example:
//   SavedState saved{.applied = running, .ids = ids, .next_id = 7, .policy_text = text};
//   RETURN_IF_ERROR(WriteStateFile(path, saved));
//   absl::StatusOr<SavedState> back = ReadStateFile(path);   // NotFound if none
#ifndef DCTK_BASTION_MANAGER_STATE_FILE_H_
#define DCTK_BASTION_MANAGER_STATE_FILE_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bastion/policy/compiler.h"

namespace dctk::bastion {

struct SavedState {
  DatapathState applied;
  // The state an apply was moving to when the file was written; the maps may hold any
  // mix of `applied` and `pending` if bastiond died before finishing.
  std::optional<DatapathState> pending;
  std::map<std::string, uint32_t> ids;  // container key -> datapath id
  std::map<std::string, std::string> names;  // container key -> name
  uint32_t next_id = 1;
  std::string policy_text;
  std::string policy_file;
};

// A slice change (a container event or a policy change): entries of `remove` go,
// entries of `add` come (PatchState), the container ids of the touched containers
// change, and a policy change sets the policy.
struct StateDelta {
  DatapathState remove;
  DatapathState add;
  std::map<std::string, uint32_t> ids;        // container key -> id, set
  std::map<std::string, std::string> names;   // container key -> name, set
  std::vector<std::string> erased;            // container keys forgotten
  uint32_t next_id = 1;
  std::optional<std::string> policy_text;     // set by a policy change
  std::optional<std::string> policy_file;
};

// Replaces in `state` the entries of `remove` by those of `add` (hosts, groups: all of add's);
// O(size of the slices).
void PatchState(DatapathState& state, const DatapathState& remove, const DatapathState& add);

// Writes the snapshot and empties the journal.
absl::Status WriteStateFile(const std::string& path, const SavedState& state);
// The snapshot with the journal replayed; NotFound if there is no snapshot.
absl::StatusOr<SavedState> ReadStateFile(const std::string& path);
// Journal records; each returns the bytes appended.
absl::StatusOr<size_t> AppendStateDelta(const std::string& path, const StateDelta& delta);
absl::StatusOr<size_t> AppendStateDeltaEnd(const std::string& path, bool done);

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_MANAGER_STATE_FILE_H_
