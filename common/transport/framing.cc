#include "common/transport/framing.h"

namespace dctk::transport {
namespace {

void Put16(uint16_t v, char* p) {
  p[0] = static_cast<char>(v >> 8);
  p[1] = static_cast<char>(v);
}
void Put32(uint32_t v, char* p) {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}
uint16_t Get16(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>(u[0] << 8 | u[1]);
}
uint32_t Get32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} << 24 | uint32_t{u[1]} << 16 | uint32_t{u[2]} << 8 | u[3];
}

}  // namespace

absl::string_view MalformedReasonName(MalformedReason reason) {
  switch (reason) {
    case MalformedReason::kTooShort:
      return "too_short";
    case MalformedReason::kBadMagic:
      return "bad_magic";
    case MalformedReason::kBadVersion:
      return "bad_version";
    case MalformedReason::kLengthMismatch:
      return "length_mismatch";
    case MalformedReason::kBadPayload:
      return "bad_payload";
  }
  return "unknown";
}

void EncodeFrameHeader(uint32_t type_id, uint32_t payload_size, char* out) {
  Put16(kFrameMagic, out);
  out[2] = static_cast<char>(kFrameVersion);
  out[3] = 0;  // flags
  Put32(type_id, out + 4);
  Put32(payload_size, out + 8);
}

FrameDecodeResult DecodeFrame(absl::string_view datagram) {
  if (datagram.size() < kFrameHeaderSize) {
    return FrameDecodeResult(MalformedReason::kTooShort);
  }
  const char* p = datagram.data();
  if (Get16(p) != kFrameMagic) return FrameDecodeResult(MalformedReason::kBadMagic);
  if (static_cast<uint8_t>(p[2]) != kFrameVersion) {
    return FrameDecodeResult(MalformedReason::kBadVersion);
  }
  uint32_t length = Get32(p + 8);
  if (length != datagram.size() - kFrameHeaderSize) {
    return FrameDecodeResult(MalformedReason::kLengthMismatch);
  }
  return FrameDecodeResult(Envelope(Get32(p + 4), datagram.substr(kFrameHeaderSize)));
}

}  // namespace dctk::transport
