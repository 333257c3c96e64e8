#include "common/config/cluster_config.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dctk::config {
namespace {

// Accumulates every problem found, so one run reports them all.
class Problems {
 public:
  void Add(const SourceMap& where, absl::string_view field, int index, absl::string_view what) {
    messages_.push_back(std::string(where.Error(field, index, what).message()));
  }
  absl::Status ToStatus() const {
    if (messages_.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrJoin(messages_, "\n"));
  }

 private:
  std::vector<std::string> messages_;
};

// Checks that the message at `where` (index `index` of its list) has a name
// not used before in that list; `seen` maps names to the index they first had.
bool CheckName(const std::string& name, absl::flat_hash_map<std::string, int>& seen, int index,
               const SourceMap& where, absl::string_view kind, Problems& problems) {
  if (name.empty()) {
    problems.Add(where, "name", -1, absl::StrCat(kind, " has no name"));
    return false;
  }
  auto [it, inserted] = seen.emplace(name, index);
  if (!inserted) {
    problems.Add(where, "name", -1,
                 absl::StrCat("duplicate ", kind, " name '", name, "' (first used by ", kind,
                              " ", it->second, ")"));
    return false;
  }
  return true;
}

// Checks that each of `names` (repeated field `field` of the message at
// `where`) is a known node, listed once.
void CheckMembers(const google::protobuf::RepeatedPtrField<std::string>& names,
                  absl::string_view field, const SourceMap& where,
                  const absl::flat_hash_map<std::string, int>& nodes, Problems& problems) {
  absl::flat_hash_map<std::string, int> seen;
  for (int i = 0; i < names.size(); ++i) {
    if (!nodes.contains(names[i])) {
      problems.Add(where, field, i, absl::StrCat("unknown node '", names[i], "'"));
    } else if (auto [it, inserted] = seen.emplace(names[i], i); !inserted) {
      problems.Add(where, field, i,
                   absl::StrCat("node '", names[i], "' is listed twice (also at [", it->second,
                                "])"));
    }
  }
}

}  // namespace

absl::StatusOr<ClusterConfig> ClusterConfig::Load(absl::string_view path) {
  absl::StatusOr<TextProto<Cluster>> t = LoadTextProtoWithSource<Cluster>(path);
  if (!t.ok()) return t.status();
  return FromProto(t->message, t->source);
}

absl::StatusOr<ClusterConfig> ClusterConfig::Parse(absl::string_view text,
                                                   absl::string_view filename) {
  absl::StatusOr<TextProto<Cluster>> t = ParseTextProtoWithSource<Cluster>(text, filename);
  if (!t.ok()) return t.status();
  return FromProto(t->message, t->source);
}

absl::StatusOr<ClusterConfig> ClusterConfig::FromProto(const Cluster& proto,
                                                       const SourceMap& source) {
  ClusterConfig c;
  c.proto_ = proto;
  Problems problems;

  // Every node named in the file, valid or not, so that one bad node does not
  // also make each group naming it report an unknown node.
  absl::flat_hash_map<std::string, int> node_names;
  for (int i = 0; i < proto.nodes_size(); ++i) {
    const dctk::config::Node& n = proto.nodes(i);
    SourceMap where = source.Nested("nodes", i);
    bool ok = CheckName(n.name(), node_names, i, where, "node", problems);
    absl::StatusOr<transport::Address> a = transport::Address::Parse(n.address());
    if (!a.ok()) {
      problems.Add(where, "address", -1, a.status().message());
      ok = false;
    } else if (auto it = c.node_by_address_.find(*a); it != c.node_by_address_.end()) {
      problems.Add(where, "address", -1,
                   absl::StrCat("duplicate address ", a->ToString(), " (also node '",
                                c.nodes_[it->second].name, "')"));
      ok = false;
    }
    if (!ok) continue;
    c.node_index_.emplace(n.name(), c.nodes_.size());
    c.node_by_address_.emplace(*a, c.nodes_.size());
    c.nodes_.push_back({n.name(), *a});
  }

  absl::flat_hash_map<std::string, int> group_names;
  for (int i = 0; i < proto.groups_size(); ++i) {
    const ReplicaGroup& g = proto.groups(i);
    SourceMap where = source.Nested("groups", i);
    bool ok = CheckName(g.name(), group_names, i, where, "group", problems);
    CheckMembers(g.members(), "members", where, node_names, problems);
    if (g.f() < 0) {
      problems.Add(where, "f", -1, absl::StrCat("f is ", g.f(), "; it must be >= 0"));
      ok = false;
    } else {
      const bool consensus = g.replication() == ReplicaGroup::CONSENSUS;
      const int want = consensus ? 2 * g.f() + 1 : g.f() + 1;
      if (g.members_size() != want) {
        problems.Add(where, "members", -1,
                     absl::StrCat(g.members_size(), " members, but a ",
                                  consensus ? "consensus" : "primary-backup", " group with f=",
                                  g.f(), " needs ", consensus ? "2f+1" : "f+1", " = ", want));
        ok = false;
      }
    }
    if (!ok) continue;
    c.group_index_.emplace(g.name(), c.groups_.size());
    Group group{g.name(), g.f(), g.replication(), {g.members().begin(), g.members().end()}, {}};
    for (const std::string& m : group.members) {
      auto it = c.node_index_.find(m);
      if (it != c.node_index_.end()) group.addresses.push_back(c.nodes_[it->second].address);
    }
    c.groups_.push_back(std::move(group));
  }

  absl::flat_hash_map<std::string, int> multicast_names;
  for (int i = 0; i < proto.multicast_groups_size(); ++i) {
    const MulticastGroup& m = proto.multicast_groups(i);
    SourceMap where = source.Nested("multicast_groups", i);
    bool ok = CheckName(m.name(), multicast_names, i, where, "multicast group", problems);
    CheckMembers(m.members(), "members", where, node_names, problems);
    CheckMembers(m.senders(), "senders", where, node_names, problems);
    absl::StatusOr<transport::Address> a = transport::Address::Parse(m.address());
    if (!a.ok()) {
      problems.Add(where, "address", -1, a.status().message());
      ok = false;
    } else if (!a->is_multicast()) {
      problems.Add(where, "address", -1,
                   absl::StrCat("'", m.address(), "' is not a multicast address (224.0.0.0/4)"));
      ok = false;
    }
    if (m.dscp() > 63) {
      problems.Add(where, "dscp", -1, absl::StrCat("dscp ", m.dscp(), " is not in 0-63"));
      ok = false;
    }
    if (!ok) continue;
    c.multicast_index_.emplace(m.name(), c.multicast_.size());
    c.multicast_.push_back({m.name(), *a, {m.members().begin(), m.members().end()},
                            {m.senders().begin(), m.senders().end()}, static_cast<int>(m.dscp())});
  }

  const Timeouts& t = proto.timeouts();
  SourceMap where = source.Nested("timeouts");
  const auto* desc = Timeouts::descriptor();
  const auto* refl = Timeouts::GetReflection();
  for (int i = 0; i < desc->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* fd = desc->field(i);
    int64_t ms = refl->GetInt64(t, fd);
    if (ms <= 0) {
      problems.Add(where, fd->name(), -1,
                   absl::StrCat("timeout is ", ms, " ms; it must be positive"));
    }
  }

  if (absl::Status s = problems.ToStatus(); !s.ok()) return s;
  return c;
}

const ClusterConfig::Node* ClusterConfig::FindNode(absl::string_view name) const {
  auto it = node_index_.find(name);
  return it == node_index_.end() ? nullptr : &nodes_[it->second];
}

const ClusterConfig::Group* ClusterConfig::FindGroup(absl::string_view name) const {
  auto it = group_index_.find(name);
  return it == group_index_.end() ? nullptr : &groups_[it->second];
}

const ClusterConfig::Multicast* ClusterConfig::FindMulticastGroup(absl::string_view name) const {
  auto it = multicast_index_.find(name);
  return it == multicast_index_.end() ? nullptr : &multicast_[it->second];
}

const ClusterConfig::Node* ClusterConfig::FindNodeByAddress(
    const transport::Address& address) const {
  auto it = node_by_address_.find(address);
  return it == node_by_address_.end() ? nullptr : &nodes_[it->second];
}

absl::Duration ClusterConfig::request_timeout() const {
  return absl::Milliseconds(proto_.timeouts().request_ms());
}
absl::Duration ClusterConfig::heartbeat_interval() const {
  return absl::Milliseconds(proto_.timeouts().heartbeat_ms());
}
absl::Duration ClusterConfig::view_change_timeout() const {
  return absl::Milliseconds(proto_.timeouts().view_change_ms());
}
absl::Duration ClusterConfig::lease() const {
  return absl::Milliseconds(proto_.timeouts().lease_ms());
}

}  // namespace dctk::config
