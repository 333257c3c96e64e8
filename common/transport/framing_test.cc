#include "common/transport/framing.h"

#include <string>

#include "gtest/gtest.h"

namespace dctk::transport {
namespace {

std::string Frame(uint32_t type_id, absl::string_view payload) {
  std::string out(kFrameHeaderSize, '\0');
  EncodeFrameHeader(type_id, payload.size(), out.data());
  out.append(payload.data(), payload.size());
  return out;
}

TEST(FramingTest, RoundTrips) {
  std::string d = Frame(0xdeadbeef, "hello");
  ASSERT_EQ(d.size(), kFrameHeaderSize + 5);
  EXPECT_EQ(static_cast<uint8_t>(d[0]), 0xDC);  // big-endian magic
  FrameDecodeResult r = DecodeFrame(d);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.envelope().type_id(), 0xdeadbeefu);
  EXPECT_EQ(r.envelope().payload(), "hello");
}

TEST(FramingTest, EmptyPayload) {
  FrameDecodeResult r = DecodeFrame(Frame(7, ""));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.envelope().payload(), "");
}

TEST(FramingTest, NamesEachRejection) {
  std::string good = Frame(1, "abc");
  EXPECT_EQ(DecodeFrame("").reason(), MalformedReason::kTooShort);
  EXPECT_EQ(DecodeFrame(good.substr(0, kFrameHeaderSize - 1)).reason(),
            MalformedReason::kTooShort);

  std::string bad_magic = good;
  bad_magic[1] ^= 1;
  EXPECT_EQ(DecodeFrame(bad_magic).reason(), MalformedReason::kBadMagic);

  std::string bad_version = good;
  bad_version[2] = 9;
  EXPECT_EQ(DecodeFrame(bad_version).reason(), MalformedReason::kBadVersion);

  EXPECT_EQ(DecodeFrame(good.substr(0, good.size() - 1)).reason(),
            MalformedReason::kLengthMismatch);
  EXPECT_EQ(DecodeFrame(good + "x").reason(), MalformedReason::kLengthMismatch);
  std::string huge_length = good;
  huge_length[8] = '\xff';  // length 0xff000003: must not read past the buffer
  EXPECT_EQ(DecodeFrame(huge_length).reason(), MalformedReason::kLengthMismatch);
}

TEST(FramingTest, FlagsAreIgnored) {
  std::string d = Frame(1, "abc");
  d[3] = '\x80';
  EXPECT_TRUE(DecodeFrame(d).ok());
}

TEST(FramingTest, ReasonNames) {
  EXPECT_EQ(MalformedReasonName(MalformedReason::kTooShort), "too_short");
  EXPECT_EQ(MalformedReasonName(MalformedReason::kLengthMismatch), "length_mismatch");
  EXPECT_EQ(MalformedReasonName(MalformedReason::kBadPayload), "bad_payload");
}

}  // namespace
}  // namespace dctk::transport
