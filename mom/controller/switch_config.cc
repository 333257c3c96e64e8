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

std::vector<SwitchConfig> UnicastConfigs(const Topology& topology,
                                         const std::function<uint32_t(int host)>& host_ip) {
  std::map<int, SwitchConfig> by_node;
  for (int host : topology.hosts()) {
    const std::vector<int> dist = topology.Distances(host);
    for (int sw : topology.switches()) {
      if (dist[sw] <= 0 || !topology.node_up(sw)) continue;
      std::vector<int> closer;
      for (const Port& p : topology.ports(sw)) {
        const int u = p.neighbor;
        if (dist[u] == dist[sw] - 1 && (u == host || !topology.is_host(u)) &&
            topology.Usable(sw, u)) {
          closer.push_back(u);
        }
      }
      if (closer.empty()) continue;
      SwitchConfig& config = by_node[sw];
      config.set_switch_name(topology.node(sw).name);
      UnicastRoute* route = config.add_unicast_routes();
      route->set_prefix(host_ip(host));
      route->set_prefix_len(32);
      route->set_out_port(topology.PortTo(sw, closer[host % closer.size()]));
    }
  }
  std::vector<SwitchConfig> configs;
  for (auto& [node, config] : by_node) configs.push_back(std::move(config));
  return configs;
}

std::vector<uint32_t> ChannelIps(const GroupRoutes& routes) {
  std::vector<uint32_t> ips;
  for (size_t c = 0; c < routes.channels.size(); ++c) {
    ips.push_back(ChannelGroupIp(routes.spec.group_id, static_cast<int>(c)));
  }
  return ips;
}

uint32_t SenderChannelIp(const GroupRoutes& routes, int sender_index) {
  return ChannelGroupIp(routes.spec.group_id, routes.senders[sender_index].channel);
}

}  // namespace dctk::mom
