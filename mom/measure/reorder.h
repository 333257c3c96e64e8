// ReorderMeter: the reorder rate of a multicast experiment, from the order in
// which each receiver delivered the messages.
//
// MOM's figure of merit (Speculative Paxos, NSDI 2015, section 3) is how often
// receivers deliver multicast messages in different orders. We use this exact
// definition, the same in simulation (mom/sim) and on real networks:
//
//   Two messages m, m' are *inverted* between receivers r, s if both receivers
//   delivered both, and r delivered m before m' while s delivered m' before m.
//   A message is *reordered* if it is inverted with at least one other message
//   between at least one pair of receivers.
//   reorder rate = reordered messages / messages delivered by >= 2 receivers.
//
// Only a receiver's first delivery of a message counts (duplicates are
// ignored), and messages some receiver missed take part only for the receivers
// that have them: drops are reported separately (incomplete), not as reordering.
// A finer pair-level figure is reported too: inverted (message pair, receiver
// pair) combinations over all compared combinations.
//
// Cost: O(R^2 * N log N) for R receivers and N messages, O(R * N) memory.
//
// Example:
//   ReorderMeter meter(/*receivers=*/3);
//   meter.Record(0, {1, 1}); meter.Record(0, {2, 1});  // (sender, seq)
//   meter.Record(1, {2, 1}); meter.Record(1, {1, 1});
//   ReorderReport r = meter.Compute();  // r.reordered == 2, r.reorder_rate() == 1.0
#ifndef DCTK_MOM_MEASURE_REORDER_H_
#define DCTK_MOM_MEASURE_REORDER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace dctk::mom {

// A multicast message's identity: its sender and per-sender sequence number.
struct MessageId {
  uint32_t sender = 0;
  uint64_t seq = 0;

  friend bool operator==(const MessageId& a, const MessageId& b) {
    return a.sender == b.sender && a.seq == b.seq;
  }
  template <typename H>
  friend H AbslHashValue(H h, const MessageId& m) {
    return H::combine(std::move(h), m.sender, m.seq);
  }
};

struct ReorderReport {
  uint64_t messages = 0;     // distinct messages delivered by >= 2 receivers
  uint64_t reordered = 0;    // of those, messages in at least one inversion
  uint64_t incomplete = 0;   // distinct messages some receiver never delivered
  uint64_t duplicates = 0;   // repeated deliveries, ignored
  uint64_t compared_pairs = 0;  // (message pair, receiver pair) combinations
  uint64_t inverted_pairs = 0;  // of those, inverted

  double reorder_rate() const {
    return messages == 0 ? 0.0 : static_cast<double>(reordered) / messages;
  }
  double pair_inversion_rate() const {
    return compared_pairs == 0 ? 0.0 : static_cast<double>(inverted_pairs) / compared_pairs;
  }
  std::string ToString() const;
};

class ReorderMeter {
 public:
  explicit ReorderMeter(int receivers);

  // Receiver `receiver` (0 <= receiver < receivers) delivered `msg`; calls for one
  // receiver must come in its delivery order.
  void Record(int receiver, MessageId msg);

  ReorderReport Compute() const;

 private:
  uint32_t IndexOf(MessageId msg);

  absl::flat_hash_map<MessageId, uint32_t> index_;
  std::vector<std::vector<uint32_t>> order_;     // per receiver: message indexes
  std::vector<std::vector<int32_t>> position_;   // per receiver: index -> position or -1
  uint64_t duplicates_ = 0;
};

}  // namespace dctk::mom

#endif  // DCTK_MOM_MEASURE_REORDER_H_
