#include "farm/workload/cluster_tatp.h"

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/metrics/histogram.h"
#include "farm/client/retry.h"
#include "farm/fabric/net_fabric.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/workload/tatp.h"
#include "farm/workload/tatp_ship.h"

namespace dctk::farm::workload {
namespace {

using metrics::Histogram;

double Us(uint64_t ns) { return ns / 1000.0; }
double MeanUs(absl::Duration total, uint64_t n) {
  return n == 0 ? 0 : absl::ToDoubleMicroseconds(total) / n;
}

// One coordinator thread's counters: the interval ones are harvested by the
// reporter under `mu`; the phases and message counts are the thread's own
// until it is joined.
struct Worker {
  absl::Mutex mu;
  Histogram ro, rw, all_ro, all_rw;
  uint64_t aborts = 0, errors = 0;  // interval
  uint64_t total_aborts = 0, total_errors = 0, total_unknown = 0;
  tx::CommitTimes phases;  // summed over `phased` commits
  uint64_t phased = 0;
  uint64_t rpcs = 0, fast_path = 0;  // during the mix
};

absl::Status Validate(const ClusterTatpOptions& o) {
  if (absl::Status s = ValidateClusterClientOptions(o.clients, o.threads, "tatp"); !s.ok())
    return s;
  if (o.threads < 1)
    return absl::InvalidArgumentError(absl::StrCat("tatp: threads must be >= 1, not ", o.threads));
  if (o.subscribers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("tatp: subscribers must be >= 1, not ", o.subscribers));
  }
  if (o.baseline_ops < 0)
    return absl::InvalidArgumentError("tatp: no negative baseline transaction count");
  if (o.report_every <= absl::ZeroDuration())
    return absl::InvalidArgumentError("tatp: report interval must be positive");
  return absl::OkStatus();
}

void AddPhases(const tx::CommitTimes& t, tx::CommitTimes* sum) {
  sum->lock += t.lock;
  sum->validate += t.validate;
  sum->commit_backup += t.commit_backup;
  sum->commit_primary += t.commit_primary;
  sum->truncate += t.truncate;
}

// Latency of `n` transactions of one coordinator on one remote object: a
// one-sided read, or (`write`) a read and a write through the whole commit
// protocol. What a TATP transaction costs at the least.
template <typename F>
Histogram OneObject(tx::TxClient<F>& c, GlobalAddress object, bool write, int n) {
  Histogram h;
  for (int i = 0; i < n; ++i) {
    const absl::Time start = absl::Now();
    auto t = c.Begin();
    absl::StatusOr<std::string> v = t.Read(object, sizeof(TatpSubscriberRow));
    absl::Status s = v.status();
    if (s.ok() && write) s = t.Write(object, *v);
    if (s.ok()) s = t.Commit();
    if (s.ok()) h.Record(absl::ToInt64Nanoseconds(absl::Now() - start));
  }
  return h;
}

// Runs the mix on client `c` until `done`, counting into `w`.
template <typename F>
void RunMix(const ClusterTatpOptions& o, const Tatp& tatp, client::FarmClient<F>& c,
            std::mt19937_64 rng, const std::atomic<bool>& done, Worker& w) {
  auto ship = [&c](GlobalAddress where, client::ProcedureId procedure, absl::string_view args) {
    return c.Ship(where, procedure, args);
  };
  auto attempt = [&](std::mt19937_64& r, TatpTx* kind) {
    if (!o.ship) return tatp.RunOne(c.tx(), r, kind);
    return RunOneShipped(tatp, c.tx(), ship, r, kind, /*ship_read_only=*/false);
  };
  const tx::TxClientStats before = c.tx().stats();
  while (!done.load(std::memory_order_relaxed)) {
    const std::mt19937_64 draw = rng;  // a failed try is tried again with the same draw
    TatpTx kind;
    absl::Status s;
    const absl::Time start = absl::Now();
    for (;;) {
      rng = draw;
      s = attempt(rng, &kind);
      if (s.ok()) break;
      const bool again =
          absl::IsAborted(s) || absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s);
      {
        absl::MutexLock l(&w.mu);
        ++(absl::IsAborted(s) ? w.aborts : w.errors);
        ++(absl::IsAborted(s) ? w.total_aborts : w.total_errors);
        w.total_unknown += absl::IsUnknown(s);
      }
      if (!absl::IsAborted(s)) RefreshAfterFailure(c);
      if (!again || done.load(std::memory_order_relaxed)) break;
    }
    if (!s.ok()) continue;
    const uint64_t ns = absl::ToInt64Nanoseconds(absl::Now() - start);
    const bool read_only = IsReadOnly(kind);
    {
      absl::MutexLock l(&w.mu);
      (read_only ? w.ro : w.rw).Record(ns);
      (read_only ? w.all_ro : w.all_rw).Record(ns);
    }
    if (!read_only && !o.ship && c.tx().last_commit_times().lock > absl::ZeroDuration()) {
      AddPhases(c.tx().last_commit_times(), &w.phases);
      ++w.phased;
    }
  }
  w.rpcs = c.tx().stats().rpc_calls - before.rpc_calls;
  w.fast_path = c.tx().stats().fast_path_calls - before.fast_path_calls;
}

// A progress line: the interval's commits, harvested from the workers.
void Progress(std::vector<std::unique_ptr<Worker>>& workers, double t, double secs, uint64_t config,
              FILE* out) {
  Histogram ro, rw;
  uint64_t aborts = 0, errors = 0;
  for (auto& w : workers) {
    absl::MutexLock l(&w->mu);
    ro.Merge(w->ro);
    rw.Merge(w->rw);
    w->ro.Clear();
    w->rw.Clear();
    aborts += w->aborts;
    errors += w->errors;
    w->aborts = w->errors = 0;
  }
  fprintf(out,
          "progress t=%.1f tx_per_s=%.0f ro_p50_us=%.1f rw_p50_us=%.1f rw_p99_us=%.1f aborts=%lu "
          "errors=%lu "
          "config=%lu\n",
          t, (ro.count() + rw.count()) / secs, Us(ro.ValueAtQuantile(0.5)),
          Us(rw.ValueAtQuantile(0.5)), Us(rw.ValueAtQuantile(0.99)), aborts, errors, config);
  fflush(out);
}

template <typename F>
absl::StatusOr<ClusterTatpResult> Run(const ClusterTatpOptions& o, const std::atomic<bool>& stop,
                                      FILE* out) {
  absl::StatusOr<ClusterClients<F>> connected = ConnectClients<F>(o.clients, o.threads);
  if (!connected.ok()) return connected.status();
  std::vector<std::unique_ptr<client::FarmClient<F>>>& clients = connected->clients;
  std::vector<tx::TxClient<F>*> loaders;
  for (auto& c : clients) loaders.push_back(&c->tx());
  const absl::Time load_start = absl::Now();
  // A failed load (a machine failed, an ALLOC timed out) is made again whole.
  absl::StatusOr<Tatp> tatp =
      client::RetryWithRefresh(*clients[0], load_start + o.setup_timeout,
                               [&] { return Tatp::Load(loaders, o.subscribers, o.seed); });
  if (!tatp.ok()) {
    return absl::Status(tatp.status().code(),
                        absl::StrCat("loading TATP: ", tatp.status().message()));
  }
  fprintf(out,
          "tatp start subscribers=%d threads=%d fabric=%s ship=%d nurand_a=%lu load_s=%.2f "
          "config=%lu\n",
          o.subscribers, o.threads, o.clients.fabric.c_str(), o.ship ? 1 : 0,
          TatpNuRandA(o.subscribers), absl::ToDoubleSeconds(absl::Now() - load_start),
          clients[0]->config_id());
  if (o.baseline_ops > 0) {
    const GlobalAddress object = tatp->directory(0).subscriber;
    const Histogram ro = OneObject(clients[0]->tx(), object, false, o.baseline_ops);
    const Histogram rw = OneObject(clients[0]->tx(), object, true, o.baseline_ops);
    fprintf(out, "baseline ro_p50_us=%.1f ro_p99_us=%.1f rw_p50_us=%.1f rw_p99_us=%.1f\n",
            Us(ro.ValueAtQuantile(0.5)), Us(ro.ValueAtQuantile(0.99)), Us(rw.ValueAtQuantile(0.5)),
            Us(rw.ValueAtQuantile(0.99)));
  }
  fflush(out);

  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < o.threads; ++i) workers.push_back(std::make_unique<Worker>());
  std::atomic<bool> done{false};
  std::vector<std::thread> running;
  const absl::Time start = absl::Now();
  for (int i = 0; i < o.threads; ++i) {
    running.emplace_back([&, i] {
      RunMix(o, *tatp, *clients[i], std::mt19937_64(o.seed * 1000003 + i), done, *workers[i]);
    });
  }
  ReportPeriodically(o.duration, o.report_every, stop, [&](double t, double secs) {
    Progress(workers, t, secs, clients[0]->config_id(), out);
  });
  done.store(true);
  for (auto& t : running) t.join();

  ClusterTatpResult r;
  r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  Histogram ro, rw;
  tx::CommitTimes phases;
  uint64_t phased = 0, rpcs = 0, fast_path = 0;
  for (auto& w : workers) {
    ro.Merge(w->all_ro);
    rw.Merge(w->all_rw);
    r.aborted += w->total_aborts;
    r.errors += w->total_errors;
    r.unknown += w->total_unknown;
    AddPhases(w->phases, &phases);
    phased += w->phased;
    rpcs += w->rpcs;
    fast_path += w->fast_path;
  }
  r.read_only = ro.count();
  r.read_write = rw.count();
  r.ro_p50_ns = ro.ValueAtQuantile(0.5);
  r.ro_p99_ns = ro.ValueAtQuantile(0.99);
  r.rw_p50_ns = rw.ValueAtQuantile(0.5);
  r.rw_p99_ns = rw.ValueAtQuantile(0.99);
  const uint64_t committed = r.read_only + r.read_write;
  fprintf(out,
          "summary seconds=%.1f committed=%lu tx_per_s=%.0f read_only=%lu read_write=%lu "
          "ro_p50_us=%.1f "
          "ro_p99_us=%.1f rw_p50_us=%.1f rw_p99_us=%.1f aborts=%lu errors=%lu unknown=%lu\n",
          r.seconds, committed, committed / std::max(1e-9, r.seconds), r.read_only, r.read_write,
          Us(r.ro_p50_ns), Us(r.ro_p99_ns), Us(r.rw_p50_ns), Us(r.rw_p99_ns), r.aborted, r.errors,
          r.unknown);
  if (!o.ship) {
    const double rw_tx = std::max<uint64_t>(1, r.read_write);
    fprintf(out,
            "phases commits=%lu lock_us=%.1f validate_us=%.1f commit_backup_us=%.1f "
            "commit_primary_us=%.1f "
            "truncate_us=%.1f rpcs_per_rw=%.2f fast_path_per_rw=%.2f\n",
            phased, MeanUs(phases.lock, phased), MeanUs(phases.validate, phased),
            MeanUs(phases.commit_backup, phased), MeanUs(phases.commit_primary, phased),
            MeanUs(phases.truncate, phased), rpcs / rw_tx, fast_path / rw_tx);
  } else {
    client::ShipperStats s;
    for (auto& c : clients) {
      const client::ShipperStats& cs = c->ship_stats();
      s.shipped += cs.shipped;
      s.committed += cs.committed;
      s.aborted += cs.aborted;
      s.failed += cs.failed;
      s.resent += cs.resent;
    }
    fprintf(out, "ship shipped=%lu committed=%lu aborted=%lu failed=%lu resent=%lu\n", s.shipped,
            s.committed, s.aborted, s.failed, s.resent);
  }
  fflush(out);
  // The next run's clients get the same ids; a client that could not leave
  // cleanly is removed as failed (its lease, or recovery at once).
  absl::Status left = LeaveClients(*connected, out);
  LOG_IF(WARNING, !left.ok()) << "leaving the cluster: " << left;
  return r;
}

}  // namespace

absl::StatusOr<ClusterTatpResult> RunClusterTatp(const ClusterTatpOptions& options,
                                                 const std::atomic<bool>& stop, FILE* out) {
  if (absl::Status s = Validate(options); !s.ok()) return s;
  if (options.clients.fabric == "shm") return Run<fabric::ShmFabric>(options, stop, out);
  return Run<fabric::NetFabric>(options, stop, out);
}

}  // namespace dctk::farm::workload
