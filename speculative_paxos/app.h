// App: the replicated application under Speculative Paxos.
//
// Replicas execute requests speculatively, before they are known to be final,
// so the application must be able to undo them: Execute() runs an operation at
// a log slot and records how to undo it, Rollback(slot) undoes every executed
// slot after `slot` (newest first), and Commit(slot) promises that slots up to
// `slot` will never be rolled back (undo records may be dropped). Slots passed
// to Execute rise by one between rollbacks. Execution must be deterministic:
// replicas with the same log return the same results.
//
// Log compaction (ReplicaConfig.checkpoint_interval) also needs Snapshot(slot):
// the state after every slot up to `slot` (a committed slot; later slots may
// have executed speculatively and must not show), and Restore(slot, snapshot):
// replace the whole state by one (no undo records; the next Execute is at
// slot+1). Equal logs must give byte-equal snapshots. An App that keeps the
// defaults (Unimplemented) runs with a full log: replicas do not compact.
//
// Example:
//   KvApp app;
//   std::string r1 = app.Execute(1, put_op);
//   std::string r2 = app.Execute(2, get_op);
//   app.Rollback(1);   // undoes slot 2
//   app.Commit(1);     // slot 1 is final
#ifndef DCTK_SPECULATIVE_PAXOS_APP_H_
#define DCTK_SPECULATIVE_PAXOS_APP_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dctk::spaxos {

class App {
 public:
  virtual ~App() = default;
  // Runs `op` at `slot` and returns its result; keeps an undo record.
  virtual std::string Execute(uint64_t slot, absl::string_view op) = 0;
  // Undoes every slot > `slot`. Never called below a committed slot.
  virtual void Rollback(uint64_t slot) = 0;
  // Slots <= `slot` are final.
  virtual void Commit(uint64_t slot) = 0;
  // The state as of committed slot `slot`, serialized.
  virtual absl::StatusOr<std::string> Snapshot(uint64_t /*slot*/) {
    return absl::UnimplementedError("this App has no snapshots");
  }
  // Replaces the whole state by Snapshot(slot) of an equal app.
  virtual absl::Status Restore(uint64_t /*slot*/, absl::string_view /*snapshot*/) {
    return absl::UnimplementedError("this App has no snapshots");
  }
};

// Does nothing and returns an empty result: for protocol-only benchmarks.
class NullApp : public App {
 public:
  std::string Execute(uint64_t, absl::string_view) override { return {}; }
  void Rollback(uint64_t) override {}
  void Commit(uint64_t) override {}
  absl::StatusOr<std::string> Snapshot(uint64_t) override { return std::string(); }
  absl::Status Restore(uint64_t, absl::string_view) override { return absl::OkStatus(); }
};

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_APP_H_
