// Frames the switch uses to probe a host-facing link (DPDK-free): an ARP
// probe (RFC 5227: sender IP 0.0.0.0, so the host learns no neighbour from
// it) asking for the host's own address, which the host's kernel answers
// with an ARP reply sent back to the probe's source MAC; the switch counts
// those replies per port. Both directions of the link, and the host's
// kernel, take part, as in BFD's echo mode; hosts run nothing of ours.
//
// Example:
//   uint8_t frame[kProbeFrameBytes];
//   WriteArpProbe(0x0ac90003, absl::MakeSpan(frame));  // who has 10.201.0.3?
//   ... later, on that port: if (IsArpProbeReply(received)) ++replies;
#ifndef DCTK_MOM_SWITCH_LINK_PROBE_H_
#define DCTK_MOM_SWITCH_LINK_PROBE_H_

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"

namespace dctk::mom {

inline constexpr size_t kProbeFrameBytes = 60;  // the minimum Ethernet frame
// The source of every probe: a locally administered unicast address.
inline constexpr uint8_t kProbeMac[6] = {0x02, 0, 0, 0, 0, 0};

// Writes the ARP probe for `target_ip` (host byte order) into `frame`
// (kProbeFrameBytes long): broadcast, from kProbeMac, padded with zeros.
void WriteArpProbe(uint32_t target_ip, absl::Span<uint8_t> frame);

// Whether `frame` is an ARP reply sent to kProbeMac: a host answering a probe.
bool IsArpProbeReply(absl::Span<const uint8_t> frame);

}  // namespace dctk::mom

#endif  // DCTK_MOM_SWITCH_LINK_PROBE_H_
