// CmService: FaRM's configuration manager as a process (farmd --role=cm). It
// runs the ConfigState state machine (farm/cm) behind a control server and
// drives the cluster:
//   - machines Join (their fabric endpoint and control address) and Renew
//     their leases; the service stamps commands with its clock, so the state
//     machine itself stays deterministic;
//   - once every expected machine joined, it creates the regions: the CM
//     places each (primary + f backups), asks each replica to host it and
//     records its fabric key, then installs the configuration everywhere;
//   - unless the machines kept a configuration on file (a whole-cluster
//     restart, local state only): then it restores the newest one any kept
//     (restart_plan.h), each machine loads its regions from its checkpoint
//     and log suffix (RESTORE), and recovery decides the transactions that
//     were in flight at the crash; a machine whose files cannot be restored
//     (it answers RESTORE with DataLoss) ends the bootstrap for good: it is
//     not retried, and Get answers with that error, naming the machine;
//   - with `restore_when_down`, the same restore when every machine died
//     while the service ran on (the replicated CM of the integration): the
//     state enters restarting (BeginRestart), the machines rejoin with their
//     files, and the plan is installed by a command (InstallRestartPlan), so
//     it replicates like any other; after `restart_wait` without every
//     machine, what came back is restored and the rest stays lost;
//   - every lease/4 it Ticks; a machine whose lease expired is removed (its
//     backups promoted) and the service runs recovery over the control plane,
//     per region (farm/tx/recovery.h RecoverRegions): every live machine
//     follows the new configuration at once and stops only the regions whose
//     replicas changed, reporting its in-flight records of older
//     configurations; the CM decides, has every machine lock what the
//     decided commits write (RECOVER_LOCKS: lock recovery), installs the new
//     configuration, resolves, and resumes the stopped regions. Transactions
//     on the other regions commit meanwhile. Clients learn a configuration
//     (Get, and lease renewals) only once its lock recovery is done, so no
//     client reads a promoted backup before it locked. A region whose
//     primary changed resumes only once every client of the configuration
//     acknowledged it (its renewal carries the configuration it follows) or
//     the lease it held when the wait began ran out (FaRM's NEW-CONFIG-ACK
//     and lease wait before NEW-CONFIG-COMMIT): a client behind could still
//     one-sided-read the old primary's copy (a paused machine's memory stays
//     readable), so no write may commit at the new primary before. At most
//     one lease; clients acknowledge at once when they learn a configuration
//     (farm_client.h). Machines need no acknowledgement: each follows the
//     new configuration in the CM's BLOCK call before anything resumes. A
//     whole-cluster restart blocks every region;
//   - re-replication: while some region has fewer copies than `replicas` and
//     a storage machine holds none of it, the CM picks new backups
//     (AddBackups), has them host the region, reconfigures (recovery's
//     steps: the regions that got a backup stop until the machines follow
//     the new configuration, so every later commit reaches them), then
//     copies each region from its primary chunk by chunk between Ticks
//     (COPY_CHUNK at the primary, APPLY_CHUNK at the backup, which logs it)
//     and marks the backup CaughtUp.
// Clients read the configuration with a Get command, and report a storage
// machine that does not answer with Suspect (it gets no more lease
// renewals, so it fences itself and is removed when its lease runs out).
// A client that is done Leaves (FarmClient::Leave): with nothing unfinished
// it is taken out at once, no recovery, no configuration change, its id free
// for a later client; with transactions unfinished it is removed as failed
// and recovered at the next Tick, as if its lease had run out then.
//
// Where the commands run is a hook: by default a local ConfigState in this
// process; with `execute` set, every command goes through it instead (the
// integration runs them on CM replicas replicated with Speculative Paxos, so
// a restarted service finds the placed regions and carries on).
//
// Example:
//   CmService cm({.replicas = 2, .regions = 6, .expected_machines = {1, 2, 3}});
//   absl::Status s = cm.Start("127.0.0.1");   // cm.address() for farmd --cm
#ifndef DCTK_FARM_SERVER_CM_SERVICE_H_
#define DCTK_FARM_SERVER_CM_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "farm/cm/config_state.h"
#include "farm/server/control.h"

namespace dctk::farm::server {

// Runs one CM command where the configuration state lives and returns its
// result; an error status means the command may not have run (retry).
using CmExecutor = std::function<absl::StatusOr<cm::Result>(const cm::Command&)>;

struct CmServiceOptions {
  uint32_t replicas = 2;
  uint64_t region_size = 16 << 20;
  int regions = 6;
  int64_t lease_ms = 300;
  std::vector<uint32_t> expected_machines;
  // Milliseconds on the CM's clock (injectable for tests).
  std::function<int64_t()> now_ms;
  // Empty: a local ConfigState. Set: every command runs through it; Start()
  // issues Init (idempotent on the replicated state) and fails if it fails.
  CmExecutor execute;
  // Re-replicate regions that lost copies, `copy_chunk_bytes` of objects
  // per control-plane message.
  bool rereplicate = true;
  uint64_t copy_chunk_bytes = 1 << 20;
  // When every storage machine is gone and regions are lost (all farmds
  // died while this service ran on, e.g. over a replicated state that
  // outlives it), go back to bootstrapping (BeginRestart): the machines
  // restarted with their files rejoin under their ids and the cluster is
  // restored from the files, as after a restart of the CM too. Off: those
  // machines refuse to start (their files hold the only copies) until the
  // CM is restarted.
  bool restore_when_down = false;
  // A restart from the machines' files waits this long for every expected
  // machine (from the first join); then it restores what the machines back
  // hold, and regions none of whose complete copies came back stay lost (an
  // error names each). Infinite: wait for all of them.
  absl::Duration restart_wait = absl::InfiniteDuration();
  // Every recovery stops every region, as before per-region recovery (the
  // baseline of farmd_recovery_bench).
  bool blocking_recovery = false;
  // Fault injection (tests, benchmarks): runs inside a per-region recovery
  // once every machine follows the new configuration `c` and has it
  // installed, before the decisions are applied: the `recovering` regions
  // still refuse requests, every other region serves `c`'s transactions.
  std::function<void(const cm::Configuration& c, const std::vector<uint32_t>& recovering)> while_recovering;
  // Resume a region whose primary changed only once every client follows
  // the new configuration or its lease ran out (see above). Off: at once,
  // as before (a client behind may read the old primary after a write
  // committed at the new one; farmd_recovery_bench's baseline).
  bool await_client_acks = true;
};

struct CmRecoveryStats {
  int recoveries = 0;
  absl::Duration last_duration;
  int last_in_flight = 0;
  // Re-replication.
  int backups_caught_up = 0;
  uint64_t bytes_copied = 0;
  absl::Duration last_copy;  // the last backup's copy, first chunk to CaughtUp
  // Waits before resuming a region whose primary changed (await_client_acks).
  int ack_waits = 0;
  absl::Duration last_ack_wait;
  int clients_expired = 0;  // clients waited out (their lease ran out unacknowledged)
};

class CmService {
 public:
  explicit CmService(CmServiceOptions o);
  ~CmService();
  absl::Status Start(const std::string& host);
  const std::string& address() const { return server_->address(); }
  cm::Configuration config() const;
  CmRecoveryStats recovery_stats() const;

 private:
  absl::StatusOr<std::string> Handle(uint16_t method, absl::string_view req);
  cm::Result Execute(const cm::Command& c);
  // A Leave `c` the state accepted with result `r`: a removal as failed
  // (unfinished transactions) is recovered at the next Tick.
  void Left(const cm::Command::Leave& c, const cm::Result& r);
  void Monitor();
  // `all_joined`: every expected machine joined (else a restart from files
  // restores what the machines back hold, and a first start waits).
  absl::Status Bootstrap(bool all_joined);
  // Every storage machine is gone and some region is lost.
  static bool ClusterDown(const cm::Configuration& c);
  void BeginRestart();
  // Whole-cluster restart: the newest configuration any joined machine kept
  // on file (none: a first start), and the bootstrap that restores it.
  struct SavedFiles {
    absl::optional<cm::Configuration> newest;
    absl::flat_hash_set<uint32_t> machines;  // those that kept a configuration
  };
  absl::StatusOr<SavedFiles> SavedConfigurations();
  absl::Status BootstrapFromFiles(const SavedFiles& saved, bool all_joined);
  // Recovery's steps for the current configuration: after a removal, or
  // (empty `removed`) to install new backups or a joined machine. Per
  // region: only the regions whose replicas changed since the last installed
  // configuration stop; `blocking`: every region stops (a restart).
  absl::Status Recover(const std::vector<uint32_t>& removed, bool blocking = false);
  // Recover with every removal not yet recovered: a removal whose recovery
  // failed is finished (and counted) by the next one that succeeds, whatever
  // set it off (new backups, a joined machine, or the next Tick, since a
  // recovery that failed after installing its configuration may have left
  // regions blocked). `what` names it in the log.
  void RecoverRemoved(const std::string& what);
  // Clients may learn `c` (Get and Renew answer with it): every promoted
  // backup in it has recovered its locks.
  void Publish(const cm::Configuration& c);
  // Returns once no client may follow a configuration older than `c`
  // (cm::ClientsBehind): each acknowledged it or its lease ran out.
  // Cancelled if the service stops meanwhile.
  absl::Status AwaitClients(const cm::Configuration& c);
  bool ShortOfCopies(const cm::Configuration& c) const;
  // Asks `machine` to host a copy of `region` and records its fabric key.
  absl::Status HostReplica(const cm::Region& region, uint32_t machine);
  // Picks new backups for the regions short of copies (AddBackups) and has
  // every new backup without a key yet host its region; true if any did.
  // The caller's Recover installs them.
  absl::StatusOr<bool> PlaceNewBackups();
  // Copies one chunk to the first copying backup; false when none is left.
  absl::StatusOr<bool> CopyStep();
  absl::StatusOr<std::string> CallMachine(uint32_t machine, uint16_t method, const std::string& req);

  const CmServiceOptions o_;
  mutable absl::Mutex mu_;
  cm::ConfigState state_ ABSL_GUARDED_BY(mu_);     // used without o_.execute
  cm::Configuration config_ ABSL_GUARDED_BY(mu_);  // after the last command
  // What Get and Renew answer while config_ is newer (0: not yet placed).
  cm::Configuration published_ ABSL_GUARDED_BY(mu_);
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  // A bootstrap that cannot succeed (a machine's files cannot be restored):
  // not retried; Get answers with it.
  absl::Status bootstrap_failed_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> installed_{0};  // the configuration id the machines were last given
  cm::Configuration installed_config_;  // and that configuration (Monitor thread only)
  std::vector<uint32_t> unrecovered_;   // removed, recovery not finished (Monitor thread only)
  // Clients that left with transactions unfinished, for the next Tick's recovery.
  std::vector<uint32_t> left_unfinished_ ABSL_GUARDED_BY(mu_);
  bool recovery_unfinished_ = false;    // the last Recover failed (Monitor thread only)
  CmRecoveryStats stats_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint32_t, std::unique_ptr<ControlChannel>> channels_;  // Monitor thread only
  struct Copy {
    uint64_t next = 0;
    absl::Time start;
  };
  // (region, backup, added_in) -> progress; Monitor thread only.
  std::map<std::tuple<uint32_t, uint32_t, uint64_t>, Copy> copies_;
  std::unique_ptr<ControlServer> server_;
  absl::Notification stop_;
  std::thread monitor_;
};

}  // namespace dctk::farm::server

#endif  // DCTK_FARM_SERVER_CM_SERVICE_H_
