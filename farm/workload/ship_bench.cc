// Transactions shipped to the primary of their objects vs coordinated by
// the client, in one run. --workload=bank: single-shard bank transfers;
// --workload=tatp: the TATP mix over the directory tables (tatp.h), whose
// read-write transactions are shipped to their subscriber's primary while
// read-only ones stay one-sided reads in both modes. Setup: 3 machines (f = 1) in one process with ship
// servers, C client machines without regions (one thread each), accounts in
// one shard per region. The two modes alternate in --slices slices so both
// see the same load; per mode: transfers/s, p50/p99 latency of committed
// transfers, aborts, and the messages per committed transfer (RPCs = request
// + reply pairs on the rings: the client's, plus the ship workers'), local
// participant calls and one-sided reads (TATP: latency and messages of the
// read-write transactions). At the end the bank's ledger and journals are
// checked (exit 1 if broken).
//
//   bazel run -c opt //farm/workload:ship_bench -- --workload=bank|tatp --clients=3 --seconds=10 --slices=10 \
//       [--fabric=net]
#include <algorithm>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "farm/client/ship_cluster.h"
#include "farm/fabric/net_fabric.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/workload/shard_bank.h"
#include "farm/workload/tatp.h"
#include "farm/workload/tatp_ship.h"

ABSL_FLAG(int, clients, 3, "client machines, one thread each");
ABSL_FLAG(int, workers, 1, "ship workers per machine");
ABSL_FLAG(int, per_shard, 16, "accounts per shard (one shard per region)");
ABSL_FLAG(int, regions, 6, "regions (shards)");
ABSL_FLAG(double, seconds, 10, "run length, both modes");
ABSL_FLAG(int, slices, 10, "alternations of the two modes");
ABSL_FLAG(std::string, fabric, "shm", "shm | net");
ABSL_FLAG(std::string, workload, "bank", "bank | tatp");
ABSL_FLAG(int, subscribers, 3000, "TATP subscribers");
ABSL_FLAG(uint64_t, seed, 1, "random seed");

namespace dctk::farm::workload {
namespace {

struct Mode {
  const char* name;
  bool shipped;
  uint64_t committed = 0, read_write = 0, aborted = 0, other = 0;
  uint64_t rpcs = 0, local_calls = 0, reads = 0;
  absl::Duration time;
  std::vector<double> latency_us;  // read-write transactions
  std::vector<double> read_only_us;
};

struct Counters {
  uint64_t rpcs = 0, local_calls = 0, reads = 0;
};

template <typename F>
Counters Snapshot(client::ShipCluster<F>& c, int clients) {
  Counters out;
  for (int i = 0; i < clients; ++i) {
    out.rpcs += c.client(i).stats().rpc_calls + c.shipper(i).stats().shipped;
    out.local_calls += c.client(i).stats().fast_path_calls;
    out.reads += c.client(i).stats().reads;
  }
  for (fabric::MachineId m : c.cluster().live()) {
    const client::ShipServerStats s = c.server(m).stats();
    out.rpcs += s.coordinator_rpcs;
    out.local_calls += s.coordinator_local_calls;
  }
  return out;
}

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(p * v.size()));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

template <typename F>
int Run(typename tx::LocalCluster<F>::FabricFactory make) {
  const int clients = absl::GetFlag(FLAGS_clients);
  client::ShipClusterOptions o;
  o.cluster.machines = 3;
  o.cluster.replicas = 2;
  o.cluster.regions = absl::GetFlag(FLAGS_regions);
  o.clients = clients;
  o.ship.workers = absl::GetFlag(FLAGS_workers);
  auto procedures = std::make_shared<client::ProcedureRegistry<F>>();
  const bool tatp_workload = absl::GetFlag(FLAGS_workload) == "tatp";
  if (!tatp_workload && absl::GetFlag(FLAGS_workload) != "bank") {
    fprintf(stderr, "ship_bench: --workload must be bank or tatp\n");
    return 2;
  }
  absl::Status registered = RegisterShardBankProcedures(*procedures);
  if (registered.ok()) registered = RegisterTatpProcedures(*procedures);
  if (absl::Status s = registered; !s.ok()) {
    fprintf(stderr, "ship_bench: %s\n", s.ToString().c_str());
    return 2;
  }
  auto c = client::ShipCluster<F>::Create(o, procedures, make);
  if (!c.ok()) {
    fprintf(stderr, "ship_bench: %s\n", c.status().ToString().c_str());
    return 2;
  }
  client::ShipCluster<F>& cluster = **c;
  std::vector<RegionId> regions;
  for (const RegionInfo& r : cluster.cluster().table().All()) regions.push_back(r.id);
  std::sort(regions.begin(), regions.end());
  absl::StatusOr<ShardBank> bank = ShardBank::Create(cluster.client(0), regions, absl::GetFlag(FLAGS_per_shard), 1000);
  if (!bank.ok()) {
    fprintf(stderr, "ship_bench: %s\n", bank.status().ToString().c_str());
    return 2;
  }
  std::vector<ShardBank::Journal> journals;
  std::vector<Bank::Ledger> ledgers(clients);
  for (int i = 0; i < clients; ++i) {
    absl::StatusOr<ShardBank::Journal> j = bank->CreateJournal(cluster.client(i));
    if (!j.ok()) {
      fprintf(stderr, "ship_bench: %s\n", j.status().ToString().c_str());
      return 2;
    }
    journals.push_back(std::move(*j));
  }
  absl::StatusOr<Tatp> tatp = absl::FailedPreconditionError("not loaded");
  if (tatp_workload) {
    std::vector<tx::TxClient<F>*> loaders;
    for (fabric::MachineId m : cluster.cluster().live()) loaders.push_back(&cluster.cluster().client(m));
    tatp = Tatp::Load(loaders, absl::GetFlag(FLAGS_subscribers), absl::GetFlag(FLAGS_seed));
    if (!tatp.ok()) {
      fprintf(stderr, "ship_bench: %s\n", tatp.status().ToString().c_str());
      return 2;
    }
    printf("ship_bench: TATP, %d subscribers (rows on their loader's machine), read-write transactions shipped\n",
           tatp->subscribers());
  }
  printf("ship_bench: %d shards x %d accounts on 3 machines (f=1, %s fabric), %d clients, %d ship workers/machine, "
         "%.1f s in %d slices\n",
         bank->shards(), absl::GetFlag(FLAGS_per_shard), absl::GetFlag(FLAGS_fabric).c_str(), clients,
         o.ship.workers, absl::GetFlag(FLAGS_seconds), absl::GetFlag(FLAGS_slices));
  Mode modes[2] = {{"client-coordinated", false}, {"shipped", true}};
  const int slices = std::max(1, absl::GetFlag(FLAGS_slices));
  const absl::Duration slice = absl::Seconds(absl::GetFlag(FLAGS_seconds)) / (2 * slices);
  std::vector<std::mt19937_64> rngs;
  for (int i = 0; i < clients; ++i) rngs.emplace_back(absl::GetFlag(FLAGS_seed) * 1000 + i);
  for (int round = 0; round < 2 * slices; ++round) {
    Mode& mode = modes[round % 2];
    const Counters before = Snapshot(cluster, clients);
    std::vector<std::vector<double>> lat(clients), ro_lat(clients);
    std::vector<uint64_t> committed(clients), read_write(clients), aborted(clients), other(clients);
    const absl::Time start = absl::Now(), end = start + slice;
    std::vector<std::thread> threads;
    for (int i = 0; i < clients; ++i) {
      threads.emplace_back([&, i] {
        auto ship = [&](GlobalAddress where, client::ProcedureId p, absl::string_view args) {
          return cluster.shipper(i).Ship(where, p, args);
        };
        while (absl::Now() < end) {
          const absl::Time t0 = absl::Now();
          absl::Status s;
          bool rw = true;
          if (tatp_workload) {
            TatpTx kind;
            s = mode.shipped ? RunOneShipped(*tatp, cluster.client(i), ship, rngs[i], &kind, false)
                             : tatp->RunOne(cluster.client(i), rngs[i], &kind);
            rw = !IsReadOnly(kind);
          } else {
            const ShardBank::Move m = bank->Pick(rngs[i]);
            s = mode.shipped ? bank->TransferShipped(cluster.client(i), ship, m, &ledgers[i], &journals[i])
                             : bank->Transfer(cluster.client(i), m, &ledgers[i], &journals[i]);
          }
          if (s.ok()) {
            ++committed[i];
            read_write[i] += rw;
            (rw ? lat[i] : ro_lat[i]).push_back(absl::ToDoubleMicroseconds(absl::Now() - t0));
          } else {
            ++(absl::IsAborted(s) ? aborted[i] : other[i]);
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    mode.time += absl::Now() - start;
    const Counters after = Snapshot(cluster, clients);
    mode.rpcs += after.rpcs - before.rpcs;
    mode.local_calls += after.local_calls - before.local_calls;
    mode.reads += after.reads - before.reads;
    for (int i = 0; i < clients; ++i) {
      mode.committed += committed[i];
      mode.read_write += read_write[i];
      mode.read_only_us.insert(mode.read_only_us.end(), ro_lat[i].begin(), ro_lat[i].end());
      mode.aborted += aborted[i];
      mode.other += other[i];
      mode.latency_us.insert(mode.latency_us.end(), lat[i].begin(), lat[i].end());
    }
  }
  printf("%-19s %8s %9s %11s %11s %7s %6s %8s %10s %11s %9s\n", "mode", "tx/s", "rw tx/s", "rw p50 us",
         "rw p99 us", "aborts", "other", "RPCs/rw", "local/rw", "reads/tx", "ro p50 us");
  for (Mode& m : modes) {
    const double seconds = absl::ToDoubleSeconds(m.time);
    const double rw = std::max<double>(1, m.read_write);
    printf("%-19s %8.0f %9.0f %11.1f %11.1f %7lu %6lu %8.2f %10.2f %11.2f %9.1f\n", m.name, m.committed / seconds,
           m.read_write / seconds, Percentile(m.latency_us, 0.5), Percentile(m.latency_us, 0.99),
           static_cast<unsigned long>(m.aborted), static_cast<unsigned long>(m.other), m.rpcs / rw,
           m.local_calls / rw, m.reads / std::max<double>(1, m.committed), Percentile(m.read_only_us, 0.5));
  }
  Bank::Ledger all;
  absl::Status check;
  for (int i = 0; i < clients; ++i) {
    all.Merge(ledgers[i]);
    if (check.ok()) check = bank->SettlePending(cluster.client(i), &journals[i], &all);
    if (check.ok()) check = bank->CheckJournal(cluster.client(i), journals[i]);
  }
  if (check.ok()) check = bank->AsBank().CheckLedger(cluster.client(0), all);
  if (tatp_workload) return 0;
  printf("invariant: ledger of %lu committed transfers and %d journals: %s\n", static_cast<unsigned long>(all.committed),
         clients, check.ok() ? "OK" : check.ToString().c_str());
  return check.ok() ? 0 : 1;
}

}  // namespace
}  // namespace dctk::farm::workload

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace dctk::farm;  // NOLINT
  if (absl::GetFlag(FLAGS_fabric) == "net") {
    return workload::Run<fabric::NetFabric>(
        [](fabric::MachineId id) { return fabric::NetFabric::Create({.machine_id = id}); });
  }
  if (absl::GetFlag(FLAGS_fabric) != "shm") {
    fprintf(stderr, "ship_bench: --fabric must be shm or net\n");
    return 2;
  }
  return workload::Run<fabric::ShmFabric>(
      [](fabric::MachineId id) { return fabric::ShmFabric::Create({.machine_id = id}); });
}
