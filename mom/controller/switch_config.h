// SwitchConfigs: turns a group's routes into per-switch configuration messages.
//
// Ports are topology ports (Topology::ports order); each channel of a group gets
// its own multicast address, 239.G.G.C (ChannelGroupIp), so a switch matches
// on (destination address, input port) only.
//
// Example:
//   absl::StatusOr<GroupRoutes> r = ComputeRoutes(topology, spec);
//   for (const SwitchConfig& c : SwitchConfigs(topology, *r)) Push(c.switch_name(), c);
#ifndef DCTK_MOM_CONTROLLER_SWITCH_CONFIG_H_
#define DCTK_MOM_CONTROLLER_SWITCH_CONFIG_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "mom/controller/routes.h"
#include "mom/controller/switch_config.pb.h"
#include "mom/controller/topology.h"

namespace dctk::mom {

// 239.(group_id >> 8).(group_id & 0xff).channel, host byte order. Requires
// group_id < 65536 and channel < 256.
uint32_t ChannelGroupIp(uint32_t group_id, int channel);

// One SwitchConfig per switch that has rules for this group, in node order.
std::vector<SwitchConfig> SwitchConfigs(const Topology& topology, const GroupRoutes& routes);

// Unicast forwarding for every host: each switch gets a /32 route per
// reachable host (`host_ip(host)`, host byte order) towards one neighbour on a
// shortest path (spread over equal-cost neighbours by destination). One config
// per switch, in node order; PushConfigs merges them with the multicast ones.
std::vector<SwitchConfig> UnicastConfigs(const Topology& topology,
                                         const std::function<uint32_t(int host)>& host_ip);

// The multicast address of channel `channel` of `routes`' group, and the one
// each sender sends to (its SenderRoute's channel).
std::vector<uint32_t> ChannelIps(const GroupRoutes& routes);
uint32_t SenderChannelIp(const GroupRoutes& routes, int sender_index);

}  // namespace dctk::mom

#endif  // DCTK_MOM_CONTROLLER_SWITCH_CONFIG_H_
