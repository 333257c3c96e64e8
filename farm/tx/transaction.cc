#include "farm/tx/transaction.h"

#include "absl/time/clock.h"

namespace dctk::farm::tx {

uint64_t FirstTxSequence() {
  return static_cast<uint64_t>(absl::ToUnixMicros(absl::Now())) & ((uint64_t{1} << 40) - 1);
}

uint64_t StartIncarnation() { return static_cast<uint64_t>(absl::ToUnixMicros(absl::Now())); }

const char* CommitStepName(CommitStep s) {
  switch (s) {
    case CommitStep::kLock: return "LOCK";
    case CommitStep::kValidate: return "VALIDATE";
    case CommitStep::kCommitBackup: return "COMMIT-BACKUP";
    case CommitStep::kCommitPrimary: return "COMMIT-PRIMARY";
    case CommitStep::kTruncate: return "TRUNCATE";
  }
  return "UNKNOWN";
}

}  // namespace dctk::farm::tx
