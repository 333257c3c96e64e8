#include "mom/sim/tos_filter.h"

#include "ns3/ipv4-header.h"
#include "ns3/ipv4-queue-disc-item.h"

namespace ns3 {

NS_OBJECT_ENSURE_REGISTERED(MomTosPacketFilter);

TypeId MomTosPacketFilter::GetTypeId() {
  static TypeId tid = TypeId("ns3::MomTosPacketFilter")
                          .SetParent<Ipv4PacketFilter>()
                          .SetGroupName("Mom")
                          .AddConstructor<MomTosPacketFilter>();
  return tid;
}

int32_t MomTosPacketFilter::DoClassify(Ptr<QueueDiscItem> item) const {
  Ptr<Ipv4QueueDiscItem> ip = DynamicCast<Ipv4QueueDiscItem>(item);
  return ip->GetHeader().GetDscp() == Ipv4Header::DSCP_EF ? 0 : 1;
}

}  // namespace ns3
