#include "speculative_paxos/over_mom/recording_transport.h"

#include "mom/mom.pb.h"

namespace dctk::spaxos {

void RecordingTransport::Deliver(transport::TransportReceiver* to, const transport::Address& from,
                                 const transport::Envelope& msg) {
  if (msg.Is<mom::MomPacket>()) {
    mom::MomPacket packet;
    if (packet.ParseFromArray(msg.payload().data(), static_cast<int>(msg.payload().size()))) {
      arrivals_.push_back({packet.sender_id(), packet.sender_seq()});
    }
  }
  Forward(to, from, msg);
}

}  // namespace dctk::spaxos
