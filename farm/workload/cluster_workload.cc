#include "farm/workload/cluster_workload.h"

#include <algorithm>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/metrics/histogram.h"
#include "farm/client/farm_client.h"
#include "farm/client/retry.h"
#include "farm/fabric/net_fabric.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/kv/tx_hashtable_reader.h"
#include "farm/workload/bank.h"
#include "farm/workload/cluster_clients.h"
#include "farm/workload/lookup_table.h"

namespace dctk::farm::workload {
namespace {

using metrics::Histogram;

uint64_t Us(uint64_t ns) { return ns / 1000; }

// One thread's counters: `interval` ones are harvested by the reporter under
// `mu`; ledger, journal, history and seen are the thread's own until it is
// joined.
struct Worker {
  explicit Worker(uint32_t thread) : history(thread) {}
  absl::Mutex mu;
  Histogram interval, all, lookup_interval;
  uint64_t aborts = 0, errors = 0, lookups = 0, misses = 0;  // interval
  uint64_t total_aborts = 0, total_errors = 0, total_unknown = 0, total_lookups = 0;
  uint64_t total_misses = 0, total_mismatches = 0, total_tx_values = 0;
  Bank::Ledger ledger;
  Bank::Journal journal;
  uint64_t lookup_reads = 0;                  // one-sided reads the lookups took (set at the end)
  TransferHistory history;                    // transfer threads: committed transfers by journal id
  absl::flat_hash_set<TransferRecord> seen;  // lookup threads: transfer records found
};

absl::Status Validate(const ClusterWorkloadOptions& o) {
  if (o.transfer_threads < 1 || o.lookup_threads < 0) {
    return absl::InvalidArgumentError("workload: at least one transfer thread, no negative lookup threads");
  }
  if (absl::Status s = ValidateClusterClientOptions(
          o.clients, o.transfer_threads + o.lookup_threads, "workload");
      !s.ok()) {
    return s;
  }
  if (o.accounts < 2) return absl::InvalidArgumentError("workload: at least 2 accounts");
  if (o.lookup_keys < 1) return absl::InvalidArgumentError("workload: at least 1 hashtable key");
  if (o.lookup_shards < 0) return absl::InvalidArgumentError("workload: no negative hashtable shard count");
  if (o.report_every <= absl::ZeroDuration()) return absl::InvalidArgumentError("workload: report interval must be positive");
  return absl::OkStatus();
}

using client::RetryWithRefresh;

// A lookup thread's hashtable reader: farm/kv's lock-free TxHashTableReader
// over the client's region table, so a shard whose primary changed is read
// at its new primary once the client has refreshed its configuration. Like
// a transaction's read, a lookup asks the client's lease first
// (FarmClient::LeaseStatus): a client whose lease ran out may follow a
// configuration whose primaries were removed.
template <typename F>
class TableLookups {
 public:
  TableLookups(F& fabric, const client::FarmClient<F>& client, const LookupTable& table)
      : fabric_(fabric), client_(client), regions_(client.regions()), table_(table) {}

  // Looks up a random stored key: what its value is, or nullopt if the key
  // was not found; a failed read's error (Unavailable: retry after a refresh).
  absl::StatusOr<absl::optional<LookupTable::Answer>> LookUp(std::mt19937_64& rng) {
    if (reader_ == nullptr) {
      auto q = fabric_.CreateQueue();
      if (!q.ok()) return q.status();
      auto r = kv::TxHashTableReader<F>::Create(fabric_, q->get(), &regions_, table_.layout());
      if (!r.ok()) return r.status();
      queue_ = std::move(*q);
      reader_ = std::move(*r);
    }
    const uint64_t k = rng() % static_cast<uint64_t>(table_.keys());
    if (absl::Status s = client_.LeaseStatus(); !s.ok()) return s;
    absl::StatusOr<absl::optional<std::string>> v = reader_->Lookup(table_.KeyOf(k));
    if (!v.ok()) return v.status();
    if (!v->has_value()) return absl::optional<LookupTable::Answer>();
    return absl::optional<LookupTable::Answer>(table_.Classify(k, **v));
  }
  // One-sided reads so far (a locked or torn copy is read again).
  uint64_t reads() const { return reader_ == nullptr ? 0 : reader_->reads(); }

 private:
  F& fabric_;
  const client::FarmClient<F>& client_;
  const RegionTable& regions_;
  const LookupTable& table_;
  std::unique_ptr<typename F::Queue> queue_;
  std::unique_ptr<kv::TxHashTableReader<F>> reader_;
};

template <typename F>
absl::StatusOr<ClusterWorkloadResult> Run(const ClusterWorkloadOptions& o, const std::atomic<bool>& stop, FILE* out) {
  const int threads = o.transfer_threads + o.lookup_threads;
  absl::StatusOr<ClusterClients<F>> connected = ConnectClients<F>(o.clients, threads);
  if (!connected.ok()) return connected.status();
  std::vector<std::unique_ptr<client::FarmClient<F>>>& clients = connected->clients;
  const std::vector<F*>& fabrics =
      connected->fabrics;  // the lookup threads' one-sided reads use them
  const absl::Time setup_deadline = absl::Now() + o.final_check_timeout;
  // A step that failed (a LOCK or ALLOC timing out on a loaded machine) is
  // made again whole: accounts of a failed try that did commit stay outside
  // the bank, which counts only its own.
  absl::StatusOr<Bank> bank = RetryWithRefresh(*clients[0], setup_deadline, [&] {
    return Bank::Create(clients[0]->tx(), o.accounts, o.initial);
  });
  if (!bank.ok()) {
    return absl::Status(bank.status().code(),
                        absl::StrCat("creating the bank: ", bank.status().message()));
  }
  absl::StatusOr<LookupTable> table = RetryWithRefresh(*clients[0], setup_deadline, [&] {
    return LookupTable::Create(clients[0]->tx(), clients[0]->regions(),
                               {.keys = o.lookup_keys, .seed = o.seed, .shards = o.lookup_shards});
  });
  absl::Status built = table.status();
  if (built.ok())
    built = RetryWithRefresh(*clients[0], setup_deadline,
                             [&] { return table->Fill(clients[0]->tx()); });
  if (!built.ok()) return absl::Status(built.code(), absl::StrCat("creating the hashtable: ", built.message()));
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < threads; ++i) workers.push_back(std::make_unique<Worker>(i));
  for (int i = 0; i < o.transfer_threads; ++i) {
    absl::StatusOr<Bank::Journal> j = RetryWithRefresh(
        *clients[i], setup_deadline, [&] { return Bank::CreateJournal(clients[i]->tx()); });
    if (!j.ok()) {
      return absl::Status(j.status().code(),
                          absl::StrCat("creating a journal: ", j.status().message()));
    }
    workers[i]->journal = *j;
  }
  fprintf(out,
          "workload start accounts=%d transfer_threads=%d lookup_threads=%d lookup_keys=%d table=%s shards=%zu "
          "update_table=%d config=%lu\n",
          o.accounts, o.transfer_threads, o.lookup_threads, o.lookup_keys, table->ShardsString().c_str(),
          table->layout().shards.size(), o.update_table ? 1 : 0, clients[0]->config_id());
  fflush(out);

  std::atomic<bool> done{false};
  std::vector<std::thread> running;
  for (int i = 0; i < threads; ++i) {
    running.emplace_back([&, i] {
      Worker& w = *workers[i];
      client::FarmClient<F>& c = *clients[i];
      std::mt19937_64 rng(o.seed * 1000003 + i);
      const bool transfers = i < o.transfer_threads;
      TableLookups<F> lookups(*fabrics[i], c, *table);
      while (!done.load(std::memory_order_relaxed)) {
        const absl::Time t = absl::Now();
        absl::Status s;
        absl::optional<LookupTable::Answer> answer;  // nullopt: the key was not found
        if (transfers) {
          s = bank->Transfer(c.tx(), rng, &w.ledger, &w.journal, [&](auto& tx, const Bank::Move& m) {
            return o.update_table ? table->RecordTransfer(tx, w.history.Attempt(m)) : absl::OkStatus();
          });
          w.history.CommittedUpTo(w.journal.committed);
        } else {
          absl::StatusOr<absl::optional<LookupTable::Answer>> got = lookups.LookUp(rng);
          s = got.status();
          if (got.ok()) answer = *got;
          if (answer.has_value() && answer->kind == LookupTable::Kind::kTransfer) w.seen.insert(answer->record);
        }
        const uint64_t ns = absl::ToInt64Nanoseconds(absl::Now() - t);
        {
          absl::MutexLock l(&w.mu);
          if (s.ok() && transfers) {
            w.interval.Record(ns);
            w.all.Record(ns);
          } else if (s.ok()) {
            w.lookup_interval.Record(ns);
            ++w.lookups;
            ++w.total_lookups;
            w.misses += !answer.has_value();
            w.total_misses += !answer.has_value();
            w.total_mismatches += answer.has_value() && answer->kind == LookupTable::Kind::kWrong;
            w.total_tx_values += answer.has_value() && answer->kind == LookupTable::Kind::kTransfer;
          } else if (absl::IsAborted(s)) {
            ++w.aborts;
            ++w.total_aborts;
          } else {
            ++w.errors;
            ++w.total_errors;
            w.total_unknown += absl::IsUnknown(s);
          }
        }
        if (!s.ok() && !absl::IsAborted(s)) RefreshAfterFailure(c);
      }
      w.lookup_reads = lookups.reads();
    });
  }

  const absl::Time start = absl::Now();
  ReportPeriodically(o.duration, o.report_every, stop, [&](double t, double secs) {
    Histogram h, lookups;
    uint64_t aborts = 0, errors = 0, misses = 0;
    for (auto& w : workers) {
      absl::MutexLock l(&w->mu);
      h.Merge(w->interval);
      lookups.Merge(w->lookup_interval);
      w->interval.Clear();
      w->lookup_interval.Clear();
      aborts += w->aborts;
      errors += w->errors;
      misses += w->misses;
      w->aborts = w->errors = w->lookups = w->misses = 0;
    }
    fprintf(
        out,
        "progress t=%.1f tx_per_s=%.0f p50_us=%lu p99_us=%lu lookups_per_s=%.0f lookup_p50_us=%lu "
        "lookup_misses=%lu aborts=%lu errors=%lu config=%lu\n",
        t, h.count() / secs, Us(h.ValueAtQuantile(0.5)), Us(h.ValueAtQuantile(0.99)),
        lookups.count() / secs, Us(lookups.ValueAtQuantile(0.5)), misses, aborts, errors,
        clients[0]->config_id());
    fflush(out);
  });
  done.store(true);
  for (auto& t : running) t.join();

  ClusterWorkloadResult r;
  r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  Histogram all;
  Bank::Ledger ledger;
  // Transfers still pending are settled before the audit (recovery may still be deciding them).
  const absl::Time deadline = absl::Now() + o.final_check_timeout;
  absl::Status invariant;
  for (int i = 0; i < o.transfer_threads && invariant.ok(); ++i) {
    Worker& w = *workers[i];
    if (w.journal.pending) {
      invariant = RetryWithRefresh(*clients[i], deadline, [&] {
        return bank->Settle(clients[i]->tx(), &w.journal, &w.ledger);
      });
      w.history.CommittedUpTo(w.journal.committed);
    }
    if (invariant.ok()) {
      invariant = RetryWithRefresh(*clients[i], deadline,
                                   [&] { return bank->CheckJournal(clients[i]->tx(), w.journal); });
    }
  }
  for (auto& w : workers) {
    all.Merge(w->all);
    ledger.Merge(w->ledger);
    r.aborted += w->total_aborts;
    r.errors += w->total_errors;
    r.unknown += w->total_unknown;
    r.lookups += w->total_lookups;
    r.lookup_misses += w->total_misses;
    r.lookup_mismatches += w->total_mismatches;
    r.lookup_tx_values += w->total_tx_values;
    r.lookup_reads += w->lookup_reads;
    // Every transfer record a lookup found must be a committed transfer's.
    for (const TransferRecord& rec : w->seen) {
      const bool committed = rec.thread < static_cast<uint32_t>(o.transfer_threads) &&
                             workers[rec.thread]->history.Contains(rec);
      ++(committed ? r.lookup_records : r.lookup_uncommitted);
    }
  }
  r.committed = ledger.committed;
  r.p50_ns = all.ValueAtQuantile(0.5);
  r.p99_ns = all.ValueAtQuantile(0.99);
  r.expected_total = bank->total();
  absl::Status audited = RetryWithRefresh(*clients[0], deadline, [&] {
    absl::StatusOr<uint64_t> total = bank->Audit(clients[0]->tx());
    if (total.ok()) r.total = *total;
    return total.status();
  });
  if (invariant.ok()) invariant = audited;
  if (invariant.ok()) {
    invariant = RetryWithRefresh(*clients[0], deadline,
                                 [&] { return bank->CheckLedger(clients[0]->tx(), ledger); });
  }
  if (invariant.ok() && r.lookup_misses + r.lookup_mismatches + r.lookup_uncommitted > 0) {
    invariant = absl::DataLossError(absl::StrCat("hashtable: ", r.lookup_misses, " lookups missed a stored key, ",
                                                 r.lookup_mismatches, " returned a wrong value, ",
                                                 r.lookup_uncommitted, " records of transfers that did not commit"));
  }
  r.lookup_mismatches += r.lookup_uncommitted;
  r.invariant = invariant;
  fprintf(out,
          "summary seconds=%.1f committed=%lu tx_per_s=%.0f p50_us=%lu p99_us=%lu lookups=%lu lookup_misses=%lu "
          "lookup_mismatches=%lu aborts=%lu errors=%lu unknown=%lu total=%lu expected_total=%lu "
          "lookup_tx_values=%lu lookup_records=%lu lookup_reads=%lu\n",
          r.seconds, r.committed, r.committed / std::max(1e-9, r.seconds), Us(r.p50_ns), Us(r.p99_ns), r.lookups,
          r.lookup_misses, r.lookup_mismatches, r.aborted, r.errors, r.unknown, r.total, r.expected_total,
          r.lookup_tx_values, r.lookup_records, r.lookup_reads);
  if (r.invariant.ok()) {
    fprintf(out, "invariant ok\n");
  } else {
    fprintf(out, "invariant FAILED %s\n", r.invariant.ToString().c_str());
  }
  fflush(out);
  // The next run's clients get the same ids; a client that could not leave
  // cleanly is removed as failed (its lease, or recovery at once).
  absl::Status left = LeaveClients(*connected, out);
  LOG_IF(WARNING, !left.ok()) << "leaving the cluster: " << left;
  return r;
}

}  // namespace

absl::StatusOr<ClusterWorkloadResult> RunClusterWorkload(const ClusterWorkloadOptions& options,
                                                         const std::atomic<bool>& stop, FILE* out) {
  if (absl::Status s = Validate(options); !s.ok()) return s;
  if (options.clients.fabric == "shm") return Run<fabric::ShmFabric>(options, stop, out);
  return Run<fabric::NetFabric>(options, stop, out);
}

}  // namespace dctk::farm::workload
