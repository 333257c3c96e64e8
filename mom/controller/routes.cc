#include "mom/controller/routes.h"

#include <algorithm>
#include <deque>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace dctk::mom {
namespace {

uint64_t Mix(uint64_t a, uint64_t b = 0) {  // splitmix64 of a combined key
  uint64_t z = a * 0x9e3779b97f4a7c15ull + b + 0x632be59bd9b4e019ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The next hop from `node` towards `target`, given hop distances from `target`:
// one of the neighbours one hop closer, picked by a hash of (node, target) so
// that load spreads like ECMP while staying a function of the node alone.
int ParentToward(const Topology& t, int target, const std::vector<int>& dist, int node) {
  std::vector<int> closer;
  for (const Port& p : t.ports(node)) {
    const int u = p.neighbor;
    if (dist[u] == dist[node] - 1 && (u == target || !t.is_host(u)) && t.Usable(node, u)) {
      closer.push_back(u);
    }
  }
  CHECK(!closer.empty()) << "no hop from " << t.node(node).name << " towards "
                         << t.node(target).name;
  return closer[Mix(node, target) % closer.size()];
}

// Adds the paths from each of `receivers` up to `source` to `channel`'s tree.
absl::Status BuildDownTree(const Topology& t, const std::vector<int>& receivers,
                           Channel* channel) {
  const std::vector<int> dist = t.Distances(channel->source);
  channel->parent.assign(t.num_nodes(), -1);
  for (int r : receivers) {
    if (r == channel->source) continue;  // a naive sender delivers to itself locally
    if (dist[r] < 0) {
      return absl::UnavailableError(absl::StrCat("receiver ", t.node(r).name,
                                                 " is unreachable from ",
                                                 t.node(channel->source).name));
    }
    for (int v = r; v != channel->source && channel->parent[v] < 0;) {
      const int p = ParentToward(t, channel->source, dist, v);
      channel->parent[v] = p;
      v = p;
    }
  }
  return absl::OkStatus();
}

using RuleKey = std::tuple<int, int, int>;  // channel, node, in_neighbor

void AddRules(const Topology& t, const GroupRoutes& routes,
              std::map<RuleKey, std::set<int>>* rules) {
  for (int c = 0; c < static_cast<int>(routes.channels.size()); ++c) {
    const Channel& ch = routes.channels[c];
    std::set<int> root_in;  // where copies enter the root from below
    for (const SenderRoute& s : routes.senders) {
      if (s.channel != c || s.up_path.size() < 2) continue;
      root_in.insert(s.up_path[s.up_path.size() - 2]);
      for (size_t i = 1; i + 1 < s.up_path.size(); ++i) {
        (*rules)[{c, s.up_path[i], s.up_path[i - 1]}].insert(s.up_path[i + 1]);
      }
    }
    for (int v = 0; v < t.num_nodes(); ++v) {
      const int p = ch.parent[v];
      if (p < 0 || t.is_host(p)) continue;
      if (p == ch.source) {
        for (int in : root_in) (*rules)[{c, p, in}].insert(v);
      } else {
        (*rules)[{c, p, ch.parent[p]}].insert(v);
      }
    }
  }
}

// Follows the rules from sender `index`'s host; returns every copy's path.
absl::StatusOr<std::vector<std::vector<int>>> Flood(const Topology& t,
                                                    const GroupRoutes& routes, int index) {
  std::map<RuleKey, const ForwardingRule*> rules;
  for (const ForwardingRule& r : routes.rules) rules[{r.channel, r.node, r.in_neighbor}] = &r;
  const SenderRoute& s = routes.senders[index];
  const Channel& ch = routes.channels[s.channel];
  int first = -1;
  if (!s.up_path.empty()) {
    first = s.up_path.size() > 1 ? s.up_path[1] : -1;
  } else {
    for (int v = 0; v < t.num_nodes(); ++v) {
      if (ch.parent[v] == s.sender) first = v;
    }
  }
  std::vector<std::vector<int>> copies;
  if (first < 0) return copies;  // nobody to send to
  std::deque<std::vector<int>> queue = {{s.sender, first}};
  while (!queue.empty()) {
    std::vector<int> path = std::move(queue.front());
    queue.pop_front();
    const int v = path.back(), in = path[path.size() - 2];
    if (!t.Usable(in, v)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "route uses failed link ", t.node(in).name, " - ", t.node(v).name));
    }
    if (t.is_host(v)) {
      copies.push_back(std::move(path));
      continue;
    }
    if (static_cast<int>(path.size()) > 2 * t.num_nodes()) {
      return absl::InternalError(absl::StrCat("forwarding loop through ", t.node(v).name,
                                              " for sender ", t.node(s.sender).name));
    }
    auto it = rules.find({s.channel, v, in});
    if (it == rules.end()) {
      return absl::InternalError(absl::StrCat("no rule at ", t.node(v).name, " for channel ",
                                              s.channel, " from ", t.node(in).name));
    }
    for (int out : it->second->out_neighbors) {
      std::vector<int> next = path;
      next.push_back(out);
      queue.push_back(std::move(next));
    }
  }
  return copies;
}

}  // namespace

std::vector<int> EligibleRoots(const Topology& t, const std::vector<int>& receivers,
                               const RootPolicy& policy) {
  std::vector<int> best;
  int best_distance = -1;
  for (int sw : t.switches()) {
    if (!t.node_up(sw) || policy.blacklist.contains(sw)) continue;
    const std::vector<int> dist = t.Distances(sw);
    int common = -1;
    bool equal = true;
    for (int r : receivers) {
      if (dist[r] < 0 || (common >= 0 && dist[r] != common)) {
        equal = false;
        break;
      }
      common = dist[r];
    }
    if (!equal || common < 0) continue;
    if (best_distance < 0 || common < best_distance) {
      best.clear();
      best_distance = common;
    }
    if (common == best_distance) best.push_back(sw);
  }
  return best;
}

absl::StatusOr<GroupRoutes> ComputeRoutes(const Topology& t, const GroupSpec& spec,
                                          const RootPolicy& policy) {
  const std::string where = absl::StrCat("MOM group ", spec.group_id, " (",
                                         DesignName(spec.design), ")");
  if (spec.senders.empty() || spec.receivers.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": needs senders and receivers"));
  }
  for (const std::vector<int>* hosts : {&spec.senders, &spec.receivers}) {
    for (int h : *hosts) {
      if (h < 0 || h >= t.num_nodes() || !t.is_host(h)) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": node ", h, " is not a host"));
      }
    }
  }
  GroupRoutes routes;
  routes.spec = spec;
  routes.high_priority = HighPriority(spec.design);

  if (spec.design == Design::kNaive) {
    for (int s : spec.senders) {
      Channel ch{.source = s};
      if (absl::Status st = BuildDownTree(t, spec.receivers, &ch); !st.ok()) {
        return absl::Status(st.code(), absl::StrCat(where, ": ", st.message()));
      }
      routes.senders.push_back({s, static_cast<int>(routes.channels.size()), {}});
      routes.channels.push_back(std::move(ch));
    }
  } else {
    std::vector<int> roots;
    for (int r : EligibleRoots(t, spec.receivers, policy)) {
      const std::vector<int> dist = t.Distances(r);
      if (std::all_of(spec.senders.begin(), spec.senders.end(),
                      [&](int s) { return dist[s] >= 0; })) {
        roots.push_back(r);
      }
    }
    if (roots.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          where, ": no eligible root switch (none is up, not blacklisted, and at equal "
                 "distance from all receivers and reachable from all senders)"));
    }
    routes.eligible_roots = roots;
    std::map<int, int> channel_of_root;
    for (int s : spec.senders) {
      const int root = Serialized(spec.design)
                           ? roots[Mix(spec.group_id) % roots.size()]
                           : roots[Mix(spec.group_id, s) % roots.size()];
      auto [it, fresh] = channel_of_root.try_emplace(root, routes.channels.size());
      if (fresh) {
        Channel ch{.source = root};
        if (absl::Status st = BuildDownTree(t, spec.receivers, &ch); !st.ok()) {
          return absl::Status(st.code(), absl::StrCat(where, ": ", st.message()));
        }
        routes.channels.push_back(std::move(ch));
      }
      SenderRoute sr{.sender = s, .channel = it->second, .up_path = {s}};
      const std::vector<int> dist = t.Distances(root);
      for (int v = s; v != root;) {
        v = ParentToward(t, root, dist, v);
        sr.up_path.push_back(v);
      }
      routes.senders.push_back(std::move(sr));
    }
    if (Serialized(spec.design)) routes.sequencer = routes.channels[0].source;
  }

  std::map<RuleKey, std::set<int>> rules;
  AddRules(t, routes, &rules);
  for (const auto& [key, outs] : rules) {
    const auto [c, node, in] = key;
    routes.rules.push_back(ForwardingRule{
        .channel = c,
        .node = node,
        .in_neighbor = in,
        .out_neighbors = std::vector<int>(outs.begin(), outs.end()),
        .stamp = node == routes.sequencer,
    });
  }
  return routes;
}

absl::StatusOr<std::vector<int>> TracePath(const Topology& t, const GroupRoutes& routes,
                                           int sender_index, int receiver) {
  absl::StatusOr<std::vector<std::vector<int>>> copies = Flood(t, routes, sender_index);
  if (!copies.ok()) return copies.status();
  std::vector<int> found;
  int count = 0;
  for (std::vector<int>& path : *copies) {
    if (path.back() == receiver) {
      found = std::move(path);
      ++count;
    }
  }
  if (count != 1) {
    return absl::InternalError(absl::StrCat(t.node(receiver).name, " gets ", count,
                                            " copies from ",
                                            t.node(routes.senders[sender_index].sender).name));
  }
  return found;
}

absl::Status VerifyRoutes(const Topology& t, const GroupRoutes& routes) {
  const GroupSpec& spec = routes.spec;
  const std::set<int> receivers(spec.receivers.begin(), spec.receivers.end());
  for (int i = 0; i < static_cast<int>(routes.senders.size()); ++i) {
    const int sender = routes.senders[i].sender;
    absl::StatusOr<std::vector<std::vector<int>>> copies = Flood(t, routes, i);
    if (!copies.ok()) return copies.status();
    std::map<int, int> got;
    std::set<size_t> lengths;
    for (const std::vector<int>& path : *copies) {
      const int host = path.back();
      if (!receivers.contains(host)) {
        return absl::InternalError(
            absl::StrCat("non-member ", t.node(host).name, " gets copies from ",
                         t.node(sender).name));
      }
      ++got[host];
      lengths.insert(path.size());
    }
    for (int r : receivers) {
      const int want = spec.design == Design::kNaive && r == sender ? 0 : 1;
      if (got[r] != want) {
        return absl::InternalError(absl::StrCat(t.node(r).name, " gets ", got[r],
                                                " copies from ", t.node(sender).name,
                                                ", want ", want));
      }
    }
    if (spec.design != Design::kNaive && lengths.size() > 1) {
      return absl::InternalError(absl::StrCat("copies from ", t.node(sender).name,
                                              " travel paths of ", lengths.size(),
                                              " different lengths"));
    }
  }
  return absl::OkStatus();
}

}  // namespace dctk::mom
