// RunClusterWorkload: the main job's client workload against a running farmd
// cluster. It connects as FaRM clients (cluster_clients.h, farm/client FarmClient: the
// configuration from the CM service, rings to every machine; one client per
// thread, fabric ids first_id, first_id + 1, ...), creates a bank (bank.h)
// and a hashtable of `lookup_keys` keys (lookup_table.h: farm/kv's
// transactional TxHashTable, one shard per FaRM machine by default), and runs
// transfer threads (read-write transactions; with `update_table`, each also
// writes its record into the entry of its source account in the same
// transaction) and lookup threads (lookups of random stored keys with
// farm/kv's lock-free TxHashTableReader: one-sided reads of the key's
// neighborhood at its shard's primary, usually one read) until `duration`
// has passed or `stop` is set.
//
// It rides through faults: a transfer failing with Unavailable or
// DeadlineExceeded (a machine failed, the configuration changed) did not
// commit; the thread refreshes its configuration from the CM and goes on.
// A transfer whose outcome is Unknown is never retried blindly: each
// transfer thread keeps a Journal (a counter object incremented in every
// transfer's transaction) and settles it from the counter. At the end the
// invariant is checked: the total balance is intact, every balance equals
// the initial one plus the committed transfers' deltas (none lost, none
// applied twice), every journal counter equals its thread's count, and
// every hashtable lookup found its key with its initial value or the record
// of a transfer that committed (checked against the journals at the end).
//
// Output (`out`), one line each, key=value, for scripts:
//   workload start accounts=64 transfer_threads=2 lookup_threads=1 lookup_keys=256
//   table=1:0x100000,2:0x0,3:0x0 shards=3 update_table=1 config=22 progress t=3.0 tx_per_s=850
//   p50_us=1800 p99_us=5200 lookups_per_s=2100 lookup_p50_us=310 lookup_misses=0 aborts=2 errors=0
//   config=22 summary seconds=10.0 committed=8500 tx_per_s=850 p50_us=... p99_us=... lookups=21000
//   lookup_misses=0 lookup_mismatches=0 aborts=20 errors=3 unknown=0 total=64000
//   expected_total=64000 lookup_tx_values=5200 lookup_records=3100 lookup_reads=21040 invariant ok
//   (or: invariant FAILED <reason>)
// progress counts are per interval; summary counts are totals.
// lookup_mismatches counts wrong values and records of transfers that did not
// commit; lookup_tx_values the lookups that found a transfer's record,
// lookup_records the distinct committed transfers they found, lookup_reads
// the one-sided reads the lookups took (a locked or torn copy is read again).
//
// Example:
//   std::atomic<bool> stop{false};
//   absl::StatusOr<ClusterWorkloadResult> r =
//       RunClusterWorkload({.clients = {.cm_address = "10.88.0.2:7101", .host = "10.88.0.9"}},
//       stop, stdout);
//   if (r.ok() && !r->invariant.ok()) ...  // a lost or duplicated commit
#ifndef DCTK_FARM_WORKLOAD_CLUSTER_WORKLOAD_H_
#define DCTK_FARM_WORKLOAD_CLUSTER_WORKLOAD_H_

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "farm/workload/cluster_clients.h"

namespace dctk::farm::workload {

struct ClusterWorkloadOptions {
  ClusterClientOptions clients;  // the CM, the fabric, the clients' ids and timeouts
  int transfer_threads = 2;
  int lookup_threads = 1;
  int accounts = 64;
  int lookup_keys = 256;  // keys in the hashtable the lookup threads read
  int lookup_shards = 0;  // shards of the hashtable; 0: one per FaRM machine
  bool update_table = true;  // each transfer records itself in its source account's entry
  uint64_t initial = 1000;
  absl::Duration duration = absl::InfiniteDuration();  // or until `stop`
  absl::Duration report_every = absl::Seconds(1);
  absl::Duration final_check_timeout = absl::Seconds(30);
  uint64_t seed = 1;
};

struct ClusterWorkloadResult {
  uint64_t committed = 0;  // transfers committed (settled ones included)
  uint64_t aborted = 0;
  uint64_t errors = 0;   // Unavailable / DeadlineExceeded / Unknown / other
  uint64_t unknown = 0;  // of which Unknown (settled from the journals)
  uint64_t lookups = 0;
  uint64_t lookup_misses = 0;      // a stored key not found
  uint64_t lookup_mismatches = 0;  // a stored key found with a wrong value (lookup_uncommitted included)
  uint64_t lookup_uncommitted = 0;  // distinct records found of transfers that did not commit
  uint64_t lookup_tx_values = 0;    // lookups that found a transfer's record
  uint64_t lookup_records = 0;      // distinct committed transfers' records found
  uint64_t lookup_reads = 0;        // one-sided reads the lookups took (failed lookups' included)
  double seconds = 0;
  uint64_t p50_ns = 0, p99_ns = 0;  // committed transfers
  uint64_t total = 0, expected_total = 0;
  absl::Status invariant;  // OK iff total, ledger and journals hold and no lookup missed or mismatched
};

// Errors: bad options, or the cluster could not be joined or the bank
// created. A broken invariant is in `invariant`, not an error of the run.
absl::StatusOr<ClusterWorkloadResult> RunClusterWorkload(const ClusterWorkloadOptions& options,
                                                         const std::atomic<bool>& stop, FILE* out);

}  // namespace dctk::farm::workload

#endif  // DCTK_FARM_WORKLOAD_CLUSTER_WORKLOAD_H_
