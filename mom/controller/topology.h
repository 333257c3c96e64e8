// Topology: the switch-and-host graph the MOM controller computes routes on.
//
// Nodes are hosts and switches; links are undirected. A node's ports are its
// links in the order they were added: port i of node n leads to ports(n)[i], so
// forwarding rules name ports the way a switch (or an ns-3 node) numbers its
// interfaces. Links and nodes can be marked failed; distances and paths then
// avoid them. Hosts never relay traffic.
//
// Factories build the data-center topologies of the MOM evaluation:
//   FatTree(k)    Al-Fares et al. (SIGCOMM 2008): k pods of k/2 edge and k/2
//                 aggregation switches, (k/2)^2 core switches, k^3/4 hosts.
//   LeafSpine(l, s, h)  l leaf switches each wired to all s spines, h hosts per leaf.
//
// Example:
//   absl::StatusOr<Topology> t = Topology::FatTree(4);   // 16 hosts, 20 switches
//   std::vector<int> d = t->Distances(t->hosts()[0]);
//   t->FailNode(*t->FindNode("core0"));
#ifndef DCTK_MOM_CONTROLLER_TOPOLOGY_H_
#define DCTK_MOM_CONTROLLER_TOPOLOGY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dctk::mom {

enum class NodeKind : uint8_t { kHost = 0, kSwitch = 1 };

// Tiers: 0 host, 1 edge / leaf, 2 aggregation / spine, 3 core.
struct Node {
  NodeKind kind;
  std::string name;
  int tier = 0;
  int pod = -1;  // fat tree pod; -1 for core switches and leaf-spine nodes
};

struct Link {
  int a;
  int b;
};

struct Port {
  int neighbor;
  int link;
};

class Topology {
 public:
  static absl::StatusOr<Topology> FatTree(int k);
  static absl::StatusOr<Topology> LeafSpine(int leaves, int spines, int hosts_per_leaf);

  int AddNode(NodeKind kind, std::string name, int tier, int pod = -1);
  int AddLink(int a, int b);

  int num_nodes() const { return static_cast<int>(nodes_.size()); }
  const Node& node(int id) const { return nodes_[id]; }
  const std::vector<Link>& links() const { return links_; }
  const std::vector<Port>& ports(int node) const { return ports_[node]; }
  bool is_host(int id) const { return nodes_[id].kind == NodeKind::kHost; }
  std::vector<int> hosts() const;
  std::vector<int> switches() const;
  absl::StatusOr<int> FindNode(absl::string_view name) const;
  // Port of `node` that leads to `neighbor`, or -1.
  int PortTo(int node, int neighbor) const;

  void FailLink(int link) { link_up_[link] = false; }
  void FailNode(int node) { node_up_[node] = false; }
  void RepairAll();
  bool link_up(int link) const { return link_up_[link]; }
  bool node_up(int node) const { return node_up_[node]; }
  // Whether the link between `a` and `b` exists and it and both ends are up.
  bool Usable(int a, int b) const;

  // Hop counts from `from` over working links, never relaying through hosts;
  // -1 for unreachable nodes.
  std::vector<int> Distances(int from) const;

 private:
  std::vector<Node> nodes_;
  std::vector<Link> links_;
  std::vector<std::vector<Port>> ports_;
  std::vector<bool> link_up_;
  std::vector<bool> node_up_;
};

}  // namespace dctk::mom

#endif  // DCTK_MOM_CONTROLLER_TOPOLOGY_H_
