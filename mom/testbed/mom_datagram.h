// MOM datagrams as hosts on the testbed send and receive them: the transport
// frame (common/transport/framing.h) carrying a MomPacket, byte for byte what
// MomSender puts on the wire, with the send time (CLOCK_MONOTONIC ns, shared by
// all namespaces of one machine) in the payload for one-way latency.
//
// Example:
//   std::string d = EncodeMomDatagram(/*group_id=*/5, /*sender=*/1, seq,
//                                     /*serialized=*/true, MonotonicNanos());
//   absl::optional<MomDatagram> m = DecodeMomDatagram(received);
#ifndef DCTK_MOM_TESTBED_MOM_DATAGRAM_H_
#define DCTK_MOM_TESTBED_MOM_DATAGRAM_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/optional.h"

namespace dctk::mom {

struct MomDatagram {
  uint32_t group_id = 0;
  uint32_t sender_id = 0;
  uint64_t sender_seq = 0;
  uint64_t group_seq = 0;  // stamped by a sequencer switch; 0: none
  uint64_t sent_ns = 0;
};

// `serialized`: include the group_seq slot a sequencer stamps. `padding`
// bytes are appended to the payload (to make larger packets).
std::string EncodeMomDatagram(uint32_t group_id, uint32_t sender_id, uint64_t sender_seq,
                              bool serialized, uint64_t sent_ns, size_t padding = 0);
absl::optional<MomDatagram> DecodeMomDatagram(absl::string_view datagram);

uint64_t MonotonicNanos();

}  // namespace dctk::mom

#endif  // DCTK_MOM_TESTBED_MOM_DATAGRAM_H_
