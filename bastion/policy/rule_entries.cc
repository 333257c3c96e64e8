#include "bastion/policy/rule_entries.h"

#include <algorithm>
#include <tuple>
#include <utility>

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

namespace internal {

absl::Status AddHost(const Policy& policy, const std::map<uint32_t, ContainerEndpoint>& endpoints,
                     uint32_t ip, uint32_t id, absl::string_view group,
                     std::map<uint32_t, uint32_t>& hosts) {
  if (endpoints.count(ip)) {
    return absl::FailedPreconditionError(absl::StrCat(
        policy.file, ": host '", group, "' address ", Ipv4ToString(ip), " belongs to a container"));
  }
  auto [it, fresh] = hosts.try_emplace(ip, id);
  if (!fresh && it->second != id) {
    return absl::FailedPreconditionError(absl::StrCat(
        policy.file, ": address ", Ipv4ToString(ip), " is in two host groups (", group, ")"));
  }
  return absl::OkStatus();
}

absl::Status AddHostGroups(const Policy& policy,
                           const std::map<uint32_t, ContainerEndpoint>& endpoints,
                           std::map<uint32_t, uint32_t>& hosts) {
  for (size_t i = 0; i < policy.hosts.size(); ++i) {
    for (uint32_t ip : policy.hosts[i].addresses) {
      absl::Status s = AddHost(policy, endpoints, ip, HostGroupId(i), policy.hosts[i].name, hosts);
      if (!s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status AddGroups(const Policy& policy, SelectFn select, std::map<uint32_t, Group>& groups) {
  for (size_t i = 0; i < policy.groups.size(); ++i) {
    const GroupDef& def = policy.groups[i];
    Group g{.id = GroupId(i), .port = def.port, .sequenced = def.sequenced, .members = {}};
    for (const ContainerInfo* c : select(def.members)) {
      g.members.push_back({.container_id = c->id, .host_ifindex = c->host_ifindex, .mac = c->mac});
    }
    if (g.members.size() > kMaxGroupMembers) {
      return absl::FailedPreconditionError(absl::StrCat(
          policy.file, ":", def.line, ": group '", def.name, "' selects ", g.members.size(),
          " containers; a group holds at most ", kMaxGroupMembers, " members"));
    }
    groups[def.address] = std::move(g);
  }
  return absl::OkStatus();
}

absl::Status AddGroups(const Policy& policy, const ContainerIndex& index,
                       std::map<uint32_t, Group>& groups) {
  return AddGroups(
      policy,
      [&index](const Selector& sel) {
        std::vector<const ContainerInfo*> out;
        for (uint32_t id : index.Members(sel)) out.push_back(index.Find(id));
        return out;
      },
      groups);
}

void AddServiceEntries(const Policy& policy, const std::vector<const Service*>& services,
                       MembersFn members, const std::set<uint32_t>* only,
                       DatapathState& state) {
  std::map<std::string, uint32_t> host_ids = {{kGatewayHost, kHostIdFirst}};
  for (size_t i = 0; i < policy.hosts.size(); ++i) host_ids[policy.hosts[i].name] = HostGroupId(i);
  std::map<std::string, uint32_t> group_ids;
  for (size_t i = 0; i < policy.groups.size(); ++i) group_ids[policy.groups[i].name] = GroupId(i);

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
  // {src, dst, proto} -> allowed ranges, merged at the end.
  std::map<std::tuple<uint32_t, uint32_t, uint8_t>, Ranges> edges;
  auto allow = [&](uint32_t src, uint32_t dst, const std::vector<PortRange>& ports) {
    for (const PortRange& p : ports) edges[{src, dst, p.proto}].push_back({p.first, p.last});
  };
  auto peer_ids = [&](const Peer& peer) -> std::vector<uint32_t> {
    switch (peer.kind) {
      case Peer::Kind::kService: return members(peer.name);
      case Peer::Kind::kHost: return {host_ids.at(peer.name)};
      case Peer::Kind::kWorld: return {kWorldId};
      case Peer::Kind::kGroup: return {group_ids.at(peer.name)};
    }
    return {};
  };
  for (const Service* svc : services) {
    const std::vector<uint32_t>& own = members(svc->name);
    for (const Peer& peer : svc->depends_on) {
      if (peer.kind == Peer::Kind::kGroup) {  // the dependency alone: the port is the group's
        pairs(own, peer_ids(peer), [&](uint32_t src, uint32_t group) {
          state.dependencies.insert({src, group});
        });
        continue;
      }
      std::vector<PortRange> ports = NormalizePorts(peer.ports, peer.except);
      if (ports.empty()) continue;
      pairs(own, peer_ids(peer), [&](uint32_t src, uint32_t dst) {
        if (src == dst) return;  // a container's traffic to itself never leaves it
        if (peer.kind == Peer::Kind::kService) state.dependencies.insert({src, dst});
        allow(src, dst, ports);
      });
    }
    for (const Peer& peer : svc->accepts) {
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
}

void AddSliceEntries(const Policy& policy, const ContainerIndex& index,
                     const std::set<uint32_t>& only, DatapathState& state) {
  // Services with a member in `only`: only their pairs, and pairs with them as the
  // target, can have an end in `only`.
  std::set<std::string> touching;
  for (uint32_t id : only) {
    const ContainerInfo* c = index.Find(id);
    if (!c) continue;  // gone: it has no entries
    for (const Service& svc : policy.services) {
      if (Selects(svc.select, *c)) touching.insert(svc.name);
    }
  }
  std::vector<const Service*> services;
  std::set<std::string> needed = touching;  // services whose members are looked up
  for (const Service& svc : policy.services) {
    const bool own = touching.count(svc.name) > 0;
    bool targets = false;
    for (const Peer& peer : svc.depends_on) {
      if (peer.kind != Peer::Kind::kService) continue;
      targets |= touching.count(peer.name) > 0;
      if (own) needed.insert(peer.name);
    }
    if (own || targets) {
      services.push_back(&svc);
      needed.insert(svc.name);
    }
  }
  std::map<std::string, const Selector*> selectors;
  for (const Service& svc : policy.services) selectors[svc.name] = &svc.select;
  // A service outside `needed` has no member in `only` and is the target only of
  // services without one either: its pairs have no end in `only`, whatever its members.
  static const std::vector<uint32_t> kNone;
  std::map<std::string, std::vector<uint32_t>> memo;
  auto members = [&](const std::string& name) -> const std::vector<uint32_t>& {
    if (!needed.count(name)) return kNone;
    auto [it, fresh] = memo.try_emplace(name);
    if (fresh) it->second = index.Members(*selectors.at(name));
    return it->second;
  };
  AddServiceEntries(policy, services, members, &only, state);
}

}  // namespace internal
}  // namespace dctk::bastion
