// The bank-transfer workload as a program: N machines in one process (shm
// fabric by default), M coordinator threads making random transfers among K
// accounts for S seconds, one progress line per second, optionally a machine
// killed halfway (--kill), and at the end the invariant (total balance and
// the ledger of committed transfers) checked and printed. Exit status 0 iff
// the invariant holds; 1 if it does not; 2 on bad flags or setup failure.
//
//   bazel run -c opt //farm/workload:bank_bench -- --machines=3 --threads=4 --accounts=64 --seconds=5 --kill
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "farm/workload/bank_run.h"

ABSL_FLAG(int, machines, 3, "machines (N)");
ABSL_FLAG(int, replicas, 2, "copies of each region (f + 1)");
ABSL_FLAG(int, threads, 4, "coordinator threads in all (M), spread over the machines");
ABSL_FLAG(int, accounts, 64, "accounts (K)");
ABSL_FLAG(uint64_t, initial, 1000, "initial balance of each account");
ABSL_FLAG(double, seconds, 5, "run length (S)");
ABSL_FLAG(int, report_ms, 1000, "progress line interval");
ABSL_FLAG(std::string, fabric, "shm", "shm | net");
ABSL_FLAG(bool, kill, false, "kill the last machine halfway through (coordinators run on the others)");
ABSL_FLAG(int, rpc_timeout_ms, 200, "a coordinator gives up on a message after this long (a dead machine)");
ABSL_FLAG(uint64_t, seed, 1, "random seed of the transfers");
ABSL_FLAG(std::string, tx_log_dir, "",
          "transaction log files of each machine under this (existing, empty) directory; empty: "
          "no log file at all (records counted, not kept)");
ABSL_FLAG(std::string, fsync, "never",
          "with --tx_log_dir: never | every_record (fdatasync each record)");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  dctk::farm::workload::BankRunOptions o;
  o.machines = absl::GetFlag(FLAGS_machines);
  o.replicas = absl::GetFlag(FLAGS_replicas);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.accounts = absl::GetFlag(FLAGS_accounts);
  o.initial = absl::GetFlag(FLAGS_initial);
  o.duration = absl::Seconds(absl::GetFlag(FLAGS_seconds));
  o.report_every = absl::Milliseconds(absl::GetFlag(FLAGS_report_ms));
  o.fabric = absl::GetFlag(FLAGS_fabric);
  o.kill = absl::GetFlag(FLAGS_kill);
  o.rpc_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_rpc_timeout_ms));
  o.seed = absl::GetFlag(FLAGS_seed);
  o.log_dir = absl::GetFlag(FLAGS_tx_log_dir);
  o.fsync = absl::GetFlag(FLAGS_fsync);
  absl::StatusOr<dctk::farm::workload::BankRunResult> r = dctk::farm::workload::RunBank(o, stdout);
  if (!r.ok()) {
    fprintf(stderr, "bank_bench: %s\n", r.status().ToString().c_str());
    return 2;
  }
  return r->invariant.ok() ? 0 : 1;
}
