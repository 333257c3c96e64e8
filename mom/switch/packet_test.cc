#include "mom/switch/packet.h"

#include "gtest/gtest.h"
#include "mom/switch/test_frames.h"

namespace dctk::mom {
namespace {

using testing::MomPayload;
using testing::ParseMom;
using testing::UdpFrame;

TEST(PacketTest, ParsesIpv4Udp) {
  std::vector<uint8_t> f = UdpFrame(0x0a000001, 0xef000500, 46, "hello");
  PacketInfo info;
  ASSERT_FALSE(ParsePacket(f, &info).has_value());
  EXPECT_EQ(info.src_ip, 0x0a000001u);
  EXPECT_EQ(info.dst_ip, 0xef000500u);
  EXPECT_EQ(info.dscp, 46);
  EXPECT_EQ(info.dst_port, 7000);
  EXPECT_EQ(info.payload_offset, 42u);
  EXPECT_EQ(info.payload_size, 5u);
}

TEST(PacketTest, RejectsBadFramesWithReasons) {
  PacketInfo info;
  std::vector<uint8_t> f = UdpFrame(1, 2, 0, "x");
  EXPECT_EQ(ParsePacket(absl::MakeSpan(f.data(), 20), &info), DropReason::kMalformed);
  std::vector<uint8_t> arp = f;
  arp[12] = 0x08;
  arp[13] = 0x06;
  EXPECT_EQ(ParsePacket(arp, &info), DropReason::kNotIpv4);
  EXPECT_EQ(ParsePacket(UdpFrame(1, 2, 0, "x", /*protocol=*/6), &info), DropReason::kNotIpv4);
  std::vector<uint8_t> long_ip = f;
  long_ip[17] += 10;  // IPv4 total length beyond the frame
  EXPECT_EQ(ParsePacket(long_ip, &info), DropReason::kMalformed);
  std::vector<uint8_t> bad_udp = f;
  bad_udp[39] += 10;  // UDP length beyond the IP packet
  EXPECT_EQ(ParsePacket(bad_udp, &info), DropReason::kMalformed);
  std::vector<uint8_t> v6 = f;
  v6[14] = 0x65;
  EXPECT_EQ(ParsePacket(v6, &info), DropReason::kMalformed);
}

// A 3000-byte datagram as the kernel fragments it at MTU 1500: the first
// fragment carries the UDP header, the later one does not.
TEST(PacketTest, ParsesFragmentsOfLargeDatagrams) {
  std::vector<uint8_t> first = UdpFrame(0x0a000001, 0x0a000002, 0, std::string(1472, 'a'));
  first[14 + 6] = 0x20;  // more fragments, offset 0
  first[14 + 20 + 4] = static_cast<uint8_t>((3000 + 8) >> 8);  // the whole datagram's UDP length
  first[14 + 20 + 5] = static_cast<uint8_t>(3000 + 8);
  PacketInfo info;
  ASSERT_FALSE(ParsePacket(first, &info).has_value());
  EXPECT_FALSE(info.later_fragment);
  EXPECT_EQ(info.dst_ip, 0x0a000002u);
  EXPECT_EQ(info.dst_port, 7000);
  EXPECT_EQ(info.payload_size, 1472u);

  std::vector<uint8_t> later = UdpFrame(0x0a000001, 0x0a000002, 46, std::string(1472, 'b'));
  later[14 + 6] = 0x00;
  later[14 + 7] = 185;  // offset 1480 / 8, last fragment
  later[14 + 20 + 4] = 0xff;  // payload bytes where a UDP header would be
  later[14 + 20 + 5] = 0xff;
  ASSERT_FALSE(ParsePacket(later, &info).has_value());
  EXPECT_TRUE(info.later_fragment);
  EXPECT_EQ(info.dst_ip, 0x0a000002u);
  EXPECT_EQ(info.dscp, 46);
  EXPECT_EQ(info.payload_size, 0u);

  // Without the more-fragments flag the UDP length must fit.
  first[14 + 6] = 0x00;
  EXPECT_EQ(ParsePacket(first, &info), DropReason::kMalformed);
}

TEST(PacketTest, StampsGroupSeqInPlace) {
  std::vector<uint8_t> f = UdpFrame(1, 0xef000500, 46, MomPayload(3, 9));
  PacketInfo info;
  ASSERT_FALSE(ParsePacket(f, &info).has_value());
  ASSERT_TRUE(StampGroupSeq(absl::MakeSpan(f), info, 0x0102030405060708ull));
  MomPacket p = ParseMom(f);
  EXPECT_EQ(p.group_seq(), 0x0102030405060708ull);
  EXPECT_EQ(p.sender_id(), 3u);
  EXPECT_EQ(p.sender_seq(), 9u);
  EXPECT_EQ(p.payload(), "op");
  EXPECT_EQ(f[40], 0);  // UDP checksum cleared
  EXPECT_EQ(f[41], 0);
}

TEST(PacketTest, RefusesToStampOtherPayloads) {
  PacketInfo info;
  std::vector<uint8_t> plain = UdpFrame(1, 0xef000500, 0, std::string(40, 'x'));
  ASSERT_FALSE(ParsePacket(plain, &info).has_value());
  EXPECT_FALSE(StampGroupSeq(absl::MakeSpan(plain), info, 1));
  // A MomPacket without the slot (non-serialized sender) cannot be stamped.
  std::vector<uint8_t> no_slot = UdpFrame(1, 0xef000500, 0, MomPayload(3, 9, false));
  ASSERT_FALSE(ParsePacket(no_slot, &info).has_value());
  EXPECT_FALSE(StampGroupSeq(absl::MakeSpan(no_slot), info, 1));
}

}  // namespace
}  // namespace dctk::mom
