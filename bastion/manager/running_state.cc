#include "bastion/manager/running_state.h"

#include <limits>
#include <utility>

namespace dctk::bastion {
namespace {

// The smallest rule block with this source (RuleBlock orders by src_id first).
RuleBlock FirstRuleFrom(uint32_t src) {
  return RuleBlock{.src_id = src, .dst_id = 0, .proto = 0, .first_port = 0, .last_port = 0};
}

}  // namespace

void RunningState::Reset(DatapathState state) {
  state_ = std::move(state);
  deps_by_dst_.clear();
  rules_by_dst_.clear();
  endpoints_by_id_.clear();
  bindings_by_id_.clear();
  for (const auto& [ip, e] : state_.endpoints) endpoints_by_id_.insert({e.container_id, ip});
  for (const auto& [ifindex, b] : state_.bindings) bindings_by_id_.insert({b.container_id, ifindex});
  for (const auto& [src, dst] : state_.dependencies) deps_by_dst_.insert({dst, src});
  for (const RuleBlock& r : state_.rules) rules_by_dst_.insert({r.dst_id, r});
}

void RunningState::Patch(const DatapathState& remove, const DatapathState& add) {
  for (const auto& [ip, unused] : remove.endpoints) {
    auto it = state_.endpoints.find(ip);
    if (it == state_.endpoints.end()) continue;
    endpoints_by_id_.erase({it->second.container_id, ip});
    state_.endpoints.erase(it);
  }
  for (const auto& [ifindex, unused] : remove.bindings) {
    auto it = state_.bindings.find(ifindex);
    if (it == state_.bindings.end()) continue;
    bindings_by_id_.erase({it->second.container_id, ifindex});
    state_.bindings.erase(it);
  }
  for (const auto& d : remove.dependencies) {
    if (state_.dependencies.erase(d)) deps_by_dst_.erase({d.second, d.first});
  }
  for (const RuleBlock& r : remove.rules) {
    if (state_.rules.erase(r)) rules_by_dst_.erase({r.dst_id, r});
  }
  for (const auto& [ip, e] : add.endpoints) {
    auto [it, fresh] = state_.endpoints.try_emplace(ip, e);
    if (!fresh) {
      endpoints_by_id_.erase({it->second.container_id, ip});
      it->second = e;
    }
    endpoints_by_id_.insert({e.container_id, ip});
  }
  for (const auto& [ifindex, b] : add.bindings) {
    auto [it, fresh] = state_.bindings.try_emplace(ifindex, b);
    if (!fresh) {
      bindings_by_id_.erase({it->second.container_id, ifindex});
      it->second = b;
    }
    bindings_by_id_.insert({b.container_id, ifindex});
  }
  for (const auto& d : add.dependencies) {
    if (state_.dependencies.insert(d).second) deps_by_dst_.insert({d.second, d.first});
  }
  for (const RuleBlock& r : add.rules) {
    if (state_.rules.insert(r).second) rules_by_dst_.insert({r.dst_id, r});
  }
  state_.hosts = add.hosts;
  state_.groups = add.groups;
  state_.audit = add.audit;
}

DatapathState RunningState::Slice(const std::set<uint32_t>& ids) const {
  DatapathState out;
  out.audit = state_.audit;
  for (uint32_t id : ids) {
    for (auto it = endpoints_by_id_.lower_bound({id, 0});
         it != endpoints_by_id_.end() && it->first == id; ++it) {
      out.endpoints.emplace(it->second, state_.endpoints.at(it->second));
    }
    for (auto it = bindings_by_id_.lower_bound({id, std::numeric_limits<int>::min()});
         it != bindings_by_id_.end() && it->first == id; ++it) {
      out.bindings.emplace(it->second, state_.bindings.at(it->second));
    }
    for (auto it = state_.dependencies.lower_bound({id, 0});
         it != state_.dependencies.end() && it->first == id; ++it) {
      out.dependencies.insert(*it);
    }
    for (auto it = deps_by_dst_.lower_bound({id, 0}); it != deps_by_dst_.end() && it->first == id;
         ++it) {
      out.dependencies.insert({it->second, id});
    }
    for (auto it = state_.rules.lower_bound(FirstRuleFrom(id));
         it != state_.rules.end() && it->src_id == id; ++it) {
      out.rules.insert(*it);
    }
    for (auto it = rules_by_dst_.lower_bound({id, FirstRuleFrom(0)});
         it != rules_by_dst_.end() && it->first == id; ++it) {
      out.rules.insert(it->second);
    }
  }
  return out;
}

}  // namespace dctk::bastion
