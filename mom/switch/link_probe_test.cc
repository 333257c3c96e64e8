#include "mom/switch/link_probe.h"

#include <vector>

#include "gtest/gtest.h"

namespace dctk::mom {
namespace {

TEST(LinkProbeTest, ArpProbeAsksForTheHostFromTheProbeAddress) {
  std::vector<uint8_t> f(kProbeFrameBytes, 0xee);
  WriteArpProbe(0x0ac90003, absl::MakeSpan(f));
  // clang-format off
  const std::vector<uint8_t> want = {
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0, 0x08, 0x06,  // Ethernet
      0, 1, 0x08, 0, 6, 4, 0, 1,                                          // ARP request
      0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0,                                    // sender: MAC, IP 0
      0, 0, 0, 0, 0, 0, 10, 201, 0, 3};                                   // target 10.201.0.3
  // clang-format on
  EXPECT_EQ(std::vector<uint8_t>(f.begin(), f.begin() + want.size()), want);
  for (size_t i = want.size(); i < f.size(); ++i) EXPECT_EQ(f[i], 0) << "padding byte " << i;
}

// What a Linux host sends back to an ARP probe: a reply to the probe's
// sender MAC, target IP 0.
std::vector<uint8_t> Reply(uint8_t to_first_byte, uint8_t op) {
  // clang-format off
  return {to_first_byte, 0, 0, 0, 0, 0, 0x02, 0, 0x0a, 0xc9, 0, 3, 0x08, 0x06,  // Ethernet
          0, 1, 0x08, 0, 6, 4, 0, op,                                         // ARP
          0x02, 0, 0x0a, 0xc9, 0, 3, 10, 201, 0, 3,                           // the host
          0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0};                                   // the prober
  // clang-format on
}

TEST(LinkProbeTest, OnlyArpRepliesToTheProbeAddressCount) {
  EXPECT_TRUE(IsArpProbeReply(Reply(0x02, 2)));
  EXPECT_FALSE(IsArpProbeReply(Reply(0x02, 1))) << "a request";
  EXPECT_FALSE(IsArpProbeReply(Reply(0x04, 2))) << "a reply to someone else";
  std::vector<uint8_t> ipv4 = Reply(0x02, 2);
  ipv4[13] = 0x00;  // EtherType 0x0800
  EXPECT_FALSE(IsArpProbeReply(ipv4));
  std::vector<uint8_t> cut = Reply(0x02, 2);
  cut.resize(30);
  EXPECT_FALSE(IsArpProbeReply(cut));
}

}  // namespace
}  // namespace dctk::mom
