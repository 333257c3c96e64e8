#include "mom/controller/topology.h"

#include <deque>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace dctk::mom {

absl::StatusOr<Topology> Topology::FatTree(int k) {
  if (k < 2 || k % 2 != 0 || k > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("fat tree k=", k, ": k must be even and in [2, 64]"));
  }
  const int half = k / 2;
  Topology t;
  std::vector<int> core;
  for (int c = 0; c < half * half; ++c) {
    core.push_back(t.AddNode(NodeKind::kSwitch, absl::StrCat("core", c), 3));
  }
  for (int p = 0; p < k; ++p) {
    std::vector<int> agg, edge;
    for (int a = 0; a < half; ++a) {
      agg.push_back(t.AddNode(NodeKind::kSwitch, absl::StrCat("agg", p, "_", a), 2, p));
    }
    for (int e = 0; e < half; ++e) {
      edge.push_back(t.AddNode(NodeKind::kSwitch, absl::StrCat("edge", p, "_", e), 1, p));
    }
    // Aggregation switch a of every pod connects to core switches a*half .. a*half+half-1.
    for (int a = 0; a < half; ++a) {
      for (int c = 0; c < half; ++c) t.AddLink(agg[a], core[a * half + c]);
    }
    for (int e = 0; e < half; ++e) {
      for (int a = 0; a < half; ++a) t.AddLink(edge[e], agg[a]);
      for (int h = 0; h < half; ++h) {
        const int host =
            t.AddNode(NodeKind::kHost, absl::StrCat("host", p, "_", e, "_", h), 0, p);
        t.AddLink(edge[e], host);
      }
    }
  }
  return t;
}

absl::StatusOr<Topology> Topology::LeafSpine(int leaves, int spines, int hosts_per_leaf) {
  if (leaves < 1 || spines < 1 || hosts_per_leaf < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "leaf-spine ", leaves, "x", spines, "x", hosts_per_leaf, ": all counts must be >= 1"));
  }
  Topology t;
  std::vector<int> spine;
  for (int s = 0; s < spines; ++s) {
    spine.push_back(t.AddNode(NodeKind::kSwitch, absl::StrCat("spine", s), 2));
  }
  for (int l = 0; l < leaves; ++l) {
    const int leaf = t.AddNode(NodeKind::kSwitch, absl::StrCat("leaf", l), 1);
    for (int s : spine) t.AddLink(leaf, s);
    for (int h = 0; h < hosts_per_leaf; ++h) {
      t.AddLink(leaf, t.AddNode(NodeKind::kHost, absl::StrCat("host", l, "_", h), 0));
    }
  }
  return t;
}

int Topology::AddNode(NodeKind kind, std::string name, int tier, int pod) {
  nodes_.push_back(Node{kind, std::move(name), tier, pod});
  ports_.emplace_back();
  node_up_.push_back(true);
  return num_nodes() - 1;
}

int Topology::AddLink(int a, int b) {
  CHECK(a != b && a >= 0 && b >= 0 && a < num_nodes() && b < num_nodes());
  const int id = static_cast<int>(links_.size());
  links_.push_back(Link{a, b});
  link_up_.push_back(true);
  ports_[a].push_back(Port{b, id});
  ports_[b].push_back(Port{a, id});
  return id;
}

std::vector<int> Topology::hosts() const {
  std::vector<int> out;
  for (int i = 0; i < num_nodes(); ++i) {
    if (is_host(i)) out.push_back(i);
  }
  return out;
}

std::vector<int> Topology::switches() const {
  std::vector<int> out;
  for (int i = 0; i < num_nodes(); ++i) {
    if (!is_host(i)) out.push_back(i);
  }
  return out;
}

absl::StatusOr<int> Topology::FindNode(absl::string_view name) const {
  for (int i = 0; i < num_nodes(); ++i) {
    if (nodes_[i].name == name) return i;
  }
  return absl::NotFoundError(absl::StrCat("topology has no node named '", name, "'"));
}

int Topology::PortTo(int node, int neighbor) const {
  for (size_t p = 0; p < ports_[node].size(); ++p) {
    if (ports_[node][p].neighbor == neighbor) return static_cast<int>(p);
  }
  return -1;
}

void Topology::RepairAll() {
  link_up_.assign(link_up_.size(), true);
  node_up_.assign(node_up_.size(), true);
}

bool Topology::Usable(int a, int b) const {
  if (!node_up_[a] || !node_up_[b]) return false;
  for (const Port& p : ports_[a]) {
    if (p.neighbor == b && link_up_[p.link]) return true;
  }
  return false;
}

std::vector<int> Topology::Distances(int from) const {
  std::vector<int> dist(num_nodes(), -1);
  if (!node_up_[from]) return dist;
  std::deque<int> queue = {from};
  dist[from] = 0;
  while (!queue.empty()) {
    const int v = queue.front();
    queue.pop_front();
    if (v != from && is_host(v)) continue;  // hosts do not relay
    for (const Port& p : ports_[v]) {
      if (!link_up_[p.link] || !node_up_[p.neighbor] || dist[p.neighbor] >= 0) continue;
      dist[p.neighbor] = dist[v] + 1;
      queue.push_back(p.neighbor);
    }
  }
  return dist;
}

}  // namespace dctk::mom
