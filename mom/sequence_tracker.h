// SequenceTracker: classifies arriving sequence numbers of one stream as in
// order, after a gap, late (filling an earlier gap) or duplicate.
//
// MOM receivers keep one per sender (per-sender sequence numbers) and one for
// the group sequence stamped by a serialization switch. Sequence numbers start
// at 1. The tracker remembers which of the last kWindow numbers below the
// highest seen have arrived (a bitmap, as IPsec's anti-replay window), so it
// needs no allocation; a number older than the window is reported as kStale,
// since it can no longer tell a late message from a duplicate.
//
// Example:
//   SequenceTracker t;
//   t.Observe(1).kind;  // kInOrder
//   t.Observe(3);       // kAfterGap, skipped == 1; t.missing() == 1
//   t.Observe(2);       // kLate;                  t.missing() == 0
//   t.Observe(2);       // kDuplicate
#ifndef DCTK_MOM_SEQUENCE_TRACKER_H_
#define DCTK_MOM_SEQUENCE_TRACKER_H_

#include <array>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace dctk::mom {

enum class Arrival : uint8_t {
  kInOrder = 0,    // the next number after the highest seen
  kAfterGap = 1,   // higher than the next expected: `skipped` numbers are missing
  kLate = 2,       // fills a gap left earlier (arrived after a later message)
  kDuplicate = 3,  // already seen
  kStale = 4,      // older than the tracking window: late or duplicate, unknown
};
inline constexpr int kNumArrivals = 5;

// "in_order", "after_gap", "late", "duplicate", "stale".
absl::string_view ArrivalName(Arrival arrival);

class SequenceTracker {
 public:
  static constexpr uint64_t kWindow = 1024;

  struct Result {
    Arrival kind;
    uint64_t skipped = 0;  // for kAfterGap: how many numbers were jumped over
  };

  // `seq` must be >= 1.
  Result Observe(uint64_t seq);
  // Forgets everything (the stream restarted).
  void Reset();

  uint64_t highest() const { return highest_; }
  // Numbers skipped and not (yet) filled by late arrivals. Numbers that fall out
  // of the window while missing stay counted: they are presumed lost.
  uint64_t missing() const { return missing_; }

 private:
  bool Seen(uint64_t seq) const { return bits_[(seq % kWindow) / 64] >> (seq % 64) & 1; }
  void Mark(uint64_t seq) { bits_[(seq % kWindow) / 64] |= uint64_t{1} << (seq % 64); }
  void Clear(uint64_t seq) { bits_[(seq % kWindow) / 64] &= ~(uint64_t{1} << (seq % 64)); }

  uint64_t highest_ = 0;
  uint64_t missing_ = 0;
  std::array<uint64_t, kWindow / 64> bits_{};
};

}  // namespace dctk::mom

#endif  // DCTK_MOM_SEQUENCE_TRACKER_H_
