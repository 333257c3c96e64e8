#include "tests/integration/cm_app.h"

#include <algorithm>

namespace dctk::integration {

std::string CmApp::Execute(uint64_t slot, absl::string_view op) { return state_.Execute(slot, op); }

void CmApp::Rollback(uint64_t slot) { state_.Rollback(slot); }

void CmApp::Commit(uint64_t slot) {
  state_.Commit(slot);
  committed_ = std::max(committed_, slot);
}

absl::StatusOr<std::string> CmApp::Snapshot(uint64_t slot) { return state_.Snapshot(slot); }

absl::Status CmApp::Restore(uint64_t slot, absl::string_view snapshot) {
  absl::Status s = state_.Restore(snapshot);
  if (s.ok()) committed_ = slot;
  return s;
}

}  // namespace dctk::integration
