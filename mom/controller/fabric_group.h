// FabricGroupConfig: the GroupConfig hosts use for a group routed over MOM
// switches. The controller gives a group one multicast channel per sender
// (naive) or per root (topology-aware, serialized); each sender must send to
// its own channel's address and members must join them all. This builds that
// config from the routes, so MomSender / MomReceiver work over the fabric.
//
// Example:
//   GroupRoutes r = *ComputeRoutes(topology, spec);
//   // spec.senders[i] runs a MomSender with sender id sender_ids[i]
//   GroupConfig g = FabricGroupConfig(r, /*port=*/7000, sender_ids);
#ifndef DCTK_MOM_CONTROLLER_FABRIC_GROUP_H_
#define DCTK_MOM_CONTROLLER_FABRIC_GROUP_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "mom/controller/routes.h"
#include "mom/group.h"

namespace dctk::mom {

// group_address is channel 0's address; sender_addresses[sender_ids[i]] is
// the channel of routes.spec.senders[i]; delivery kIpMulticast, the routes'
// design. InvalidArgument unless there is one distinct id per sender.
absl::StatusOr<GroupConfig> FabricGroupConfig(const GroupRoutes& routes, uint16_t port,
                                              const std::vector<uint32_t>& sender_ids);

}  // namespace dctk::mom

#endif  // DCTK_MOM_CONTROLLER_FABRIC_GROUP_H_
