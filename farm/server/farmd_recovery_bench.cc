// farmd_recovery_bench: time from a killed farmd machine to full throughput,
// with real processes: the CM service and 3 machines (shm, 6 regions of
// 4 MiB, 2 copies), and --clients client threads in this process (each a
// FarmClient, its own fabric machine) incrementing a random one of
// --counters counters spread over every region per transaction; a failed
// one (Unavailable / DeadlineExceeded) refreshes the configuration from the
// CM and goes on. After --warm_ms machine 3 is SIGKILLed. Per run: the rate
// in the 500 ms before the kill, the time from the kill until the CM's
// configuration no longer lists machine 3 (failure detection: the lease),
// and the time until a 50 ms window is back to 80% and 100% of the rate
// before. Recovery kinds alternate in one run: per region (farmd's) and
// blocking (the CM's --blocking_recovery: every region stops), the baseline.
//
//   bazel build -c opt //farm/server:farmd_recovery_bench
//   (cd bazel-bin/farm/server/farmd_recovery_bench.runfiles/dctk && ../../farmd_recovery_bench --lease_ms=300)
#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

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

namespace dctk::farm::server {
namespace {

using ShmClient = client::FarmClient<fabric::ShmFabric>;
constexpr absl::Duration kBucket = absl::Milliseconds(10);

struct Round {
  double before_per_s = 0;
  double removed_ms = -1;  // kill -> the CM's configuration without machine 3
  double to80_ms = -1, to100_ms = -1;
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

absl::StatusOr<Round> Run(bool blocking) {
  char tmpl[] = "/tmp/farmd-recovery-bench.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp");
  const std::string dir = tmpl;
  FarmdCluster cluster(WriteFarmConfig(dir, 3, absl::GetFlag(FLAGS_lease_ms)), dir, "shm");
  if (blocking) cluster.set_cm_flags({"--blocking_recovery"});
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
  std::vector<std::thread> threads;
  for (size_t t = 0; t < clients.size(); ++t) {
    threads.emplace_back([&, t] {
      ShmClient& c = *clients[t];
      std::mt19937_64 rng(t + 1);
      while (!stop.load()) {
        const absl::Status s = server::IncrementCounter(c.tx(), counters[rng() % counters.size()]);
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
  const absl::Time kill = absl::Now();
  cluster.machine(3).Kill(SIGKILL);
  Round out;
  while (absl::Now() < start + total) {
    absl::StatusOr<std::pair<bool, cm::Configuration>> state = cluster.CmState();
    bool member = true;
    if (state.ok()) {
      member = false;
      for (const cm::Machine& m : state->second.machines()) member |= m.id() == 3;
    }
    if (!member) {
      out.removed_ms = absl::ToDoubleMilliseconds(absl::Now() - kill);
      break;
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  absl::SleepFor(start + total - absl::Now());
  stop.store(true);
  for (std::thread& t : threads) t.join();
  clients.clear();
  cluster.KillAll();
  (void)system(absl::StrCat("rm -rf '", dir, "'").c_str());

  const size_t k = (kill - start) / kBucket;
  const size_t pre = 50;  // the 500 ms before the kill
  int sum = 0;
  for (size_t b = k - pre; b < k; ++b) sum += buckets[b].load();
  out.before_per_s = sum / (pre * absl::ToDoubleSeconds(kBucket));
  const double per_window = out.before_per_s * 0.05;  // 50 ms windows from the kill on
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
  printf("farmd_recovery_bench: CM + 3 farmd machines (shm, 6 regions x 2 copies), %d clients, %d counters, "
         "lease %d ms, rpc timeout %d ms, machine 3 SIGKILLed after %d ms\n",
         absl::GetFlag(FLAGS_clients), absl::GetFlag(FLAGS_counters), absl::GetFlag(FLAGS_lease_ms),
         absl::GetFlag(FLAGS_rpc_timeout_ms), absl::GetFlag(FLAGS_warm_ms));
  printf("%-10s %5s %11s %11s %9s %10s\n", "recovery", "round", "before tx/s", "removed ms", "to 80% ms",
         "to 100% ms");
  for (int i = 0; i < absl::GetFlag(FLAGS_rounds); ++i) {
    for (bool blocking : {true, false}) {
      absl::StatusOr<Round> r = Run(blocking);
      if (!r.ok()) {
        fprintf(stderr, "round %d: %s\n", i, r.status().ToString().c_str());
        return 1;
      }
      printf("%-10s %5d %11.0f %11.0f %9.0f %10.0f\n", blocking ? "blocking" : "regions", i, r->before_per_s,
             r->removed_ms, r->to80_ms, r->to100_ms);
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
