// Multicast routes for a MOM group, per design (see mom/design.h).
//
// ComputeRoutes turns a topology and a group (sender hosts, receiver hosts,
// design) into *channels* and forwarding rules:
//   kNaive              one channel per sender: the shortest-path tree from the
//                       sender to all receivers (paths of different lengths).
//   kTopologyAware(+Qos) each sender sends up to a root switch, every copy then
//                       goes down the root's tree. Roots are the switches at the
//                       same, smallest distance from all receivers (core switches
//                       when receivers span pods), so every copy of a sender's
//                       message travels the same number of hops. Senders are
//                       spread over the eligible roots (like ECMP); one channel
//                       per root in use.
//   kSerialized         as topology-aware, but one root for all senders, which
//                       is the group's sequencer (stamps group sequence numbers).
// A channel is what a network needs one multicast address for: its rules at a
// switch depend only on (channel, input port), which is also what ns-3's static
// multicast routing and a simple hardware switch can match on.
//
// Root blacklisting: a switch is never a root if it is failed, explicitly
// blacklisted (RootPolicy), or if failures left it without a path of the common
// distance to some receiver (it could only reach that receiver by a detour,
// which would break equal path lengths). If no root is eligible, ComputeRoutes
// fails rather than silently falling back to unequal paths.
//
// Example:
//   GroupSpec g{.group_id = 1, .senders = {h0, h5}, .receivers = {h1, h9, h14},
//               .design = Design::kTopologyAwareQos};
//   absl::StatusOr<GroupRoutes> r = ComputeRoutes(topology, g);
//   for (const ForwardingRule& rule : r->rules) ... install on rule.node ...
#ifndef DCTK_MOM_CONTROLLER_ROUTES_H_
#define DCTK_MOM_CONTROLLER_ROUTES_H_

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "mom/controller/topology.h"
#include "mom/design.h"

namespace dctk::mom {

struct GroupSpec {
  uint32_t group_id = 0;
  std::vector<int> senders;    // host node ids
  std::vector<int> receivers;  // host node ids
  Design design = Design::kNaive;
};

struct RootPolicy {
  // Switches never to use as root (e.g. reported failing by a monitor).
  absl::flat_hash_set<int> blacklist;
};

struct Channel {
  // Where the channel's tree starts: the root switch, or for kNaive the sender.
  int source = -1;
  // The down tree: parent[v] for every node on it (-1 for `source` and for
  // nodes not on the tree), indexed by node id.
  std::vector<int> parent;
};

struct SenderRoute {
  int sender = -1;
  int channel = -1;
  // sender, ..., root: the unicast way up (empty for kNaive).
  std::vector<int> up_path;
};

// At switch `node`, a copy of `channel` arriving from `in_neighbor` is sent to
// each of `out_neighbors`; `stamp` marks the serialization point.
struct ForwardingRule {
  int channel;
  int node;
  int in_neighbor;
  std::vector<int> out_neighbors;
  bool stamp = false;
};

struct GroupRoutes {
  GroupSpec spec;
  bool high_priority = false;
  int sequencer = -1;               // serialization switch, kSerialized only
  std::vector<int> eligible_roots;  // empty for kNaive
  std::vector<Channel> channels;
  std::vector<SenderRoute> senders;  // in spec.senders order
  std::vector<ForwardingRule> rules;
};

absl::StatusOr<GroupRoutes> ComputeRoutes(const Topology& topology, const GroupSpec& spec,
                                          const RootPolicy& policy = {});

// The switches that could serve as root for `receivers` (see above).
std::vector<int> EligibleRoots(const Topology& topology, const std::vector<int>& receivers,
                               const RootPolicy& policy = {});

// The nodes a copy from senders[sender_index] to `receiver` visits, by walking
// the forwarding rules hop by hop (so it checks the rules, not just the trees).
// Fails if the walk loops, dead-ends, or uses a failed link.
absl::StatusOr<std::vector<int>> TracePath(const Topology& topology, const GroupRoutes& routes,
                                           int sender_index, int receiver);

// Checks the routes before they are installed: every receiver gets exactly one
// copy of every sender's message, along working links, without loops, and (for
// the topology-aware designs) over paths of equal length per sender.
absl::Status VerifyRoutes(const Topology& topology, const GroupRoutes& routes);

}  // namespace dctk::mom

#endif  // DCTK_MOM_CONTROLLER_ROUTES_H_
