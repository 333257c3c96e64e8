#include "bastion/manager/host_network_policy.h"

#include "absl/strings/str_cat.h"

namespace dctk::bastion {

bool IsHostNetwork(const ContainerInfo& c) { return c.network_mode == "host" && c.ip == 0; }

std::set<uint32_t> HostNetworkIds(const std::vector<ContainerInfo>& containers) {
  std::set<uint32_t> ids;
  for (const ContainerInfo& c : containers) {
    if (IsHostNetwork(c)) ids.insert(c.id);
  }
  return ids;
}

absl::StatusOr<std::vector<ContainerInfo>> WithPlaceholderAddresses(
    const std::vector<ContainerInfo>& containers) {
  constexpr uint32_t kPlaceholderSpace = 1u << 24;  // 0.0.0.0/8
  std::vector<ContainerInfo> out;
  out.reserve(containers.size());
  for (const ContainerInfo& c : containers) {
    out.push_back(c);
    if (!IsHostNetwork(c)) continue;
    if (c.id == 0 || c.id >= kPlaceholderSpace) {
      return absl::OutOfRangeError(absl::StrCat("host-network container '", c.name, "': id ",
                                                c.id, " outside 1..", kPlaceholderSpace - 1));
    }
    out.back().ip = c.id;
  }
  return out;
}

void FinishHostNetworkState(const std::set<uint32_t>& host_network, DatapathState& state) {
  if (host_network.empty()) return;
  std::erase_if(state.endpoints,
                [&](const auto& e) { return host_network.count(e.second.container_id) > 0; });
  std::vector<RuleBlock> mirrors;
  for (const RuleBlock& r : state.rules) {
    if (host_network.count(r.dst_id) && r.src_id < kHostIdFirst) {
      mirrors.push_back({.src_id = r.src_id, .dst_id = kHostIdFirst, .proto = r.proto,
                         .first_port = r.first_port, .last_port = r.last_port});
    }
  }
  state.rules.insert(mirrors.begin(), mirrors.end());
}

}  // namespace dctk::bastion
