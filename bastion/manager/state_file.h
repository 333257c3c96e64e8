// The manager's saved state: what the maps hold, the container ids, and the policy text,
// so a restarted bastiond can adopt pinned maps (manager.h). JSON, written to a temp
// file and renamed, so a crash leaves either the old or the new file.
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

absl::Status WriteStateFile(const std::string& path, const SavedState& state);
absl::StatusOr<SavedState> ReadStateFile(const std::string& path);

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_MANAGER_STATE_FILE_H_
