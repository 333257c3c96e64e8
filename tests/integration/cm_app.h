// CmApp: FaRM's configuration manager (farm/cm ConfigState) as the replicated
// application of Speculative Paxos.
//
// Replicas execute CM commands speculatively, in arrival order, before they
// are known to be final; Speculative Paxos may later roll a suffix back and
// re-execute it in the agreed order. ReplicatedConfigState keeps the state
// before every uncommitted slot, so Rollback restores it and Commit drops the
// undo states that can no longer be needed. Commands and results are the
// encoded dctk.farm.cm.Command / Result messages; time enters only as a
// field of a command (the client's now_ms), so replicas with the same log
// hold the same configuration.
//
// Example:
//   CmApp app;
//   spaxos::Replica replica(transport, config, index, &app);
//   ...
//   const cm::Configuration& c = app.config();   // on the replica's loop thread
#ifndef DCTK_TESTS_INTEGRATION_CM_APP_H_
#define DCTK_TESTS_INTEGRATION_CM_APP_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "farm/cm/config_state.h"
#include "speculative_paxos/app.h"

namespace dctk::integration {

class CmApp final : public spaxos::App {
 public:
  std::string Execute(uint64_t slot, absl::string_view op) override;
  void Rollback(uint64_t slot) override;
  void Commit(uint64_t slot) override;
  // Log compaction: the configuration as of committed slot `slot`.
  absl::StatusOr<std::string> Snapshot(uint64_t slot) override;
  absl::Status Restore(uint64_t slot, absl::string_view snapshot) override;

  // The configuration after every executed (possibly speculative) slot.
  const farm::cm::Configuration& config() const { return state_.state().config(); }
  // Highest slot passed to Commit (0 if none).
  uint64_t committed() const { return committed_; }

 private:
  farm::cm::ReplicatedConfigState state_;
  uint64_t committed_ = 0;
};

}  // namespace dctk::integration

#endif  // DCTK_TESTS_INTEGRATION_CM_APP_H_
