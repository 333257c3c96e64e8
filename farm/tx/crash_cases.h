// The crash-test matrix's rows, shared by the tests that run them: who fails
// (a written region's primary, its first backup, the primary of an account
// the transaction only reads, or the coordinator), before which commit step,
// after how many of that step's crash_before calls (messages), and the
// outcome recovery must reach when the victim's messages come first of their
// steps and when they come last. farm/tx/crash_matrix_test runs every row in
// one process; farm/server/farmd_crash_steps_test pins the outcomes of its
// farmd processes from the same rows.
//
// The transaction is a transfer that writes `from` (region a) and `to`
// (region b) and reads `audit` (in a, or in region r when r's primary is the
// victim). "First": a's primary comes before b's primary, and a's first
// backup before every other backup (steps send in machine order); "last": the
// reverse (VictimFirst, VictimLast).
//
// Example:
//   const Expect e = PinnedOutcome(kBackup, CommitStep::kLock, /*after=*/0,
//                                  /*victim_last=*/false);  // kNotCommitted
#ifndef DCTK_FARM_TX_CRASH_CASES_H_
#define DCTK_FARM_TX_CRASH_CASES_H_

#include <algorithm>

#include "absl/types/span.h"
#include "farm/fabric/fabric.h"
#include "farm/tx/transaction.h"

namespace dctk::farm::tx {

// kReadPrimary: the primary of the account the transfer only reads, holding
// no replica of the accounts it writes.
enum CrashRole { kPrimary, kBackup, kReadPrimary, kCoordinator };
enum class Expect { kCommitted, kNotCommitted, kEither };

struct CrashCase {
  CrashRole role;
  CommitStep step;
  int after;  // crash_before calls of the step that went on before the failure
  // The outcome recovery must reach when the victim's message is the first
  // of its steps (sent to it, then it died, at "after 1"), and the last.
  Expect first, last;
};

// kN: not committed, kC: committed, kE: either, where the coordinator's later
// messages race the recovery: a primary of `from` killed before or between
// the COMMIT-BACKUPs (committed iff `from`'s backup logged it before recovery
// blocked it), a backup killed after logging it (iff the other backup logged
// it too), or before COMMIT-BACKUP (iff the other logged it: a step's
// messages go out at once, so the other backup gets its COMMIT-BACKUP whether
// the victim's comes first or last), the read-only account's primary killed
// before or between the COMMIT-BACKUPs (recovery, which every participant
// joins, decides the transaction if it blocks them before the coordinator is
// done). Until 2026-11-27 a step's messages went one at a time, and a backup
// killed before COMMIT-BACKUP when its message came first ended not
// committed: the coordinator waited for recovery's decision on it before
// sending the other backup its COMMIT-BACKUP.
inline constexpr Expect kC = Expect::kCommitted, kN = Expect::kNotCommitted, kE = Expect::kEither;
// clang-format off
inline constexpr CrashCase kCrashMatrix[] = {
    // role        step                        after, first, last
    {kPrimary,     CommitStep::kLock,          0, kN, kN},
    {kPrimary,     CommitStep::kLock,          1, kN, kN},
    {kPrimary,     CommitStep::kValidate,      0, kN, kN},  // VALIDATE's read meets the dead machine
    {kPrimary,     CommitStep::kCommitBackup,  0, kE, kE},
    {kPrimary,     CommitStep::kCommitBackup,  1, kE, kE},
    {kPrimary,     CommitStep::kCommitPrimary, 0, kC, kC},
    {kPrimary,     CommitStep::kCommitPrimary, 1, kC, kC},
    {kPrimary,     CommitStep::kTruncate,      0, kC, kC},
    {kPrimary,     CommitStep::kTruncate,      1, kC, kC},
    {kBackup,      CommitStep::kLock,          0, kE, kE},
    {kBackup,      CommitStep::kLock,          1, kE, kE},
    {kBackup,      CommitStep::kValidate,      0, kE, kE},
    {kBackup,      CommitStep::kCommitBackup,  0, kE, kE},
    {kBackup,      CommitStep::kCommitBackup,  1, kE, kE},
    {kBackup,      CommitStep::kCommitPrimary, 0, kC, kC},
    {kBackup,      CommitStep::kCommitPrimary, 1, kC, kC},
    {kBackup,      CommitStep::kTruncate,      0, kC, kC},
    {kBackup,      CommitStep::kTruncate,      1, kC, kC},
    {kReadPrimary, CommitStep::kLock,          0, kN, kN},
    {kReadPrimary, CommitStep::kLock,          1, kN, kN},
    {kReadPrimary, CommitStep::kValidate,      0, kN, kN},  // VALIDATE's read meets the dead machine
    {kReadPrimary, CommitStep::kCommitBackup,  0, kE, kE},
    {kReadPrimary, CommitStep::kCommitBackup,  1, kE, kE},
    {kReadPrimary, CommitStep::kCommitPrimary, 0, kC, kC},
    {kReadPrimary, CommitStep::kCommitPrimary, 1, kC, kC},
    {kReadPrimary, CommitStep::kTruncate,      0, kC, kC},
    {kReadPrimary, CommitStep::kTruncate,      1, kC, kC},
    {kCoordinator, CommitStep::kLock,          0, kN, kN},
    {kCoordinator, CommitStep::kLock,          1, kN, kN},
    {kCoordinator, CommitStep::kValidate,      0, kN, kN},
    {kCoordinator, CommitStep::kCommitBackup,  0, kN, kN},
    {kCoordinator, CommitStep::kCommitBackup,  1, kC, kC},  // one backup logged it
    {kCoordinator, CommitStep::kCommitPrimary, 0, kC, kC},
    {kCoordinator, CommitStep::kCommitPrimary, 1, kC, kC},
    {kCoordinator, CommitStep::kTruncate,      0, kC, kC},
    {kCoordinator, CommitStep::kTruncate,      1, kC, kC},
};
// clang-format on

// No row's `last` is stricter than its `first`: a victim whose messages are
// neither first nor last may take the `last` column.
constexpr bool LastNeverStricter() {
  for (const CrashCase& k : kCrashMatrix) {
    if (k.last != k.first && k.last != kE) return false;
  }
  return true;
}
static_assert(LastNeverStricter());

// The outcome the row pins; `after` above 1 takes the row for 1 (whether
// any of the step's messages went is what the outcomes depend on, not how
// many).
constexpr Expect PinnedOutcome(CrashRole role, CommitStep step, int after, bool victim_last) {
  for (const CrashCase& k : kCrashMatrix) {
    if (k.role == role && k.step == step && k.after == std::min(after, 1)) {
      return victim_last ? k.last : k.first;
    }
  }
  return kE;  // VALIDATE after 1: its one crash_before call never has one before it
}

// Whether a's messages come first of each step (see above): `pa`, `pb` the
// primaries of a and b, `ba` a's first backup, `other_backups` every other
// backup of a or b.
inline bool VictimFirst(fabric::MachineId pa, fabric::MachineId pb, fabric::MachineId ba,
                        absl::Span<const fabric::MachineId> other_backups) {
  return pa < pb && std::all_of(other_backups.begin(), other_backups.end(),
                                [&](fabric::MachineId m) { return ba < m; });
}
inline bool VictimLast(fabric::MachineId pa, fabric::MachineId pb, fabric::MachineId ba,
                       absl::Span<const fabric::MachineId> other_backups) {
  return pa > pb && std::all_of(other_backups.begin(), other_backups.end(),
                                [&](fabric::MachineId m) { return ba > m; });
}

}  // namespace dctk::farm::tx

#endif  // DCTK_FARM_TX_CRASH_CASES_H_
