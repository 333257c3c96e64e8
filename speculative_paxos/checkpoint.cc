#include "speculative_paxos/checkpoint.h"

#include <algorithm>
#include <utility>

#include "glog/logging.h"

namespace dctk::spaxos {

absl::StatusOr<std::string> TakeCheckpoint(App* app, Log* log, uint64_t slot,
                                           uint64_t compact_to) {
  absl::StatusOr<std::string> state = app->Snapshot(slot);
  if (!state.ok()) return state.status();
  log->CompactTo(compact_to);
  Checkpoint cp;
  cp.set_slot(slot);
  cp.set_hash(log->HashAt(slot));
  cp.set_app_state(*std::move(state));
  log->ExportClients(slot, cp.mutable_clients());
  return cp.SerializeAsString();
}

SnapshotReply ServeSnapshot(uint32_t self, uint64_t slot, const std::string& bytes,
                            const SnapshotRequest& m, size_t chunk, size_t budget) {
  const uint64_t offset =
      m.slot() == slot ? std::min<uint64_t>(m.offset(), bytes.size()) : 0;
  SnapshotReply reply;
  reply.set_replica(self);
  reply.set_slot(slot);
  reply.set_size(bytes.size());
  reply.set_offset(offset);
  // Within the datagram budget: the other fields, the data's tag and length.
  const size_t header = reply.ByteSizeLong() + 1 + 3;
  const size_t room = budget > header ? budget - header : 1;
  reply.set_data(bytes.substr(offset, std::min(chunk, room)));
  return reply;
}

void SnapshotFetch::Begin(uint32_t replica, uint64_t min_slot) {
  Clear();
  active_ = true;
  from_ = replica;
  min_slot_ = min_slot;
}

SnapshotRequest SnapshotFetch::Request(uint32_t self) const {
  SnapshotRequest m;
  m.set_replica(self);
  m.set_slot(slot_);
  m.set_offset(data_.size());
  return m;
}

SnapshotFetch::Step SnapshotFetch::Add(const SnapshotReply& m) {
  if (!active_ || m.replica() != from_ || m.slot() < min_slot_) return kIgnored;
  if (m.slot() != slot_) {
    if (m.offset() != 0) return kIgnored;
    slot_ = m.slot();
    size_ = m.size();
    data_.clear();
  }
  if (m.offset() != data_.size() || m.size() != size_) return kIgnored;
  data_ += m.data();
  if (data_.size() < size_) return kMore;
  if (!checkpoint_.ParseFromString(data_) || checkpoint_.slot() != slot_) {
    LOG(ERROR) << "checkpoint from replica " << from_ << " at slot " << slot_
               << " does not parse; fetching it again";
    slot_ = 0;
    data_.clear();
    return kIgnored;
  }
  active_ = false;
  return kDone;
}

void SnapshotFetch::Clear() {
  active_ = false;
  from_ = 0;
  min_slot_ = slot_ = size_ = 0;
  data_.clear();
  checkpoint_.Clear();
}

}  // namespace dctk::spaxos
