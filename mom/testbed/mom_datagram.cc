#include "mom/testbed/mom_datagram.h"

#include <time.h>

#include <cstring>

#include "common/transport/framing.h"
#include "common/transport/transport.h"
#include "mom/mom.pb.h"

namespace dctk::mom {

std::string EncodeMomDatagram(uint32_t group_id, uint32_t sender_id, uint64_t sender_seq,
                              bool serialized, uint64_t sent_ns, size_t padding) {
  MomPacket p;
  if (serialized) p.set_group_seq(0);
  p.set_group_id(group_id);
  p.set_sender_id(sender_id);
  p.set_sender_seq(sender_seq);
  p.set_incarnation(1);
  std::string payload(sizeof(sent_ns) + padding, '\0');
  std::memcpy(payload.data(), &sent_ns, sizeof(sent_ns));
  p.set_payload(std::move(payload));
  const std::string body = p.SerializeAsString();
  char header[transport::kFrameHeaderSize];
  transport::EncodeFrameHeader(transport::TypeId<MomPacket>(), body.size(), header);
  return std::string(header, sizeof(header)) + body;
}

absl::optional<MomDatagram> DecodeMomDatagram(absl::string_view datagram) {
  transport::FrameDecodeResult r = transport::DecodeFrame(datagram);
  MomPacket p;
  if (!r.ok() || !r.envelope().Is<MomPacket>() || !r.envelope().Parse(&p)) return absl::nullopt;
  MomDatagram d{.group_id = p.group_id(), .sender_id = p.sender_id(),
                .sender_seq = p.sender_seq(), .group_seq = p.group_seq()};
  if (p.payload().size() >= sizeof(d.sent_ns)) {
    std::memcpy(&d.sent_ns, p.payload().data(), sizeof(d.sent_ns));
  }
  return d;
}

uint64_t MonotonicNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace dctk::mom
