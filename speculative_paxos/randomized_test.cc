// Randomized safety test: per seed, a cluster with concurrent closed-loop
// clients runs under a random mix of reordering, drops, duplicates, delay,
// replica crash + restart (state lost) and partitions; then the faults heal.
// Three seeds in four compact their logs every 2-16 committed entries (with
// checkpoints sent in small chunks), so crashes, partitions and log changes
// meet compaction points. Even seeds send datagrams of at most 256-704 bytes
// (ReplicaConfig.max_datagram), so log changes and transfers go in pieces.
// Every seed must finish all operations, give a linearizable KV history, never
// change a committed entry, never fail a merge, and converge. The Fast Paxos
// baseline runs under the same mix (FastPaxosManySeeds, below).
//
// SPAXOS_SEEDS=<n> runs seeds 1..n (default 200); SPAXOS_SEED=<s> runs one.
// A failing seed is printed and reproduces exactly.
#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "speculative_paxos/fast_paxos_group.h"
#include "speculative_paxos/sim_cluster.h"

namespace dctk::spaxos {
namespace {

using transport::SimTransport;
using transport::TypeId;

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  uint64_t n = 0;
  return v != nullptr && absl::SimpleAtoi(v, &n) ? n : fallback;
}

// Runs `run` (returns "" or what went wrong) for seeds 1..SPAXOS_SEEDS, or
// SPAXOS_SEED alone; a failure names the seed to rerun. Returns the number
// of seeds run and failed.
std::pair<size_t, int> RunSeeds(const char* what,
                                const std::function<std::string(uint64_t)>& run) {
  std::vector<uint64_t> seeds;
  if (uint64_t one = EnvOr("SPAXOS_SEED", 0); one != 0) {
    seeds.push_back(one);
  } else {
    for (uint64_t s = 1; s <= EnvOr("SPAXOS_SEEDS", 200); ++s) seeds.push_back(s);
  }
  int failures = 0;
  for (uint64_t seed : seeds) {
    std::string error = run(seed);
    if (!error.empty()) {
      ++failures;
      ADD_FAILURE() << what << "seed " << seed << " (rerun: SPAXOS_SEED=" << seed
                    << "): " << error;
    }
  }
  return {seeds.size(), failures};
}

// Network faults for the first 300 ms (filters 1-4): random reordering of
// requests, drops, duplicates and delay.
void AddNetworkFaults(SimTransport& net) {
  const double reorder = net.RandomUnit() * 0.3;
  const double drop = net.RandomUnit() < 0.5 ? net.RandomUnit() * 0.05 : 0;
  const double dup = net.RandomUnit() < 0.5 ? net.RandomUnit() * 0.1 : 0;
  net.AddFilter(1, net.Reorder(reorder, absl::Microseconds(300),
                               {.type_id = TypeId<Request>()}));
  net.AddFilter(2, net.DropWithProbability(drop));
  net.AddFilter(3, net.Duplicate(dup));
  net.AddFilter(4, net.RandomDelay(absl::ZeroDuration(), absl::Microseconds(100)));
}

// Totals over all seeds, printed so a run shows the faults really happened.
struct Totals {
  uint64_t ops = 0, fast = 0, slow = 0, reconciliations = 0, view_changes = 0, transfers = 0,
           order_repairs = 0, rolled_back = 0, crashes = 0, partitions = 0, checkpoints = 0,
           snapshots_installed = 0;
};

// Runs one seed; returns "" or what went wrong.
std::string RunSeed(uint64_t seed, Totals* totals) {
  SimClusterOptions o;
  o.seed = seed;
  o.num_replicas = seed % 4 == 0 ? 5 : 3;
  o.num_clients = 2 + seed % 3;
  o.multicast = seed % 5 == 0;
  o.shared_endpoint = seed % 3 == 1;
  o.replica.checkpoint_interval = seed % 4 == 3 ? 0 : uint64_t{2} << (seed / 4 % 4);
  o.replica.snapshot_chunk = 48 + static_cast<int>(seed % 7) * 40;
  if (seed % 2 == 0) o.replica.max_datagram = 256 + static_cast<int>(seed / 2 % 8) * 64;
  SimCluster c(o);
  SimTransport& net = c.net();
  const int f = (o.num_replicas - 1) / 2;

  AddNetworkFaults(net);

  // Up to f crash/restart cycles of distinct replicas, and one partition.
  std::vector<int> crashed;
  for (int k = 0; k < f; ++k) {
    if (net.RandomUnit() < 0.6) {
      int victim = static_cast<int>(net.RandomBelow(o.num_replicas));
      bool dup_victim = false;
      for (int v : crashed) dup_victim |= v == victim;
      if (dup_victim) continue;
      crashed.push_back(victim);
      ++totals->crashes;
      const absl::Duration at = absl::Milliseconds(net.RandomBelow(200));
      const absl::Duration down = absl::Milliseconds(1 + net.RandomBelow(100));
      net.Timer(at, [&c, victim] { c.Crash(victim); });
      net.Timer(at + down, [&c, victim] { c.Restart(victim); });
    }
  }
  if (net.RandomUnit() < 0.5) {
    ++totals->partitions;
    const int isolated = static_cast<int>(net.RandomBelow(o.num_replicas));
    std::vector<transport::Address> rest;
    for (int i = 0; i < o.num_replicas; ++i) {
      if (i != isolated) rest.push_back(c.replica_address(i));
    }
    if (net.RandomUnit() < 0.5) {  // cut off from clients as well
      for (int j = 0; j < o.num_clients; ++j) rest.push_back(c.client(j).address());
    }
    const absl::Duration at = absl::Milliseconds(net.RandomBelow(200));
    const absl::Duration len = absl::Milliseconds(1 + net.RandomBelow(150));
    net.Timer(at, [&net, &c, isolated, rest] {
      net.AddFilter(5, net.Partition({c.replica_address(isolated)}, rest));
    });
    net.Timer(at + len, [&net] { net.RemoveFilter(5); });
  }
  net.Timer(absl::Milliseconds(300), [&net] {
    for (int id = 1; id <= 5; ++id) net.RemoveFilter(id);
  });

  c.StartClosedLoop(/*ops_per_client=*/15, /*num_keys=*/4);
  if (!c.RunUntilIdleClients(absl::Seconds(30))) {
    return "clients did not finish within 30 s of virtual time";
  }
  // Past every scheduled fault, then all replicas must agree.
  net.RunUntil([&] { return net.Now() > SimTransport::kEpoch + absl::Milliseconds(400); },
               absl::Seconds(1));
  if (!net.RunUntil([&] { return c.Converged(); }, absl::Seconds(10))) {
    return "replicas did not converge";
  }
  if (absl::Status s = c.CheckCommitted(); !s.ok()) return s.ToString();
  if (!c.commit_violation().ok()) return c.commit_violation().ToString();
  for (int i = 0; i < o.num_replicas; ++i) {
    const uint64_t failed = c.replica(i)->stats().rejected[static_cast<int>(Reject::kMergeFailed)];
    if (failed > 0) return absl::StrCat("replica ", i, " failed ", failed, " merges");
  }
  if (absl::Status s = CheckLinearizable(c.history()); !s.ok()) return s.ToString();
  if (c.max_replica_datagram() > static_cast<size_t>(o.replica.max_datagram)) {
    return absl::StrCat("a replica sent a datagram of ", c.max_replica_datagram(),
                        " bytes, over the budget of ", o.replica.max_datagram);
  }
  for (int j = 0; j < o.num_clients; ++j) {
    totals->ops += c.client(j).stats().completed;
    totals->fast += c.client(j).stats().fast_path;
    totals->slow += c.client(j).stats().slow_path;
  }
  for (int i = 0; i < o.num_replicas; ++i) {
    const ReplicaStats& st = c.replica(i)->stats();
    totals->reconciliations += st.reconciliations;
    totals->view_changes += st.view_changes;
    totals->transfers += st.transfers;
    totals->order_repairs += st.order_repairs;
    totals->rolled_back += st.rolled_back;
    totals->checkpoints += st.checkpoints;
    totals->snapshots_installed += st.snapshots_installed;
  }
  return "";
}

TEST(RandomizedSafetyTest, ManySeeds) {
  Totals t;
  const auto [seeds, failures] = RunSeeds("", [&t](uint64_t seed) { return RunSeed(seed, &t); });
  std::cout << "ops " << t.ops << " (fast " << t.fast << ", slow " << t.slow
            << "), replica-side: reconciliations " << t.reconciliations << ", view changes "
            << t.view_changes << ", transfers " << t.transfers << ", order repairs "
            << t.order_repairs << ", entries rolled back "
            << t.rolled_back << ", checkpoints " << t.checkpoints << ", checkpoints installed "
            << t.snapshots_installed << "; injected crashes " << t.crashes << ", partitions "
            << t.partitions << "\n"
            << seeds - failures << " seeds passed, " << failures << " failed\n";
}

// The Fast Paxos baseline under the same fault mix (its own scope: 3
// replicas, one crash for good instead of crash + restart, since a replica
// that lost its state does not rejoin). Every seed must finish all
// operations, give a linearizable history, keep no conflicting value in a
// coordinator change, stay within the datagram budget and converge.
std::string RunFastPaxosSeed(uint64_t seed, Totals* totals, uint64_t* coordinator_changes) {
  FastPaxosConfig config;
  if (seed % 2 == 0) config.max_datagram = 256 + static_cast<int>(seed / 2 % 8) * 64;
  FastPaxosGroup g(seed, config);
  SimTransport& net = g.net;
  const int clients = 2 + static_cast<int>(seed % 3);
  AddNetworkFaults(net);
  if (net.RandomUnit() < 0.6) {
    // Half the time the coordinator of the moment, else any replica.
    ++totals->crashes;
    const bool coordinator = net.RandomUnit() < 0.5;
    const int victim = static_cast<int>(net.RandomBelow(3));
    net.Timer(absl::Milliseconds(net.RandomBelow(200)), [&g, coordinator, victim] {
      for (int i = 0; i < 3 && coordinator; ++i) {
        if (g.replicas[i] && g.replicas[i]->normal() && g.replicas[i]->IsCoordinator()) {
          g.Crash(i);
          return;
        }
      }
      g.Crash(victim);
    });
  }
  if (net.RandomUnit() < 0.5) {
    ++totals->partitions;
    const int isolated = static_cast<int>(net.RandomBelow(3));
    std::vector<transport::Address> rest;
    for (int i = 0; i < 3; ++i) {
      if (i != isolated) rest.push_back(g.config.replicas[i]);
    }
    if (net.RandomUnit() < 0.5) {  // cut off from clients as well
      for (int j = 0; j < clients; ++j) {
        rest.push_back(transport::Address(0x0b000001 + j, 1));
      }
      rest.push_back(transport::Address(0x0b000100, 1));  // the shared endpoint
    }
    const absl::Duration at = absl::Milliseconds(net.RandomBelow(200));
    const absl::Duration len = absl::Milliseconds(1 + net.RandomBelow(150));
    net.Timer(at, [&net, &g, isolated, rest] {
      net.AddFilter(5, net.Partition({g.config.replicas[isolated]}, rest));
    });
    net.Timer(at + len, [&net] { net.RemoveFilter(5); });
  }
  net.Timer(absl::Milliseconds(300), [&net] {
    for (int id = 1; id <= 5; ++id) net.RemoveFilter(id);
  });
  g.StartClients(clients, /*ops=*/15, /*keys=*/4, /*shared=*/seed % 3 == 1);
  if (!net.RunUntil([&] { return g.Done(); }, absl::Seconds(30))) {
    return "clients did not finish within 30 s of virtual time";
  }
  net.RunUntil([&] { return net.Now() > SimTransport::kEpoch + absl::Milliseconds(400); },
               absl::Seconds(1));
  if (!net.RunUntil([&] { return g.Agree(); }, absl::Seconds(10))) {
    return "replicas did not converge";
  }
  if (absl::Status s = CheckLinearizable(g.history); !s.ok()) return s.ToString();
  if (!g.SameStores(4)) return "replicas' stores differ";
  if (uint64_t c = g.Sum(&FastPaxosStats::merge_conflicts); c > 0) {
    return absl::StrCat(c, " conflicting values in coordinator changes");
  }
  if (g.largest() > static_cast<size_t>(g.config.max_datagram)) {
    return absl::StrCat("a replica sent a datagram of ", g.largest(),
                        " bytes, over the budget of ", g.config.max_datagram);
  }
  for (const auto& c : g.clients) totals->ops += c->stats().completed;
  *coordinator_changes += g.Coordinator()->view() > 0;
  totals->view_changes += g.Sum(&FastPaxosStats::view_changes);
  return "";
}

TEST(RandomizedSafetyTest, FastPaxosManySeeds) {
  Totals t;
  uint64_t changed = 0;
  const auto [seeds, failures] = RunSeeds(
      "fast paxos ", [&](uint64_t seed) { return RunFastPaxosSeed(seed, &t, &changed); });
  std::cout << "fast paxos: ops " << t.ops << ", seeds that changed coordinator " << changed
            << ", view changes (replica-side) " << t.view_changes << "; injected crashes "
            << t.crashes << ", partitions " << t.partitions << "\n"
            << seeds - failures << " seeds passed, " << failures << " failed\n";
}

}  // namespace
}  // namespace dctk::spaxos
