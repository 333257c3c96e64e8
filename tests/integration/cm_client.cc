#include "tests/integration/cm_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/config/cluster_config.h"
#include "farm/cm/config_state.h"

namespace dctk::integration {

namespace cm = farm::cm;

absl::StatusOr<mom::GroupConfig> CmMomGroup(const config::ClusterConfig& cluster,
                                            const config::ClusterConfig::Group& group,
                                            absl::string_view path, absl::string_view multicast) {
  const config::ClusterConfig::Multicast* m = cluster.FindMulticastGroup(multicast);
  if (m == nullptr) {
    return absl::NotFoundError(absl::StrCat(path, ": no multicast group named '", multicast, "'"));
  }
  return mom::GroupConfig{.group_id = 1,
                          .group_address = m->address,
                          .members = group.addresses,
                          .delivery = mom::Delivery::kIpMulticast,
                          // The sender leaves the group_seq slot that the
                          // network (Bastion, the MOM switch) stamps.
                          .design = mom::Design::kSerialized};
}

absl::StatusOr<CmClientOptions> CmClientOptionsFromClusterFile(absl::string_view path,
                                                               absl::string_view group,
                                                               absl::string_view multicast) {
  absl::StatusOr<config::ClusterConfig> cluster = config::ClusterConfig::Load(path);
  if (!cluster.ok()) return cluster.status();
  const config::ClusterConfig::Group* g = cluster->FindGroup(group);
  if (g == nullptr) {
    return absl::NotFoundError(absl::StrCat(path, ": no replica group named '", group, "'"));
  }
  if (g->replication != config::ReplicaGroup::CONSENSUS) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": replica group '", group, "' is not a CONSENSUS group"));
  }
  CmClientOptions o;
  o.replicas = g->addresses;
  o.resend_timeout = cluster->request_timeout();
  if (!multicast.empty()) {
    absl::StatusOr<mom::GroupConfig> m = CmMomGroup(*cluster, *g, path, multicast);
    if (!m.ok()) return m.status();
    o.mom = *std::move(m);
  }
  return o;
}

absl::StatusOr<std::unique_ptr<CmClient>> CmClient::Create(CmClientOptions options) {
  if (options.replicas.empty()) return absl::InvalidArgumentError("CmClient: no CM replicas");
  spaxos::ThreadedClientOptions t;
  t.client.replicas = options.replicas;
  t.client.resend_timeout = options.resend_timeout;
  t.client.mom = options.mom;
  t.bind = options.bind;
  t.concurrency = options.concurrency;
  absl::StatusOr<std::unique_ptr<spaxos::ThreadedClient>> client =
      spaxos::ThreadedClient::Create(std::move(t));
  if (!client.ok()) return client.status();
  return std::unique_ptr<CmClient>(new CmClient(std::move(options), std::move(*client)));
}

int64_t CmClient::Now() const {
  return options_.now_ms ? options_.now_ms() : absl::ToUnixMillis(absl::Now());
}

absl::StatusOr<cm::Result> CmClient::Submit(const cm::Command& command) {
  absl::StatusOr<std::string> reply =
      client_->CallAndWait(command.SerializeAsString(), options_.call_timeout);
  if (!reply.ok()) return reply.status();
  cm::Result result;
  if (!result.ParseFromString(*reply)) {
    return absl::DataLossError("CmClient: malformed Result from the CM replicas");
  }
  return result;
}

absl::StatusOr<cm::Result> CmClient::Execute(const cm::Command& command) {
  absl::StatusOr<cm::Result> result = Submit(command);
  if (!result.ok()) return result.status();
  if (result->code() != 0) {
    return absl::Status(static_cast<absl::StatusCode>(result->code()), result->message());
  }
  return result;
}

absl::Status CmClient::Initialize(uint32_t replicas, uint64_t region_size, int64_t lease_ms) {
  absl::StatusOr<cm::Result> r = Execute(cm::InitCommand(replicas, region_size, lease_ms));
  if (r.ok()) return absl::OkStatus();
  if (!absl::IsAlreadyExists(r.status())) return r.status();
  absl::StatusOr<cm::Configuration> c = GetConfiguration();
  if (!c.ok()) return c.status();
  if (c->replicas() != replicas || c->region_size() != region_size || c->lease_ms() != lease_ms) {
    return absl::FailedPreconditionError(absl::StrCat(
        "CM already initialised with replicas=", c->replicas(), " region_size=", c->region_size(),
        " lease_ms=", c->lease_ms(), ", not replicas=", replicas, " region_size=", region_size,
        " lease_ms=", lease_ms));
  }
  return absl::OkStatus();
}

absl::StatusOr<cm::Configuration> CmClient::Join(uint32_t machine, const std::string& endpoint,
                                                 const std::string& control) {
  absl::StatusOr<cm::Result> r = Execute(cm::JoinCommand(machine, endpoint, control, Now()));
  if (!r.ok()) return r.status();
  return std::move(*r->mutable_config());
}

absl::StatusOr<cm::Configuration> CmClient::Renew(uint32_t machine) {
  absl::StatusOr<cm::Result> r = Execute(cm::RenewCommand(machine, Now()));
  if (!r.ok()) return r.status();
  return std::move(*r->mutable_config());
}

absl::StatusOr<std::vector<uint32_t>> CmClient::Tick() {
  absl::StatusOr<cm::Result> r = Execute(cm::TickCommand(Now()));
  if (!r.ok()) return r.status();
  return std::vector<uint32_t>(r->removed().begin(), r->removed().end());
}

absl::StatusOr<uint32_t> CmClient::CreateRegion() {
  absl::StatusOr<cm::Result> r = Execute(cm::CreateRegionCommand());
  if (!r.ok()) return r.status();
  return r->region();
}

absl::StatusOr<cm::Configuration> CmClient::SetReplicaKey(uint32_t region, uint32_t machine,
                                                          uint32_t key) {
  absl::StatusOr<cm::Result> r = Execute(cm::SetReplicaKeyCommand(region, machine, key));
  if (!r.ok()) return r.status();
  return std::move(*r->mutable_config());
}

absl::StatusOr<cm::Configuration> CmClient::RemoveMachine(uint32_t machine) {
  absl::StatusOr<cm::Result> r = Execute(cm::RemoveMachineCommand(machine));
  if (!r.ok()) return r.status();
  return std::move(*r->mutable_config());
}

absl::StatusOr<cm::Configuration> CmClient::GetConfiguration() {
  absl::StatusOr<cm::Result> r = Execute(cm::GetCommand());
  if (!r.ok()) return r.status();
  return std::move(*r->mutable_config());
}

}  // namespace dctk::integration
