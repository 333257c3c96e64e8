// Framing: the wire format of every dctk transport datagram.
//
// A datagram is a fixed 12-byte header followed by the payload, a serialized
// protobuf message. All header fields are big-endian:
//
//   offset 0  u16 magic      kFrameMagic, rejects stray traffic on the port
//   offset 2  u8  version    kFrameVersion
//   offset 3  u8  flags      reserved, sent as 0, ignored on receive
//   offset 4  u32 type_id    TypeId<M>() of the payload's message type
//   offset 8  u32 length     payload length; must equal the bytes that follow
//
// Decoding never trusts the input: a datagram that is too short, has the wrong
// magic or version, or whose length field disagrees with its size is rejected
// with a named `MalformedReason`, which transports count and drop.
//
// Example:
//   char header[kFrameHeaderSize];
//   EncodeFrameHeader(TypeId<Ping>(), payload.size(), header);
//   ... send header + payload ...
//   FrameDecodeResult r = DecodeFrame(datagram);
//   if (!r.ok()) stats.malformed[static_cast<int>(r.reason())]++;
//   else receiver->ReceiveMessage(from, r.envelope());
#ifndef DCTK_COMMON_TRANSPORT_FRAMING_H_
#define DCTK_COMMON_TRANSPORT_FRAMING_H_

#include <array>
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "common/transport/transport.h"

namespace dctk::transport {

inline constexpr uint16_t kFrameMagic = 0xDC7C;
inline constexpr uint8_t kFrameVersion = 1;
inline constexpr size_t kFrameHeaderSize = 12;
// Largest UDP payload over IPv4 (65535 - 20 IP - 8 UDP) minus our header.
inline constexpr size_t kMaxPayloadSize = 65507 - kFrameHeaderSize;

// Why a datagram or message was dropped as malformed.
enum class MalformedReason : uint8_t {
  kTooShort = 0,        // fewer bytes than the header
  kBadMagic = 1,        // header magic is not kFrameMagic
  kBadVersion = 2,      // header version is not kFrameVersion
  kLengthMismatch = 3,  // header length != bytes after the header (incl. truncation)
  kBadPayload = 4,      // framing fine, but Envelope::Parse could not decode it
};
inline constexpr int kNumMalformedReasons = 5;

// "too_short", "bad_magic", ...: the reason's name for logs and metric labels.
absl::string_view MalformedReasonName(MalformedReason reason);

// Per-reason counters, indexed by static_cast<int>(MalformedReason).
using MalformedCounts = std::array<uint64_t, kNumMalformedReasons>;

// Writes the header for a `payload_size`-byte payload of type `type_id` into
// `out` (kFrameHeaderSize bytes). `payload_size` must be <= kMaxPayloadSize.
void EncodeFrameHeader(uint32_t type_id, uint32_t payload_size, char* out);

// Either the decoded envelope (pointing into the datagram) or why it was rejected.
class FrameDecodeResult {
 public:
  explicit FrameDecodeResult(Envelope envelope) : envelope_(envelope), ok_(true) {}
  explicit FrameDecodeResult(MalformedReason reason)
      : envelope_(0, absl::string_view()), reason_(reason), ok_(false) {}

  bool ok() const { return ok_; }
  // Valid only if !ok().
  MalformedReason reason() const { return reason_; }
  // Valid only if ok(); the payload aliases the decoded datagram.
  const Envelope& envelope() const { return envelope_; }

 private:
  Envelope envelope_;
  MalformedReason reason_ = MalformedReason::kTooShort;
  bool ok_;
};

FrameDecodeResult DecodeFrame(absl::string_view datagram);

}  // namespace dctk::transport

#endif  // DCTK_COMMON_TRANSPORT_FRAMING_H_
