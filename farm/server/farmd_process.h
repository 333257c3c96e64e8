// Test helpers: farmd processes on loopback. FarmdCluster starts each farmd
// as a ChildProcess whose stdout lines are read one by one (farmd prints "cm
// <address>", "machine <id> <address>", "restored <id> ..."), stopped with
// SIGTERM on destruction; it starts the CM service and N machines from a common cluster
// file (WriteFarmConfig), and restarts any of them with the same files.
//
// Example:
//   const std::string conf = WriteFarmConfig(dir, /*machines=*/3, /*lease_ms=*/2000);
//   FarmdCluster cluster(conf, dir, "shm", {"--checkpoint_every_kb=64"});
//   ASSERT_TRUE(cluster.Start(3).ok());
//   cluster.machine(1).Kill(SIGKILL);
//   absl::StatusOr<uint32_t> id = cluster.RestartMachine(1);   // its new id
#ifndef DCTK_FARM_SERVER_FARMD_PROCESS_H_
#define DCTK_FARM_SERVER_FARMD_PROCESS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/process/child_process.h"
#include "farm/cm/cm.pb.h"

namespace dctk::farm::server {

// A common cluster file: a CM node and machines m1..mN on 127.0.0.2.. (group
// "farm", PRIMARY_BACKUP, f = N - 1), lease `lease_ms`.
std::string WriteFarmConfig(const std::string& dir, int machines = 3, int lease_ms = 2000);

class FarmdCluster {
 public:
  // Machines keep their files in `dir` (--txlog_dir) and get `machine_flags`.
  FarmdCluster(std::string conf, std::string dir, std::string fabric, std::vector<std::string> machine_flags = {});

  // Extra flags for the CM (before Start).
  void set_cm_flags(std::vector<std::string> flags) { cm_flags_ = std::move(flags); }
  // The CM (--replicas=2 --regions=6 --region_mb=4) and machines m1..mn,
  // each once it printed its first line.
  absl::Status Start(int n = 3);
  // The CM again, on the address it had (a whole-cluster restart).
  absl::Status RestartCm();
  // Machine `slot` (m<slot>) again with its files; returns the id it joined
  // under. `stderr_path`: where its stderr goes.
  absl::StatusOr<uint32_t> RestartMachine(int slot, const std::string& stderr_path = "");
  // SIGKILLs every machine and the CM.
  void KillAll();

  ChildProcess& cm() { return *cm_; }
  ChildProcess& machine(int slot) { return *machines_.at(slot); }
  const std::string& cm_address() const { return cm_address_; }
  // The CM's state (CM_STATE): ready, configuration.
  absl::StatusOr<std::pair<bool, cm::Configuration>> CmState() const;

 private:
  absl::Status StartCm(const std::string& host);
  std::vector<std::string> MachineArgs(int slot) const;

  const std::string conf_, dir_, fabric_;
  const std::vector<std::string> machine_flags_;
  std::vector<std::string> cm_flags_;
  std::unique_ptr<ChildProcess> cm_;
  std::string cm_address_;
  std::map<int, std::unique_ptr<ChildProcess>> machines_;
};

// Every region has two complete copies and the configuration `storage` live
// storage machines.
bool FullyReplicated(const cm::Configuration& c, int storage);

}  // namespace dctk::farm::server

#endif  // DCTK_FARM_SERVER_FARMD_PROCESS_H_
