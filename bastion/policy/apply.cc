#include "bastion/policy/apply.h"

#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"

namespace dctk::bastion {
namespace {

bool Same(const ContainerEndpoint& a, const ContainerEndpoint& b) {
  return a.container_id == b.container_id && a.mac == b.mac && a.host_ifindex == b.host_ifindex;
}
bool Same(const Binding& a, const Binding& b) {
  return a.container_id == b.container_id && a.ip == b.ip && a.mac == b.mac;
}
bool Same(uint32_t a, uint32_t b) { return a == b; }
bool Same(const Group& a, const Group& b) { return a == b; }

struct Op {
  char sign;  // '+', '~', '-'
  std::string what;
  std::function<absl::Status()> apply;
  std::function<absl::Status()> undo;
};

PolicyRule ToRule(const RuleBlock& b) {
  return PolicyRule{.src_id = b.src_id, .dst_id = b.dst_id, .proto = b.proto,
                    .first_port = b.first_port, .last_port = b.last_port};
}

class OpBuilder {
 public:
  OpBuilder(Datapath* dp, const std::function<std::string(uint32_t)>& describe)
      : dp_(dp), describe_(describe) {}

  std::string Id(uint32_t id) const {
    if (describe_) return describe_(id);
    return absl::StrCat(id);
  }

  // Upserts (phase A) and removals (phase B) of one keyed map.
  template <typename Map, typename Upsert, typename Remove, typename Name>
  void Keyed(const Map& from, const Map& to, Upsert upsert, Remove remove, Name name) {
    for (const auto& [key, value] : to) {
      auto it = from.find(key);
      if (it != from.end() && Same(it->second, value)) continue;
      Op op{it == from.end() ? '+' : '~', name(key, value), nullptr, nullptr};
      op.apply = [=] { return upsert(key, value); };
      if (it == from.end()) {
        op.undo = [=] { return remove(key); };
      } else {
        auto old = it->second;
        op.undo = [=] { return upsert(key, old); };
      }
      adds_.push_back(std::move(op));
    }
    for (const auto& [key, value] : from) {
      if (to.count(key)) continue;
      Op op{'-', name(key, value), nullptr, nullptr};
      op.apply = [=] { return remove(key); };
      op.undo = [=] { return upsert(key, value); };
      removes_.push_back(std::move(op));
    }
  }

  template <typename Set, typename Add, typename Remove, typename Name>
  void Members(const Set& from, const Set& to, Add add, Remove remove, Name name) {
    for (const auto& item : to) {
      if (from.count(item)) continue;
      adds_.push_back(Op{'+', name(item), [=] { return add(item); }, [=] { return remove(item); }});
    }
    for (const auto& item : from) {
      if (to.count(item)) continue;
      removes_.push_back(
          Op{'-', name(item), [=] { return remove(item); }, [=] { return add(item); }});
    }
  }

  // Every write of the change, in the order make-before-break needs when applied to one
  // copy: adds (audit on first), then rule removals, then other removals (audit off last).
  std::vector<Op> Build(const DatapathState& from, const DatapathState& to) {
    Parts p = BuildParts(from, to);
    std::vector<Op> ops = std::move(p.shared_adds);
    for (Op& op : p.generation_adds) ops.push_back(std::move(op));
    for (Op& op : p.generation_removes) ops.push_back(std::move(op));
    for (Op& op : p.shared_removes) ops.push_back(std::move(op));
    return ops;
  }

  // The same change as one instant: shared entries (endpoints, bindings, audit) are
  // added first; the policy entries (hosts, dependencies, rules) are changed in the
  // inactive generation, which is then activated (the switch), then changed the same way
  // in the old generation so both copies agree again; shared removals come last.
  std::vector<Op> BuildFlip(const DatapathState& from, const DatapathState& to) {
    Datapath* dp = dp_;
    Parts p = BuildParts(from, to);
    std::vector<Op> ops = std::move(p.shared_adds);
    if (!p.generation_adds.empty() || !p.generation_removes.empty()) {
      const uint32_t active = dp->ActiveGeneration();
      const uint32_t standby = 1 - active;
      auto select = [dp](uint32_t g, uint32_t back) {
        return Op{'=', absl::StrCat("write generation ", g),
                  [dp, g] {
                    dp->SetWriteGeneration(g);
                    return absl::OkStatus();
                  },
                  [dp, back] {
                    dp->SetWriteGeneration(back);
                    return absl::OkStatus();
                  }};
      };
      ops.push_back(select(standby, active));
      for (const Op& op : p.generation_adds) ops.push_back(op);
      for (const Op& op : p.generation_removes) ops.push_back(op);
      ops.push_back(Op{'!', absl::StrCat("switch to generation ", standby),
                       [dp, standby] { return dp->ActivateGeneration(standby); },
                       [dp, active] { return dp->ActivateGeneration(active); }});
      ops.push_back(select(active, standby));
      for (Op& op : p.generation_adds) ops.push_back(std::move(op));
      for (Op& op : p.generation_removes) ops.push_back(std::move(op));
      ops.push_back(select(standby, active));
    }
    for (Op& op : p.shared_removes) ops.push_back(std::move(op));
    return ops;
  }

  struct Parts {
    std::vector<Op> shared_adds;
    std::vector<Op> generation_adds;
    std::vector<Op> generation_removes;  // rules first
    std::vector<Op> shared_removes;
  };

  Parts BuildParts(const DatapathState& from, const DatapathState& to) {
    Datapath* dp = dp_;
    Parts parts;
    if (to.audit && !from.audit) {
      parts.shared_adds.push_back(Op{'+', "audit mode on", [dp] { return dp->SetAuditMode(true); },
                                     [dp] { return dp->SetAuditMode(false); }});
    }
    Keyed(from.endpoints, to.endpoints,
          [dp](uint32_t ip, const ContainerEndpoint& e) { return dp->UpsertEndpoint(ip, e); },
          [dp](uint32_t ip) { return dp->RemoveEndpoint(ip); },
          [this](uint32_t ip, const ContainerEndpoint& e) {
            return absl::StrCat("endpoint ", Ipv4ToString(ip), " ", Id(e.container_id), " ",
                                e.mac.ToString(), " ifindex ", e.host_ifindex);
          });
    Keyed(from.bindings, to.bindings,
          [dp](int ifindex, const Binding& b) { return dp->BindInterface(ifindex, b); },
          [dp](int ifindex) { return dp->UnbindInterface(ifindex); },
          [this](int ifindex, const Binding& b) {
            return absl::StrCat("binding ifindex ", ifindex, " to ", Id(b.container_id));
          });
    for (Op& op : adds_) parts.shared_adds.push_back(std::move(op));
    parts.shared_removes = std::move(removes_);
    adds_.clear();
    removes_.clear();

    Keyed(from.hosts, to.hosts, [dp](uint32_t ip, uint32_t id) { return dp->UpsertHost(ip, id); },
          [dp](uint32_t ip) { return dp->RemoveHost(ip); },
          [this](uint32_t ip, uint32_t id) {
            return absl::StrCat("host ", Ipv4ToString(ip), " as ", Id(id));
          });
    Keyed(from.groups, to.groups,
          [dp](uint32_t ip, const Group& g) { return dp->UpsertGroup(ip, g); },
          [dp](uint32_t ip) { return dp->RemoveGroup(ip); },
          [this](uint32_t ip, const Group& g) {
            std::string members;
            for (const GroupMember& m : g.members) {
              absl::StrAppend(&members, members.empty() ? "" : ",", Id(m.container_id));
            }
            return absl::StrCat("group ", Ipv4ToString(ip), ":", g.port, " as ", Id(g.id),
                                g.sequenced ? " sequenced" : "", " members ", members);
          });
    using Edge = std::pair<uint32_t, uint32_t>;
    Members(from.dependencies, to.dependencies,
            [dp](const Edge& e) { return dp->AddDependency(e.first, e.second, 0); },
            [dp](const Edge& e) { return dp->RemoveDependency(e.first, e.second); },
            [this](const Edge& e) {
              return absl::StrCat("dependency ", Id(e.first), " -> ", Id(e.second));
            });
    // Rules go last among the adds and first among the removes (below), so a rule is
    // never installed on an edge whose dependency is missing, nor left without one.
    std::vector<Op> other_removes;
    std::swap(other_removes, removes_);
    Members(from.rules, to.rules, [dp](const RuleBlock& r) { return dp->UpsertPolicy(ToRule(r)); },
            [dp](const RuleBlock& r) { return dp->RemovePolicy(ToRule(r)); },
            [this](const RuleBlock& r) {
              return absl::StrCat("rule ", Id(r.src_id), " -> ", Id(r.dst_id), " ",
                                  PortRangeToString({r.proto, r.first_port, r.last_port}));
            });
    parts.generation_adds = std::move(adds_);
    parts.generation_removes = std::move(removes_);
    for (Op& op : other_removes) parts.generation_removes.push_back(std::move(op));
    adds_.clear();
    removes_.clear();
    if (from.audit && !to.audit) {
      parts.shared_removes.push_back(Op{'-', "audit mode off",
                                        [dp] { return dp->SetAuditMode(false); },
                                        [dp] { return dp->SetAuditMode(true); }});
    }
    return parts;
  }

 private:
  Datapath* dp_;
  const std::function<std::string(uint32_t)>& describe_;
  std::vector<Op> adds_;
  std::vector<Op> removes_;
};

}  // namespace

StateDiff DiffStates(const DatapathState& from, const DatapathState& to,
                     const std::function<std::string(uint32_t)>& describe) {
  StateDiff diff;
  for (const Op& op : OpBuilder(nullptr, describe).Build(from, to)) {
    (op.sign == '+' ? diff.added : op.sign == '~' ? diff.changed : diff.removed)++;
    diff.lines.push_back(absl::StrCat(std::string(1, op.sign), " ", op.what));
  }
  return diff;
}

absl::Status ApplyState(Datapath& datapath, const DatapathState& from, const DatapathState& to,
                        bool tolerate_missing) {
  std::vector<Op> ops = OpBuilder(&datapath, nullptr).BuildFlip(from, to);
  for (size_t i = 0; i < ops.size(); ++i) {
    absl::Status s = ops[i].apply();
    if (s.ok() || (tolerate_missing && ops[i].sign == '-' && absl::IsNotFound(s))) continue;
    absl::Status undo_error = absl::OkStatus();
    for (size_t j = i; j-- > 0;) {
      absl::Status u = ops[j].undo();
      if (!u.ok() && undo_error.ok()) undo_error = u;
    }
    if (!undo_error.ok()) {
      return absl::DataLossError(absl::StrCat(
          "policy apply failed at '", ops[i].what, "': ", s.message(),
          "; undoing the earlier writes failed too (", undo_error.message(),
          "): the datapath diverged from both states"));
    }
    return absl::Status(s.code(), absl::StrCat("policy apply failed at '", ops[i].what, "' (",
                                               i, " of ", ops.size(), " writes undone): ",
                                               s.message()));
  }
  return absl::OkStatus();
}

}  // namespace dctk::bastion
