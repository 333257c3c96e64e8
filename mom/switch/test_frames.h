// Crafted Ethernet/IPv4/UDP frames for the switch data-plane tests.
#ifndef DCTK_MOM_SWITCH_TEST_FRAMES_H_
#define DCTK_MOM_SWITCH_TEST_FRAMES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/transport/framing.h"
#include "common/transport/transport.h"
#include "mom/mom.pb.h"

namespace dctk::mom::testing {

inline std::vector<uint8_t> UdpFrame(uint32_t src_ip, uint32_t dst_ip, uint8_t dscp,
                                     const std::string& payload, uint8_t protocol = 17) {
  std::vector<uint8_t> f(14 + 20 + 8 + payload.size(), 0);
  f[12] = 0x08;  // IPv4
  uint8_t* ip = &f[14];
  ip[0] = 0x45;
  ip[1] = static_cast<uint8_t>(dscp << 2);
  const size_t total = 20 + 8 + payload.size();
  ip[2] = static_cast<uint8_t>(total >> 8);
  ip[3] = static_cast<uint8_t>(total);
  ip[8] = 1;
  ip[9] = protocol;
  for (int i = 0; i < 4; ++i) {
    ip[12 + i] = static_cast<uint8_t>(src_ip >> (24 - 8 * i));
    ip[16 + i] = static_cast<uint8_t>(dst_ip >> (24 - 8 * i));
  }
  uint8_t* udp = ip + 20;
  udp[0] = 0x1b;  // port 7000
  udp[1] = 0x58;
  udp[2] = 0x1b;
  udp[3] = 0x58;
  udp[4] = static_cast<uint8_t>((8 + payload.size()) >> 8);
  udp[5] = static_cast<uint8_t>(8 + payload.size());
  udp[6] = 0xab;  // some checksum
  udp[7] = 0xcd;
  std::copy(payload.begin(), payload.end(), udp + 8);
  return f;
}

// A transport frame carrying a MomPacket as a serialized-design sender makes it.
inline std::string MomPayload(uint32_t sender, uint64_t seq, bool with_seq_slot = true) {
  MomPacket p;
  if (with_seq_slot) p.set_group_seq(0);
  p.set_group_id(5);
  p.set_sender_id(sender);
  p.set_sender_seq(seq);
  p.set_payload("op");
  const std::string body = p.SerializeAsString();
  char header[transport::kFrameHeaderSize];
  transport::EncodeFrameHeader(transport::TypeId<MomPacket>(), body.size(), header);
  return std::string(header, sizeof(header)) + body;
}

// The MomPacket inside a frame built by UdpFrame(..., MomPayload(...)).
inline MomPacket ParseMom(const std::vector<uint8_t>& frame) {
  const std::string payload(frame.begin() + 42, frame.end());
  transport::FrameDecodeResult r = transport::DecodeFrame(payload);
  MomPacket p;
  if (r.ok()) r.envelope().Parse(&p);
  return p;
}

}  // namespace dctk::mom::testing

#endif  // DCTK_MOM_SWITCH_TEST_FRAMES_H_
