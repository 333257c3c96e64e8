// recovery_bench: time from a killed primary to full throughput, per-region
// recovery (RecoverRegions: only the regions whose replicas changed stop)
// against blocking recovery (RecoverTransactions: every region stops), and
// per-region recovery with coordinators that stop waiting for a message once
// the configuration changes (TxClientOptions::give_up_on_new_config), in the
// same run, the three kinds alternating.
//
// Each round: 3 machines in one process (shm fabric), --regions regions with
// 2 copies, --counters 8-byte counters spread over every region, and
// --threads coordinator threads on machines 1 and 2 each incrementing a
// random counter per transaction. After --warm_ms machine 3 (a primary of
// some regions, a backup of others) is killed and recovery runs at once (no
// failure detection: that is the lease); --hold_ms keeps recovery open after
// its decisions, standing for the control-plane round trips of farmd's CM
// (it takes 6-62 ms there, farm/README.md). Commits are counted in 10 ms
// buckets. Per round: the rate before the kill, the rate while recovery was
// held open (its decisions made, not yet resolved: blocking recovery commits
// nothing then), recovery's duration from the kill (Kill included), and the
// time from the kill until a 50 ms window is back to 80% and to 100% of the
// rate before.
//
//   bazel build -c opt //farm/tx:recovery_bench
//   bazel-bin/farm/tx/recovery_bench --rounds=5 --hold_ms=30
#include <atomic>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "farm/tx/test_util.h"

ABSL_FLAG(int, rounds, 5, "rounds of each kind (alternating)");
ABSL_FLAG(int, regions, 6, "regions (2 copies each)");
ABSL_FLAG(int, counters, 120, "counters, spread round-robin over the regions");
ABSL_FLAG(int, threads, 4, "coordinator threads (on machines 1 and 2)");
ABSL_FLAG(int, warm_ms, 1000, "run this long before the kill");
ABSL_FLAG(int, after_ms, 1000, "run this long after the kill");
ABSL_FLAG(int, hold_ms, 30, "recovery stays open this long after deciding (farmd's control-plane steps)");
ABSL_FLAG(int, rpc_timeout_ms, 200, "coordinators give up on a message after this long (the dead machine)");

namespace dctk::farm::tx {
namespace {

constexpr absl::Duration kBucket = absl::Milliseconds(10);

struct Round {
  double before_per_s = 0;
  double hold_per_s = 0;  // commits per second while recovery was held open (decided, not resolved)
  double recovery_ms = 0;
  double to80_ms = -1, to100_ms = -1;
  int in_flight = 0;
  int touched = 0;
  uint64_t gave_up = 0;  // calls the coordinators gave up on (give-up kind only)
};

enum class Kind { kBlocking, kRegions, kRegionsGiveUp };
const char* KindName(Kind k) {
  switch (k) {
    case Kind::kBlocking:
      return "blocking";
    case Kind::kRegions:
      return "regions";
    case Kind::kRegionsGiveUp:
      return "give-up";
  }
  return "?";
}

Round Run(Kind kind) {
  LocalClusterOptions o;
  o.regions = absl::GetFlag(FLAGS_regions);
  o.clients_per_machine = (absl::GetFlag(FLAGS_threads) + 1) / 2;
  o.client.rpc_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_rpc_timeout_ms));
  o.client.outcome_timeout = absl::Seconds(10);
  o.client.give_up_on_new_config = kind == Kind::kRegionsGiveUp;
  o.scoped_recovery = kind != Kind::kBlocking;
  auto c = MakeShmCluster(o);
  std::vector<RegionInfo> regions = c->table().All();
  std::vector<GlobalAddress> counters;
  for (int i = 0; i < absl::GetFlag(FLAGS_counters); ++i) {
    auto tx = c->client(1).Begin();
    absl::StatusOr<GlobalAddress> a = tx.Alloc(8, GlobalAddress(regions[i % regions.size()].id, 0));
    if (!a.ok() || !tx.Write(*a, U64(0)).ok() || !tx.Commit().ok()) {
      fprintf(stderr, "setup: %s\n", a.status().ToString().c_str());
      exit(2);
    }
    counters.push_back(*a);
  }
  const absl::Time start = absl::Now();
  const absl::Duration total = absl::Milliseconds(absl::GetFlag(FLAGS_warm_ms) + absl::GetFlag(FLAGS_after_ms));
  std::vector<std::atomic<int>> buckets(total / kBucket + 2);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> commits{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < absl::GetFlag(FLAGS_threads); ++t) {
    threads.emplace_back([&, t] {
      TxClient<fabric::ShmFabric>& client = c->client(1 + t % 2, t / 2);
      std::mt19937_64 rng(t + 1);
      while (!stop.load()) {
        const GlobalAddress a = counters[rng() % counters.size()];
        auto tx = client.Begin();
        absl::StatusOr<std::string> v = tx.Read(a, 8);
        if (!v.ok()) continue;
        if (!tx.Write(a, U64(AsU64(*v) + 1)).ok() || !tx.Commit().ok()) continue;
        commits.fetch_add(1, std::memory_order_relaxed);
        const size_t b = (absl::Now() - start) / kBucket;
        if (b < buckets.size()) buckets[b].fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  absl::SleepFor(absl::Milliseconds(absl::GetFlag(FLAGS_warm_ms)));
  const cm::Configuration before = c->cm().config();
  const absl::Time kill = absl::Now();
  c->Kill(3);
  uint64_t held = 0;
  absl::Duration hold;
  absl::StatusOr<RecoveryReport> r = c->Recover({3}, [&] {
    const uint64_t before_hold = commits.load();
    const absl::Time t = absl::Now();
    absl::SleepFor(absl::Milliseconds(absl::GetFlag(FLAGS_hold_ms)));
    hold = absl::Now() - t;
    held = commits.load() - before_hold;
  });
  const absl::Time recovered = absl::Now();
  if (!r.ok()) {
    fprintf(stderr, "recovery: %s\n", r.status().ToString().c_str());
    exit(1);
  }
  absl::SleepFor(start + total - absl::Now());
  stop.store(true);
  for (std::thread& t : threads) t.join();

  Round out;
  for (int t = 0; t < absl::GetFlag(FLAGS_threads); ++t)
    out.gave_up += c->client(1 + t % 2, t / 2).stats().gave_up;
  out.in_flight = r->in_flight;
  out.touched = static_cast<int>(ChangedRegions(before, c->cm().config()).size());
  out.recovery_ms = absl::ToDoubleMilliseconds(recovered - kill);
  const size_t k = (kill - start) / kBucket;
  const size_t pre = 50;  // the 500 ms before the kill
  int sum = 0;
  for (size_t b = k - pre; b < k; ++b) sum += buckets[b].load();
  out.before_per_s = sum / (pre * absl::ToDoubleSeconds(kBucket));
  out.hold_per_s = held / std::max(1e-6, absl::ToDoubleSeconds(hold));
  // 50 ms windows from the kill on.
  const double per_window = out.before_per_s * 0.05;
  for (size_t b = k; b + 5 < buckets.size(); ++b) {
    int w = 0;
    for (size_t i = b; i < b + 5; ++i) w += buckets[i].load();
    const double ms = absl::ToDoubleMilliseconds((start + (b + 5) * kBucket) - kill);
    if (out.to80_ms < 0 && w >= 0.8 * per_window) out.to80_ms = ms;
    if (out.to100_ms < 0 && w >= per_window) out.to100_ms = ms;
  }
  return out;
}

int Main() {
  printf("recovery_bench: 3 machines, %d regions x 2 copies, %d counters, %d coordinators on machines 1-2, "
         "machine 3 killed after %d ms, recovery held %d ms, rpc timeout %d ms\n",
         absl::GetFlag(FLAGS_regions), absl::GetFlag(FLAGS_counters), absl::GetFlag(FLAGS_threads),
         absl::GetFlag(FLAGS_warm_ms), absl::GetFlag(FLAGS_hold_ms), absl::GetFlag(FLAGS_rpc_timeout_ms));
  printf("%-9s %5s %11s %13s %11s %9s %10s %7s %7s %7s\n", "recovery", "round", "before tx/s",
         "held open tx/s", "recovery ms", "to 80% ms", "to 100% ms", "touched", "in-flight",
         "gave up");
  for (int i = 0; i < absl::GetFlag(FLAGS_rounds); ++i) {
    for (Kind kind : {Kind::kBlocking, Kind::kRegions, Kind::kRegionsGiveUp}) {
      const Round r = Run(kind);
      printf("%-9s %5d %11.0f %13.0f %11.1f %9.0f %10.0f %7d %7d %7lu\n", KindName(kind), i,
             r.before_per_s, r.hold_per_s, r.recovery_ms, r.to80_ms, r.to100_ms, r.touched,
             r.in_flight, static_cast<unsigned long>(r.gave_up));
      fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace dctk::farm::tx

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return dctk::farm::tx::Main();
}
