// RunClusterTatp: TATP (tatp.h, the benchmark FaRM reports) as a client of a
// running farmd cluster. `threads` coordinator threads, one FarmClient each
// (cluster_clients.h), load the subscribers (Tatp::Load: each subscriber's
// rows allocated near its Subscriber row, subscribers spread over the
// regions), time a baseline (one coordinator, one remote object: a read-only
// and a read-write transaction, `baseline_ops` each), then run the standard
// mix until `duration` has passed or `stop` is set.
//
// Transactions run client-coordinated (Tatp::RunOne: one-sided reads, then
// the commit protocol from the client), or with `ship`, read-write ones are
// shipped to the primary of their subscriber (tatp_ship.h: farmd
// --ship_workers runs them there as single-machine transactions) while
// read-only ones stay one-sided reads by the client.
//
// Faults: a transaction that aborted (a conflict) is tried again at once, the
// same draw (subscriber, kind, values); one that failed with Unavailable or
// DeadlineExceeded (a machine failed, the configuration changed: nothing
// committed) is tried again after the client refreshed its configuration
// from the CM; Unknown (outcome not learned) and anything else is counted as
// an error, the client refreshes, and the thread goes on with a new draw.
// Latency is from a transaction's first try to its commit.
//
// Output (`out`), one line each, key=value, for scripts:
//   tatp start subscribers=3000 threads=2 fabric=shm ship=0 nurand_a=255 load_s=1.31 config=5
//   baseline ro_p50_us=0.5 ro_p99_us=1.9 rw_p50_us=22.4 rw_p99_us=80.1
//   progress t=1.0 tx_per_s=61000 ro_p50_us=0.6 rw_p50_us=48.2 rw_p99_us=900.3 aborts=1 errors=0
//   config=5 summary seconds=10.0 committed=610000 tx_per_s=61000 read_only=488000
//   read_write=122000 ro_p50_us=...
//       ro_p99_us=... rw_p50_us=... rw_p99_us=... aborts=12 errors=0 unknown=0
//   phases commits=110000 lock_us=12.1 validate_us=0.1 commit_backup_us=11.0 commit_primary_us=11.2
//       truncate_us=23.9 rpcs_per_rw=4.1 fast_path_per_rw=0.0      (client-coordinated)
//   ship shipped=122000 committed=122000 aborted=0 failed=0 resent=0   (with ship)
// progress counts are per interval; summary counts are totals. `phases`:
// the mean time of each commit phase over the committed read-write
// transactions that wrote (others commit without LOCK); messages (RPCs, and
// calls to a local participant: none from a client) per committed read-write
// transaction, aborted tries' included.
//
// Example:
//   std::atomic<bool> stop{false};
//   absl::StatusOr<ClusterTatpResult> r =
//       RunClusterTatp({.clients = {.cm_address = "127.0.0.1:7101", .fabric = "shm"}, .threads =
//       2}, stop, stdout);
#ifndef DCTK_FARM_WORKLOAD_CLUSTER_TATP_H_
#define DCTK_FARM_WORKLOAD_CLUSTER_TATP_H_

#include <atomic>
#include <cstdint>
#include <cstdio>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "farm/workload/cluster_clients.h"

namespace dctk::farm::workload {

struct ClusterTatpOptions {
  ClusterClientOptions clients;
  int threads = 2;  // coordinator threads (clients), also the loaders
  int subscribers = 3000;
  bool ship = false;        // read-write transactions shipped (needs farmd --ship_workers)
  int baseline_ops = 2000;  // per baseline transaction kind; 0: no baseline
  absl::Duration duration = absl::InfiniteDuration();  // or until `stop`
  absl::Duration report_every = absl::Seconds(1);
  absl::Duration setup_timeout = absl::Seconds(120);  // the load, retried whole after a failure
  uint64_t seed = 1;
};

struct ClusterTatpResult {
  uint64_t read_only = 0, read_write = 0;  // committed
  uint64_t aborted = 0;                    // tries that aborted (each tried again)
  uint64_t errors = 0;   // tries that failed otherwise (Unavailable / DeadlineExceeded tried again)
  uint64_t unknown = 0;  // of which Unknown
  double seconds = 0;
  uint64_t ro_p50_ns = 0, ro_p99_ns = 0, rw_p50_ns = 0, rw_p99_ns = 0;
};

// Errors: bad options, or the cluster could not be joined or loaded.
absl::StatusOr<ClusterTatpResult> RunClusterTatp(const ClusterTatpOptions& options,
                                                 const std::atomic<bool>& stop, FILE* out);

}  // namespace dctk::farm::workload

#endif  // DCTK_FARM_WORKLOAD_CLUSTER_TATP_H_
