#include "bastion/policy/incremental.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "bastion/policy/rule_entries.h"

namespace dctk::bastion {
namespace {

// What a service's depends_on/accepts mean once compiled, independent of how they are
// written: target -> protocol -> merged port ranges (after `except`). Two services with
// equal meanings and equal members yield the same entries.
using Target =
    std::tuple<bool /*inbound*/, Peer::Kind, uint32_t /*host or group id*/, std::string>;
using Meaning = std::map<Target, std::map<uint8_t, std::vector<std::pair<uint32_t, uint32_t>>>>;

using HostIds = std::map<std::string, uint32_t>;

// Host and group names -> ids (the two name spaces kept apart by a prefix).
HostIds HostIdsOf(const Policy& policy) {
  HostIds ids = {{kGatewayHost, kHostIdFirst}};
  for (size_t i = 0; i < policy.hosts.size(); ++i) ids[policy.hosts[i].name] = HostGroupId(i);
  for (size_t i = 0; i < policy.groups.size(); ++i) {
    ids["group:" + policy.groups[i].name] = GroupId(i);
  }
  return ids;
}

uint32_t IdOf(const HostIds& ids, const Peer& peer) {
  return ids.at(peer.kind == Peer::Kind::kGroup ? "group:" + peer.name : peer.name);
}

Meaning MeaningOf(const HostIds& host_ids, const Service& svc) {
  Meaning out;
  auto add = [&](bool inbound, const Peer& peer) {
    if (peer.kind == Peer::Kind::kGroup) {  // a dependency on the group id, no ports
      out[Target{inbound, peer.kind, IdOf(host_ids, peer), ""}];
      return;
    }
    std::vector<PortRange> ports = NormalizePorts(peer.ports, peer.except);
    if (ports.empty()) return;  // no entries at all
    Target t{inbound, peer.kind, 0, ""};
    if (peer.kind == Peer::Kind::kService) std::get<3>(t) = peer.name;
    if (peer.kind == Peer::Kind::kHost) std::get<2>(t) = host_ids.at(peer.name);
    for (const PortRange& p : ports) out[t][p.proto].push_back({p.first, p.last});
  };
  for (const Peer& peer : svc.depends_on) add(false, peer);
  for (const Peer& peer : svc.accepts) add(true, peer);
  for (auto& [target, protos] : out) {
    for (auto& [proto, ranges] : protos) {
      std::vector<PortRange> merged;
      for (const auto& [first, last] : ranges) {
        merged.push_back({proto, static_cast<uint16_t>(first), static_cast<uint16_t>(last)});
      }
      ranges.clear();
      for (const PortRange& r : NormalizePorts(merged, {})) ranges.push_back({r.first, r.last});
    }
  }
  return out;
}

// Written the same way, naming hosts that kept their ids: the same meaning, cheaply.
bool SamePeers(const std::vector<Peer>& a, const HostIds& a_hosts, const std::vector<Peer>& b,
               const HostIds& b_hosts) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].kind != b[i].kind || a[i].name != b[i].name || a[i].ports != b[i].ports ||
        a[i].except != b[i].except) {
      return false;
    }
    if ((a[i].kind == Peer::Kind::kHost || a[i].kind == Peer::Kind::kGroup) &&
        IdOf(a_hosts, a[i]) != IdOf(b_hosts, b[i])) {
      return false;
    }
  }
  return true;
}

bool SameMeaning(const Service& a, const HostIds& a_hosts, const Service& b,
                 const HostIds& b_hosts) {
  if (SamePeers(a.depends_on, a_hosts, b.depends_on, b_hosts) &&
      SamePeers(a.accepts, a_hosts, b.accepts, b_hosts)) {
    return true;
  }
  return MeaningOf(a_hosts, a) == MeaningOf(b_hosts, b);
}

bool SameSelector(const Selector& a, const Selector& b) {
  if (a.labels != b.labels) return false;
  std::set<std::string> an(a.names.begin(), a.names.end());
  std::set<std::string> bn(b.names.begin(), b.names.end());
  return an == bn;
}

// Entries of `slice` not in `running` (it should have none: the precondition).
bool Within(const DatapathState& slice, const DatapathState& running) {
  for (const auto& d : slice.dependencies) {
    if (!running.dependencies.count(d)) return false;
  }
  for (const RuleBlock& r : slice.rules) {
    if (!running.rules.count(r)) return false;
  }
  return true;
}

// Removes the entries `a` and `b` share from both; O(|a| + |b|).
template <typename Set>
void DropCommon(Set& a, Set& b) {
  Set only_a, only_b;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(),
                      std::inserter(only_a, only_a.end()));
  std::set_difference(b.begin(), b.end(), a.begin(), a.end(),
                      std::inserter(only_b, only_b.end()));
  a = std::move(only_a);
  b = std::move(only_b);
}

bool SameEndpoint(const ContainerEndpoint& a, const ContainerEndpoint& b) {
  return a.container_id == b.container_id && a.mac == b.mac && a.host_ifindex == b.host_ifindex;
}
bool SameBinding(const Binding& a, const Binding& b) {
  return a.container_id == b.container_id && a.ip == b.ip && a.mac == b.mac;
}

// `remove` and `add` such that replacing the one by the other turns `from` into `to`:
// entries that differ (keyed ones with their old and new values), hosts and audit whole.
void DiffWhole(const DatapathState& from, const DatapathState& to, DatapathState& remove,
               DatapathState& add) {
  remove = {};
  add = {};
  remove.audit = from.audit;
  remove.hosts = from.hosts;
  remove.groups = from.groups;
  add.audit = to.audit;
  add.hosts = to.hosts;
  add.groups = to.groups;
  for (const auto& [ip, e] : from.endpoints) {
    auto it = to.endpoints.find(ip);
    if (it == to.endpoints.end() || !SameEndpoint(e, it->second)) remove.endpoints[ip] = e;
  }
  for (const auto& [ip, e] : to.endpoints) {
    auto it = from.endpoints.find(ip);
    if (it == from.endpoints.end() || !SameEndpoint(e, it->second)) add.endpoints[ip] = e;
  }
  for (const auto& [ifindex, b] : from.bindings) {
    auto it = to.bindings.find(ifindex);
    if (it == to.bindings.end() || !SameBinding(b, it->second)) remove.bindings[ifindex] = b;
  }
  for (const auto& [ifindex, b] : to.bindings) {
    auto it = from.bindings.find(ifindex);
    if (it == from.bindings.end() || !SameBinding(b, it->second)) add.bindings[ifindex] = b;
  }
  remove.dependencies = from.dependencies;
  add.dependencies = to.dependencies;
  DropCommon(remove.dependencies, add.dependencies);
  remove.rules = from.rules;
  add.rules = to.rules;
  DropCommon(remove.rules, add.rules);
}

}  // namespace

std::set<uint32_t> TouchedContainers(const Policy& from, const Policy& to,
                                     const ContainerIndex& containers) {
  std::map<std::string, const Service*> before, after;
  for (const Service& s : from.services) before[s.name] = &s;
  for (const Service& s : to.services) after[s.name] = &s;
  const HostIds from_hosts = HostIdsOf(from);
  const HostIds to_hosts = HostIdsOf(to);
  std::set<uint32_t> touched;
  auto add = [&touched](const std::vector<uint32_t>& ids) { touched.insert(ids.begin(), ids.end()); };
  for (const auto& [name, old] : before) {
    auto it = after.find(name);
    if (it == after.end()) {
      add(containers.Members(old->select));
      continue;
    }
    const Service* now = it->second;
    const bool same_selector = SameSelector(old->select, now->select);
    if (!SameMeaning(*old, from_hosts, *now, to_hosts)) {
      add(containers.Members(old->select));
      if (!same_selector) add(containers.Members(now->select));
    } else if (!same_selector) {
      // Members that stay keep their entries; those joining or leaving change.
      std::vector<uint32_t> a = containers.Members(old->select);
      std::vector<uint32_t> b = containers.Members(now->select);
      std::set_symmetric_difference(a.begin(), a.end(), b.begin(), b.end(),
                                    std::inserter(touched, touched.end()));
    }
  }
  for (const auto& [name, now] : after) {
    if (!before.count(name)) add(containers.Members(now->select));
  }
  return touched;
}

void PolicyUpdate::ApplyTo(DatapathState& state) const {
  for (const auto& [ip, e] : remove.endpoints) state.endpoints.erase(ip);
  for (const auto& [ifindex, b] : remove.bindings) state.bindings.erase(ifindex);
  for (const auto& d : remove.dependencies) state.dependencies.erase(d);
  for (const RuleBlock& r : remove.rules) state.rules.erase(r);
  for (const auto& [ip, e] : add.endpoints) state.endpoints[ip] = e;
  for (const auto& [ifindex, b] : add.bindings) state.bindings[ifindex] = b;
  state.dependencies.insert(add.dependencies.begin(), add.dependencies.end());
  state.rules.insert(add.rules.begin(), add.rules.end());
  state.hosts = add.hosts;
  state.groups = add.groups;
  state.audit = add.audit;
}

absl::StatusOr<PolicyUpdate> CompilePolicyUpdate(const Policy& running_policy,
                                                 const DatapathState& running,
                                                 const Policy& next_policy,
                                                 const ContainerIndex& containers,
                                                 double whole_above) {
  PolicyUpdate u;
  u.add.audit = next_policy.audit;
  // Gateways are container facts: keep them; the policy's groups are recomputed.
  for (const auto& [ip, id] : running.hosts) {
    if (id == kHostIdFirst) u.add.hosts.emplace(ip, id);
  }
  absl::Status hosts = internal::AddHostGroups(next_policy, running.endpoints, u.add.hosts);
  if (!hosts.ok()) return hosts;
  // Multicast groups: recomputed whole, with their members now.
  absl::Status groups = internal::AddGroups(next_policy, containers, u.add.groups);
  if (!groups.ok()) return groups;

  u.touched = TouchedContainers(running_policy, next_policy, containers);
  const size_t n = containers.containers().size();
  bool whole = u.touched.size() > whole_above * n;
  if (!whole) {
    u.remove.audit = running.audit;
    u.remove.hosts = running.hosts;
    u.remove.groups = running.groups;
    internal::AddSliceEntries(running_policy, containers, u.touched, u.remove);
    // If `running` is not what the running policy compiles to, recompile everything.
    whole = !Within(u.remove, running) || running.audit != running_policy.audit;
  }
  if (whole) {
    absl::StatusOr<DatapathState> next = CompilePolicy(next_policy, containers.containers());
    if (!next.ok()) return next.status();
    u.whole = true;
    DiffWhole(running, *next, u.remove, u.add);
    for (const ContainerInfo& c : containers.containers()) u.touched.insert(c.id);
    return u;
  }
  internal::AddSliceEntries(next_policy, containers, u.touched, u.add);
  // Entries in both slices stay: neither written nor patched.
  DropCommon(u.remove.dependencies, u.add.dependencies);
  DropCommon(u.remove.rules, u.add.rules);
  return u;
}

}  // namespace dctk::bastion
