#include "mom/controller/switch_config.h"

#include <map>

#include "glog/logging.h"

namespace dctk::mom {

uint32_t ChannelGroupIp(uint32_t group_id, int channel) {
  CHECK_LT(group_id, 65536u) << "MOM group id does not fit a 239.G.G.C address";
  CHECK(channel >= 0 && channel < 256) << "channel " << channel;
  return (239u << 24) | (group_id << 8) | static_cast<uint32_t>(channel);
}

std::vector<SwitchConfig> SwitchConfigs(const Topology& topology, const GroupRoutes& routes) {
  std::map<int, SwitchConfig> by_node;
  for (const ForwardingRule& rule : routes.rules) {
    SwitchConfig& config = by_node[rule.node];
    config.set_switch_name(topology.node(rule.node).name);
    MulticastRule* out = config.add_rules();
    out->set_group_ip(ChannelGroupIp(routes.spec.group_id, rule.channel));
    out->set_group_id(routes.spec.group_id);
    out->set_in_port(topology.PortTo(rule.node, rule.in_neighbor));
    for (int n : rule.out_neighbors) out->add_out_ports(topology.PortTo(rule.node, n));
    out->set_high_priority(routes.high_priority);
    out->set_stamp_group_seq(rule.stamp);
  }
  std::vector<SwitchConfig> configs;
  for (auto& [node, config] : by_node) configs.push_back(std::move(config));
  return configs;
}

}  // namespace dctk::mom
