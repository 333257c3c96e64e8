// Synchronous helpers over any Fabric queue: post one operation and poll until
// it completes (sleeping between polls where the queue can wait for its
// responses, as NetFabric::Queue::WaitForCompletions does; spinning otherwise). For control paths, tests and simple readers; the caller must
// have no other operations outstanding on the queue (a foreign completion is
// reported as an internal error rather than silently dropped).
//
// Example:
//   uint64_t word;
//   absl::Status s = SyncRead(*queue, {machine, key, 128}, &word, sizeof(word));
#ifndef DCTK_FARM_FABRIC_SYNC_H_
#define DCTK_FARM_FABRIC_SYNC_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "farm/fabric/fabric.h"

namespace dctk::farm::fabric {

inline constexpr uint64_t kSyncWrId = ~uint64_t{0};

template <typename Q>
absl::Status AwaitCompletion(Q& queue, uint64_t wr_id) {
  Completion c;
  while (queue.PollCompletions(absl::MakeSpan(&c, 1)) == 0) {
    if constexpr (requires { queue.WaitForCompletions(absl::Duration()); }) {
      queue.WaitForCompletions(absl::Milliseconds(100));
    }
  }
  if (c.wr_id != wr_id) {
    return absl::InternalError(absl::StrCat(
        "fabric sync op: completion for wr_id ", c.wr_id, " while waiting for ", wr_id,
        " (another operation was outstanding on the queue)"));
  }
  return c.ToStatus();
}

template <typename Q>
absl::Status SyncRead(Q& queue, const RemoteAddress& from, void* local, uint32_t length) {
  absl::Status s = queue.PostRead(from, local, length, kSyncWrId);
  if (!s.ok()) return s;
  return AwaitCompletion(queue, kSyncWrId);
}

template <typename Q>
absl::Status SyncWrite(Q& queue, const RemoteAddress& to, const void* local, uint32_t length) {
  absl::Status s = queue.PostWrite(to, local, length, kSyncWrId);
  if (!s.ok()) return s;
  return AwaitCompletion(queue, kSyncWrId);
}

// Returns the value found at `at` (the swap happened iff it equals `expected`).
// `scratch` must be registered local memory (verbs); 8 bytes.
template <typename Q>
absl::StatusOr<uint64_t> SyncCompareAndSwap(Q& queue, const RemoteAddress& at,
                                            uint64_t expected, uint64_t desired,
                                            uint64_t* scratch) {
  absl::Status s = queue.PostCompareAndSwap(at, expected, desired, scratch, kSyncWrId);
  if (!s.ok()) return s;
  s = AwaitCompletion(queue, kSyncWrId);
  if (!s.ok()) return s;
  return *scratch;
}

}  // namespace dctk::farm::fabric

#endif  // DCTK_FARM_FABRIC_SYNC_H_
