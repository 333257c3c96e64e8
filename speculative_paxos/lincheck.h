// Linearizability checker for histories of the KV store (tests only).
//
// Each key is an independent register, so a history is checked key by key
// (P-compositionality) with a Wing & Gong search: repeatedly pick an operation
// that no pending-response operation must precede, apply it to the register
// model, and require the recorded result; (linearized set, value) states are
// memoized. Operations that never completed may take effect or not. Histories
// are bounded: at most 64 operations per key.
//
// Example:
//   KvHistory h;
//   h.push_back({.key = "k", .op = put_op, .invoke = t0, .response = t1, .result = r});
//   absl::Status s = CheckLinearizable(h);   // FailedPrecondition names the key
#ifndef DCTK_SPECULATIVE_PAXOS_LINCHECK_H_
#define DCTK_SPECULATIVE_PAXOS_LINCHECK_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "speculative_paxos/spaxos.pb.h"

namespace dctk::spaxos {

struct KvEvent {
  int client = 0;
  KvOp op;
  absl::Time invoke;
  absl::Time response = absl::InfiniteFuture();  // InfiniteFuture: never completed
  KvResult result;
  bool completed() const { return response != absl::InfiniteFuture(); }
};
using KvHistory = std::vector<KvEvent>;

absl::Status CheckLinearizable(const KvHistory& history);

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_LINCHECK_H_
