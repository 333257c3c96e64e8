#include "mom/sequence_tracker.h"

#include "glog/logging.h"

namespace dctk::mom {

absl::string_view ArrivalName(Arrival arrival) {
  switch (arrival) {
    case Arrival::kInOrder:
      return "in_order";
    case Arrival::kAfterGap:
      return "after_gap";
    case Arrival::kLate:
      return "late";
    case Arrival::kDuplicate:
      return "duplicate";
    case Arrival::kStale:
      return "stale";
  }
  return "unknown";
}

SequenceTracker::Result SequenceTracker::Observe(uint64_t seq) {
  CHECK_GE(seq, 1u) << "sequence numbers start at 1";
  if (seq > highest_) {
    const uint64_t skipped = seq - highest_ - 1;
    if (seq - highest_ >= kWindow) {
      bits_.fill(0);
    } else {
      for (uint64_t s = highest_ + 1; s <= seq; ++s) Clear(s);
    }
    Mark(seq);
    highest_ = seq;
    missing_ += skipped;
    return {skipped == 0 ? Arrival::kInOrder : Arrival::kAfterGap, skipped};
  }
  if (highest_ - seq >= kWindow) return {Arrival::kStale};
  if (Seen(seq)) return {Arrival::kDuplicate};
  Mark(seq);
  --missing_;
  return {Arrival::kLate};
}

void SequenceTracker::Reset() {
  highest_ = 0;
  missing_ = 0;
  bits_.fill(0);
}

}  // namespace dctk::mom
