// MachineFiles: a farmd machine's files and the restart rules built on them.
// Besides its transaction log (`<log>.<first LSN>` segments, farm/tx/tx_log.h)
// and its checkpoint (farm/tx/checkpoint.h), a machine keeps a state file:
// the id of its current incarnation and the last configuration installed at
// it (MachineState, tmp + rename). At start the machine asks the CM
// (CM_STATE) and decides:
//   - the CM is running (ready) and lists this machine's id as a member: the
//     previous incarnation's lease has not expired yet; wait until the CM
//     removes it (and recovers its transactions), then as below;
//   - the CM is running and does not list it: the cluster went on without
//     this machine, its copies are stale. Its files are deleted
//     (DiscardMachineFiles) and it joins as a fresh machine under a new id
//     (NextIncarnation: a removed id is never re-admitted), unless its
//     files hold a copy of a region the cluster lost: then it refuses, or,
//     when no storage machine is left (the CM may be about to begin a
//     restart from the files, restore_when_down), waits up to two leases for
//     the CM to do so;
//   - the CM is bootstrapping (not ready) and the state file holds a
//     configuration: a whole-cluster restart. The files are read and checked
//     now (ReadRestoreInputs: a damaged checkpoint or log stops the process
//     with an error naming the file) and applied when the CM sends the
//     configuration to restore (RESTORE).
//
// Example:
//   MachinePaths paths{.log = "/d/m1.txlog", .checkpoint = "/d/m1.ckpt", .state = "/d/m1.state"};
//   absl::StatusOr<absl::optional<MachineState>> st = ReadMachineState(paths.state);
//   absl::StatusOr<int> deleted = DiscardMachineFiles(paths);
#ifndef DCTK_FARM_SERVER_MACHINE_FILES_H_
#define DCTK_FARM_SERVER_MACHINE_FILES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "farm/cm/cm.pb.h"
#include "farm/fabric/fabric.h"
#include "farm/server/control.pb.h"
#include "farm/tx/checkpoint.h"
#include "farm/tx/tx_log.h"

namespace dctk::farm::server {

struct MachinePaths {
  std::string log;         // the log's base path (segments `<log>.<LSN>`); empty: no files at all
  std::string checkpoint;  // the checkpoint file
  std::string state;       // the MachineState file
};

// NotFound (no file yet) is nullopt; a damaged file is DataLoss naming it.
absl::StatusOr<absl::optional<MachineState>> ReadMachineState(const std::string& path);
// Writes `<path>.tmp` and renames it over `path`; with `sync` the file and
// then its directory are synced, so the renamed file survives power loss.
absl::Status WriteMachineState(const std::string& path, const MachineState& state, bool sync);

// Deletes the checkpoint (and its .tmp), the state file and every log
// segment. Returns how many files it deleted.
absl::StatusOr<int> DiscardMachineFiles(const MachinePaths& paths);

// What a restart applies: the checkpoint (if any) and the log records after
// it, read and checked before the machine joins.
struct RestoreInputs {
  absl::optional<tx::Checkpoint> checkpoint;
  std::vector<tx::LogRecord> records;
  uint64_t log_bytes = 0;  // in the segment files read
  absl::Duration read_time;
};
// Call after TxLog::Open (which cuts a torn final record). DataLoss naming
// the file for a damaged checkpoint or log, or a log that starts after what
// the checkpoint covers.
absl::StatusOr<RestoreInputs> ReadRestoreInputs(const MachinePaths& paths);

// The member `id` as a storage machine of `c` (not a client).
bool IsStorageMember(fabric::MachineId id, const cm::Configuration& c);
// Storage machine ids stay below this; clients use ids from it on (fabrics
// address machines below 256).
inline constexpr fabric::MachineId kFirstClientId = 100;
// The id a fresh incarnation of group slot `slot` (1-based, of `slots`)
// joins under: slot + slots * k for the smallest k >= 0 that `c` neither
// lists as a member nor as removed (a removed id is never re-admitted).
// ResourceExhausted once those ids reach kFirstClientId.
absl::StatusOr<fabric::MachineId> NextIncarnation(fabric::MachineId slot, uint32_t slots, const cm::Configuration& c);

}  // namespace dctk::farm::server

#endif  // DCTK_FARM_SERVER_MACHINE_FILES_H_
