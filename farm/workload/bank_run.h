// RunBank: the bank-transfer workload (bank.h) as a timed run on an
// in-process FaRM cluster (tx/local_cluster.h), the logic behind
// //farm/workload:bank_bench. `threads` coordinator threads, spread over the
// machines, make random transfers among `accounts` accounts for `duration`,
// and one progress line per `report_every` goes to `out` (transfers/s,
// p50/p99 latency of committed transfers, aborts, unavailable). With `kill`
// the last machine is killed halfway through and recovered (coordinators run
// on the other machines only). At the end the invariant is checked: the
// total balance is intact and the ledger of transfers reported committed
// explains every final balance exactly.
//
// Example:
//   absl::StatusOr<BankRunResult> r = RunBank({.machines = 3, .threads = 4}, stdout);
//   if (r.ok() && !r->invariant.ok()) ...  // a lost or duplicated commit
#ifndef DCTK_FARM_WORKLOAD_BANK_RUN_H_
#define DCTK_FARM_WORKLOAD_BANK_RUN_H_

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace dctk::farm::workload {

struct BankRunOptions {
  int machines = 3;
  int replicas = 2;  // copies of each region (f + 1)
  int threads = 4;   // coordinator threads in all
  int accounts = 64;
  uint64_t initial = 1000;  // balance of each account
  absl::Duration duration = absl::Seconds(5);
  absl::Duration report_every = absl::Seconds(1);
  std::string fabric = "shm";  // shm | net
  bool kill = false;           // kill the last machine halfway through
  absl::Duration rpc_timeout = absl::Milliseconds(200);
  uint64_t seed = 1;
  // Each machine's transaction log files in this directory; empty: no log
  // file at all (records counted, not kept).
  std::string log_dir;
  std::string fsync = "never";  // with log_dir: never | every_record
};

struct BankRunResult {
  uint64_t committed = 0;    // transfers reported committed
  uint64_t aborted = 0;      // conflicts (retried by the next transfer)
  uint64_t unavailable = 0;  // failed because a machine was down
  double seconds = 0;
  uint64_t p50_ns = 0, p99_ns = 0;  // committed transfers
  uint64_t total = 0;               // audited total balance at the end
  uint64_t expected_total = 0;
  absl::Status invariant;  // OK iff the total and the ledger hold
};

// Errors: bad options (InvalidArgument), cluster or bank setup failures.
// A broken invariant is not an error of the run: it is in `invariant`.
absl::StatusOr<BankRunResult> RunBank(const BankRunOptions& options, FILE* out);

}  // namespace dctk::farm::workload

#endif  // DCTK_FARM_WORKLOAD_BANK_RUN_H_
