// ConfigState: FaRM's configuration manager as a deterministic state machine.
// It holds membership (machines with leases), region placement (primary + f
// backups per region, placed on the consistent-hashing ring of farm/core) and
// the configuration id. Commands (cm.proto) go in, Results come out; nothing
// reads a clock or does I/O, so replicas that execute the same commands agree.
//
// When a machine leaves (its lease expired at a Tick, or RemoveMachine), the
// configuration id bumps and every region it held loses that replica: where
// it was primary, the first backup becomes primary (FaRM's promotion). A
// region left with no complete replica is marked lost. Machines then find the
// new configuration and run recovery (farm/tx/recovery.h).
//
// Re-replication: AddBackups gives every region left with fewer than
// `replicas` copies new backups, marked copying; the service has them copy
// the region from the primary, then CaughtUp marks each complete. A copying
// backup is never promoted (copying ones stay after every complete one).
//
// A client that is done Leaves: with nothing unfinished it is taken out
// without a configuration change (as its Join made none) and never listed as
// failed, so its id can join again; with transactions unfinished it is
// removed as a failed member (Leave's doc in cm.proto).
//
// Incarnations: a Join that admits a member issues it one,
// max(last_incarnation + 1, 2^63 + (configuration id << 32)), so every one
// is higher than any issued before it, whatever the machine id: a client
// under a reused id (after a Leave, or after a whole-cluster restart)
// gets a higher one than every earlier client under it, and FarmClient
// makes it its coordinator's incarnation (farm/tx/wire.h Watermark), which
// participants use to tell a process restarted under an id and slot from
// the one it replaced. Deterministic (no clock), so replicas agree. The
// configuration id part keeps them increasing across a CM that starts
// afresh and restores the cluster from the machines' files
// (InstallRestartPlan puts the id above every configuration a machine had
// installed, and issues the members' incarnations again above it: a
// FarmClient takes its own from the configuration once the cluster is
// ready, not from its Join's reply). Bit 63 puts them above every start
// time in microseconds, the incarnation of coordinators the CM issues none
// to (farmd ship workers, LocalCluster: TxClientOptions::incarnation), so a
// stream a coordinator of that kind left at a participant is started afresh.
//
// Whole-cluster restart: once every storage machine failed and regions were
// lost, BeginRestart lets the removed machines join again under their ids
// (with their files); InstallRestartPlan then places the regions where the
// files hold them (the plan: farm/server/restart_plan.h) and ends it. Both
// are commands, so a replicated CM restores like a local one.
//
// Snapshot()/Restore() copy the whole state, so a speculative executor can
// undo (ReplicatedConfigState below keeps one snapshot per executed slot,
// with the Execute/Rollback/Commit shape of speculative_paxos/app.h).
//
// Example:
//   ConfigState cm;
//   cm.Execute(InitCommand(/*replicas=*/2, 64 << 20, /*lease_ms=*/100));
//   cm.Execute(JoinCommand(1, "endpoint-1", "", /*now_ms=*/0));
//   Result r = cm.Execute(CreateRegionCommand());   // r.region(), r.config()
#ifndef DCTK_FARM_CM_CONFIG_STATE_H_
#define DCTK_FARM_CM_CONFIG_STATE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "farm/cm/cm.pb.h"

namespace dctk::farm::cm {

class ConfigState {
 public:
  Result Execute(const Command& c);
  // Encoded command in, encoded Result out (a malformed command gets an
  // InvalidArgument result; the state is unchanged).
  std::string Execute(absl::string_view op);

  const Configuration& config() const { return config_; }
  std::string Snapshot() const { return config_.SerializeAsString(); }
  absl::Status Restore(absl::string_view snapshot);

 private:
  Result Init(const Command::Init& c);
  Result Join(const Command::Join& c);
  Result Renew(const Command::Renew& c);
  Result Tick(const Command::Tick& c);
  Result CreateRegion();
  Result SetReplicaKey(const Command::SetReplicaKey& c);
  Result Remove(uint32_t machine);
  Result AddBackups();
  Result CaughtUp(const Command::CaughtUp& c);
  Result BeginRestart();
  Result InstallRestartPlan(const Configuration& plan);
  Result Suspect(const Command::Suspect& c);
  Result Leave(const Command::Leave& c);
  // The next incarnation (above): max(last + 1, 2^63 + (id << 32)).
  uint64_t IssueIncarnation();
  std::vector<uint32_t> StorageMachines() const;  // live, not clients
  Machine* FindMachine(uint32_t id);
  void RemoveFromRegions(uint32_t machine);
  Result Ok() const;

  Configuration config_;
};

// ConfigState under a speculative executor: Execute(slot, op) runs `op` at
// `slot` keeping the state before it; Rollback(slot) returns to the state
// after `slot`; Commit(slot) drops the undo states up to `slot`; Snapshot(slot)
// is the state after `slot` (later, speculative slots do not show) and
// Restore(snapshot) replaces everything by one (for log compaction).
class ReplicatedConfigState {
 public:
  std::string Execute(uint64_t slot, absl::string_view op);
  void Rollback(uint64_t slot);
  void Commit(uint64_t slot);
  std::string Snapshot(uint64_t slot) const;
  absl::Status Restore(absl::string_view snapshot);
  const ConfigState& state() const { return state_; }

 private:
  ConfigState state_;
  std::map<uint64_t, std::string> before_;  // slot -> snapshot before it ran
};

// Precise membership (FaRM's NEW-CONFIG acks): the clients of `at_start`
// (the configuration when the CM began waiting for configuration `id` to be
// acknowledged) that may still follow an older one at `now_ms`: still
// members in `now`, their applied_config below `id` there, and their lease
// as it stood in `at_start` not run out. A client's renewals after that
// moment are answered with `id` or newer (it extends its lease only once it
// follows that), so the leases of `at_start` bound the wait by one lease.
std::vector<uint32_t> ClientsBehind(const Configuration& at_start, const Configuration& now,
                                    uint64_t id, int64_t now_ms);

Command InitCommand(uint32_t replicas, uint64_t region_size, int64_t lease_ms);
Command JoinCommand(uint32_t machine, const std::string& endpoint, const std::string& control, int64_t now_ms,
                    bool client = false);
// `applied_config`: the configuration id the member follows (0: not said).
Command RenewCommand(uint32_t machine, int64_t now_ms, uint64_t applied_config = 0);
Command TickCommand(int64_t now_ms);
Command CreateRegionCommand();
Command SetReplicaKeyCommand(uint32_t region, uint32_t machine, uint32_t key);
Command RemoveMachineCommand(uint32_t machine);
Command GetCommand();
Command AddBackupsCommand();
Command CaughtUpCommand(uint32_t region, uint32_t machine, uint64_t added_in);
Command BeginRestartCommand();
Command InstallRestartPlanCommand(const Configuration& plan);
Command SuspectCommand(uint32_t machine, uint32_t by);
Command LeaveCommand(uint32_t machine, uint32_t unfinished = 0);

}  // namespace dctk::farm::cm

#endif  // DCTK_FARM_CM_CONFIG_STATE_H_
