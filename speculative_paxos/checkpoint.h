// Checkpoints and their transfer, shared by the replicas that compact their
// logs (Speculative Paxos's Replica, VrReplica).
//
// TakeCheckpoint snapshots the app at a committed slot together with the
// log's client records into one serialized Checkpoint and compacts the log
// up to the previous checkpoint (so about two intervals of entries stay for
// followers that lag a little). ServeSnapshot answers a SnapshotRequest with
// a chunk of the replica's newest checkpoint within the datagram budget;
// any replica serves its checkpoint at any time (it is committed state).
// SnapshotFetch copies another replica's checkpoint chunk by chunk (stop and
// wait), starting over when the source moves to a newer checkpoint.
//
// Example:
//   absl::StatusOr<std::string> cp = TakeCheckpoint(app, &log, commit, previous_slot);
//   ...
//   fetch.Begin(leader, min_slot);
//   Send(leader, fetch.Request(self));
//   // on each SnapshotReply m:
//   switch (fetch.Add(m)) {
//     case SnapshotFetch::kMore: Send(leader, fetch.Request(self)); break;
//     case SnapshotFetch::kDone: Install(fetch.checkpoint(), fetch.TakeBytes()); break;
//     default: break;
//   }
#ifndef DCTK_SPECULATIVE_PAXOS_CHECKPOINT_H_
#define DCTK_SPECULATIVE_PAXOS_CHECKPOINT_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "speculative_paxos/app.h"
#include "speculative_paxos/log.h"
#include "speculative_paxos/spaxos.pb.h"

namespace dctk::spaxos {

// The app's snapshot at `slot` (<= log->committed()) and the client records
// there, serialized as a Checkpoint; on success the log is compacted up to
// `compact_to` (<= slot). Errors: the app has no snapshots.
absl::StatusOr<std::string> TakeCheckpoint(App* app, Log* log, uint64_t slot,
                                           uint64_t compact_to);

// The reply of replica `self`, holding checkpoint `bytes` at `slot`, to `m`:
// the bytes from the asked offset (from 0 if it asked for another slot), at
// most `chunk` of them and within `budget` payload bytes.
SnapshotReply ServeSnapshot(uint32_t self, uint64_t slot, const std::string& bytes,
                            const SnapshotRequest& m, size_t chunk, size_t budget);

// A checkpoint being copied from another replica.
class SnapshotFetch {
 public:
  enum Step { kIgnored, kMore, kDone };

  // Starts copying a checkpoint at a slot >= min_slot from `replica`.
  void Begin(uint32_t replica, uint64_t min_slot);
  bool active() const { return active_; }
  uint32_t from() const { return from_; }
  // The request for the next chunk.
  SnapshotRequest Request(uint32_t self) const;
  // Takes a chunk: kMore (ask for the next), kDone (checkpoint() holds it;
  // the fetch is over) or kIgnored (not ours, out of order, or a complete
  // copy that does not parse, which starts the copy over).
  Step Add(const SnapshotReply& m);
  const Checkpoint& checkpoint() const { return checkpoint_; }
  // The serialized checkpoint, once done (to serve it on).
  std::string TakeBytes() { return std::move(data_); }
  void Clear();

 private:
  bool active_ = false;
  uint32_t from_ = 0;
  uint64_t min_slot_ = 0;
  uint64_t slot_ = 0;  // of the bytes in data_
  uint64_t size_ = 0;
  std::string data_;
  Checkpoint checkpoint_;
};

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_CHECKPOINT_H_
