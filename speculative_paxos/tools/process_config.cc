#include "speculative_paxos/tools/process_config.h"

#include "absl/strings/str_cat.h"
#include "common/config/cluster_config.h"

namespace dctk::spaxos {

namespace {

constexpr Protocol kProtocols[] = {Protocol::kSpeculativePaxos, Protocol::kVr, Protocol::kFastPaxos,
                                   Protocol::kUnreplicated};

}  // namespace

const char* ProtocolName(Protocol p) {
  switch (p) {
    case Protocol::kSpeculativePaxos:
      return "spaxos";
    case Protocol::kVr:
      return "vr";
    case Protocol::kFastPaxos:
      return "fastpaxos";
    case Protocol::kUnreplicated:
      return "unreplicated";
  }
  return "?";
}

absl::StatusOr<Protocol> ParseProtocol(absl::string_view name) {
  for (Protocol p : kProtocols) {
    if (name == ProtocolName(p)) return p;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--protocol: '", name, "' is not one of spaxos, vr, fastpaxos, unreplicated"));
}

absl::StatusOr<ProcessConfig> LoadProcessConfig(absl::string_view path,
                                                absl::string_view group,
                                                absl::string_view multicast,
                                                absl::string_view protocol) {
  absl::StatusOr<Protocol> p = ParseProtocol(protocol);
  if (!p.ok()) return p.status();
  absl::StatusOr<config::ClusterConfig> cluster = config::ClusterConfig::Load(path);
  if (!cluster.ok()) return cluster.status();
  const config::ClusterConfig::Group* g = cluster->FindGroup(group);
  if (g == nullptr) {
    return absl::NotFoundError(absl::StrCat(path, ": no replica group named '", group, "'"));
  }
  ProcessConfig pc;
  pc.protocol = *p;
  pc.replicas = g->addresses;
  if (*p == Protocol::kUnreplicated) pc.replicas.resize(1);
  if (!multicast.empty()) {
    const config::ClusterConfig::Multicast* m = cluster->FindMulticastGroup(multicast);
    if (m == nullptr) {
      return absl::NotFoundError(
          absl::StrCat(path, ": no multicast group named '", multicast, "'"));
    }
    pc.multicast = m->address;
  }
  pc.heartbeat = cluster->heartbeat_interval();
  pc.view_change_timeout = cluster->view_change_timeout();
  pc.request_timeout = cluster->request_timeout();
  return pc;
}

mom::GroupConfig MomGroup(const ProcessConfig& pc) {
  return mom::GroupConfig{.group_id = 1,
                          .group_address = pc.multicast.value_or(transport::Address()),
                          .members = pc.replicas,
                          .delivery = mom::Delivery::kIpMulticast};
}

}  // namespace dctk::spaxos
