// RecordingTransport: a Transport decorator that records, in arrival order,
// the (sender id, sender sequence number) of every MOM packet (mom.proto's
// MomPacket) delivered to any receiver registered through it, then passes the
// message on unchanged. A replica process wraps its UdpTransport in one so
// the order in which its requests arrived can be compared across replicas
// (the reorder rate, mom/measure/reorder.h) without touching the replica.
//
// Everything else (sends, timers, groups, the loop) goes to the wrapped
// transport (ForwardingTransport).
//
// Example:
//   RecordingTransport net(udp.get());
//   Replica replica(&net, config, index, &app);   // registers through `net`
//   net.Run();
//   for (const mom::MessageId& id : net.arrivals()) ...
#ifndef DCTK_SPECULATIVE_PAXOS_OVER_MOM_RECORDING_TRANSPORT_H_
#define DCTK_SPECULATIVE_PAXOS_OVER_MOM_RECORDING_TRANSPORT_H_

#include <vector>

#include "common/transport/forwarding_transport.h"
#include "mom/measure/reorder.h"

namespace dctk::spaxos {

class RecordingTransport : public transport::ForwardingTransport {
 public:
  using ForwardingTransport::ForwardingTransport;

  // MOM packets in arrival order, duplicates included. Loop thread only (or
  // after Run() returned).
  const std::vector<mom::MessageId>& arrivals() const { return arrivals_; }

 protected:
  void Deliver(transport::TransportReceiver* to, const transport::Address& from,
               const transport::Envelope& msg) override;

 private:
  std::vector<mom::MessageId> arrivals_;
};

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_OVER_MOM_RECORDING_TRANSPORT_H_
