#include "bastion/policy/compiler.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "bastion/datapath/port_ranges.h"

namespace dctk::bastion {
namespace {

// Per protocol, sorted disjoint [first, last] ranges (as uint32 to avoid overflow).
using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

Ranges Merge(Ranges r) {
  std::sort(r.begin(), r.end());
  Ranges out;
  for (const auto& [first, last] : r) {
    if (!out.empty() && first <= out.back().second + 1) {
      out.back().second = std::max(out.back().second, last);
    } else {
      out.push_back({first, last});
    }
  }
  return out;
}

Ranges Subtract(const Ranges& from, const Ranges& cut) {
  Ranges out;
  for (auto [first, last] : from) {
    for (const auto& [cf, cl] : cut) {
      if (cl < first || cf > last) continue;
      if (cf > first) out.push_back({first, cf - 1});
      first = cl + 1;
      if (first > last) break;
    }
    if (first <= last) out.push_back({first, last});
  }
  return out;
}

}  // namespace

bool Selects(const Selector& selector, const ContainerInfo& container) {
  if (!selector.names.empty()) {
    bool any = false;
    for (const std::string& n : selector.names) {
      any |= n.back() == '*' ? absl::StartsWith(container.name, n.substr(0, n.size() - 1))
                             : container.name == n;
      if (any) break;
    }
    if (!any) return false;
  }
  for (const auto& [key, value] : selector.labels) {
    auto it = container.labels.find(key);
    if (it == container.labels.end() || it->second != value) return false;
  }
  return true;
}

std::vector<PortRange> NormalizePorts(const std::vector<PortRange>& ports,
                                      const std::vector<PortRange>& except) {
  std::map<uint8_t, Ranges> allow, deny;
  for (const PortRange& p : ports) allow[p.proto].push_back({p.first, p.last});
  for (const PortRange& p : except) deny[p.proto].push_back({p.first, p.last});
  std::vector<PortRange> out;
  if (allow.count(0)) return {PortRange{}};  // any protocol covers the rest
  for (auto& [proto, ranges] : allow) {
    for (const auto& [first, last] : Subtract(Merge(ranges), Merge(deny[proto]))) {
      out.push_back({proto, static_cast<uint16_t>(first), static_cast<uint16_t>(last)});
    }
  }
  return out;
}

namespace {

absl::StatusOr<DatapathState> Compile(const Policy& policy,
                                      const std::vector<ContainerInfo>& containers,
                                      const std::set<uint32_t>* only) {
  DatapathState state;
  state.audit = policy.audit;
  for (const ContainerInfo& c : containers) {
    if (c.id == 0 || c.id >= kHostIdFirst) {
      return absl::InvalidArgumentError(
          absl::StrCat("container '", c.name, "': id ", c.id, " outside 1..", kHostIdFirst - 1));
    }
    auto [it, fresh] = state.endpoints.try_emplace(
        c.ip, ContainerEndpoint{.container_id = c.id, .mac = c.mac, .host_ifindex = c.host_ifindex});
    if (!fresh && (!only || only->count(c.id) || only->count(it->second.container_id))) {
      return absl::FailedPreconditionError(absl::StrCat(
          "containers ", it->second.container_id, " and '", c.name, "' share address ",
          Ipv4ToString(c.ip)));
    }
    if (!fresh) continue;  // (both outside the slice: the full compile reports it)
    if (c.host_ifindex > 0 &&
        !state.bindings.try_emplace(c.host_ifindex, Binding{.container_id = c.id, .ip = c.ip, .mac = c.mac})
             .second) {
      return absl::FailedPreconditionError(absl::StrCat(
          "container '", c.name, "': host interface ", c.host_ifindex, " already bound"));
    }
  }
  auto add_host = [&](uint32_t ip, uint32_t id, absl::string_view group) -> absl::Status {
    if (state.endpoints.count(ip)) {
      return absl::FailedPreconditionError(absl::StrCat(
          policy.file, ": host '", group, "' address ", Ipv4ToString(ip),
          " belongs to a container"));
    }
    auto [it, fresh] = state.hosts.try_emplace(ip, id);
    if (!fresh && it->second != id) {
      return absl::FailedPreconditionError(absl::StrCat(
          policy.file, ": address ", Ipv4ToString(ip), " is in two host groups (", group, ")"));
    }
    return absl::OkStatus();
  };
  for (const ContainerInfo& c : containers) {
    if (c.gateway != 0) {
      if (absl::Status s = add_host(c.gateway, kHostIdFirst, kGatewayHost); !s.ok()) return s;
    }
  }
  std::map<std::string, uint32_t> host_ids = {{kGatewayHost, kHostIdFirst}};
  for (size_t i = 0; i < policy.hosts.size(); ++i) {
    host_ids[policy.hosts[i].name] = HostGroupId(i);
    for (uint32_t ip : policy.hosts[i].addresses) {
      if (absl::Status s = add_host(ip, HostGroupId(i), policy.hosts[i].name); !s.ok()) return s;
    }
  }

  // Each (src, dst) pair of members x targets, or, for a slice, only pairs touching it.
  auto pairs = [only](const std::vector<uint32_t>& srcs, const std::vector<uint32_t>& dsts,
                      const auto& fn) {
    if (!only) {
      for (uint32_t dst : dsts) for (uint32_t src : srcs) fn(src, dst);
      return;
    }
    for (uint32_t src : srcs) {
      if (only->count(src)) for (uint32_t dst : dsts) fn(src, dst);
    }
    for (uint32_t dst : dsts) {
      if (!only->count(dst)) continue;
      for (uint32_t src : srcs) {
        if (!only->count(src)) fn(src, dst);
      }
    }
  };
  std::map<std::string, std::vector<uint32_t>> members;
  for (const Service& svc : policy.services) {
    std::vector<uint32_t>& ids = members[svc.name];
    for (const ContainerInfo& c : containers) {
      if (Selects(svc.select, c)) ids.push_back(c.id);
    }
  }

  // {src, dst, proto} -> allowed ranges, merged at the end.
  std::map<std::tuple<uint32_t, uint32_t, uint8_t>, Ranges> edges;
  auto allow = [&](uint32_t src, uint32_t dst, const std::vector<PortRange>& ports) {
    for (const PortRange& p : ports) edges[{src, dst, p.proto}].push_back({p.first, p.last});
  };
  auto peer_ids = [&](const Peer& peer) -> std::vector<uint32_t> {
    switch (peer.kind) {
      case Peer::Kind::kService: return members[peer.name];
      case Peer::Kind::kHost: return {host_ids.at(peer.name)};
      case Peer::Kind::kWorld: return {kWorldId};
    }
    return {};
  };
  for (const Service& svc : policy.services) {
    const std::vector<uint32_t>& own = members[svc.name];
    for (const Peer& peer : svc.depends_on) {
      std::vector<PortRange> ports = NormalizePorts(peer.ports, peer.except);
      if (ports.empty()) continue;
      pairs(own, peer_ids(peer), [&](uint32_t src, uint32_t dst) {
        if (src == dst) return;  // a container's traffic to itself never leaves it
        if (peer.kind == Peer::Kind::kService) state.dependencies.insert({src, dst});
        allow(src, dst, ports);
      });
    }
    for (const Peer& peer : svc.accepts) {
      std::vector<PortRange> ports = NormalizePorts(peer.ports, peer.except);
      pairs(peer_ids(peer), own, [&](uint32_t src, uint32_t dst) { allow(src, dst, ports); });
    }
  }
  for (auto& [edge, ranges] : edges) {
    const auto& [src, dst, proto] = edge;
    for (const auto& [first, last] : Merge(std::move(ranges))) {
      for (const PortPrefix& block : PortRangeToPrefixes(first, last)) {
        uint32_t span = block.prefix_bits == 0 ? 65536u : (1u << (16 - block.prefix_bits));
        state.rules.insert({src, dst, proto, block.port,
                            static_cast<uint16_t>(block.port + span - 1)});
      }
    }
  }
  if (only) {
    std::erase_if(state.endpoints, [only](const auto& e) {
      return !only->count(e.second.container_id);
    });
    std::erase_if(state.bindings, [only](const auto& b) {
      return !only->count(b.second.container_id);
    });
  }
  return state;
}

}  // namespace

absl::StatusOr<DatapathState> CompilePolicy(const Policy& policy,
                                            const std::vector<ContainerInfo>& containers) {
  return Compile(policy, containers, nullptr);
}

absl::StatusOr<DatapathState> CompileSlice(const Policy& policy,
                                           const std::vector<ContainerInfo>& containers,
                                           const std::set<uint32_t>& ids) {
  return Compile(policy, containers, &ids);
}

DatapathState SliceOf(const DatapathState& state, const std::set<uint32_t>& ids) {
  DatapathState out;
  out.audit = state.audit;
  for (const auto& [k, v] : state.endpoints) if (ids.count(v.container_id)) out.endpoints[k] = v;
  for (const auto& [k, v] : state.bindings) if (ids.count(v.container_id)) out.bindings[k] = v;
  for (const auto& d : state.dependencies) {
    if (ids.count(d.first) || ids.count(d.second)) out.dependencies.insert(d);
  }
  for (const auto& r : state.rules) {
    if (ids.count(r.src_id) || ids.count(r.dst_id)) out.rules.insert(r);
  }
  return out;
}

DatapathState Minus(const DatapathState& a, const DatapathState& b) {
  DatapathState out;
  out.audit = a.audit && !b.audit;
  for (const auto& [k, v] : a.endpoints) if (!b.endpoints.count(k)) out.endpoints[k] = v;
  for (const auto& [k, v] : a.bindings) if (!b.bindings.count(k)) out.bindings[k] = v;
  for (const auto& [k, v] : a.hosts) if (!b.hosts.count(k)) out.hosts[k] = v;
  for (const auto& d : a.dependencies) if (!b.dependencies.count(d)) out.dependencies.insert(d);
  for (const auto& r : a.rules) if (!b.rules.count(r)) out.rules.insert(r);
  return out;
}

DatapathState Union(const DatapathState& a, const DatapathState& b) {
  DatapathState out = a;
  out.audit = a.audit || b.audit;
  for (const auto& [k, v] : b.endpoints) out.endpoints[k] = v;
  for (const auto& [k, v] : b.bindings) out.bindings[k] = v;
  for (const auto& [k, v] : b.hosts) out.hosts[k] = v;
  out.dependencies.insert(b.dependencies.begin(), b.dependencies.end());
  out.rules.insert(b.rules.begin(), b.rules.end());
  return out;
}

}  // namespace dctk::bastion
