#include "farm/tx/transaction.h"

namespace dctk::farm::tx {

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
