// restart_bench: how long a cluster takes to restart from its files as its
// transaction log grows, with and without periodic checkpoints, in the same
// run.
//
// For each length: 3 machines (shm fabric, 2 copies per region, logs on
// files in --dir), 64 accounts, then that many bank transfers from one
// coordinator. The cluster is destroyed and restarted from its files
// (LocalCluster restart: each machine loads its checkpoint, if any, replays
// its log after it, then recovery decides what was in flight), timed. Three
// configurations per length: no checkpoints (the whole log replays),
// checkpoints every --checkpoint_kb of log (a bounded suffix replays), and a
// fresh cluster with no files (the baseline: fabric, regions, rings).
//
//   bazel build -c opt //farm/tx:restart_bench
//   bazel-bin/farm/tx/restart_bench --transfers=2000,8000,32000 --dir=/tmp/restart-bench
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "farm/tx/test_util.h"

ABSL_FLAG(std::string, transfers, "2000,8000,32000", "log lengths to measure, in bank transfers (comma-separated)");
ABSL_FLAG(int, checkpoint_kb, 256, "checkpoint every this many KiB of log (the checkpointed runs)");
ABSL_FLAG(std::string, dir, "/tmp/restart-bench", "directory for the logs and checkpoints (emptied)");

namespace dctk::farm::tx {
namespace {

constexpr int kAccounts = 64;

struct Result {
  absl::Duration restart;
  uint64_t log_bytes = 0;  // retained on files at the crash, all machines
  uint64_t replayed = 0;
  uint64_t pages = 0;
};

bool Prepare(const std::string& dir) { return system(("rm -rf " + dir + " && mkdir -p " + dir).c_str()) == 0; }

// restart false: the baseline, a fresh cluster with no files.
absl::StatusOr<Result> Measure(int transfers, uint64_t checkpoint_bytes, bool restart) {
  const std::string dir = absl::GetFlag(FLAGS_dir);
  if (!Prepare(dir)) return absl::InternalError("cannot prepare " + dir);
  LocalClusterOptions o;
  o.log_dir = dir;
  o.checkpoint_log_bytes = checkpoint_bytes;
  o.log_segment_bytes = 64 << 10;
  Result result;
  {
    auto c = MakeShmCluster(o);
    std::vector<GlobalAddress> accounts;
    {
      auto tx = c->client(1).Begin();
      std::vector<RegionInfo> regions = c->table().All();
      for (int i = 0; i < kAccounts; ++i) {
        absl::StatusOr<GlobalAddress> a = tx.Alloc(8, GlobalAddress(regions[i % regions.size()].id, 0));
        if (!a.ok()) return a.status();
        if (absl::Status s = tx.Write(*a, U64(1000)); !s.ok()) return s;
        accounts.push_back(*a);
      }
      if (absl::Status s = tx.Commit(); !s.ok()) return s;
    }
    for (int i = 0; i < transfers;) {
      auto tx = c->client(1).Begin();
      const GlobalAddress from = accounts[(i * 7) % kAccounts], to = accounts[(i * 7 + 3) % kAccounts];
      absl::StatusOr<std::string> a = tx.Read(from, 8), b = tx.Read(to, 8);
      if (!a.ok() || !b.ok()) return absl::InternalError("read failed");
      (void)tx.Write(from, U64(AsU64(*a) - 1));
      (void)tx.Write(to, U64(AsU64(*b) + 1));
      absl::Status s = tx.Commit();
      if (s.ok()) ++i;
      else if (!absl::IsAborted(s)) return s;
    }
    for (fabric::MachineId m : {1, 2, 3}) result.log_bytes += c->machine(m).participant().retained_log_bytes();
  }
  o.restart = restart;
  if (!restart) {
    o.log_dir.clear();
    o.checkpoint_log_bytes = 0;
  }
  const absl::Time start = absl::Now();
  auto c = ShmCluster::Create(o, [](fabric::MachineId id) { return fabric::ShmFabric::Create({.machine_id = id}); });
  result.restart = absl::Now() - start;
  if (!c.ok()) return c.status();
  for (const auto& [m, r] : (*c)->restored()) {
    result.replayed += r.replayed;
    result.pages += r.pages;
  }
  return result;
}

int Main() {
  printf("# restart of 3 machines (shm) after N bank transfers; checkpoints every %d KiB when on\n",
         absl::GetFlag(FLAGS_checkpoint_kb));
  printf("%-10s %-22s %12s %12s %12s %12s\n", "transfers", "restart from", "log_KiB", "replayed", "ckpt_pages",
         "restart_ms");
  for (absl::string_view n : absl::StrSplit(absl::GetFlag(FLAGS_transfers), ',')) {
    int transfers = 0;
    if (!absl::SimpleAtoi(n, &transfers)) {
      fprintf(stderr, "bad --transfers entry %s\n", std::string(n).c_str());
      return 2;
    }
    const struct {
      const char* name;
      uint64_t checkpoint_bytes;
      bool restart;
    } kinds[] = {{"log only", 0, true},
                 {"checkpoint + suffix", uint64_t(absl::GetFlag(FLAGS_checkpoint_kb)) << 10, true},
                 {"nothing (fresh, base)", 0, false}};
    for (const auto& k : kinds) {
      absl::StatusOr<Result> r = Measure(k.restart ? transfers : 0, k.checkpoint_bytes, k.restart);
      if (!r.ok()) {
        fprintf(stderr, "%s: %s\n", k.name, r.status().ToString().c_str());
        return 1;
      }
      printf("%-10d %-22s %12.0f %12lu %12lu %12.1f\n", transfers, k.name, r->log_bytes / 1024.0, r->replayed,
             r->pages, absl::ToDoubleMilliseconds(r->restart));
    }
  }
  (void)Prepare(absl::GetFlag(FLAGS_dir));
  return 0;
}

}  // namespace
}  // namespace dctk::farm::tx

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return dctk::farm::tx::Main();
}
