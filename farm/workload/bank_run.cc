#include "farm/workload/bank_run.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/metrics/histogram.h"
#include "farm/fabric/net_fabric.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/tx/local_cluster.h"
#include "farm/workload/bank.h"

namespace dctk::farm::workload {
namespace {

using metrics::Histogram;

double Us(uint64_t ns) { return ns / 1000.0; }

// One coordinator thread's counters. `interval` is harvested (and cleared)
// by the reporter under `mu`; the ledger is read only after the join.
struct Coordinator {
  absl::Mutex mu;
  Histogram interval, all;
  uint64_t aborted = 0, unavailable = 0;  // interval
  uint64_t total_aborted = 0, total_unavailable = 0;
  Bank::Ledger ledger;
};

absl::Status Validate(const BankRunOptions& o) {
  if (o.machines < 1) return absl::InvalidArgumentError(absl::StrCat("machines must be >= 1, not ", o.machines));
  if (o.replicas < 1 || o.replicas > o.machines) {
    return absl::InvalidArgumentError(absl::StrCat("replicas must be in [1, machines=", o.machines, "], not ", o.replicas));
  }
  if (o.threads < 1) return absl::InvalidArgumentError(absl::StrCat("threads must be >= 1, not ", o.threads));
  if (o.accounts < 2) return absl::InvalidArgumentError(absl::StrCat("accounts must be >= 2, not ", o.accounts));
  if (o.duration <= absl::ZeroDuration() || o.report_every <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("duration and report interval must be positive");
  }
  if (o.kill && (o.machines < 2 || o.replicas < 2)) {
    return absl::InvalidArgumentError("kill needs machines >= 2 and replicas >= 2 (a backup to take over)");
  }
  if (o.fabric != "shm" && o.fabric != "net") {
    return absl::InvalidArgumentError(absl::StrCat("fabric must be shm or net, not '", o.fabric, "'"));
  }
  return tx::ParseFsyncPolicy(o.fsync).status();
}

template <typename F>
absl::StatusOr<BankRunResult> Run(const BankRunOptions& o, FILE* out,
                                  typename tx::LocalCluster<F>::FabricFactory make) {
  // Coordinators run on every machine, or on all but the one to be killed.
  const int client_machines = o.kill ? o.machines - 1 : o.machines;
  tx::LocalClusterOptions co;
  co.machines = o.machines;
  co.replicas = o.replicas;
  co.regions = 2 * o.machines;
  co.clients_per_machine = (o.threads + client_machines - 1) / client_machines;
  co.client.rpc_timeout = o.rpc_timeout;
  co.log_dir = o.log_dir;
  co.fsync = *tx::ParseFsyncPolicy(o.fsync);  // Validate checked it
  auto cluster = tx::LocalCluster<F>::Create(co, std::move(make));
  if (!cluster.ok()) return cluster.status();
  auto& c = **cluster;
  absl::StatusOr<Bank> bank = Bank::Create(c.client(1), o.accounts, o.initial);
  if (!bank.ok()) return bank.status();
  fprintf(out,
          "bank: %d accounts x %lu on %d machines (f=%d, %s fabric), %d coordinator threads, %.1f "
          "s%s, %s\n",
          o.accounts, o.initial, o.machines, o.replicas - 1, o.fabric.c_str(), o.threads,
          absl::ToDoubleSeconds(o.duration),
          o.kill ? absl::StrCat(", machine ", o.machines, " killed halfway").c_str() : "",
          o.log_dir.empty()
              ? "no log files"
              : absl::StrCat("log files in ", o.log_dir, " (fsync ", o.fsync, ")").c_str());

  // Log records and fdatasyncs of the machines during the run (group commit).
  auto log_totals = [&] {
    std::pair<uint64_t, uint64_t> n{0, 0};
    for (int m = 1; m <= o.machines; ++m) {
      n.first += c.machine(m).log().records();
      n.second += c.machine(m).log().syncs();
    }
    return n;
  };
  const std::pair<uint64_t, uint64_t> logged_before = log_totals();
  std::vector<std::unique_ptr<Coordinator>> coords;
  for (int i = 0; i < o.threads; ++i) coords.push_back(std::make_unique<Coordinator>());
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < o.threads; ++i) {
    const fabric::MachineId m = 1 + i % client_machines;
    const int slot = i / client_machines;
    threads.emplace_back([&, i, m, slot] {
      Coordinator& p = *coords[i];
      auto& client = c.client(m, slot);
      std::mt19937_64 rng(o.seed * 1000003 + i);
      while (!stop.load(std::memory_order_relaxed)) {
        const absl::Time t = absl::Now();
        absl::Status s = bank->Transfer(client, rng, &p.ledger);
        const uint64_t ns = absl::ToInt64Nanoseconds(absl::Now() - t);
        absl::MutexLock l(&p.mu);
        if (s.ok()) {
          p.interval.Record(ns);
          p.all.Record(ns);
        } else if (absl::IsAborted(s)) {
          ++p.aborted;
          ++p.total_aborted;
        } else {
          ++p.unavailable;
          ++p.total_unavailable;
        }
      }
    });
  }

  const absl::Time start = absl::Now();
  const absl::Time end = start + o.duration;
  absl::Time last = start;
  bool killed = false;
  // One line per interval, however late the reporter wakes up.
  absl::Duration rest;
  const int64_t lines = absl::IDivDuration(o.duration + o.report_every - absl::Nanoseconds(1), o.report_every, &rest);
  for (int64_t k = 1; k <= lines; ++k) {
    const absl::Time tick = std::min(end, start + k * o.report_every);
    if (o.kill && !killed && tick >= start + o.duration / 2) {
      absl::SleepFor(start + o.duration / 2 - absl::Now());
      const absl::Time killed_at = absl::Now();
      c.Kill(o.machines);
      absl::StatusOr<tx::RecoveryReport> r = c.Recover({static_cast<fabric::MachineId>(o.machines)});
      killed = true;
      if (!r.ok()) {
        fprintf(out, "t=%5.2fs  killed machine %d; recovery failed: %s\n",
                absl::ToDoubleSeconds(killed_at - start), o.machines, r.status().ToString().c_str());
      } else {
        fprintf(out, "t=%5.2fs  killed machine %d; recovered in %.2f ms (%d in-flight transactions, %d committed)\n",
                absl::ToDoubleSeconds(killed_at - start), o.machines, absl::ToDoubleMilliseconds(r->duration),
                r->in_flight, r->committed);
      }
    }
    absl::SleepFor(tick - absl::Now());
    const absl::Time now = absl::Now();
    Histogram h;
    uint64_t aborted = 0, unavailable = 0;
    for (auto& p : coords) {
      absl::MutexLock l(&p->mu);
      h.Merge(p->interval);
      p->interval.Clear();
      aborted += p->aborted;
      unavailable += p->unavailable;
      p->aborted = p->unavailable = 0;
    }
    const double secs = std::max(1e-9, absl::ToDoubleSeconds(now - last));
    fprintf(out, "t=%5.2fs  %8.0f transfers/s  p50 %7.1f us  p99 %7.1f us  aborts %5lu  unavailable %lu\n",
            absl::ToDoubleSeconds(now - start), h.count() / secs, Us(h.ValueAtQuantile(0.5)),
            Us(h.ValueAtQuantile(0.99)), aborted, unavailable);
    fflush(out);
    last = now;
  }
  stop.store(true);
  for (auto& t : threads) t.join();

  BankRunResult r;
  r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  Histogram all;
  Bank::Ledger ledger;
  for (auto& p : coords) {
    all.Merge(p->all);
    ledger.Merge(p->ledger);
    r.aborted += p->total_aborted;
    r.unavailable += p->total_unavailable;
  }
  r.committed = ledger.committed;
  r.p50_ns = all.ValueAtQuantile(0.5);
  r.p99_ns = all.ValueAtQuantile(0.99);
  if (!o.log_dir.empty() && o.fsync == "every_record" &&
      !o.kill) {  // (a killed machine's log is gone)
    const std::pair<uint64_t, uint64_t> after = log_totals();
    const uint64_t records = after.first - logged_before.first,
                   syncs = after.second - logged_before.second;
    fprintf(out,
            "log: %lu records in %lu fdatasyncs (%.2f records a sync, %.2f fdatasyncs a committed "
            "transfer)\n",
            records, syncs, records / std::max(1.0, static_cast<double>(syncs)),
            syncs / std::max(1.0, static_cast<double>(r.committed)));
  }
  r.expected_total = bank->total();
  absl::StatusOr<uint64_t> total = bank->Audit(c.client(1));
  if (total.ok()) r.total = *total;
  r.invariant = total.ok() ? bank->CheckLedger(c.client(1), ledger) : total.status();
  fprintf(out, "total: %lu transfers committed in %.2f s (%.0f/s), p50 %.1f us, p99 %.1f us, aborts %lu, unavailable %lu\n",
          r.committed, r.seconds, r.committed / r.seconds, Us(r.p50_ns), Us(r.p99_ns), r.aborted, r.unavailable);
  fprintf(out, "invariant: total balance %lu (expected %lu); ledger of %lu committed transfers vs %d balances: %s\n",
          r.total, r.expected_total, r.committed, o.accounts, r.invariant.ok() ? "OK" : r.invariant.ToString().c_str());
  return r;
}

}  // namespace

absl::StatusOr<BankRunResult> RunBank(const BankRunOptions& options, FILE* out) {
  if (absl::Status s = Validate(options); !s.ok()) return s;
  if (options.fabric == "net") {
    return Run<fabric::NetFabric>(options, out,
                                  [](fabric::MachineId id) { return fabric::NetFabric::Create({.machine_id = id}); });
  }
  return Run<fabric::ShmFabric>(options, out,
                                [](fabric::MachineId id) { return fabric::ShmFabric::Create({.machine_id = id}); });
}

}  // namespace dctk::farm::workload
