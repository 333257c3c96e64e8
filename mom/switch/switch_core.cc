#include "mom/switch/switch_core.h"

namespace dctk::mom {

absl::optional<DropReason> SwitchCore::Process(int in_port, absl::Span<uint8_t> frame,
                                               Forwarding* out) {
  PacketInfo info;
  if (absl::optional<DropReason> r = ParsePacket(frame, &info)) return Drop(*r);
  if (absl::optional<DropReason> r = table_.Lookup(in_port, info, out)) return Drop(*r);
  // A stamped datagram's later fragments follow its first, which carries the slot.
  if (out->stamp && !info.later_fragment) {
    uint64_t& seq = group_seq_[out->group_id];
    if (!StampGroupSeq(frame, info, seq + 1)) return Drop(DropReason::kNotMomPacket);
    ++seq;
  }
  ++forwarded_;
  return absl::nullopt;
}

uint64_t SwitchCore::group_seq(uint32_t group_id) const {
  auto it = group_seq_.find(group_id);
  return it == group_seq_.end() ? 0 : it->second;
}

}  // namespace dctk::mom
