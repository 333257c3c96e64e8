// TATP on an in-process FaRM cluster (default: 3 machines, f = 1, shm
// fabric): transactions/s, median and p99 latency of read-only and
// read-write transactions, the read-write commit broken down by phase, and
// (with --kill) recovery: a machine is killed mid-run and the time until
// throughput returns is measured. --tables picks where the rows are found:
// `hashtable` (tatp_kv.h: FaRM's transactional hashtable, as in the paper),
// `directory` (tatp.h: row addresses in a client-side directory, the old
// path) or `both` (default: the directory baseline, then the hashtable, on
// the same cluster in the same run). After a hashtable run the tables'
// consistency conditions and the Call_Forwarding ledger are checked (exit 1
// if broken). Baselines in the same run: a read-only transaction of one
// remote object (one one-sided read) and a read-write transaction of one
// remote object (the full commit protocol).
//
// --tx_log_dir gives each machine transaction log files there (--fsync=never |
// every_record); without it no log is written at all.
//
//   bazel run -c opt //farm/workload:tatp_bench -- --subscribers=5000 --seconds=5 [--kill]
//       [--fabric=net] [--tx_log_dir=DIR --fsync=every_record]
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/metrics/histogram.h"
#include "farm/fabric/net_fabric.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/kv/tx_hashtable_reader.h"
#include "farm/tx/local_cluster.h"
#include "farm/workload/tatp.h"
#include "farm/workload/tatp_kv.h"
#include "glog/logging.h"

ABSL_FLAG(int, machines, 3, "machines");
ABSL_FLAG(int, replicas, 2, "copies of each region (f + 1)");
ABSL_FLAG(int, subscribers, 5000, "TATP subscribers");
ABSL_FLAG(int, clients_per_machine, 1, "coordinator threads per machine");
ABSL_FLAG(double, seconds, 5, "measured run length");
ABSL_FLAG(std::string, fabric, "shm", "shm | net");
ABSL_FLAG(int, rpc_timeout_ms, 200, "a coordinator gives up on a message after this long (a dead machine)");
ABSL_FLAG(bool, kill, false, "also measure recovery: kill the last machine mid-run (in the last --tables run)");
ABSL_FLAG(std::string, tables, "both", "directory | hashtable | both (directory baseline, then hashtable)");
ABSL_FLAG(int, slices, 5, "with --tables=both: alternate the two this many times (each runs --seconds in total)");
ABSL_FLAG(uint64_t, nurand_a, 0, "NURand's A (0: the specification's value for the scale, tatp.h)");
ABSL_FLAG(std::string, tx_log_dir, "",
          "transaction log files of each machine under this (existing, empty) directory; empty: "
          "no log file at all (records counted, not kept)");
ABSL_FLAG(std::string, fsync, "never",
          "with --tx_log_dir: never | every_record (fdatasync each record)");

namespace dctk::farm {
namespace {

using metrics::Histogram;

double Us(uint64_t ns) { return ns / 1000.0; }

// One coordinator thread's step: runs one transaction of the mix; *kind
// says which, *cf_delta the Call_Forwarding rows it inserted or deleted.
using Step = std::function<absl::Status(std::mt19937_64&, workload::TatpTx*, int* cf_delta)>;

// One commit phase of the read-write commits: its total time (the mean) and
// its distribution (p50, p99).
struct Phase {
  absl::Duration total;
  Histogram h;
  void Record(absl::Duration d) {
    total += d;
    h.Record(absl::ToInt64Nanoseconds(d));
  }
  void Merge(const Phase& o) {
    total += o.total;
    h.Merge(o.h);
  }
};

// What a run of the mix did, summed over its coordinators (and slices).
struct MixStats {
  Histogram ro, rw;
  uint64_t aborted = 0, unavailable = 0;
  int64_t cf_delta = 0;
  Phase lock, validate, backup, primary, truncate;
  uint64_t rw_commits = 0;
  uint64_t rpcs = 0,
           fast_path = 0;  // coordinators' messages: RPCs, calls to their machine's participant
  double secs = 0;
  int coordinators = 0;
  std::string recovery;  // a kill run's recovery line

  void Merge(const MixStats& o) {
    ro.Merge(o.ro);
    rw.Merge(o.rw);
    aborted += o.aborted;
    unavailable += o.unavailable;
    cf_delta += o.cf_delta;
    lock.Merge(o.lock);
    validate.Merge(o.validate);
    backup.Merge(o.backup);
    primary.Merge(o.primary);
    truncate.Merge(o.truncate);
    rw_commits += o.rw_commits;
    rpcs += o.rpcs;
    fast_path += o.fast_path;
    secs += o.secs;
    coordinators = o.coordinators;
  }
  uint64_t committed() const { return ro.count() + rw.count(); }
};

void PrintMix(const std::string& name, const MixStats& all) {
  const uint64_t committed = all.committed();
  printf("%s: %d coordinators, %.0f committed tx/s (%lu in %.2f s; aborted %lu, unavailable %lu)\n", name.c_str(),
         all.coordinators, committed / all.secs, committed, all.secs, all.aborted, all.unavailable);
  printf("  read-only  (%5.1f%%): p50 %7.1f us  p99 %7.1f us\n", 100.0 * all.ro.count() / std::max<uint64_t>(1, committed),
         Us(all.ro.ValueAtQuantile(0.5)), Us(all.ro.ValueAtQuantile(0.99)));
  printf("  read-write (%5.1f%%): p50 %7.1f us  p99 %7.1f us\n", 100.0 * all.rw.count() / std::max<uint64_t>(1, committed),
         Us(all.rw.ValueAtQuantile(0.5)), Us(all.rw.ValueAtQuantile(0.99)));
  if (all.rw_commits > 0) {
    const double n = static_cast<double>(all.rw_commits);
    printf("  read-write commit by phase (mean us): LOCK %.1f  VALIDATE %.1f  COMMIT-BACKUP %.1f  "
           "COMMIT-PRIMARY %.1f  TRUNCATE %.1f\n",
           absl::ToDoubleMicroseconds(all.lock.total) / n,
           absl::ToDoubleMicroseconds(all.validate.total) / n,
           absl::ToDoubleMicroseconds(all.backup.total) / n,
           absl::ToDoubleMicroseconds(all.primary.total) / n,
           absl::ToDoubleMicroseconds(all.truncate.total) / n);
    printf("  read-write commit by phase, p50 / p99 (us):");
    const std::pair<const char*, const Phase*> phases[] = {
        {"LOCK", &all.lock},
        {"VALIDATE", &all.validate},
        {"COMMIT-BACKUP", &all.backup},
        {"COMMIT-PRIMARY", &all.primary},
        {"TRUNCATE", &all.truncate}};
    for (const auto& [name, p] : phases) {
      printf("  %s %.1f / %.1f", name, Us(p->h.ValueAtQuantile(0.5)), Us(p->h.ValueAtQuantile(0.99)));
    }
    printf("\n");
  }
  if (all.rw.count() > 0) {
    const double rw = static_cast<double>(all.rw.count());
    printf(
        "  messages per committed read-write transaction: %.2f RPCs, %.2f calls to the "
        "coordinator's own "
        "participant\n",
        all.rpcs / rw, all.fast_path / rw);
  }
  printf("%s", all.recovery.c_str());
}

// The mix for `length` on every coordinator of machines 1..client_machines
// (steps[(m - 1) * per_machine + slot]); with `kill`, the last machine is
// killed halfway and recovered, and the recovery time is printed.
template <typename F>
MixStats RunMix(tx::LocalCluster<F>& c, std::vector<Step>& steps, int client_machines, absl::Duration length,
                bool kill) {
  const int machines = absl::GetFlag(FLAGS_machines);
  const int per_machine = absl::GetFlag(FLAGS_clients_per_machine);
  std::atomic<bool> stop{false};
  struct PerThread {
    MixStats stats;
    std::vector<int64_t> commit_times;  // ns since start
  };
  std::vector<PerThread> per(client_machines * per_machine);
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int m = 1; m <= client_machines; ++m) {
    for (int slot = 0; slot < per_machine; ++slot) {
      const int i = (m - 1) * per_machine + slot;
      threads.emplace_back([&, m, slot, i] {
        MixStats& p = per[i].stats;
        auto& client = c.client(m, slot);
        std::mt19937_64 rng(m * 1000 + slot + absl::ToUnixNanos(start));
        const tx::TxClientStats before = client.stats();
        while (!stop.load(std::memory_order_relaxed)) {
          workload::TatpTx kind;
          int cf = 0;
          const absl::Time t = absl::Now();
          absl::Status s = steps[i](rng, &kind, &cf);
          const absl::Time done = absl::Now();
          if (s.ok()) {
            p.cf_delta += cf;
            (workload::IsReadOnly(kind) ? p.ro : p.rw).Record(absl::ToInt64Nanoseconds(done - t));
            if (kill) per[i].commit_times.push_back(absl::ToInt64Nanoseconds(done - start));
            if (!workload::IsReadOnly(kind) && client.last_commit_times().lock > absl::ZeroDuration()) {
              const tx::CommitTimes& ct = client.last_commit_times();
              p.lock.Record(ct.lock);
              p.validate.Record(ct.validate);
              p.backup.Record(ct.commit_backup);
              p.primary.Record(ct.commit_primary);
              p.truncate.Record(ct.truncate);
              ++p.rw_commits;
            }
          } else if (absl::IsAborted(s)) {
            ++p.aborted;
          } else {
            ++p.unavailable;
          }
        }
        p.rpcs = client.stats().rpc_calls - before.rpc_calls;
        p.fast_path = client.stats().fast_path_calls - before.fast_path_calls;
      });
    }
  }
  tx::RecoveryReport report;
  absl::Time killed_at;
  if (kill) {
    absl::SleepFor(length / 2);
    killed_at = absl::Now();
    c.Kill(machines);
    absl::StatusOr<tx::RecoveryReport> r = c.Recover({static_cast<fabric::MachineId>(machines)});
    if (r.ok()) report = *r;
    absl::SleepFor(length / 2 - (absl::Now() - killed_at));
  } else {
    absl::SleepFor(length);
  }
  stop.store(true);
  for (auto& t : threads) t.join();
  MixStats all;
  std::vector<int64_t> commit_times;
  for (PerThread& p : per) {
    all.Merge(p.stats);
    commit_times.insert(commit_times.end(), p.commit_times.begin(), p.commit_times.end());
  }
  all.secs = absl::ToDoubleSeconds(absl::Now() - start);
  all.coordinators = static_cast<int>(per.size());
  if (kill) {
    // Throughput in 100 ms buckets: time from the kill until a bucket
    // reaches 80% of the mean before the kill.
    constexpr int64_t kBucket = 100'000'000;
    const int64_t kill_ns = absl::ToInt64Nanoseconds(killed_at - start);
    std::vector<int> buckets(static_cast<size_t>(all.secs * 1e9 / kBucket) + 1);
    for (int64_t t : commit_times) ++buckets[t / kBucket];
    const int64_t kill_bucket = kill_ns / kBucket;
    double before = 0;
    for (int64_t b = 1; b < kill_bucket; ++b) before += buckets[b];
    before /= std::max<int64_t>(1, kill_bucket - 1);
    int64_t back = -1;
    for (int64_t b = kill_bucket + 1; b < static_cast<int64_t>(buckets.size()); ++b) {
      if (buckets[b] >= 0.8 * before) {
        back = b;
        break;
      }
    }
    all.recovery = absl::StrFormat(
        "  recovery: %d in-flight transactions resolved (%d committed) in %.2f ms; throughput back to 80%% "
        "of %.0f tx/s %s %.0f ms after the kill (failure detection by lease not included)\n",
        report.in_flight, report.committed, absl::ToDoubleMilliseconds(report.duration), before * 1e9 / kBucket,
        back < 0 ? "not within the run:" : "", back < 0 ? 0.0 : (back * kBucket + kBucket - kill_ns) / 1e6);
  }
  return all;
}

template <typename F>
int Run(typename tx::LocalCluster<F>::FabricFactory make) {
  const int machines = absl::GetFlag(FLAGS_machines);
  const std::string tables = absl::GetFlag(FLAGS_tables);
  const bool directory = tables == "directory" || tables == "both";
  const bool hashtable = tables == "hashtable" || tables == "both";
  if (!directory && !hashtable) {
    fprintf(stderr, "--tables=%s: must be directory, hashtable or both\n", tables.c_str());
    return 2;
  }
  const absl::StatusOr<tx::FsyncPolicy> fsync = tx::ParseFsyncPolicy(absl::GetFlag(FLAGS_fsync));
  if (!fsync.ok()) {
    fprintf(stderr, "--fsync: %s\n", fsync.status().ToString().c_str());
    return 2;
  }
  const bool kill = absl::GetFlag(FLAGS_kill);
  const int subscribers = absl::GetFlag(FLAGS_subscribers);
  tx::LocalClusterOptions o;
  o.log_dir = absl::GetFlag(FLAGS_tx_log_dir);
  o.fsync = *fsync;
  o.machines = machines;
  o.replicas = absl::GetFlag(FLAGS_replicas);
  o.regions = 2 * machines;
  o.region_size = 32 << 20;
  o.clients_per_machine = absl::GetFlag(FLAGS_clients_per_machine);
  o.client.rpc_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_rpc_timeout_ms));
  auto cluster = tx::LocalCluster<F>::Create(o, make);
  if (!cluster.ok()) {
    fprintf(stderr, "cluster: %s\n", cluster.status().ToString().c_str());
    return 1;
  }
  auto& c = **cluster;
  std::vector<tx::TxClient<F>*> loaders;
  for (int m = 1; m <= machines; ++m) loaders.push_back(&c.client(m));
  const uint64_t nurand_a = absl::GetFlag(FLAGS_nurand_a) ? absl::GetFlag(FLAGS_nurand_a) : workload::TatpNuRandA(subscribers);
  printf("%d subscribers on %d machines (f=%d, %s fabric), NURand A=%lu, %s\n", subscribers,
         machines, o.replicas - 1, absl::GetFlag(FLAGS_fabric).c_str(), nurand_a,
         o.log_dir.empty()
             ? "no log files"
             : absl::StrCat("log files in ", o.log_dir, " (fsync ", absl::GetFlag(FLAGS_fsync), ")")
                   .c_str());

  absl::Time load_start = absl::Now();
  absl::StatusOr<workload::Tatp> tatp = workload::Tatp::Load(loaders, subscribers, 1);
  if (!tatp.ok()) {
    fprintf(stderr, "load (directory): %s\n", tatp.status().ToString().c_str());
    return 1;
  }
  tatp->set_nurand_a(nurand_a);
  if (directory) printf("loaded the directory tables in %s\n", absl::FormatDuration(absl::Now() - load_start).c_str());

  // Baselines: one remote object, read-only and read-write.
  {
    const GlobalAddress remote = tatp->directory(1).subscriber;  // loaded by machine 2
    auto& client = c.client(1);
    Histogram ro, rw;
    for (int i = 0; i < 2000; ++i) {
      absl::Time t = absl::Now();
      auto t1 = client.Begin();
      (void)t1.Read(remote, sizeof(workload::TatpSubscriberRow));
      (void)t1.Commit();
      ro.Record(absl::ToInt64Nanoseconds(absl::Now() - t));
      t = absl::Now();
      auto t2 = client.Begin();
      auto v = t2.Read(remote, sizeof(workload::TatpSubscriberRow));
      if (v.ok()) (void)t2.Write(remote, *v);
      (void)t2.Commit();
      rw.Record(absl::ToInt64Nanoseconds(absl::Now() - t));
    }
    printf("baseline, one remote object, one coordinator: read-only tx p50 %.1f us p99 %.1f us; "
           "read-write tx p50 %.1f us p99 %.1f us\n",
           Us(ro.ValueAtQuantile(0.5)), Us(ro.ValueAtQuantile(0.99)), Us(rw.ValueAtQuantile(0.5)),
           Us(rw.ValueAtQuantile(0.99)));
  }
  const int all_machines = kill ? machines - 1 : machines;  // with --kill the last machine runs no coordinator
  const int per_machine = o.clients_per_machine;

  std::vector<Step> dir_steps;
  for (int m = 1; m <= all_machines; ++m) {
    for (int slot = 0; slot < per_machine; ++slot) {
      auto* client = &c.client(m, slot);
      dir_steps.push_back(
          [&, client](std::mt19937_64& rng, workload::TatpTx* kind, int*) { return tatp->RunOne(*client, rng, kind); });
    }
  }
  absl::StatusOr<workload::TatpKv> kv = absl::UnavailableError("not loaded");
  std::vector<std::unique_ptr<typename F::Queue>> queues;
  std::vector<std::unique_ptr<kv::TxHashTableReader<F>>> readers;  // each coordinator's, on its machine
  std::vector<Step> kv_steps;
  if (hashtable) {
    load_start = absl::Now();
    kv = workload::TatpKv::Load(loaders, c.table(), {.subscribers = subscribers, .seed = 1, .nurand_a = nurand_a});
    if (!kv.ok()) {
      fprintf(stderr, "load (hashtable): %s\n", kv.status().ToString().c_str());
      return 1;
    }
    printf("loaded the hashtable tables in %s: %u shards of %u buckets, %lu rows (%lu Call_Forwarding)\n",
           absl::FormatDuration(absl::Now() - load_start).c_str(), kv->table().shards(),
           kv->table().layout().config.buckets,
           kv->loaded().subscribers * 2 + kv->loaded().access_info + kv->loaded().special_facility +
               kv->loaded().call_forwarding,
           kv->loaded().call_forwarding);
    for (int m = 1; m <= all_machines; ++m) {
      for (int slot = 0; slot < per_machine; ++slot) {
        auto q = c.fabric(m).CreateQueue();
        CHECK(q.ok()) << q.status();
        auto r = kv::TxHashTableReader<F>::Create(c.fabric(m), q->get(), &c.table(), kv->table().layout());
        CHECK(r.ok()) << r.status();
        queues.push_back(std::move(*q));
        readers.push_back(std::move(*r));
        auto* client = &c.client(m, slot);
        auto* reader = readers.back().get();
        kv_steps.push_back([&, client, reader](std::mt19937_64& rng, workload::TatpTx* kind, int* cf) {
          workload::TatpResult r;
          absl::Status s = kv->RunOne(*client, *reader, rng, &r);
          *kind = r.kind;
          *cf = r.cf_delta;
          return s;
        });
      }
    }
  }
  // Alternate the two in slices, so that both see the same load on this
  // shared machine.
  const int slices = directory && hashtable ? std::max(1, absl::GetFlag(FLAGS_slices)) : 1;
  const absl::Duration slice = absl::Seconds(absl::GetFlag(FLAGS_seconds)) / slices;
  MixStats dir_stats, kv_stats;
  // Log records and fdatasyncs of the machines during the runs (group commit).
  auto log_totals = [&] {
    std::pair<uint64_t, uint64_t> n{0, 0};
    for (int m = 1; m <= machines; ++m) {
      n.first += c.machine(m).log().records();
      n.second += c.machine(m).log().syncs();
    }
    return n;
  };
  const std::pair<uint64_t, uint64_t> logged_before = log_totals();
  for (int i = 0; i < slices; ++i) {
    if (directory) dir_stats.Merge(RunMix(c, dir_steps, all_machines, slice, false));
    if (hashtable) kv_stats.Merge(RunMix(c, kv_steps, all_machines, slice, false));
  }
  const std::string in_slices = slices > 1 ? absl::StrCat(" (", slices, " slices, alternating)") : "";
  if (directory) PrintMix("TATP, directory (baseline)" + in_slices, dir_stats);
  if (hashtable) PrintMix("TATP, hashtable" + in_slices, kv_stats);
  if (!o.log_dir.empty() && o.fsync == tx::FsyncPolicy::kEveryRecord) {
    const std::pair<uint64_t, uint64_t> after = log_totals();
    const uint64_t records = after.first - logged_before.first,
                   syncs = after.second - logged_before.second;
    const double rw = static_cast<double>(dir_stats.rw.count() + kv_stats.rw.count());
    printf(
        "  log: %lu records in %lu fdatasyncs (%.2f records a sync, %.2f fdatasyncs a read-write "
        "commit)\n",
        records, syncs, records / std::max(1.0, static_cast<double>(syncs)),
        syncs / std::max(1.0, rw));
  }
  int64_t cf_delta = kv_stats.cf_delta;
  if (kill) {
    MixStats k = RunMix(c, hashtable ? kv_steps : dir_steps, all_machines, absl::Seconds(absl::GetFlag(FLAGS_seconds)), true);
    PrintMix(hashtable ? "TATP, hashtable, a machine killed mid-run" : "TATP, directory, a machine killed mid-run", k);
    cf_delta += k.cf_delta;
  }
  if (!hashtable) return 0;
  uint64_t reads = 0, lookups = 0;
  for (const auto& r : readers) {
    reads += r->reads();
    lookups += r->lookups();
  }
  printf("  lock-free lookups: %lu in %lu one-sided reads (%.3f per lookup)\n", lookups, reads,
         lookups ? static_cast<double>(reads) / lookups : 0.0);
  readers.clear();
  queues.clear();
  absl::StatusOr<workload::TatpKvCensus> census = kv->Check(c.client(1));
  const int64_t expected = static_cast<int64_t>(kv->loaded().call_forwarding) + cf_delta;
  if (!census.ok() || static_cast<int64_t>(census->call_forwarding) != expected ||
      census->access_info != kv->loaded().access_info || census->special_facility != kv->loaded().special_facility) {
    printf("consistency: FAILED: %s (Call_Forwarding rows %ld, expected %ld)\n", census.status().ToString().c_str(),
           census.ok() ? static_cast<int64_t>(census->call_forwarding) : -1L, expected);
    return 1;
  }
  printf("consistency: OK (every subscriber's rows and sub_nbr index entry; %lu Call_Forwarding rows = %lu loaded "
         "%+ld by committed inserts and deletes)\n",
         census->call_forwarding, kv->loaded().call_forwarding, cf_delta);
  return 0;
}

}  // namespace
}  // namespace dctk::farm

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace dctk::farm;
  if (absl::GetFlag(FLAGS_fabric) == "net") {
    return Run<fabric::NetFabric>([](fabric::MachineId id) { return fabric::NetFabric::Create({.machine_id = id}); });
  }
  return Run<fabric::ShmFabric>([](fabric::MachineId id) { return fabric::ShmFabric::Create({.machine_id = id}); });
}
