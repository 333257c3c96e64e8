// farmd_recovery_bench: time from a killed farmd machine to full throughput,
// with real processes: the CM service and 3 machines (shm, 6 regions of
// 4 MiB, 2 copies), and --clients client threads in this process (each a
// FarmClient, its own fabric machine) incrementing a random one of
// --counters counters spread over every region per transaction; a failed
// one (Unavailable / DeadlineExceeded) refreshes the configuration from the
// CM and goes on. After --warm_ms machine 3 is SIGKILLed. Per run: the rate
// in the 500 ms before the kill, the time from the kill until the CM's
// configuration no longer lists machine 3 (failure detection: the lease),
// the time until a 50 ms window (its end) is back to 80% and 100% of the
// rate before, the 10 ms buckets of the second after the kill below 20% of
// it (stalled: failure detection, recovery and whatever stops transactions
// after it), and the live machines or clients the CM removed too (false
// suspicions: the round measured something else). --timeline adds when each
// step happened and the rate per 10 ms bucket. Recovery kinds alternate in
// one run: per region (farmd's) and blocking (the CM's --blocking_recovery:
// every region stops), the baseline; with --compare_acks instead per region
// with the CM waiting for the clients' acknowledgements of the new
// configuration (farmd's) and without (--await_client_acks=false), the
// baseline.
//
//   bazel build -c opt //farm/server:farmd_recovery_bench
//   (cd bazel-bin/farm/server/farmd_recovery_bench.runfiles/dctk && ../../farmd_recovery_bench
//   --lease_ms=300)
#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "farm/client/farm_client.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/server/counters.h"
#include "farm/server/farmd_process.h"

ABSL_FLAG(int, rounds, 3, "rounds of each recovery kind (alternating)");
ABSL_FLAG(int, lease_ms, 300, "the machines' lease (failure detection)");
ABSL_FLAG(int, clients, 2, "client threads, each its own FarmClient");
ABSL_FLAG(int, counters, 60, "counters, spread round-robin over the regions");
ABSL_FLAG(int, warm_ms, 1500, "run this long before the kill");
ABSL_FLAG(int, after_ms, 2500, "run this long after the kill");
ABSL_FLAG(int, rpc_timeout_ms, 200, "clients give up on a message after this long");
ABSL_FLAG(bool, compare_acks, false,
          "alternate per-region recovery with and without the CM waiting for the clients to "
          "acknowledge the new "
          "configuration (instead of per region vs blocking)");
ABSL_FLAG(bool, timeline, false,
          "per round, also print when each step happened (ms after the kill) and the rate per 10 "
          "ms bucket");

namespace dctk::farm::server {
namespace {

using ShmClient = client::FarmClient<fabric::ShmFabric>;
constexpr absl::Duration kBucket = absl::Milliseconds(10);

struct Round {
  double before_per_s = 0;
  double removed_ms = -1;  // kill -> the CM's configuration without machine 3
  double to80_ms = -1, to100_ms = -1;
  int live_removed = 0;   // live machines and clients the CM removed too
  double stalled_ms = 0;  // 10 ms buckets in the second after the kill below 20% of the rate before
  // --timeline: ms after the kill (-1: not seen).
  double backups_ms = -1;               // the CM's configuration gives the regions new backups
  double replicated_ms = -1;            // every region has two complete copies again
  std::vector<double> learned_ms;       // per client: follows a configuration without machine 3
  std::vector<double> first_commit_ms;  // per client: first commit after that
  std::vector<double> bucket_pct;       // 10 ms buckets from the kill: % of the rate before
};

absl::StatusOr<std::unique_ptr<ShmClient>> Connect(const FarmdCluster& cluster, fabric::MachineId id) {
  client::FarmClientOptions o;
  o.machine = id;
  o.cm_address = cluster.cm_address();
  o.tx.rpc_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_rpc_timeout_ms));
  o.tx.outcome_timeout = absl::Seconds(20);
  absl::StatusOr<std::unique_ptr<fabric::ShmFabric>> f = fabric::ShmFabric::Create({.machine_id = id});
  if (!f.ok()) return f.status();
  return ShmClient::Connect(o, std::move(*f));
}

absl::StatusOr<Round> Run(const std::vector<std::string>& cm_flags) {
  char tmpl[] = "/tmp/farmd-recovery-bench.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp");
  const std::string dir = tmpl;
  // Also when the round fails (after the cluster's processes are gone).
  absl::Cleanup remove_dir = [&dir] { (void)system(absl::StrCat("rm -rf '", dir, "'").c_str()); };
  FarmdCluster cluster(WriteFarmConfig(dir, 3, absl::GetFlag(FLAGS_lease_ms)), dir, "shm");
  cluster.set_cm_flags(cm_flags);
  if (absl::Status s = cluster.Start(3); !s.ok()) return s;
  std::vector<std::unique_ptr<ShmClient>> clients;
  for (int i = 0; i < absl::GetFlag(FLAGS_clients); ++i) {
    absl::StatusOr<std::unique_ptr<ShmClient>> c = Connect(cluster, 100 + i);
    if (!c.ok()) return c.status();
    clients.push_back(std::move(*c));
  }
  const cm::Configuration first = clients[0]->configuration();
  std::vector<GlobalAddress> counters;
  for (int i = 0; i < absl::GetFlag(FLAGS_counters); ++i) {
    absl::StatusOr<GlobalAddress> a =
        server::NewCounter(clients[0]->tx(), first.regions(i % first.regions_size()).id());
    if (!a.ok()) return a.status();
    counters.push_back(*a);
  }
  const absl::Time start = absl::Now();
  const absl::Duration total = absl::Milliseconds(absl::GetFlag(FLAGS_warm_ms) + absl::GetFlag(FLAGS_after_ms));
  std::vector<std::atomic<int>> buckets(total / kBucket + 2);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> removed_in{0};  // the first configuration without machine 3
  absl::Time kill = absl::InfiniteFuture();
  Round out;
  out.learned_ms.assign(clients.size(), -1);
  out.first_commit_ms.assign(clients.size(), -1);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < clients.size(); ++t) {
    threads.emplace_back([&, t] {
      ShmClient& c = *clients[t];
      std::mt19937_64 rng(t + 1);
      while (!stop.load()) {
        const absl::Status s = server::IncrementCounter(c.tx(), counters[rng() % counters.size()]);
        const uint64_t gone = removed_in.load();
        if (s.ok() && gone != 0 && c.config_id() >= gone && out.first_commit_ms[t] < 0) {
          out.first_commit_ms[t] = absl::ToDoubleMilliseconds(absl::Now() - kill);
        }
        if (s.ok()) {
          const size_t b = (absl::Now() - start) / kBucket;
          if (b < buckets.size()) buckets[b].fetch_add(1, std::memory_order_relaxed);
        } else if (absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) {
          (void)c.Refresh();
        }
      }
    });
  }
  absl::SleepFor(absl::Milliseconds(absl::GetFlag(FLAGS_warm_ms)));
  kill = absl::Now();
  cluster.machine(3).Kill(SIGKILL);
  // Beside the farmd processes' log lines (their stderr is this one's).
  if (absl::GetFlag(FLAGS_timeline)) {
    fprintf(stderr, "farmd_recovery_bench: machine 3 killed at %s\n",
            absl::FormatTime("%H:%M:%E6S", kill, absl::LocalTimeZone()).c_str());
  }
  // The CM's configuration every millisecond (and, with --timeline, each
  // client's) until the regions are replicated again.
  const bool timeline = absl::GetFlag(FLAGS_timeline);
  while (absl::Now() < start + total) {
    const double ms = absl::ToDoubleMilliseconds(absl::Now() - kill);
    absl::StatusOr<std::pair<bool, cm::Configuration>> state = cluster.CmState();
    if (state.ok() && out.removed_ms < 0) {
      bool member = false;
      for (const cm::Machine& m : state->second.machines()) member |= m.id() == 3;
      if (!member) {
        out.removed_ms = ms;
        removed_in.store(state->second.id());
      }
    }
    if (!timeline && out.removed_ms >= 0) break;
    if (state.ok() && out.removed_ms >= 0 && out.backups_ms < 0 &&
        state->second.id() > removed_in.load()) {
      out.backups_ms = ms;
    }
    if (state.ok() && out.removed_ms >= 0 && FullyReplicated(state->second, 2)) {
      out.replicated_ms = ms;
      break;
    }
    for (size_t t = 0; t < clients.size(); ++t) {
      if (out.learned_ms[t] < 0 && removed_in.load() != 0 &&
          clients[t]->config_id() >= removed_in.load()) {
        out.learned_ms[t] = ms;
      }
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  absl::SleepFor(start + total - absl::Now());
  stop.store(true);
  for (std::thread& t : threads) t.join();
  // A live machine or client that missed its lease (a false suspicion: the
  // round measured something else).
  absl::StatusOr<std::pair<bool, cm::Configuration>> end = cluster.CmState();
  if (!end.ok()) return end.status();
  out.live_removed = 2 + static_cast<int>(clients.size()) - end->second.machines_size();
  clients.clear();
  cluster.KillAll();

  const size_t k = (kill - start) / kBucket;
  const size_t pre = 50;  // the 500 ms before the kill
  int sum = 0;
  for (size_t b = k - pre; b < k; ++b) sum += buckets[b].load();
  out.before_per_s = sum / (pre * absl::ToDoubleSeconds(kBucket));
  const double per_window = out.before_per_s * 0.05;  // 50 ms windows from the kill on
  for (size_t b = k; b < buckets.size() && b < k + 100; ++b) {
    const double pct =
        100.0 * buckets[b].load() / (out.before_per_s * absl::ToDoubleSeconds(kBucket));
    if (pct < 20) out.stalled_ms += absl::ToDoubleMilliseconds(kBucket);
    if (b < k + 50) out.bucket_pct.push_back(pct);
  }
  for (size_t b = k; b + 5 < buckets.size(); ++b) {
    int w = 0;
    for (size_t i = b; i < b + 5; ++i) w += buckets[i].load();
    const double ms = absl::ToDoubleMilliseconds((start + (b + 5) * kBucket) - kill);
    if (out.to80_ms < 0 && w >= 0.8 * per_window) out.to80_ms = ms;
    if (out.to100_ms < 0 && w >= per_window) out.to100_ms = ms;
  }
  return out;
}

std::string Ms(const std::vector<double>& v) {
  std::string out;
  for (double ms : v) absl::StrAppend(&out, out.empty() ? "" : ",", static_cast<int>(ms));
  return out;
}

// Steps in ms after the kill, then the rate per 10 ms bucket from the kill
// on (% of the rate before).
void PrintTimeline(const Round& r) {
  printf(
      "  removed %.0f, new backups %.0f, replicated %.0f; clients follow it at %s, commit in it at "
      "%s\n",
      r.removed_ms, r.backups_ms, r.replicated_ms, Ms(r.learned_ms).c_str(),
      Ms(r.first_commit_ms).c_str());
  std::string buckets;
  for (double pct : r.bucket_pct) absl::StrAppend(&buckets, " ", static_cast<int>(pct));
  printf("  %% per 10 ms:%s\n", buckets.c_str());
}

int Main() {
  printf("farmd_recovery_bench: CM + 3 farmd machines (shm, 6 regions x 2 copies), %d clients, %d counters, "
         "lease %d ms, rpc timeout %d ms, machine 3 SIGKILLed after %d ms\n",
         absl::GetFlag(FLAGS_clients), absl::GetFlag(FLAGS_counters), absl::GetFlag(FLAGS_lease_ms),
         absl::GetFlag(FLAGS_rpc_timeout_ms), absl::GetFlag(FLAGS_warm_ms));
  printf("%-10s %5s %11s %11s %9s %10s %10s %12s\n", "recovery", "round", "before tx/s",
         "removed ms", "to 80% ms", "to 100% ms", "stalled ms", "live removed");
  struct Kind {
    const char* name;
    std::vector<std::string> cm_flags;
  };
  const std::vector<Kind> kinds =
      absl::GetFlag(FLAGS_compare_acks)
          ? std::vector<Kind>{{"no acks", {"--await_client_acks=false"}}, {"acks", {}}}
          : std::vector<Kind>{{"blocking", {"--blocking_recovery"}}, {"regions", {}}};
  for (int i = 0; i < absl::GetFlag(FLAGS_rounds); ++i) {
    for (const Kind& kind : kinds) {
      absl::StatusOr<Round> r = Run(kind.cm_flags);
      if (!r.ok()) {
        fprintf(stderr, "round %d: %s\n", i, r.status().ToString().c_str());
        return 1;
      }
      printf("%-10s %5d %11.0f %11.0f %9.0f %10.0f %10.0f %12d\n", kind.name, i, r->before_per_s,
             r->removed_ms, r->to80_ms, r->to100_ms, r->stalled_ms, r->live_removed);
      if (absl::GetFlag(FLAGS_timeline)) PrintTimeline(*r);
      fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace dctk::farm::server

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return dctk::farm::server::Main();
}
