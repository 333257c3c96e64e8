// ClusterConfig: the checked, indexed form of a dctk.config.Cluster file.
//
// Loading parses the text proto (config.proto), then checks every value and
// reports all problems at once, each as "file:line: field.path: what is wrong":
// duplicate node names or addresses, bad addresses, groups naming unknown
// nodes, a replica group whose size does not fit f (2f+1 for consensus, f+1 for
// primary-backup), multicast addresses outside 224.0.0.0/4, DSCP > 63, and
// timeouts that are not positive. A config that loads is safe to look up in.
//
// Example:
//   absl::StatusOr<ClusterConfig> c = ClusterConfig::Load("cluster.conf");
//   if (!c.ok()) { LOG(ERROR) << c.status(); return 1; }
//   const ClusterConfig::Group* g = c->FindGroup("shard0");
//   for (const transport::Address& a : g->addresses) ...
//   absl::Duration t = c->request_timeout();
//
// A module that embeds `dctk.config.Cluster cluster = 1;` in its own config
// message checks that part with
//   ClusterConfig::FromProto(t->message.cluster(), t->source.Nested("cluster"));
#ifndef DCTK_COMMON_CONFIG_CLUSTER_CONFIG_H_
#define DCTK_COMMON_CONFIG_CLUSTER_CONFIG_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/config/config.pb.h"
#include "common/config/text_proto.h"
#include "common/transport/address.h"

namespace dctk::config {

class ClusterConfig {
 public:
  struct Node {
    std::string name;
    transport::Address address;
  };
  struct Group {
    std::string name;
    int f = 0;
    ReplicaGroup::Replication replication = ReplicaGroup::CONSENSUS;
    std::vector<std::string> members;  // Node names; members[0] leads first.
    std::vector<transport::Address> addresses;  // addresses[i] is members[i]'s.
  };
  struct Multicast {
    std::string name;
    transport::Address address;  // In 224.0.0.0/4.
    std::vector<std::string> members;
    std::vector<std::string> senders;
    int dscp = 0;
  };

  static absl::StatusOr<ClusterConfig> Load(absl::string_view path);
  static absl::StatusOr<ClusterConfig> Parse(absl::string_view text, absl::string_view filename);
  // Checks an already parsed message; `source` names where its fields came from.
  static absl::StatusOr<ClusterConfig> FromProto(const Cluster& proto, const SourceMap& source);

  const Cluster& proto() const { return proto_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<Group>& groups() const { return groups_; }
  const std::vector<Multicast>& multicast_groups() const { return multicast_; }

  // Lookups by name; nullptr if there is no such entry.
  const Node* FindNode(absl::string_view name) const;
  const Group* FindGroup(absl::string_view name) const;
  const Multicast* FindMulticastGroup(absl::string_view name) const;
  // The node at `address`, or nullptr.
  const Node* FindNodeByAddress(const transport::Address& address) const;

  absl::Duration request_timeout() const;
  absl::Duration heartbeat_interval() const;
  absl::Duration view_change_timeout() const;
  absl::Duration lease() const;

 private:
  ClusterConfig() = default;

  Cluster proto_;
  std::vector<Node> nodes_;
  std::vector<Group> groups_;
  std::vector<Multicast> multicast_;
  absl::flat_hash_map<std::string, size_t> node_index_;
  absl::flat_hash_map<transport::Address, size_t> node_by_address_;
  absl::flat_hash_map<std::string, size_t> group_index_;
  absl::flat_hash_map<std::string, size_t> multicast_index_;
};

}  // namespace dctk::config

#endif  // DCTK_COMMON_CONFIG_CLUSTER_CONFIG_H_
