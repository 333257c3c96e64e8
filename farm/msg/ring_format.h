// Record format of FaRM's message rings (ring_sender.h, ring_receiver.h).
//
// A ring is a circular buffer in the receiver's memory that one sender fills
// with one-sided WRITEs. Each record is 16-byte aligned:
//
//   [header: seq(32) | length(24) | kind(8)] [payload, zero padded] [trailer: seq]
//
// `seq` counts records from 1 (0 never appears, so zeroed memory is "empty").
// A fabric WRITE lands in ascending address order, so once the receiver sees
// the trailer equal to the header's seq the whole record is there. A kPad
// record (header only) tells the receiver to skip to the start of the ring.
// The receiver zeroes each record after handling it, so stale bytes from an
// earlier lap can never look like a trailer.
//
// Example:
//   uint64_t bytes = RecordBytes(payload_len);   // what the record occupies
#ifndef DCTK_FARM_MSG_RING_FORMAT_H_
#define DCTK_FARM_MSG_RING_FORMAT_H_

#include <cstdint>

namespace dctk::farm::msg {

enum class RecordKind : uint8_t { kMessage = 1, kPad = 2 };

inline constexpr uint64_t kRecordAlign = 16;
inline constexpr uint32_t kMaxMessageBytes = (1u << 24) - 1;

constexpr uint64_t RecordBytes(uint64_t payload) {
  return (16 + payload + kRecordAlign - 1) / kRecordAlign * kRecordAlign;
}
constexpr uint64_t MakeHeader(uint32_t seq, uint32_t length, RecordKind kind) {
  return (uint64_t{seq} << 32) | (uint64_t{length} << 8) | static_cast<uint8_t>(kind);
}
constexpr uint32_t HeaderSeq(uint64_t h) { return static_cast<uint32_t>(h >> 32); }
constexpr uint32_t HeaderLength(uint64_t h) { return static_cast<uint32_t>(h >> 8) & kMaxMessageBytes; }
constexpr RecordKind HeaderKind(uint64_t h) { return static_cast<RecordKind>(h & 0xff); }
constexpr uint32_t NextSeq(uint32_t seq) { return seq == UINT32_MAX ? 1 : seq + 1; }

}  // namespace dctk::farm::msg

#endif  // DCTK_FARM_MSG_RING_FORMAT_H_
