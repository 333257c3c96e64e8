// The MOM switch's gRPC control service (controller/switch_service.proto).
//
// The data plane runs on one thread and owns its SwitchCore; gRPC handlers run
// on gRPC's threads. DataPlaneMailbox hands work across: a handler posts a
// function and waits until the data-plane thread has run it between two
// bursts (Drain), so a new ForwardingTable is swapped in at a burst boundary
// with no lock on the per-packet path, and Configure returns only once the
// switch forwards with the new table. Drain costs one relaxed atomic load when
// nothing is pending.
//
// Example (mom_switch_main.cc):
//   DataPlaneMailbox mailbox;
//   ControlService service("leaf0", sw->num_ports(), &mailbox);
//   service.set_port_reader([&](auto* ports) { ... sw->LinkUp(p) ... });
//   int port;
//   auto server = StartControlServer("127.0.0.1:0", &service, &port);
//   while (!stop) { sw->Poll(); mailbox.Drain(sw->core()); }
//   mailbox.Close();       // pending and later calls fail with UNAVAILABLE
//   (*server)->Shutdown();
#ifndef DCTK_MOM_SWITCH_CONTROL_SERVICE_H_
#define DCTK_MOM_SWITCH_CONTROL_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/server.h"
#include "mom/controller/switch_service.grpc.pb.h"
#include "mom/switch/switch_core.h"

namespace dctk::mom {

class DataPlaneMailbox {
 public:
  // Control threads: runs `fn` on the data-plane thread and waits for it.
  // UNAVAILABLE if the mailbox is (or gets) closed before `fn` ran.
  absl::Status Run(std::function<void(SwitchCore&)> fn);

  // Data-plane thread, between bursts: runs everything posted so far.
  void Drain(SwitchCore& core) {
    if (pending_.load(std::memory_order_acquire)) DrainPending(core);
  }

  // Data-plane thread, when it stops: no function will run any more.
  void Close();

 private:
  struct Job {
    std::function<void(SwitchCore&)> fn;
    bool done = false;
  };
  void DrainPending(SwitchCore& core);

  std::atomic<bool> pending_{false};
  absl::Mutex mu_;
  std::vector<std::shared_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

class ControlService final : public MomSwitch::Service {
 public:
  // Fills GetStats' `ports` (link state and counters of every port); runs on
  // the data-plane thread, between bursts.
  using PortReader = std::function<void(google::protobuf::RepeatedPtrField<PortStatus>*)>;

  ControlService(std::string switch_name, int num_ports, DataPlaneMailbox* mailbox)
      : switch_name_(std::move(switch_name)), num_ports_(num_ports), mailbox_(mailbox) {}

  // Sends the probes a StatsRequest asks for (probe_ports, host_probes; their
  // ports checked against the switch's); runs on the data-plane thread right
  // after the counters were read.
  using Prober = std::function<void(const StatsRequest&)>;

  // Without a reader GetStats reports no ports. Set before serving.
  void set_port_reader(PortReader reader) { port_reader_ = std::move(reader); }
  // Without a prober GetStats sends no probes. Set before serving.
  void set_prober(Prober prober) { prober_ = std::move(prober); }

  grpc::Status Configure(grpc::ServerContext* context, const SwitchConfig* config,
                         ConfigureReply* reply) override;
  grpc::Status GetStats(grpc::ServerContext* context, const StatsRequest* request,
                        SwitchStats* stats) override;

 private:
  const std::string switch_name_;
  const int num_ports_;
  DataPlaneMailbox* mailbox_;
  PortReader port_reader_;
  Prober prober_;
  uint64_t config_version_ = 0;  // touched on the data-plane thread only
};

// Serves `service` on `address` ("127.0.0.1:0" picks a port, written to *port).
absl::StatusOr<std::unique_ptr<grpc::Server>> StartControlServer(const std::string& address,
                                                                  ControlService* service,
                                                                  int* port);

}  // namespace dctk::mom

#endif  // DCTK_MOM_SWITCH_CONTROL_SERVICE_H_
