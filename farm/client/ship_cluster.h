// ShipCluster (tests and benchmarks): a tx::LocalCluster whose machines run
// ShipServers, plus client machines (fabric ids 100, 101, ...) without
// regions, each with its own coordinator (tx::TxClient, rings to every
// machine's participant and ship workers) and a Shipper. So one process
// compares a transaction the client coordinates with the same transaction
// shipped to the primary of its objects, and kills the executing machine.
//
// Example:
//   auto c = ShipCluster<ShmFabric>::Create({.cluster = {.machines = 3}, .clients = 2}, procedures, MakeShm);
//   absl::StatusOr<std::string> r = (*c)->shipper(0).Ship(addr, kIncrement, args);
//   (*c)->Kill(2);
//   (*c)->Recover({2});
#ifndef DCTK_FARM_CLIENT_SHIP_CLUSTER_H_
#define DCTK_FARM_CLIENT_SHIP_CLUSTER_H_

#include <atomic>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "farm/client/ship.h"
#include "farm/client/ship_server.h"
#include "farm/client/shipper.h"
#include "farm/fabric/fabric.h"
#include "farm/tx/local_cluster.h"
#include "farm/tx/machine.h"
#include "farm/tx/transaction.h"

namespace dctk::farm::client {

struct ShipClusterOptions {
  tx::LocalClusterOptions cluster;
  int clients = 1;  // client machines 100, 101, ...
  ShipServerOptions ship;
  ShipperOptions shipper;
};

template <typename F>
  requires fabric::Fabric<F>
class ShipCluster {
 public:
  using FabricFactory = typename tx::LocalCluster<F>::FabricFactory;

  static absl::StatusOr<std::unique_ptr<ShipCluster>> Create(ShipClusterOptions o,
                                                             std::shared_ptr<const ProcedureRegistry<F>> procedures,
                                                             FabricFactory make) {
    std::unique_ptr<ShipCluster> c(new ShipCluster(o));
    auto cluster = tx::LocalCluster<F>::Create(o.cluster, make);
    if (!cluster.ok()) return cluster.status();
    c->cluster_ = std::move(*cluster);
    c->config_.store(c->cluster_->config());
    c->members_ = c->Members();
    tx::LocalCluster<F>& lc = *c->cluster_;
    for (fabric::MachineId m : lc.live()) {
      auto s = ShipServer<F>::Create(lc.fabric(m), &lc.table(), &lc.machine(m).participant(), procedures, o.ship);
      if (!s.ok()) return s.status();
      for (int w = 0; w < (*s)->workers(); ++w) {
        absl::Status st = (*s)->WithWorker(w, [&](msg::RpcEndpoint<F>&, tx::TxClient<F>& coordinator) {
          for (fabric::MachineId p : lc.live()) {
            if (p == m) continue;  // the local participant: function calls
            absl::Status wired = lc.machine(p).WithEndpoint([&](msg::RpcEndpoint<F>& ep) {
              return tx::WireEndpoints(coordinator.endpoint(), lc.fabric(m), ep, lc.fabric(p), o.cluster.ring_size);
            });
            if (!wired.ok()) return wired;
          }
          return absl::OkStatus();
        });
        if (!st.ok()) return st;
      }
      c->servers_[m] = std::move(*s);
    }
    for (int i = 0; i < o.clients; ++i) {
      absl::Status s = c->AddClient(static_cast<fabric::MachineId>(100 + i), make);
      if (!s.ok()) return s;
    }
    for (auto& [m, s] : c->servers_) s->Start();
    return c;
  }

  ~ShipCluster() {
    for (auto& [m, s] : servers_) s->Stop();
    clients_.clear();
    servers_.clear();
    cluster_.reset();
    client_fabrics_.clear();
  }

  tx::LocalCluster<F>& cluster() { return *cluster_; }
  tx::TxClient<F>& client(int i) { return *clients_.at(i).coordinator; }
  Shipper<F>& shipper(int i) { return *clients_.at(i).shipper; }
  ShipServer<F>& server(fabric::MachineId m) { return *servers_.at(m); }
  fabric::MachineId PrimaryOf(GlobalAddress a) const { return cluster_->table().Lookup(a.region())->primary().machine; }

  // Fail-stop crash of machine m (its ship server first: its coordinators use m's fabric).
  void Kill(fabric::MachineId m) {
    if (auto it = servers_.find(m); it != servers_.end()) {
      it->second->Stop();
      servers_.erase(it);
    }
    cluster_->Kill(m);
  }
  absl::StatusOr<tx::RecoveryReport> Recover(const std::vector<fabric::MachineId>& failed) {
    absl::StatusOr<tx::RecoveryReport> r = cluster_->Recover(failed);
    config_.store(cluster_->config());
    absl::MutexLock l(&mu_);
    members_ = Members();
    return r;
  }

 private:
  struct Client {
    std::unique_ptr<tx::TxClient<F>> coordinator;
    std::unique_ptr<Shipper<F>> shipper;
  };

  explicit ShipCluster(ShipClusterOptions o) : o_(std::move(o)) {}

  // The CM's storage machines (the CM is not thread-safe: read here, under
  // the test thread's Recover, and handed to shippers through members_).
  std::vector<fabric::MachineId> Members() const {
    std::vector<fabric::MachineId> out;
    for (const cm::Machine& m : cluster_->cm().config().machines()) {
      if (!m.client()) out.push_back(m.id());
    }
    return out;
  }

  absl::Status AddClient(fabric::MachineId id, const FabricFactory& make) {
    tx::LocalCluster<F>& lc = *cluster_;
    absl::StatusOr<std::unique_ptr<F>> f = make(id);
    if (!f.ok()) return f.status();
    F& fabric = **f;
    client_fabrics_.push_back(std::move(*f));
    auto coordinator = tx::TxClient<F>::Create(fabric, 0, &lc.table(), &config_, nullptr, o_.cluster.client);
    if (!coordinator.ok()) return coordinator.status();
    for (fabric::MachineId m : lc.live()) {
      absl::Status s = fabric.Connect(m, lc.fabric(m).endpoint());
      if (s.ok()) s = lc.fabric(m).Connect(id, fabric.endpoint());
      if (s.ok()) {
        s = lc.machine(m).WithEndpoint([&](msg::RpcEndpoint<F>& ep) {
          return tx::WireEndpoints((*coordinator)->endpoint(), fabric, ep, lc.fabric(m), o_.cluster.ring_size);
        });
      }
      for (int w = 0; s.ok() && w < servers_.at(m)->workers(); ++w) {
        s = servers_.at(m)->WithWorker(w, [&](msg::RpcEndpoint<F>& ship, tx::TxClient<F>&) {
          return tx::WireEndpoints((*coordinator)->endpoint(), fabric, ship, lc.fabric(m), o_.cluster.ring_size);
        });
      }
      if (!s.ok()) return s;
    }
    ShipperHooks hooks;
    hooks.refresh = [this] {
      config_.store(cluster_->config());
      return absl::OkStatus();
    };
    hooks.machines = [this] {
      absl::MutexLock l(&mu_);
      return members_;
    };
    hooks.workers = [this](fabric::MachineId) { return o_.ship.workers; };
    Client c;
    c.shipper = std::make_unique<Shipper<F>>(**coordinator, &lc.table(), &config_, std::move(hooks), o_.shipper);
    c.coordinator = std::move(*coordinator);
    clients_.push_back(std::move(c));
    return absl::OkStatus();
  }

  const ShipClusterOptions o_;
  std::vector<std::unique_ptr<F>> client_fabrics_;  // destroyed last
  std::unique_ptr<tx::LocalCluster<F>> cluster_;
  std::atomic<uint64_t> config_{0};
  std::map<fabric::MachineId, std::unique_ptr<ShipServer<F>>> servers_;
  std::vector<Client> clients_;
  absl::Mutex mu_;
  std::vector<fabric::MachineId> members_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dctk::farm::client

#endif  // DCTK_FARM_CLIENT_SHIP_CLUSTER_H_
