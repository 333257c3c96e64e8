#include "mom/switch/link_probe.h"

#include <cstring>

namespace dctk::mom {
namespace {

constexpr uint16_t kArpEtherType = 0x0806;
constexpr size_t kArp = 14;  // the ARP message after the Ethernet header
constexpr size_t kArpBytes = 28;

void Put16(uint8_t* p, uint16_t v) {
  p[0] = v >> 8;
  p[1] = v & 0xff;
}

}  // namespace

void WriteArpProbe(uint32_t target_ip, absl::Span<uint8_t> frame) {
  std::memset(frame.data(), 0, frame.size());
  std::memset(frame.data(), 0xff, 6);
  std::memcpy(&frame[6], kProbeMac, 6);
  Put16(&frame[12], kArpEtherType);
  uint8_t* arp = &frame[kArp];
  Put16(arp, 1);           // Ethernet
  Put16(arp + 2, 0x0800);  // IPv4
  arp[4] = 6;
  arp[5] = 4;
  Put16(arp + 6, 1);  // request
  std::memcpy(arp + 8, kProbeMac, 6);
  // Sender IP (arp + 14) and target MAC (arp + 18) stay 0.
  arp[24] = target_ip >> 24;
  arp[25] = (target_ip >> 16) & 0xff;
  arp[26] = (target_ip >> 8) & 0xff;
  arp[27] = target_ip & 0xff;
}

bool IsArpProbeReply(absl::Span<const uint8_t> frame) {
  return frame.size() >= kArp + kArpBytes && std::memcmp(frame.data(), kProbeMac, 6) == 0 &&
         frame[12] == kArpEtherType >> 8 && frame[13] == (kArpEtherType & 0xff) &&
         frame[kArp + 6] == 0 && frame[kArp + 7] == 2;
}

}  // namespace dctk::mom
