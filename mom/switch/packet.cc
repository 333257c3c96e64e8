#include "mom/switch/packet.h"

#include "common/transport/framing.h"
#include "common/transport/transport.h"
#include "mom/mom.pb.h"

namespace dctk::mom {
namespace {

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t Be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

}  // namespace

absl::optional<DropReason> ParsePacket(absl::Span<const uint8_t> frame, PacketInfo* info) {
  if (frame.size() < kEthernetHeaderSize + 20) return DropReason::kMalformed;
  if (Be16(&frame[12]) != 0x0800) return DropReason::kNotIpv4;
  const uint8_t* ip = &frame[kEthernetHeaderSize];
  const size_t ihl = (ip[0] & 0x0f) * 4;
  if ((ip[0] >> 4) != 4 || ihl < 20) return DropReason::kMalformed;
  const size_t ip_total = Be16(&ip[2]);
  if (ip_total <= ihl || kEthernetHeaderSize + ip_total > frame.size()) {
    return DropReason::kMalformed;
  }
  if (ip[9] != 17) return DropReason::kNotIpv4;  // UDP only
  const uint16_t flags_offset = Be16(&ip[6]);
  const bool more_fragments = (flags_offset & 0x2000) != 0;
  info->later_fragment = (flags_offset & 0x1fff) != 0;
  info->dscp = ip[1] >> 2;
  info->src_ip = Be32(&ip[12]);
  info->dst_ip = Be32(&ip[16]);
  info->ip_offset = kEthernetHeaderSize;
  if (info->later_fragment) {  // no UDP header: forwarded on its IP header alone
    info->src_port = info->dst_port = 0;
    info->udp_offset = info->payload_offset = info->payload_size = 0;
    return absl::nullopt;
  }
  const size_t present = ip_total - ihl;  // UDP bytes in this frame
  if (present < kUdpHeaderSize) return DropReason::kMalformed;
  const uint8_t* udp = ip + ihl;
  const size_t udp_len = Be16(&udp[4]);
  // A first fragment holds part of the datagram; a whole datagram fits.
  if (udp_len < kUdpHeaderSize || (more_fragments ? udp_len <= present : udp_len > present)) {
    return DropReason::kMalformed;
  }
  info->src_port = Be16(&udp[0]);
  info->dst_port = Be16(&udp[2]);
  info->udp_offset = kEthernetHeaderSize + ihl;
  info->payload_offset = info->udp_offset + kUdpHeaderSize;
  info->payload_size = (more_fragments ? present : udp_len) - kUdpHeaderSize;
  return absl::nullopt;
}

bool StampGroupSeq(absl::Span<uint8_t> frame, const PacketInfo& info, uint64_t group_seq) {
  if (info.payload_size < kGroupSeqOffset + 8) return false;
  uint8_t* payload = &frame[info.payload_offset];
  static const uint32_t kMomType = transport::TypeId<MomPacket>();
  if (Be16(payload) != transport::kFrameMagic || Be32(payload + 4) != kMomType ||
      payload[transport::kFrameHeaderSize] != 0x09) {  // field 1, wire type fixed64
    return false;
  }
  for (int i = 0; i < 8; ++i) payload[kGroupSeqOffset + i] = static_cast<uint8_t>(group_seq >> (8 * i));
  frame[info.udp_offset + 6] = 0;  // UDP checksum: none
  frame[info.udp_offset + 7] = 0;
  return true;
}

}  // namespace dctk::mom
