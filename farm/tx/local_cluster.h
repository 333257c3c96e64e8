// LocalCluster: a FaRM cluster of N machines inside one process, each with
// its own fabric instance (shm or net), TxMachine (participant + server
// thread) and coordinator clients, configured by an in-process CM
// (farm/cm/config_state.h). For tests, benchmarks and workloads; farmd runs
// the same pieces one machine per process.
//
// Kill(m) makes machine m fail-stop (server stopped, clients and fabric torn
// down, so peers' operations to it fail); Recover({m}) has the CM remove it
// (backups become primaries) and runs transaction recovery (recovery.h).
// Each configuration is installed at the participants with the CM's removed
// machines, as farmd does: a removed machine's coordinators are refused
// (LOCK, ALLOC) and their outcomes dropped once recovery decided them.
// Rereplicate() then brings every region back to `replicas` copies: the CM
// picks new backups (AddBackups), they host the region, a reconfiguration
// makes every later commit reach them, and each copies the region from its
// primary in chunks while transactions go on (see "Re-replication" in
// farm/README.md for why the copy is consistent), then is marked CaughtUp.
//
// With `log_dir`, logs are files and `checkpoint_log_bytes` makes machines
// checkpoint and trim them; `restart` builds the cluster from the files a
// previous one left (checkpoint + log suffix per machine, then recovery).
//
// Example:
//   auto cluster = LocalCluster<ShmFabric>::Create({.machines = 3, .replicas = 2}, MakeShm);
//   auto tx = (*cluster)->client(1).Begin();
//   absl::StatusOr<GlobalAddress> a = tx.Alloc(8);
//   tx.Write(*a, "12345678");
//   tx.Commit();
#ifndef DCTK_FARM_TX_LOCAL_CLUSTER_H_
#define DCTK_FARM_TX_LOCAL_CLUSTER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "farm/cm/config_state.h"
#include "farm/core/region_table.h"
#include "farm/fabric/fabric.h"
#include "farm/tx/machine.h"
#include "farm/tx/recovery.h"
#include "farm/tx/transaction.h"
#include "farm/tx/tx_log.h"

namespace dctk::farm::tx {

struct RereplicationReport {
  int backups_added = 0;
  int objects_copied = 0;     // objects sent by primaries
  int objects_installed = 0;  // of which newer than the backup's copy
  uint64_t bytes_copied = 0;  // their slots
  absl::Duration reconfigure;  // AddBackups + hosting + the blocking reconfiguration
  absl::Duration copy;         // the background copy, all regions
};

// A new backup to fill (LocalCluster::AddBackups).
struct BackupJob {
  RegionId region = 0;
  fabric::MachineId machine = 0;
  uint64_t added_in = 0;  // the configuration that added it
};

struct LocalClusterOptions {
  int machines = 3;
  uint32_t replicas = 2;  // primary + f backups
  int regions = 6;
  uint64_t region_size = 4 << 20;
  int clients_per_machine = 1;
  uint64_t ring_size = 1 << 18;
  std::string log_dir;    // empty: no log file; records counted, not kept (lost in a crash)
  FsyncPolicy fsync = FsyncPolicy::kNever;
  uint64_t log_segment_bytes = 4 << 20;
  // With log_dir: each machine checkpoints to log_dir/machine-N.ckpt every
  // so many log bytes (0: never) and trims its log before the checkpoint.
  uint64_t checkpoint_log_bytes = 0;
  // With log_dir: the machines restart from the files a previous cluster
  // with the same options left there (checkpoint + log suffix), then recovery
  // decides the transactions that were in flight. The placement is the
  // initial one (the CM's state is not on file), so the previous cluster
  // must not have reconfigured.
  bool restart = false;
  // Recovery after a reconfiguration stops only the regions whose replicas
  // changed (RecoverRegions); false: every region (RecoverTransactions, the
  // baseline of recovery_bench).
  bool scoped_recovery = true;
  TxClientOptions client;
};

template <typename F>
  requires fabric::Fabric<F>
class LocalCluster {
 public:
  using FabricFactory = std::function<absl::StatusOr<std::unique_ptr<F>>(fabric::MachineId)>;

  static absl::StatusOr<std::unique_ptr<LocalCluster>> Create(const LocalClusterOptions& o, FabricFactory make) {
    std::unique_ptr<LocalCluster> c(new LocalCluster(o));
    absl::Status s = c->Build(std::move(make));
    if (!s.ok()) return s;
    return c;
  }

  ~LocalCluster() {
    for (auto& [id, m] : machines_) {
      if (m.machine) m.machine->Stop();
    }
    for (auto& [id, m] : machines_) {
      m.clients.clear();
      m.machine.reset();
    }
    for (auto& [id, m] : machines_) m.fabric.reset();
  }

  TxClient<F>& client(fabric::MachineId m, int slot = 0) { return *machines_.at(m).clients.at(slot); }
  TxMachine<F>& machine(fabric::MachineId m) { return *machines_.at(m).machine; }
  F& fabric(fabric::MachineId m) { return *machines_.at(m).fabric; }
  const RegionTable& table() const { return table_; }
  const cm::ConfigState& cm() const { return cm_; }
  uint64_t config() const { return config_.load(); }
  std::string log_path(fabric::MachineId m) const {
    return options_.log_dir.empty() ? "" : absl::StrCat(options_.log_dir, "/machine-", m, ".txlog");
  }
  std::string checkpoint_path(fabric::MachineId m) const {
    return options_.log_dir.empty() ? "" : absl::StrCat(options_.log_dir, "/machine-", m, ".ckpt");
  }
  // With `restart`: what each machine restored, and the recovery after it.
  const std::map<fabric::MachineId, RestoreReport>& restored() const { return restored_; }
  const RecoveryReport& restart_recovery() const { return restart_recovery_; }
  std::vector<fabric::MachineId> live() const {
    std::vector<fabric::MachineId> out;
    for (const auto& [id, m] : machines_) {
      if (m.machine) out.push_back(id);
    }
    return out;
  }

  // Fail-stop crash of machine `m`. Its clients must not be in use.
  void Kill(fabric::MachineId m) {
    Node& n = machines_.at(m);
    if (!n.machine) return;
    n.machine->Stop();
    n.clients.clear();
    n.machine.reset();
    n.fabric.reset();
  }

  // The CM removes `failed` machines, then recovery runs on the live ones
  // for the regions whose replicas changed (RecoverRegions: the others keep
  // serving transactions of the new configuration); `while_recovering` runs
  // while those regions still recover (tests).
  absl::StatusOr<RecoveryReport> Recover(const std::vector<fabric::MachineId>& failed,
                                         const std::function<void()>& while_recovering = nullptr) {
    return Reconfigure(failed, installed_, while_recovering);
  }

  // Gives every region short of copies new backups and copies the regions
  // to them, `chunk_bytes` of objects per chunk. Transactions may run
  // meanwhile (they see one reconfiguration: retry on Unavailable).
  absl::StatusOr<RereplicationReport> Rereplicate(uint64_t chunk_bytes = 256 << 10) {
    RereplicationReport report;
    const absl::Time start = absl::Now();
    absl::StatusOr<std::vector<BackupJob>> jobs = AddBackups();
    if (!jobs.ok()) return jobs.status();
    report.reconfigure = absl::Now() - start;
    const absl::Time copy_start = absl::Now();
    for (const BackupJob& job : *jobs) {
      absl::Status s = CopyToBackup(job, chunk_bytes, &report);
      if (!s.ok()) return s;
    }
    report.copy = absl::Now() - copy_start;
    return report;
  }

  // The steps of Rereplicate. AddBackups: the CM picks the new backups, they
  // host their regions, and a (blocking) reconfiguration makes every later
  // commit send them COMMIT-BACKUP.
  absl::StatusOr<std::vector<BackupJob>> AddBackups() {
    const cm::Configuration before = installed_;
    cm::Result added = cm_.Execute(cm::AddBackupsCommand());
    if (added.code() != 0) return CmStatus(added);
    std::vector<BackupJob> jobs;
    if (added.added_size() == 0) return jobs;
    for (const cm::AddedBackup& a : added.added()) {
      Node& n = machines_.at(a.machine());
      const uint64_t size = cm_.config().region_size();
      absl::StatusOr<fabric::MemoryRegion> mr = n.fabric->Register(size);
      if (!mr.ok()) return mr.status();
      n.machine->participant().HostRegion(a.region(), static_cast<uint8_t*>(mr->base), size);
      absl::Status s = CmStatus(cm_.Execute(cm::SetReplicaKeyCommand(a.region(), a.machine(), mr->key)));
      if (!s.ok()) return s;
      jobs.push_back({a.region(), a.machine(), added.config().id()});
    }
    absl::StatusOr<RecoveryReport> reconfigured = Reconfigure({}, before, nullptr);
    if (!reconfigured.ok()) return reconfigured.status();
    return jobs;
  }

  // Copies the job's region from its primary, chunk by chunk, then marks the
  // backup caught up at the CM.
  absl::Status CopyToBackup(const BackupJob& job, uint64_t chunk_bytes, RereplicationReport* report) {
    Participant& to = machines_.at(job.machine).machine->participant();
    for (uint64_t from = 0; from < cm_.config().region_size();) {
      // The primary at each chunk: any primary since the backup was added
      // holds every committed object, so a promotion mid-copy is fine.
      absl::StatusOr<RegionInfo> info = table_.Lookup(job.region);
      if (!info.ok()) return info.status();
      auto it = machines_.find(info->primary().machine);
      if (it == machines_.end() || !it->second.machine) {
        return absl::UnavailableError(
            absl::StrCat("copy of region ", job.region, ": primary ", info->primary().machine, " is down"));
      }
      absl::StatusOr<RegionChunk> chunk = it->second.machine->participant().CopyChunk(job.region, from, chunk_bytes);
      if (!chunk.ok()) return chunk.status();
      absl::StatusOr<int> installed = to.ApplyChunk(job.region, chunk->Entries());
      if (!installed.ok()) return installed.status();
      report->objects_copied += static_cast<int>(chunk->objects.size());
      report->objects_installed += *installed;
      for (const WriteEntry& e : chunk->objects) report->bytes_copied += e.slot_bytes;
      from = chunk->next;
    }
    absl::Status s = CmStatus(cm_.Execute(cm::CaughtUpCommand(job.region, job.machine, job.added_in)));
    if (s.ok()) ++report->backups_added;
    return s;
  }

 private:
  struct Node {
    std::unique_ptr<F> fabric;
    std::unique_ptr<TxMachine<F>> machine;
    std::vector<std::unique_ptr<TxClient<F>>> clients;
  };

  explicit LocalCluster(const LocalClusterOptions& o) : options_(o) {}

  static absl::Status CmStatus(const cm::Result& r) {
    return absl::Status(static_cast<absl::StatusCode>(r.code()), r.message());
  }

  absl::Status Build(FabricFactory make) {
    absl::Status s = CmStatus(cm_.Execute(cm::InitCommand(options_.replicas, options_.region_size, 1000)));
    if (!s.ok()) return s;
    for (int i = 1; i <= options_.machines; ++i) {
      const fabric::MachineId id = static_cast<fabric::MachineId>(i);
      absl::StatusOr<std::unique_ptr<F>> f = make(id);
      if (!f.ok()) return f.status();
      Node& n = machines_[id];
      n.fabric = std::move(*f);
      absl::StatusOr<std::unique_ptr<TxLog>> log =
          TxLog::Open(log_path(id), options_.fsync, options_.log_segment_bytes);
      if (!log.ok()) return log.status();
      CheckpointOptions checkpoints;
      if (options_.checkpoint_log_bytes > 0) {
        checkpoints = {checkpoint_path(id), options_.checkpoint_log_bytes, options_.fsync == FsyncPolicy::kEveryRecord};
      }
      auto m = TxMachine<F>::Create(*n.fabric, &table_, std::move(*log), std::move(checkpoints));
      if (!m.ok()) return m.status();
      n.machine = std::move(*m);
      s = CmStatus(cm_.Execute(cm::JoinCommand(id, n.fabric->endpoint(), "", 0)));
      if (!s.ok()) return s;
    }
    for (auto& [a, na] : machines_) {
      for (auto& [b, nb] : machines_) {
        if (a == b) continue;
        s = na.fabric->Connect(b, nb.fabric->endpoint());
        if (!s.ok()) return s;
      }
    }
    for (int i = 0; i < options_.regions; ++i) {
      cm::Result r = cm_.Execute(cm::CreateRegionCommand());
      if (r.code() != 0) return CmStatus(r);
      for (const cm::Region& region : r.config().regions()) {
        if (region.id() != r.region()) continue;
        for (const cm::Replica& rep : region.replicas()) {
          Node& n = machines_.at(rep.machine());
          absl::StatusOr<fabric::MemoryRegion> mr = n.fabric->Register(region.size());
          if (!mr.ok()) return mr.status();
          n.machine->participant().HostRegion(region.id(), static_cast<uint8_t*>(mr->base), region.size());
          s = CmStatus(cm_.Execute(cm::SetReplicaKeyCommand(region.id(), rep.machine(), mr->key)));
          if (!s.ok()) return s;
        }
      }
    }
    InstallConfig();
    if (options_.restart) {
      if (options_.log_dir.empty()) return absl::InvalidArgumentError("LocalCluster: restart needs log_dir");
      std::vector<Participant*> all;
      for (auto& [id, n] : machines_) {
        absl::StatusOr<RestoreReport> r = n.machine->participant().RestoreFromFiles(checkpoint_path(id), log_path(id));
        if (!r.ok()) return r.status();
        restored_[id] = *r;
        all.push_back(&n.machine->participant());
      }
      restart_recovery_ = RecoverTransactions(all, cm_.config().id(), [] {});
    }
    for (auto& [id, n] : machines_) {
      for (int slot = 0; slot < options_.clients_per_machine; ++slot) {
        auto client = TxClient<F>::Create(*n.fabric, slot, &table_, &config_, &n.machine->participant(),
                                          options_.client);
        if (!client.ok()) return client.status();
        for (auto& [peer, np] : machines_) {
          if (peer == id) continue;  // the fast path reaches the local participant directly
          s = np.machine->WithEndpoint([&](msg::RpcEndpoint<F>& ep) {
            return WireEndpoints((*client)->endpoint(), *n.fabric, ep, *np.fabric, options_.ring_size);
          });
          if (!s.ok()) return s;
        }
        n.clients.push_back(std::move(*client));
      }
    }
    for (auto& [id, n] : machines_) n.machine->Start();
    return absl::OkStatus();
  }

  // The CM removes `failed`, then recovery runs into its configuration.
  absl::StatusOr<RecoveryReport> Reconfigure(const std::vector<fabric::MachineId>& failed,
                                             const cm::Configuration& before,
                                             const std::function<void()>& while_recovering) {
    for (fabric::MachineId m : failed) {
      cm::Result r = cm_.Execute(cm::RemoveMachineCommand(m));
      if (r.code() != 0) return absl::Status(static_cast<absl::StatusCode>(r.code()), r.message());
    }
    std::vector<Participant*> live;
    for (auto& [id, n] : machines_) {
      if (n.machine) live.push_back(&n.machine->participant());
    }
    // No new configuration (a coordinator's failure simulated in place):
    // every transaction in flight is recovered, every region blocked.
    if (cm_.config().id() == config_.load() || !options_.scoped_recovery) {
      return RecoverTransactions(live, cm_.config().id(), [this] { InstallConfig(); }, while_recovering);
    }
    return RecoverRegions(live, cm_.config().id(), ChangedRegions(before, cm_.config()), [this] { InstallConfig(); },
                          while_recovering);
  }

  // The CM's configuration takes effect: region table, configuration id, and
  // at every live participant the configuration with its removed members
  // (as farmd's INSTALL_CONFIG: their LOCKs and ALLOCs are refused and their
  // outcomes dropped once recovery is over).
  void InstallConfig() {
    const cm::Configuration& c = cm_.config();
    for (auto& [id, n] : machines_) {
      if (!n.machine) continue;
      n.machine->participant().InstallConfig(c.id(), {c.failed().begin(), c.failed().end()});
    }
    for (const cm::Region& region : cm_.config().regions()) {
      if (region.lost()) {
        (void)table_.Remove(region.id());
        continue;
      }
      RegionInfo info{region.id(), region.size(), {}};
      for (const cm::Replica& rep : region.replicas()) info.replicas.push_back({rep.machine(), rep.key()});
      (void)table_.Upsert(std::move(info));
    }
    config_.store(cm_.config().id());
    installed_ = cm_.config();
  }

  const LocalClusterOptions options_;
  cm::ConfigState cm_;
  RegionTable table_;
  std::atomic<uint64_t> config_{0};
  cm::Configuration installed_;  // the configuration the machines follow
  std::map<fabric::MachineId, Node> machines_;
  std::map<fabric::MachineId, RestoreReport> restored_;
  RecoveryReport restart_recovery_;
};

}  // namespace dctk::farm::tx

#endif  // DCTK_FARM_TX_LOCAL_CLUSTER_H_
