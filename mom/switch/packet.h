// Packet parsing and in-place stamping for the MOM switch data plane.
//
// ParsePacket reads an Ethernet II / IPv4 / UDP frame without copying and
// without trusting it (lengths checked against the buffer). IPv4 fragments of
// large datagrams pass: the first carries the UDP header (its payload_size is
// the part in this frame), later ones are forwarded on their IP header alone
// (`later_fragment`, no ports, no payload). StampGroupSeq writes
// a group sequence number into a MOM multicast in place: the UDP payload is a
// dctk transport frame (common/transport/framing.h: 12-byte header, type id at
// offset 4) carrying a MomPacket whose field 1 (fixed64 group_seq) the sender
// always encodes first, so the value sits at UDP payload offsets 13-20
// (mom.proto). The UDP checksum is set to 0 (no checksum, allowed for IPv4)
// rather than recomputed.
//
// Example:
//   PacketInfo info;
//   if (absl::optional<DropReason> r = ParsePacket(frame, &info)) drop(*r);
//   if (stamp && !StampGroupSeq(frame, info, seq)) drop(DropReason::kNotMomPacket);
#ifndef DCTK_MOM_SWITCH_PACKET_H_
#define DCTK_MOM_SWITCH_PACKET_H_

#include <cstddef>
#include <cstdint>

#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "mom/switch/drop_reason.h"

namespace dctk::mom {

inline constexpr size_t kEthernetHeaderSize = 14;
inline constexpr size_t kUdpHeaderSize = 8;
// Offset of MomPacket.group_seq's value within the UDP payload.
inline constexpr size_t kGroupSeqOffset = 12 + 1;

struct PacketInfo {
  uint32_t src_ip = 0;  // host byte order
  uint32_t dst_ip = 0;
  uint8_t dscp = 0;
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  size_t ip_offset = 0;
  size_t udp_offset = 0;      // UDP header
  size_t payload_offset = 0;  // UDP payload
  size_t payload_size = 0;    // bytes of UDP payload in this frame
  bool later_fragment = false;  // an IPv4 fragment other than the first
};

// Fills `info`; returns the reason if the frame is not a well-formed IPv4/UDP frame.
absl::optional<DropReason> ParsePacket(absl::Span<const uint8_t> frame, PacketInfo* info);

// Writes `group_seq` into the MomPacket carried by `frame` (parsed into `info`);
// false if the payload is not a transport-framed MomPacket with the seq slot.
bool StampGroupSeq(absl::Span<uint8_t> frame, const PacketInfo& info, uint64_t group_seq);

}  // namespace dctk::mom

#endif  // DCTK_MOM_SWITCH_PACKET_H_
