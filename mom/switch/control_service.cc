#include "mom/switch/control_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "mom/switch/drop_reason.h"
#include "mom/switch/forwarding_table.h"

namespace dctk::mom {
namespace {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace

absl::Status DataPlaneMailbox::Run(std::function<void(SwitchCore&)> fn) {
  auto job = std::make_shared<Job>();
  job->fn = std::move(fn);
  absl::MutexLock lock(&mu_);
  if (closed_) return absl::UnavailableError("MOM switch data plane has stopped");
  jobs_.push_back(job);
  pending_.store(true, std::memory_order_release);
  std::pair<const Job*, const bool*> wait(job.get(), &closed_);
  mu_.Await(absl::Condition(
      +[](std::pair<const Job*, const bool*>* w) { return w->first->done || *w->second; },
      &wait));
  if (!job->done) return absl::UnavailableError("MOM switch data plane stopped before the call ran");
  return absl::OkStatus();
}

void DataPlaneMailbox::DrainPending(SwitchCore& core) {
  absl::MutexLock lock(&mu_);
  if (closed_) return;
  for (const std::shared_ptr<Job>& job : jobs_) {
    job->fn(core);
    job->done = true;
  }
  jobs_.clear();
  pending_.store(false, std::memory_order_release);
}

void DataPlaneMailbox::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  jobs_.clear();
}

grpc::Status ControlService::Configure(grpc::ServerContext*, const SwitchConfig* config,
                                       ConfigureReply* reply) {
  absl::StatusOr<ForwardingTable> table = ForwardingTable::Create(*config, num_ports_);
  if (!table.ok()) {
    return ToGrpc(absl::InvalidArgumentError(
        absl::StrCat("switch ", switch_name_, ": ", table.status().message())));
  }
  auto shared = std::make_shared<ForwardingTable>(*std::move(table));
  uint64_t version = 0;
  absl::Status s = mailbox_->Run([&, shared](SwitchCore& core) {
    core.SetTable(std::move(*shared));
    version = ++config_version_;
  });
  if (!s.ok()) return ToGrpc(s);
  reply->set_config_version(version);
  return grpc::Status::OK;
}

grpc::Status ControlService::GetStats(grpc::ServerContext*, const StatsRequest* request,
                                      SwitchStats* stats) {
  std::vector<uint32_t> ports(request->probe_ports().begin(), request->probe_ports().end());
  for (const HostProbe& h : request->host_probes()) ports.push_back(h.port());
  for (uint32_t p : ports) {
    if (p >= static_cast<uint32_t>(num_ports_)) {
      return ToGrpc(absl::InvalidArgumentError(
          absl::StrCat("switch ", switch_name_, ": probe port ", p, " of ", num_ports_, " ports")));
    }
  }
  SwitchStats snapshot;
  snapshot.set_switch_name(switch_name_);
  absl::Status s = mailbox_->Run([&](SwitchCore& core) {
    snapshot.set_config_version(config_version_);
    snapshot.set_forwarded(core.forwarded());
    for (int r = 0; r < kNumDropReasons; ++r) {
      (*snapshot.mutable_drops())[std::string(DropReasonName(static_cast<DropReason>(r)))] =
          core.drops()[r];
    }
    for (const auto& [group, seq] : core.group_seqs()) {
      GroupSequence* g = snapshot.add_group_sequences();
      g->set_group_id(group);
      g->set_last_stamped(seq);
    }
    if (port_reader_) port_reader_(snapshot.mutable_ports());
    if (prober_ && !ports.empty()) prober_(*request);
  });
  if (!s.ok()) return ToGrpc(s);
  *stats = std::move(snapshot);
  return grpc::Status::OK;
}

absl::StatusOr<std::unique_ptr<grpc::Server>> StartControlServer(const std::string& address,
                                                                  ControlService* service,
                                                                  int* port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), port);
  builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || *port == 0) {
    return absl::UnavailableError(
        absl::StrCat("MOM switch control: cannot listen on ", address));
  }
  return server;
}

}  // namespace dctk::mom
