// SwitchCore: the per-packet pipeline of the MOM switch, independent of DPDK.
//
// Process() parses a frame, looks it up in the ForwardingTable and, if this
// switch is the group's sequencer, stamps the next group sequence number into
// the frame in place, once, before the caller replicates it to the output
// ports (so every copy carries the same number, and copies leave in stamp
// order). Drops are counted by DropReason. The DPDK port layer calls Process()
// for each received mbuf, then clones it into each output port's PortQueues.
//
// Example:
//   SwitchCore core(*ForwardingTable::Create(config, num_ports));
//   Forwarding f;
//   if (!core.Process(in_port, frame, &f)) for each bit p of f.out_ports: enqueue(p, f.band)
#ifndef DCTK_MOM_SWITCH_SWITCH_CORE_H_
#define DCTK_MOM_SWITCH_SWITCH_CORE_H_

#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "mom/switch/drop_reason.h"
#include "mom/switch/forwarding_table.h"

namespace dctk::mom {

class SwitchCore {
 public:
  explicit SwitchCore(ForwardingTable table) : table_(std::move(table)) {}

  // nullopt: forward per `*out`. Otherwise the packet is dropped (and counted).
  absl::optional<DropReason> Process(int in_port, absl::Span<uint8_t> frame, Forwarding* out);

  // Installs a new table; group sequence numbers continue where they were.
  void SetTable(ForwardingTable table) { table_ = std::move(table); }
  // For drops decided later in the pipeline (kQueueFull at an output port, a
  // datagram's `frames` fragments at once).
  void CountDrop(DropReason reason, uint64_t frames = 1) {
    drops_[static_cast<int>(reason)] += frames;
  }

  const DropCounts& drops() const { return drops_; }
  uint64_t forwarded() const { return forwarded_; }
  // Last sequence number stamped for `group_id` (0: none yet).
  uint64_t group_seq(uint32_t group_id) const;
  const absl::flat_hash_map<uint32_t, uint64_t>& group_seqs() const { return group_seq_; }

 private:
  absl::optional<DropReason> Drop(DropReason reason) {
    CountDrop(reason);
    return reason;
  }

  ForwardingTable table_;
  absl::flat_hash_map<uint32_t, uint64_t> group_seq_;
  DropCounts drops_{};
  uint64_t forwarded_ = 0;
};

}  // namespace dctk::mom

#endif  // DCTK_MOM_SWITCH_SWITCH_CORE_H_
