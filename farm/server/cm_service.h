// CmService: FaRM's configuration manager as a process (farmd --role=cm). It
// runs the ConfigState state machine (farm/cm) behind a control server and
// drives the cluster:
//   - machines Join (their fabric endpoint and control address) and Renew
//     their leases; the service stamps commands with its clock, so the state
//     machine itself stays deterministic;
//   - once every expected machine joined, it creates the regions: the CM
//     places each (primary + f backups), asks each replica to host it and
//     records its fabric key, then installs the configuration everywhere;
//   - every lease/4 it Ticks; a machine whose lease expired is removed (its
//     backups promoted) and the service runs recovery over the control plane:
//     block every live machine and collect its in-flight records, decide
//     (farm/tx/recovery.h), install the new configuration, resolve, resume.
// Clients read the configuration with a Get command.
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

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
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
};

struct CmRecoveryStats {
  int recoveries = 0;
  absl::Duration last_duration;
  int last_in_flight = 0;
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
  void Monitor();
  absl::Status Bootstrap();
  absl::Status Recover(const std::vector<uint32_t>& removed);
  absl::StatusOr<std::string> CallMachine(uint32_t machine, uint16_t method, const std::string& req);

  const CmServiceOptions o_;
  mutable absl::Mutex mu_;
  cm::ConfigState state_ ABSL_GUARDED_BY(mu_);     // used without o_.execute
  cm::Configuration config_ ABSL_GUARDED_BY(mu_);  // after the last command
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  CmRecoveryStats stats_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint32_t, std::unique_ptr<ControlChannel>> channels_;  // Monitor thread only
  std::unique_ptr<ControlServer> server_;
  absl::Notification stop_;
  std::thread monitor_;
};

}  // namespace dctk::farm::server

#endif  // DCTK_FARM_SERVER_CM_SERVICE_H_
