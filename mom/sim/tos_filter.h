// MomTosPacketFilter: an ns-3 queue-disc filter that puts DSCP 46 (EF) packets
// in band 0 of a PrioQueueDisc and everything else in band 1.
//
// ns-3's priority queueing normally reads the socket priority tag, which is set
// from the TOS only on the sending host and lost when a router forwards a
// multicast copy; classifying on the IP header itself gives MOM's high-priority
// packets strict priority at every switch port.
//
// Example:
//   uint16_t h = tch.SetRootQueueDisc("ns3::PrioQueueDisc", ...);
//   tch.AddPacketFilter(h, "ns3::MomTosPacketFilter");
#ifndef DCTK_MOM_SIM_TOS_FILTER_H_
#define DCTK_MOM_SIM_TOS_FILTER_H_

#include "ns3/ipv4-packet-filter.h"

namespace ns3 {

class MomTosPacketFilter : public Ipv4PacketFilter {
 public:
  static TypeId GetTypeId();

 private:
  int32_t DoClassify(Ptr<QueueDiscItem> item) const override;
};

}  // namespace ns3

#endif  // DCTK_MOM_SIM_TOS_FILTER_H_
