// farmd: a FaRM process. With --role=machine it is one storage machine
// (fabric, regions, participant, lease); with --role=cm it is the
// configuration manager service that places regions, watches leases and
// drives recovery. Both read the common cluster file (common/config): the
// group named by --group (replication PRIMARY_BACKUP, f backups) lists the
// machines in order (machine id = position + 1); its nodes' hosts are the
// hosts a machine listens on (net fabric and control), at the ports
// --fabric_port and --control_port (0, the default: any free port; fixed
// ports let a firewall policy name them); timeouts.lease_ms is the lease. The
// CM prints "cm <address>" on stdout once it listens; machines print
// "machine <id> <control address>" (the id of this incarnation: a machine the
// cluster removed while it was down comes back under a new id), and after a
// whole-cluster restart "restored <id> ..." after it (see MachineLines).
//
// Transaction shipping (--ship_workers=N, default 0): the machine runs N
// coordinator threads for transactions clients ship to it (FarmClient::Ship);
// the procedures they may ship are the workloads' (farm/workload:
// kShardTransfer, kTatpTx).
//
// Fault injection (tests): --recovery_hold_file (role=cm) holds each
// per-region recovery open until a file exists; --fault_signals (role=machine)
// makes SIGUSR1 stall the participant (a slow machine) and SIGUSR2 resume it;
// --crash_after=STEP:FILE (role=machine) kills the machine between handling a
// commit-protocol message and replying to it, once FILE names it;
// --ship_crash_at kills a ship worker's machine before a COMMIT-PRIMARY.
//
// Files (--txlog_dir, --checkpoint_dir): a machine restarted with the same
// directory either restores its regions from its checkpoint + log suffix
// (the CM is bootstrapping: the whole cluster restarted) or deletes them and
// joins fresh (the running cluster removed it); farm/README.md, "Restart".
//
//   farmd --config=cluster.conf --role=cm --group=farm --regions=6 --region_mb=16
//   farmd --config=cluster.conf --role=machine --name=m1 --cm=127.0.0.1:PORT --fabric=shm \
//         --txlog_dir=/var/farm [--checkpoint_every_kb=65536]
//   farmd --config=cluster.conf --role=machine --name=farm0 --cm=10.88.0.2:7101 --fabric=net \
//         --fabric_port=7100 --control_port=7101
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/config/cluster_config.h"
#include "farm/client/ship.h"
#include "farm/fabric/net_fabric.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/server/cm_service.h"
#include "farm/server/machine_service.h"
#include "farm/workload/shard_bank.h"
#include "farm/workload/tatp_ship.h"
#include "glog/logging.h"

ABSL_FLAG(std::string, config, "", "common cluster config file (dctk.config.Cluster text proto)");
ABSL_FLAG(std::string, role, "machine", "machine | cm");
ABSL_FLAG(std::string, group, "farm", "the PRIMARY_BACKUP replica group listing the FaRM machines");
ABSL_FLAG(std::string, name, "", "this machine's node name (role=machine)");
ABSL_FLAG(std::string, cm, "", "the CM service's control address host:port (role=machine)");
ABSL_FLAG(std::string, cm_host, "127.0.0.1", "host the CM listens on (role=cm)");
ABSL_FLAG(std::string, fabric, "shm", "shm | net");
ABSL_FLAG(int, shm_region_slots, dctk::farm::fabric::ShmFabric::kSlots,
          "regions (hosted regions, ring memory) a machine's shm fabric holds registered at once, "
          "at most 4096 (tests: a small one shows deregistered keys' slots are reused)");
ABSL_FLAG(int, fabric_port, 0, "port the net fabric listens on (role=machine); 0: any free port");
ABSL_FLAG(int, control_port, 0, "port the control server listens on (role=machine); 0: any free port");
ABSL_FLAG(int, replicas, 0, "copies of each region (role=cm); 0: the group's f + 1");
ABSL_FLAG(int, regions, 6, "regions to create (role=cm)");
ABSL_FLAG(int, region_mb, 16, "region size in MiB (role=cm)");
ABSL_FLAG(std::string, txlog_dir, "",
          "data directory (role=machine): the transaction log <name>.txlog.<LSN>, and the checkpoint and state "
          "file unless --checkpoint_dir says otherwise; empty: no files (a restarted machine always starts fresh)");
ABSL_FLAG(std::string, checkpoint_dir, "",
          "directory for <name>.ckpt (the checkpoint) and <name>.state (machine id, last configuration); "
          "empty: --txlog_dir");
ABSL_FLAG(int64_t, checkpoint_every_kb, 64 << 10,
          "checkpoint after this many KiB of log (the log before it is deleted, so restart replays "
          "at most this "
          "much); 0: none (the log is never trimmed)");
ABSL_FLAG(int64_t, log_segment_kb, 4 << 10, "transaction log segment size in KiB (the unit the log is trimmed by)");
ABSL_FLAG(int, ship_workers, 0,
          "threads running the transactions clients ship to this machine (role=machine); 0: none");
ABSL_FLAG(int, ship_rpc_timeout_ms, 2000, "a ship worker's coordinator gives up on a message after this long");
ABSL_FLAG(std::string, ship_crash_at, "",
          "fault injection (tests): NAME:N makes machine NAME SIGKILL itself just before the COMMIT-PRIMARY of the "
          "N-th shipped transaction it coordinates (every backup has logged it: recovery commits it)");
ABSL_FLAG(std::string, crash_after, "",
          "fault injection (tests, role=machine): STEP:FILE (STEP one of LOCK, COMMIT-BACKUP, "
          "COMMIT-PRIMARY, TRUNCATE) makes the machine SIGKILL itself right after handling a STEP "
          "message (its record logged, its locks taken or writes applied), before its reply is "
          "sent, once FILE exists and names this machine (--name) on its first line");
ABSL_FLAG(std::string, recovery_hold_file, "",
          "fault injection (tests, role=cm): a per-region recovery prints \"recovering <configuration> "
          "regions=<ids>\" once the machines follow the new configuration, and holds the recovering regions "
          "stopped until this file exists (at most 60 s)");
ABSL_FLAG(bool, blocking_recovery, false,
          "role=cm: every recovery stops every region (the baseline of farmd_recovery_bench); default: only the "
          "regions whose replicas changed");
ABSL_FLAG(bool, await_client_acks, true,
          "role=cm: resume a region whose primary changed only once every client follows the new "
          "configuration "
          "or its lease ran out (false: at once, farmd_recovery_bench's baseline)");
ABSL_FLAG(bool, fault_signals, false,
          "fault injection (tests, role=machine): SIGUSR1 stalls the machine's participant (it answers no protocol "
          "message, its lease is still renewed: a slow machine), SIGUSR2 lets it serve again");
ABSL_FLAG(bool, fsync, false, "fdatasync every log record, checkpoint and state file before relying on it");

namespace {

using dctk::config::ClusterConfig;
using namespace dctk::farm;

// SIGTERM / SIGINT (and the fault signals SIGUSR1 / SIGUSR2) are blocked in
// every thread (BlockStopSignals, before any thread starts) and taken by
// sigwait here: a handler could run on any thread and leave the main thread
// in pause() for good.
sigset_t WaitedSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  return set;
}

void BlockStopSignals() {
  const sigset_t set = WaitedSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

// Until SIGTERM or SIGINT; `on_fault(stall)` for SIGUSR1 (true) / SIGUSR2.
void WaitForSignal(const std::function<void(bool)>& on_fault = nullptr) {
  const sigset_t set = WaitedSignals();
  while (true) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGTERM || sig == SIGINT) return;
    if (on_fault) {
      on_fault(sig == SIGUSR1);
    } else {
      LOG(WARNING) << "farmd: signal " << sig << " ignored (no --fault_signals)";
    }
  }
}

std::string HostOf(const dctk::transport::Address& a) {
  std::vector<std::string> parts = absl::StrSplit(a.ToString(), ':');
  return parts.empty() ? "127.0.0.1" : parts[0];
}

// "host" (any free port) or "host:port".
std::string Listen(const std::string& host, int port) {
  return port == 0 ? host : absl::StrCat(host, ":", port);
}

int RunCm(const ClusterConfig& c, const ClusterConfig::Group& g) {
  server::CmServiceOptions o;
  o.replicas = static_cast<uint32_t>(absl::GetFlag(FLAGS_replicas) > 0 ? absl::GetFlag(FLAGS_replicas) : g.f + 1);
  o.region_size = uint64_t(absl::GetFlag(FLAGS_region_mb)) << 20;
  o.regions = absl::GetFlag(FLAGS_regions);
  o.lease_ms = absl::ToInt64Milliseconds(c.lease());
  for (size_t i = 0; i < g.members.size(); ++i) o.expected_machines.push_back(static_cast<uint32_t>(i + 1));
  o.blocking_recovery = absl::GetFlag(FLAGS_blocking_recovery);
  o.await_client_acks = absl::GetFlag(FLAGS_await_client_acks);
  if (const std::string hold = absl::GetFlag(FLAGS_recovery_hold_file); !hold.empty()) {
    o.while_recovering = [hold](const cm::Configuration& c, const std::vector<uint32_t>& recovering) {
      printf("recovering %lu regions=%s\n", static_cast<unsigned long>(c.id()), absl::StrJoin(recovering, ",").c_str());
      fflush(stdout);
      const absl::Time deadline = absl::Now() + absl::Seconds(60);
      while (access(hold.c_str(), F_OK) != 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
      LOG_IF(WARNING, access(hold.c_str(), F_OK) != 0) << "CM: --recovery_hold_file " << hold << " did not appear "
                                                       << "within 60 s; recovery goes on";
    };
  }
  // Every CM thread (started below, inheriting it) takes lease renewals or
  // expires leases: FaRM's high-priority lease manager.
  server::PrioritizeLeaseThread("CM");
  server::CmService cm(o);
  absl::Status s = cm.Start(absl::GetFlag(FLAGS_cm_host));
  if (!s.ok()) {
    LOG(ERROR) << s;
    return 1;
  }
  printf("cm %s\n", cm.address().c_str());
  fflush(stdout);
  WaitForSignal();
  return 0;
}

// A machine's stdout: "machine <id> <control address>" once it joined, then
// "restored <id> regions=N checkpoint_lsn=L pages=P replayed=R pending=T read_ms=X restore_ms=Y"
// once a whole-cluster restart restored it. The CM restores as soon as the
// last expected machine joined, so that machine's RESTORE handler may run
// before Start returned to print the "machine" line: the "restored" line then
// waits here and follows it (a test reads the lines in this order).
class MachineLines {
 public:
  void Joined(fabric::MachineId id, const std::string& control) {
    absl::MutexLock l(&mu_);
    printf("machine %u %s\n", id, control.c_str());
    if (!restored_.empty()) fputs(restored_.c_str(), stdout);
    fflush(stdout);
    joined_ = true;
  }
  void Restored(fabric::MachineId id, const server::RestoreReply& r) {
    const std::string line = absl::StrFormat(
        "restored %u regions=%d checkpoint_lsn=%u pages=%u replayed=%u pending=%u read_ms=%.1f "
        "restore_ms=%.1f\n",
        id, r.keys_size(), r.checkpoint_lsn(), r.pages(), r.replayed(), r.pending(), r.read_ms(),
        r.restore_ms());
    absl::MutexLock l(&mu_);
    if (!joined_) {
      restored_ = line;
      return;
    }
    fputs(line.c_str(), stdout);
    fflush(stdout);
  }

 private:
  absl::Mutex mu_;
  bool joined_ ABSL_GUARDED_BY(mu_) = false;
  std::string restored_ ABSL_GUARDED_BY(mu_);  // the "restored" line, until the machine joined
};

// --crash_after=STEP:FILE into `o`: armed once FILE's first line is `name`
// (read at each STEP message: tests only).
absl::Status SetCrashAfter(const std::string& flag, const std::string& name,
                           server::MachineServiceOptions* o) {
  const std::vector<std::string> parts =
      absl::StrSplit(absl::string_view(flag), absl::MaxSplits(':', 1));
  const std::pair<const char*, tx::Handler> steps[] = {{"LOCK", tx::kLock},
                                                       {"COMMIT-BACKUP", tx::kCommitBackup},
                                                       {"COMMIT-PRIMARY", tx::kCommitPrimary},
                                                       {"TRUNCATE", tx::kTruncate}};
  for (auto [step, handler] : steps) {
    if (parts.size() != 2 || parts[0] != step || parts[1].empty()) continue;
    o->after_handling = [handler = handler, file = parts[1], name](tx::Handler h) {
      if (h != handler) return;
      std::ifstream f(file);
      std::string armed;
      if (std::getline(f, armed) && armed == name) raise(SIGKILL);
    };
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--crash_after must be STEP:FILE with STEP one of LOCK, COMMIT-BACKUP, "
                   "COMMIT-PRIMARY, TRUNCATE, not '",
                   flag, "'"));
}

template <typename F>
int RunMachine(server::MachineServiceOptions o, typename server::MachineService<F>::FabricFactory make_fabric) {
  auto lines = std::make_shared<MachineLines>();
  o.on_restored = [lines](fabric::MachineId id, const server::RestoreReply& r) {
    lines->Restored(id, r);
  };
  // What clients may ship here.
  auto procedures = std::make_shared<client::ProcedureRegistry<F>>();
  absl::Status registered = workload::RegisterShardBankProcedures(*procedures);
  if (registered.ok()) registered = workload::RegisterTatpProcedures(*procedures);
  CHECK(registered.ok()) << registered;
  auto svc = server::MachineService<F>::Start(o, std::move(make_fabric), procedures);
  if (!svc.ok()) {
    LOG(ERROR) << "machine " << o.id << ": " << svc.status();
    fprintf(stderr, "farmd: machine %s: %s\n", absl::GetFlag(FLAGS_name).c_str(), svc.status().ToString().c_str());
    return 1;
  }
  lines->Joined((*svc)->id(), (*svc)->control_address());
  std::function<void(bool)> on_fault;
  if (absl::GetFlag(FLAGS_fault_signals)) {
    server::MachineService<F>* machine = svc->get();
    on_fault = [machine](bool stall) {
      machine->SetStalled(stall);
      printf("fault %u %s\n", machine->id(), stall ? "stalled" : "serving");
      fflush(stdout);
    };
  }
  WaitForSignal(on_fault);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  BlockStopSignals();
  absl::ParseCommandLine(argc, argv);
  FLAGS_logtostderr = true;  // a daemon: its supervisor keeps stderr
  google::InitGoogleLogging(argv[0]);
  absl::StatusOr<ClusterConfig> c = ClusterConfig::Load(absl::GetFlag(FLAGS_config));
  if (!c.ok()) {
    fprintf(stderr, "farmd: %s\n", c.status().ToString().c_str());
    return 2;
  }
  const ClusterConfig::Group* g = c->FindGroup(absl::GetFlag(FLAGS_group));
  if (g == nullptr || g->replication != dctk::config::ReplicaGroup::PRIMARY_BACKUP) {
    fprintf(stderr, "farmd: %s: no PRIMARY_BACKUP group '%s'\n", absl::GetFlag(FLAGS_config).c_str(),
            absl::GetFlag(FLAGS_group).c_str());
    return 2;
  }
  if (absl::GetFlag(FLAGS_role) == "cm") return RunCm(*c, *g);
  if (absl::GetFlag(FLAGS_role) != "machine") {
    fprintf(stderr, "farmd: --role must be machine or cm\n");
    return 2;
  }
  server::MachineServiceOptions o;
  o.slots = static_cast<uint32_t>(g->members.size());
  for (size_t i = 0; i < g->members.size(); ++i) {
    if (g->members[i] == absl::GetFlag(FLAGS_name)) {
      o.id = static_cast<uint32_t>(i + 1);
      o.control_host = Listen(HostOf(g->addresses[i]), absl::GetFlag(FLAGS_control_port));
    }
  }
  if (o.id == 0) {
    fprintf(stderr, "farmd: --name=%s is not a member of group '%s'\n", absl::GetFlag(FLAGS_name).c_str(),
            g->name.c_str());
    return 2;
  }
  if (absl::GetFlag(FLAGS_cm).empty()) {
    fprintf(stderr, "farmd: --cm (the CM service's address) is required for role=machine\n");
    return 2;
  }
  for (int port : {absl::GetFlag(FLAGS_fabric_port), absl::GetFlag(FLAGS_control_port)}) {
    if (port < 0 || port > 65535) {
      fprintf(stderr, "farmd: port %d out of range (--fabric_port / --control_port)\n", port);
      return 2;
    }
  }
  o.cm_address = absl::GetFlag(FLAGS_cm);
  const std::string name = absl::GetFlag(FLAGS_name);
  if (!absl::GetFlag(FLAGS_txlog_dir).empty()) {
    const std::string data = absl::GetFlag(FLAGS_txlog_dir);
    const std::string ckpt = absl::GetFlag(FLAGS_checkpoint_dir).empty() ? data : absl::GetFlag(FLAGS_checkpoint_dir);
    o.files = {absl::StrCat(data, "/", name, ".txlog"), absl::StrCat(ckpt, "/", name, ".ckpt"),
               absl::StrCat(ckpt, "/", name, ".state")};
  }
  if (absl::GetFlag(FLAGS_checkpoint_every_kb) < 0 || absl::GetFlag(FLAGS_log_segment_kb) <= 0) {
    fprintf(stderr, "farmd: --checkpoint_every_kb must be >= 0 and --log_segment_kb > 0\n");
    return 2;
  }
  o.checkpoint_every_log_bytes = uint64_t(absl::GetFlag(FLAGS_checkpoint_every_kb)) << 10;
  o.log_segment_bytes = uint64_t(absl::GetFlag(FLAGS_log_segment_kb)) << 10;
  o.fsync = absl::GetFlag(FLAGS_fsync) ? tx::FsyncPolicy::kEveryRecord : tx::FsyncPolicy::kNever;
  if (absl::GetFlag(FLAGS_ship_workers) < 0 || absl::GetFlag(FLAGS_ship_workers) > 64) {
    fprintf(stderr, "farmd: --ship_workers must be 0..64\n");
    return 2;
  }
  o.ship_workers = absl::GetFlag(FLAGS_ship_workers);
  o.ship_tx.rpc_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_ship_rpc_timeout_ms));
  if (const std::string crash = absl::GetFlag(FLAGS_ship_crash_at); !crash.empty()) {
    std::vector<std::string> parts = absl::StrSplit(crash, ':');
    int64_t n = 0;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &n) || n <= 0) {
      fprintf(stderr, "farmd: --ship_crash_at must be NAME:N (N > 0), not '%s'\n", crash.c_str());
      return 2;
    }
    if (parts[0] == absl::GetFlag(FLAGS_name)) {
      auto seen = std::make_shared<std::atomic<int64_t>>(0);
      o.ship_tx.crash_before = [seen, n](tx::CommitStep step, fabric::MachineId) {
        if (step == tx::CommitStep::kCommitPrimary && seen->fetch_add(1) + 1 == n) raise(SIGKILL);
        return false;
      };
    }
  }
  if (const std::string crash = absl::GetFlag(FLAGS_crash_after); !crash.empty()) {
    if (absl::Status s = SetCrashAfter(crash, name, &o); !s.ok()) {
      fprintf(stderr, "farmd: %s\n", std::string(s.message()).c_str());
      return 2;
    }
  }
  const std::string kind = absl::GetFlag(FLAGS_fabric);
  if (kind == "shm") {
    const auto slots = static_cast<uint32_t>(absl::GetFlag(FLAGS_shm_region_slots));
    return RunMachine<fabric::ShmFabric>(o, [slots](fabric::MachineId id) {
      return fabric::ShmFabric::Create({.machine_id = id, .max_regions = slots});
    });
  }
  if (kind == "net") {
    const std::string listen = Listen(HostOf(g->addresses[o.id - 1]), absl::GetFlag(FLAGS_fabric_port));
    return RunMachine<fabric::NetFabric>(
        o, [listen](fabric::MachineId id) { return fabric::NetFabric::Create({.machine_id = id, .listen_host = listen}); });
  }
  fprintf(stderr, "farmd: --fabric must be shm or net\n");
  return 2;
}
