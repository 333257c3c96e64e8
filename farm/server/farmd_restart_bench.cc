// farmd_restart_bench: how long a whole-cluster restart of farmd processes
// takes, restoring from the whole log vs from a checkpoint + log suffix, as
// the history grows. For each --transfers count and each mode, a fresh
// cluster (CM + 3 machines, shm, 6 regions of 4 MiB, 2 copies) runs that many
// bank transfers from one client, then every process is killed (SIGKILL) and
// restarted with the same files. Printed per run: the cluster's first start
// (nothing to restore: the baseline), the restart (processes launched to CM
// ready), and per machine the log records replayed and the time to read
// (at start) and apply (at the CM's RESTORE) its files.
//
//   bazel run -c opt //farm/server:farmd_restart_bench -- --transfers=2000,8000,32000 --dir=/tmp/frb
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "farm/client/farm_client.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/server/farmd_process.h"
#include "farm/workload/bank.h"

ABSL_FLAG(std::vector<std::string>, transfers, std::vector<std::string>({"2000", "8000", "32000"}),
          "transfers committed before each crash");
ABSL_FLAG(std::string, dir, "/tmp/farmd-restart-bench", "scratch directory (emptied per run)");
ABSL_FLAG(int, checkpoint_every_kb, 256, "the checkpointing mode's interval");

namespace dctk::farm::server {
namespace {

using ShmClient = client::FarmClient<fabric::ShmFabric>;

absl::Duration UntilReady(const FarmdCluster& cluster) {
  const absl::Time start = absl::Now();
  while (true) {
    absl::StatusOr<std::pair<bool, cm::Configuration>> s = cluster.CmState();
    if (s.ok() && s->first) return absl::Now() - start;
    absl::SleepFor(absl::Milliseconds(1));
  }
}

struct Run {
  double start_ms = 0, restart_ms = 0;
  std::vector<std::map<std::string, double>> machines;
};

absl::StatusOr<Run> Once(const std::string& dir, uint64_t transfers, int checkpoint_kb) {
  (void)system(absl::StrCat("rm -rf '", dir, "'").c_str());
  if (mkdir(dir.c_str(), 0755) != 0) return absl::InternalError(absl::StrCat("mkdir ", dir));
  FarmdCluster cluster(WriteFarmConfig(dir), dir, "shm", {absl::StrCat("--checkpoint_every_kb=", checkpoint_kb)});
  Run run;
  absl::Time t = absl::Now();
  if (absl::Status s = cluster.Start(3); !s.ok()) return s;
  run.start_ms = absl::ToDoubleMilliseconds(absl::Now() - t + UntilReady(cluster));
  {
    client::FarmClientOptions o;
    o.machine = 100;
    o.cm_address = cluster.cm_address();
    auto c = ShmClient::Connect(o, *fabric::ShmFabric::Create({.machine_id = 100}));
    if (!c.ok()) return c.status();
    absl::StatusOr<workload::Bank> bank = workload::Bank::Create((*c)->tx(), 64, 1000);
    if (!bank.ok()) return bank.status();
    std::mt19937_64 rng(1);
    workload::Bank::Ledger ledger;
    while (ledger.committed < transfers) {
      absl::Status s = bank->Transfer((*c)->tx(), rng, &ledger);
      if (!s.ok() && !absl::IsAborted(s)) return s;
    }
  }
  cluster.KillAll();
  t = absl::Now();
  if (absl::Status s = cluster.RestartCm(); !s.ok()) return s;
  for (int slot = 1; slot <= 3; ++slot) {
    if (absl::StatusOr<uint32_t> id = cluster.RestartMachine(slot); !id.ok()) return id.status();
  }
  run.restart_ms = absl::ToDoubleMilliseconds(absl::Now() - t + UntilReady(cluster));
  for (int slot = 1; slot <= 3; ++slot) {
    std::map<std::string, double> m;
    std::vector<std::string> words = absl::StrSplit(cluster.machine(slot).ReadLine().value_or(""), ' ');
    for (const std::string& w : words) {
      std::vector<std::string> kv = absl::StrSplit(w, '=');
      double v = 0;
      if (kv.size() == 2 && absl::SimpleAtod(kv[1], &v)) m[kv[0]] = v;
    }
    run.machines.push_back(std::move(m));
  }
  cluster.KillAll();
  return run;
}

int Main() {
  printf("%10s  %-22s %10s %10s %12s %10s %10s %12s\n", "transfers", "restart from", "start ms", "restart ms",
         "replayed", "ckpt pages", "read ms", "restore ms");
  for (const std::string& t : absl::GetFlag(FLAGS_transfers)) {
    uint64_t n = 0;
    if (!absl::SimpleAtoi(t, &n)) {
      fprintf(stderr, "farmd_restart_bench: --transfers: '%s' is not a count\n", t.c_str());
      return 2;
    }
    for (int kb : {0, absl::GetFlag(FLAGS_checkpoint_every_kb)}) {
      absl::StatusOr<Run> r = Once(absl::GetFlag(FLAGS_dir), n, kb);
      if (!r.ok()) {
        fprintf(stderr, "farmd_restart_bench: %s\n", r.status().ToString().c_str());
        return 1;
      }
      double replayed = 0, pages = 0, read = 0, restore = 0;
      for (auto& m : r->machines) {
        replayed += m["replayed"];
        pages += m["pages"];
        read = std::max(read, m["read_ms"]);
        restore = std::max(restore, m["restore_ms"]);
      }
      printf("%10lu  %-22s %10.0f %10.0f %12.0f %10.0f %10.1f %12.1f\n", static_cast<unsigned long>(n),
             kb == 0 ? "log only" : absl::StrCat("ckpt every ", kb, " KiB").c_str(), r->start_ms, r->restart_ms,
             replayed, pages, read, restore);
      fflush(stdout);
    }
  }
  (void)system(absl::StrCat("rm -rf '", absl::GetFlag(FLAGS_dir), "'").c_str());
  return 0;
}

}  // namespace
}  // namespace dctk::farm::server

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return dctk::farm::server::Main();
}
