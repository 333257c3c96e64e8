#include "mom/controller/fabric.h"

#include <arpa/inet.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "common/config/cluster_config.h"
#include "common/config/text_proto.h"
#include "mom/controller/fabric.pb.h"
#include "mom/design.h"

namespace dctk::mom {
namespace {

absl::StatusOr<Fabric> Check(const FabricFile& file, const config::SourceMap& source) {
  Fabric fabric;
  absl::StatusOr<Topology> topology;
  if (file.has_leaf_spine()) {
    const LeafSpineSpec& ls = file.leaf_spine();
    topology = Topology::LeafSpine(ls.leaves(), ls.spines(), ls.hosts_per_leaf());
  } else if (file.has_fat_tree()) {
    topology = Topology::FatTree(file.fat_tree().k());
  } else {
    return source.Error("leaf_spine", -1, "the file names no topology (leaf_spine or fat_tree)");
  }
  if (!topology.ok()) {
    return source.Error(file.has_leaf_spine() ? "leaf_spine" : "fat_tree", -1,
                        topology.status().message());
  }
  fabric.topology = *std::move(topology);
  const Topology& t = fabric.topology;
  auto node = [&](absl::string_view field, int index, const std::string& name,
                  bool host) -> absl::StatusOr<int> {
    absl::StatusOr<int> n = t.FindNode(name);
    if (!n.ok() || t.is_host(*n) != host) {
      return source.Error(field, index,
                          absl::StrCat("unknown ", host ? "host" : "switch", " '", name, "'"));
    }
    return *n;
  };
  for (int i = 0; i < file.switches_size(); ++i) {
    const SwitchEndpoint& s = file.switches(i);
    const config::SourceMap at = source.Nested("switches", i);
    absl::StatusOr<int> n = node("switches", i, s.name(), false);
    if (!n.ok()) return n.status();
    if (s.control().empty()) return at.Error("control", -1, "missing control address");
    if (!fabric.control.emplace(*n, s.control()).second) {
      return source.Error("switches", i, absl::StrCat("switch '", s.name(), "' listed twice"));
    }
  }
  for (int sw : t.switches()) {
    if (!fabric.control.count(sw)) {
      return source.Error("switches", -1,
                          absl::StrCat("no control address for switch '", t.node(sw).name, "'"));
    }
  }
  auto add_host = [&](const config::SourceMap& at, absl::string_view field, int index,
                      const std::string& name, uint32_t ip) -> absl::Status {
    absl::StatusOr<int> n = t.FindNode(name);
    if (!n.ok() || !t.is_host(*n)) {
      return at.Error(field, index, absl::StrCat("unknown host '", name, "'"));
    }
    if (!fabric.host_ips.emplace(*n, ip).second) {
      return at.Error(field, index, absl::StrCat("host '", name, "' given twice"));
    }
    return absl::OkStatus();
  };
  for (int i = 0; i < file.hosts_size(); ++i) {
    const HostAddress& h = file.hosts(i);
    in_addr a;
    if (inet_pton(AF_INET, h.ip().c_str(), &a) != 1) {
      return source.Nested("hosts", i).Error("ip", -1, absl::StrCat("bad IPv4 '", h.ip(), "'"));
    }
    if (absl::Status s = add_host(source, "hosts", i, h.name(), ntohl(a.s_addr)); !s.ok()) return s;
  }
  absl::StatusOr<config::ClusterConfig> cluster = absl::InvalidArgumentError("no cluster");
  if (file.has_cluster()) {
    const config::SourceMap at = source.Nested("cluster");
    cluster = config::ClusterConfig::FromProto(file.cluster(), at);
    if (!cluster.ok()) return cluster.status();
    for (size_t i = 0; i < cluster->nodes().size(); ++i) {
      const config::ClusterConfig::Node& node = cluster->nodes()[i];
      if (absl::Status s = add_host(at, "nodes", static_cast<int>(i), node.name, node.address.ip());
          !s.ok()) {
        return s;
      }
    }
  }
  if (!fabric.host_ips.empty() && fabric.host_ips.size() != t.hosts().size()) {
    return source.Error("hosts", -1,
                        absl::StrCat("lists ", fabric.host_ips.size(), " of the topology's ",
                                     t.hosts().size(), " hosts (all or none",
                                     file.has_cluster() ? ", with the cluster's nodes)" : ")"));
  }
  std::set<uint32_t> ids;
  for (int i = 0; i < file.groups_size(); ++i) {
    const MomGroupSpec& g = file.groups(i);
    const config::SourceMap at = source.Nested("groups", i);
    GroupSpec spec{.group_id = g.group_id()};
    if (g.group_id() >= 65536) return at.Error("group_id", -1, "must be below 65536");
    if (!ids.insert(g.group_id()).second) return at.Error("group_id", -1, "duplicate group id");
    absl::StatusOr<Design> design = ParseDesign(g.design());
    if (!design.ok()) return at.Error("design", -1, design.status().message());
    spec.design = *design;
    std::vector<std::string> senders(g.senders().begin(), g.senders().end());
    std::vector<std::string> receivers(g.receivers().begin(), g.receivers().end());
    const char* senders_field = "senders";
    const char* receivers_field = "receivers";
    if (!g.cluster_group().empty()) {
      if (!senders.empty() || !receivers.empty()) {
        return at.Error("cluster_group", -1,
                        "give cluster_group or senders and receivers, not both");
      }
      const config::ClusterConfig::Multicast* m =
          cluster.ok() ? cluster->FindMulticastGroup(g.cluster_group()) : nullptr;
      if (m == nullptr) {
        return at.Error(
            "cluster_group", -1,
            absl::StrCat("no multicast group '", g.cluster_group(), "' in the cluster section"));
      }
      senders = m->senders;
      receivers = m->members;
      senders_field = "cluster_group";  // a name there is the cluster group's
      receivers_field = "cluster_group";
    }
    for (size_t k = 0; k < senders.size(); ++k) {
      absl::StatusOr<int> n = t.FindNode(senders[k]);
      if (!n.ok() || !t.is_host(*n)) {
        return at.Error(senders_field, g.cluster_group().empty() ? static_cast<int>(k) : -1,
                        absl::StrCat("unknown host '", senders[k], "'"));
      }
      spec.senders.push_back(*n);
    }
    for (size_t k = 0; k < receivers.size(); ++k) {
      absl::StatusOr<int> n = t.FindNode(receivers[k]);
      if (!n.ok() || !t.is_host(*n)) {
        return at.Error(receivers_field, g.cluster_group().empty() ? static_cast<int>(k) : -1,
                        absl::StrCat("unknown host '", receivers[k], "'"));
      }
      spec.receivers.push_back(*n);
    }
    if (spec.senders.empty() || spec.receivers.empty()) {
      return at.Error("senders", -1, "a group needs senders and receivers");
    }
    fabric.groups.push_back(std::move(spec));
  }
  return fabric;
}

}  // namespace

absl::StatusOr<Fabric> ParseFabric(absl::string_view text, absl::string_view filename) {
  absl::StatusOr<config::TextProto<FabricFile>> t =
      config::ParseTextProtoWithSource<FabricFile>(text, filename);
  if (!t.ok()) return t.status();
  return Check(t->message, t->source);
}

absl::StatusOr<Fabric> LoadFabric(absl::string_view path) {
  absl::StatusOr<config::TextProto<FabricFile>> t =
      config::LoadTextProtoWithSource<FabricFile>(path);
  if (!t.ok()) return t.status();
  return Check(t->message, t->source);
}

}  // namespace dctk::mom
