#include "bastion/manager/service.h"

#include "absl/strings/str_cat.h"

namespace dctk::bastion {
namespace {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

void Fill(const StateDiff& diff, api::PolicyChange* out) {
  out->set_added(diff.added);
  out->set_changed(diff.changed);
  out->set_removed(diff.removed);
  for (const std::string& line : diff.lines) out->add_lines(line);
}

}  // namespace

std::string ProtocolName(uint16_t l3_proto, uint8_t proto) {
  if (l3_proto == 0x0806) return "arp";
  if (l3_proto == 0x86dd) return "ipv6";
  switch (proto) {
    case kTcp: return "tcp";
    case kUdp: return "udp";
    case kIcmp: return "icmp";
  }
  return absl::StrCat("proto ", proto);
}

grpc::Status BastionService::ListContainers(grpc::ServerContext*, const api::ListContainersRequest*,
                                            api::ListContainersResponse* out) {
  for (const ContainerInfo& c : manager_->Containers()) {
    api::Container* p = out->add_containers();
    p->set_id(c.id);
    p->set_name(c.name);
    for (const auto& [k, v] : c.labels) (*p->mutable_labels())[k] = v;
    p->set_ip(Ipv4ToString(c.ip));
    p->set_mac(c.mac.ToString());
    p->set_host_ifindex(c.host_ifindex);
    p->set_runtime_id(c.runtime_id);
    p->set_network_mode(c.network_mode);
  }
  return grpc::Status::OK;
}

grpc::Status BastionService::GetPolicy(grpc::ServerContext*, const api::GetPolicyRequest*,
                                       api::GetPolicyResponse* out) {
  out->set_text(manager_->PolicyText());
  out->set_file(manager_->PolicyFile());
  DatapathState running = manager_->Running();
  out->set_dependencies(running.dependencies.size());
  out->set_rules(running.rules.size());
  return grpc::Status::OK;
}

grpc::Status BastionService::ValidatePolicy(grpc::ServerContext* context,
                                            const api::PolicyRequest* in, api::PolicyChange* out) {
  return DiffPolicy(context, in, out);  // a diff is a full parse + compile that changes nothing
}

grpc::Status BastionService::DiffPolicy(grpc::ServerContext*, const api::PolicyRequest* in,
                                        api::PolicyChange* out) {
  absl::StatusOr<Policy> policy = ParsePolicy(in->text(), in->file());
  if (!policy.ok()) return ToGrpc(policy.status());
  absl::StatusOr<StateDiff> diff = manager_->DiffPolicy(*policy);
  if (!diff.ok()) return ToGrpc(diff.status());
  Fill(*diff, out);
  return grpc::Status::OK;
}

grpc::Status BastionService::ApplyPolicy(grpc::ServerContext*, const api::PolicyRequest* in,
                                         api::PolicyChange* out) {
  absl::StatusOr<Policy> policy = ParsePolicy(in->text(), in->file());
  if (!policy.ok()) return ToGrpc(policy.status());
  absl::StatusOr<StateDiff> diff = manager_->DiffPolicy(*policy);
  if (!diff.ok()) return ToGrpc(diff.status());
  if (absl::Status s = manager_->SetPolicy(*policy, in->text()); !s.ok()) return ToGrpc(s);
  Fill(*diff, out);
  return grpc::Status::OK;
}

grpc::Status BastionService::StreamEvents(grpc::ServerContext* context,
                                          const api::StreamEventsRequest*,
                                          grpc::ServerWriter<api::VerdictEvent>* writer) {
  std::unique_ptr<EventSubscription> sub = manager_->Subscribe();
  // Tell the client the subscription is live (headers), so it can start traffic.
  writer->SendInitialMetadata();
  while (!context->IsCancelled()) {
    for (const NamedEvent& n : sub->Next(absl::Milliseconds(200))) {
      api::VerdictEvent e;
      e.set_timestamp_ns(n.event.timestamp_ns);
      e.set_verdict(std::string(VerdictName(n.event.reason)));
      e.set_audit(n.event.audit);
      e.set_to_container(n.event.to_container);
      e.set_container(n.container);
      e.set_src(n.src);
      e.set_dst(n.dst);
      e.set_protocol(ProtocolName(n.event.l3_proto, n.event.proto));
      e.set_sport(n.event.sport);
      e.set_dport(n.event.dport);
      e.set_ifindex(n.event.ifindex);
      if (!writer->Write(e)) return grpc::Status::OK;  // client went away
    }
  }
  return grpc::Status::OK;
}

grpc::Status BastionService::GetCounters(grpc::ServerContext*, const api::GetCountersRequest*,
                                         api::GetCountersResponse* out) {
  absl::StatusOr<VerdictCounters> counters = datapath_->ReadCounters();
  if (!counters.ok()) return ToGrpc(counters.status());
  for (uint32_t code = 0; code < counters->size(); ++code) {
    absl::string_view name = VerdictName(code);
    if (name != "unknown") (*out->mutable_verdicts())[std::string(name)] = (*counters)[code];
  }
  for (const UncoveredFlow& f : manager_->Uncovered()) {
    api::UncoveredFlow* u = out->add_uncovered();
    u->set_src(f.src);
    u->set_dst(f.dst);
    u->set_protocol(ProtocolName(0x0800, f.proto));
    u->set_dport(f.dport);
    u->set_verdict(std::string(VerdictName(f.reason)));
    u->set_count(f.count);
  }
  return grpc::Status::OK;
}

}  // namespace dctk::bastion
