#include "bastion/policy/compiler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "bastion/policy/rule_entries.h"
#include "bastion/policy/selector_index.h"

namespace dctk::bastion {
namespace {

absl::StatusOr<DatapathState> Compile(const Policy& policy,
                                      const std::vector<ContainerInfo>& containers,
                                      const std::set<uint32_t>* only) {
  DatapathState state;
  state.audit = policy.audit;
  for (const ContainerInfo& c : containers) {
    if (c.id == 0 || c.id >= kGroupIdFirst) {
      return absl::InvalidArgumentError(
          absl::StrCat("container '", c.name, "': id ", c.id, " outside 1..", kGroupIdFirst - 1));
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
  for (const ContainerInfo& c : containers) {
    if (c.gateway == 0) continue;
    absl::Status s =
        internal::AddHost(policy, state.endpoints, c.gateway, kHostIdFirst, kGatewayHost, state.hosts);
    if (!s.ok()) return s;
  }
  if (absl::Status s = internal::AddHostGroups(policy, state.endpoints, state.hosts); !s.ok()) {
    return s;
  }
  if (only) {
    // Members through an index, and only of the services the slice can involve.
    ContainerIndex index(containers);
    if (absl::Status s = internal::AddGroups(policy, index, state.groups); !s.ok()) return s;
    internal::AddSliceEntries(policy, index, *only, state);
  } else {
    std::map<uint32_t, const ContainerInfo*> by_id;
    for (const ContainerInfo& c : containers) by_id[c.id] = &c;
    if (absl::Status s = internal::AddGroups(
            policy,
            [&by_id](const Selector& sel) {
              std::vector<const ContainerInfo*> out;
              for (const auto& [id, c] : by_id) {
                if (Selects(sel, *c)) out.push_back(c);
              }
              return out;
            },
            state.groups);
        !s.ok()) {
      return s;
    }
    std::map<std::string, std::vector<uint32_t>> members;
    std::vector<const Service*> services;
    for (const Service& svc : policy.services) {
      services.push_back(&svc);
      std::vector<uint32_t>& ids = members[svc.name];
      for (const ContainerInfo& c : containers) {
        if (Selects(svc.select, c)) ids.push_back(c.id);
      }
    }
    internal::AddServiceEntries(
        policy, services,
        [&members](const std::string& name) -> const std::vector<uint32_t>& {
          return members.at(name);
        },
        nullptr, state);
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
  for (const auto& [k, v] : a.groups) if (!b.groups.count(k)) out.groups[k] = v;
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
  for (const auto& [k, v] : b.groups) out.groups[k] = v;
  out.dependencies.insert(b.dependencies.begin(), b.dependencies.end());
  out.rules.insert(b.rules.begin(), b.rules.end());
  return out;
}

}  // namespace dctk::bastion
