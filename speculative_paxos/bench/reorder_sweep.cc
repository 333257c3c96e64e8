// reorder_sweep: throughput of Speculative Paxos vs VR as a function of the
// rate at which the network misorders requests, on SimTransport (virtual
// time, 50 us one-way latency, no CPU cost model), the shape of the paper's
// reorder figure. Each request copy is, with probability `rate`, held back by
// up to 50 us so later requests overtake it.
//
//   bazel run //speculative_paxos/bench:reorder_sweep -- --clients=16 --seconds=1
#include <iostream>
#include <memory>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"
#include "common/transport/sim_transport.h"
#include "speculative_paxos/client.h"
#include "speculative_paxos/replica.h"
#include "speculative_paxos/vr_replica.h"

ABSL_FLAG(int, clients, 16, "closed-loop clients");
ABSL_FLAG(double, seconds, 1.0, "virtual seconds per point");

namespace dctk::spaxos {
namespace {

using transport::Address;
using transport::SimTransport;

struct Point {
  double ops_per_sec;
  double slow_fraction;
  double asked_fraction;  // requests whose client asked the leader
  uint64_t reconciliations;
  uint64_t order_repairs;
};

Point Run(bool speculative, double rate, int nclients, absl::Duration length) {
  SimTransport net(42);
  std::vector<Address> addrs;
  for (int i = 0; i < 3; ++i) addrs.push_back(Address(0x0a000001 + i, 7000));
  std::vector<std::unique_ptr<NullApp>> apps;
  std::vector<std::unique_ptr<Replica>> spec;
  std::vector<std::unique_ptr<VrReplica>> vr;
  for (int i = 0; i < 3; ++i) {
    apps.push_back(std::make_unique<NullApp>());
    if (speculative) {
      spec.push_back(std::make_unique<Replica>(&net, ReplicaConfig{.replicas = addrs}, i,
                                               apps.back().get()));
      CHECK(spec.back()->Start().ok());
    } else {
      vr.push_back(std::make_unique<VrReplica>(&net, VrConfig{.replicas = addrs}, i,
                                               apps.back().get()));
      CHECK(vr.back()->Start().ok());
    }
  }
  net.AddFilter(1, net.Reorder(rate, absl::Microseconds(50),
                               {.type_id = transport::TypeId<Request>()}));
  ClientConfig cc{.replicas = addrs,
                  .mode = speculative ? ClientConfig::Mode::kSpeculative
                                      : ClientConfig::Mode::kLeader};
  std::vector<std::unique_ptr<Client>> clients;
  uint64_t done = 0;
  const absl::Time stop = net.Now() + length;
  std::function<void(int)> issue = [&](int j) {
    if (net.Now() >= stop) return;
    clients[j]->Invoke("", [&, j](const std::string&) {
      ++done;
      issue(j);
    });
  };
  for (int j = 0; j < nclients; ++j) {
    clients.push_back(std::make_unique<Client>(&net, cc, 100 + j, Address(0x0b000001 + j, 1)));
    CHECK(clients.back()->Start().ok());
  }
  for (int j = 0; j < nclients; ++j) issue(j);
  net.RunFor(length);
  uint64_t slow = 0, asked = 0, all = 0, recon = 0, repairs = 0;
  for (const auto& c : clients) {
    slow += c->stats().slow_path;
    asked += c->stats().reconcile_requests;
    all += c->stats().completed;
  }
  if (speculative) {
    recon = spec[0]->stats().reconciliations;
    for (const auto& r : spec) repairs += r->stats().order_repairs;
  }
  const double n = speculative && all > 0 ? static_cast<double>(all) : 0.0;
  return {done / absl::ToDoubleSeconds(length), n > 0 ? slow / n : 0.0,
          n > 0 ? asked / n : 0.0, recon, repairs};
}

}  // namespace
}  // namespace dctk::spaxos

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int clients = absl::GetFlag(FLAGS_clients);
  const absl::Duration length = absl::Seconds(absl::GetFlag(FLAGS_seconds));
  const dctk::spaxos::Point vr = dctk::spaxos::Run(false, 0, clients, length);
  std::cout << absl::StrFormat("%-10s %14s %14s %10s %10s %16s %14s\n", "reorder %",
                               "spaxos ops/s", "vr ops/s", "slow path", "asked", "reconciliations",
                               "order repairs");
  for (double rate : {0.0, 0.00001, 0.0001, 0.001, 0.01, 0.05}) {
    const dctk::spaxos::Point sp = dctk::spaxos::Run(true, rate, clients, length);
    std::cout << absl::StrFormat("%-10.3f %14.0f %14.0f %9.2f%% %9.2f%% %16d %14d\n",
                                 rate * 100, sp.ops_per_sec, vr.ops_per_sec,
                                 sp.slow_fraction * 100, sp.asked_fraction * 100,
                                 sp.reconciliations, sp.order_repairs);
  }
  return 0;
}
