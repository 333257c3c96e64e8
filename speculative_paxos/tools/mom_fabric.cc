#include "speculative_paxos/tools/mom_fabric.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/config/cluster_config.h"
#include "common/config/text_proto.h"
#include "mom/design.h"
#include "speculative_paxos/tools/mom_fabric.pb.h"

namespace dctk::spaxos {
namespace {

absl::StatusOr<MomFabric> Build(const config::TextProto<MomFabricGroup>& file,
                                const config::ClusterConfig& cluster) {
  const MomFabricGroup& m = file.message;
  const config::SourceMap& src = file.source;
  const config::ClusterConfig::Multicast* mc = cluster.FindMulticastGroup(m.multicast());
  if (mc == nullptr) {
    return src.Error("multicast", -1,
                     absl::StrCat("no multicast group '", m.multicast(), "' in the cluster file"));
  }
  if (m.group_id() == 0) return src.Error("group_id", -1, "must be > 0");
  absl::StatusOr<mom::Design> design = mom::ParseDesign(m.design());
  if (!design.ok()) return src.Error("design", -1, design.status().message());
  MomFabric f;
  f.group.group_id = m.group_id();
  f.group.group_address = mc->address;
  f.group.design = *design;
  f.group.delivery =
      m.replicated_unicast() ? mom::Delivery::kReplicatedUnicast : mom::Delivery::kIpMulticast;
  for (const std::string& member : mc->members) {
    f.group.members.push_back(cluster.FindNode(member)->address);
  }
  for (const std::string& sender : mc->senders) {
    f.nodes[sender] = cluster.FindNode(sender)->address;
  }
  for (int i = 0; i < m.channels_size(); ++i) {
    const MomFabricGroup::Channel& c = m.channels(i);
    const config::SourceMap at = src.Nested("channels", i);
    if (!f.nodes.contains(c.sender())) {
      return at.Error("sender", -1,
                      absl::StrCat("'", c.sender(), "' is not a sender of multicast group '",
                                   mc->name, "'"));
    }
    absl::StatusOr<transport::Address> a = transport::Address::Parse(c.address());
    if (!a.ok()) return at.Error("address", -1, a.status().message());
    if (!a->is_multicast()) {
      return at.Error("address", -1, absl::StrCat(c.address(), " is not in 224.0.0.0/4"));
    }
    if (!f.channels.emplace(c.sender(), *a).second) {
      return at.Error("sender", -1, absl::StrCat("'", c.sender(), "' has two channels"));
    }
    f.group.sender_addresses[static_cast<uint32_t>(i + 1)] = *a;
  }
  if (absl::Status s = mom::ValidateGroupConfig(f.group); !s.ok()) {
    return src.Error("multicast", -1, s.message());
  }
  return f;
}

}  // namespace

absl::StatusOr<mom::GroupConfig> MomFabric::ForSender(
    absl::string_view node, const std::vector<uint32_t>& sender_ids) const {
  if (!nodes.contains(std::string(node))) {
    return absl::NotFoundError(absl::StrCat("MOM group ", group.group_id, ": node '", node,
                                            "' is not one of its senders"));
  }
  mom::GroupConfig g = group;
  g.sender_addresses.clear();
  auto channel = channels.find(std::string(node));
  if (channel != channels.end()) {
    for (uint32_t id : sender_ids) g.sender_addresses[id] = channel->second;
  }
  return g;
}

absl::StatusOr<MomFabric> LoadMomFabric(absl::string_view path, absl::string_view cluster_path) {
  absl::StatusOr<config::ClusterConfig> cluster = config::ClusterConfig::Load(cluster_path);
  if (!cluster.ok()) return cluster.status();
  absl::StatusOr<config::TextProto<MomFabricGroup>> file =
      config::LoadTextProtoWithSource<MomFabricGroup>(path);
  if (!file.ok()) return file.status();
  return Build(*file, *cluster);
}

absl::StatusOr<MomFabric> ParseMomFabric(absl::string_view text, absl::string_view filename,
                                         absl::string_view cluster_text,
                                         absl::string_view cluster_filename) {
  absl::StatusOr<config::ClusterConfig> cluster =
      config::ClusterConfig::Parse(cluster_text, cluster_filename);
  if (!cluster.ok()) return cluster.status();
  config::TextProto<MomFabricGroup> file;
  if (absl::Status s = config::ParseTextProtoInto(text, filename, &file.message, &file.source);
      !s.ok()) {
    return s;
  }
  return Build(file, *cluster);
}

}  // namespace dctk::spaxos
