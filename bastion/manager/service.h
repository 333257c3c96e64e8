// BastionService: the gRPC face of a Manager (bastion.proto), used by bastionctl.
//
// Policy RPCs parse the text they are given (errors carry file:line:column), compile it
// against the current containers and diff or apply it through the Manager (all or
// nothing). StreamEvents sends every verdict event, named, until the client goes away.
//
// Example:
//   BastionService service(&manager, datapath.get());
//   grpc::ServerBuilder b;
//   b.AddListeningPort("unix:/run/bastion/bastiond.sock", grpc::InsecureServerCredentials());
//   b.RegisterService(&service);
#ifndef DCTK_BASTION_MANAGER_SERVICE_H_
#define DCTK_BASTION_MANAGER_SERVICE_H_

#include "bastion/datapath/datapath.h"
#include "bastion/manager/bastion.grpc.pb.h"
#include "bastion/manager/manager.h"

namespace dctk::bastion {

class BastionService final : public api::Bastion::Service {
 public:
  BastionService(Manager* manager, Datapath* datapath) : manager_(manager), datapath_(datapath) {}

  grpc::Status ListContainers(grpc::ServerContext*, const api::ListContainersRequest*,
                              api::ListContainersResponse* out) override;
  grpc::Status GetPolicy(grpc::ServerContext*, const api::GetPolicyRequest*,
                         api::GetPolicyResponse* out) override;
  grpc::Status ValidatePolicy(grpc::ServerContext*, const api::PolicyRequest* in,
                              api::PolicyChange* out) override;
  grpc::Status DiffPolicy(grpc::ServerContext*, const api::PolicyRequest* in,
                          api::PolicyChange* out) override;
  grpc::Status ApplyPolicy(grpc::ServerContext*, const api::PolicyRequest* in,
                           api::PolicyChange* out) override;
  grpc::Status StreamEvents(grpc::ServerContext* context, const api::StreamEventsRequest*,
                            grpc::ServerWriter<api::VerdictEvent>* writer) override;
  grpc::Status GetCounters(grpc::ServerContext*, const api::GetCountersRequest*,
                           api::GetCountersResponse* out) override;

 private:
  Manager* const manager_;
  Datapath* const datapath_;
};

// "tcp", "udp", "icmp", "arp", "ipv6", "proto 47".
std::string ProtocolName(uint16_t l3_proto, uint8_t proto);

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_MANAGER_SERVICE_H_
