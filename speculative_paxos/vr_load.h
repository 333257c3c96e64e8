// Test helpers for the leader-based baselines on SimTransport: closed-loop
// KV clients in leader mode recording their history (for the
// linearizability checker), and replica addresses.
//
// Example:
//   Load load(&net, Replicas(3), /*clients=*/4, /*ops=*/100, /*keys=*/16);
//   ASSERT_TRUE(net.RunUntil([&] { return load.Done(); }, absl::Seconds(5)));
//   EXPECT_TRUE(CheckLinearizable(load.history()).ok());
#ifndef DCTK_SPECULATIVE_PAXOS_VR_LOAD_H_
#define DCTK_SPECULATIVE_PAXOS_VR_LOAD_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/transport/sim_transport.h"
#include "gtest/gtest.h"
#include "speculative_paxos/client.h"
#include "speculative_paxos/client_endpoint.h"
#include "speculative_paxos/kv_app.h"
#include "speculative_paxos/lincheck.h"

namespace dctk::spaxos::vr_test {

using transport::Address;
using transport::SimTransport;

// Closed-loop clients issuing PUT/GET/CAS on a few keys; records the history.
class Load {
 public:
  // `shared`: the clients share one ClientEndpoint (requests batched).
  Load(SimTransport* net, const std::vector<Address>& servers, int clients, int ops,
       int keys = 4, bool shared = false)
      : net_(net), keys_(keys) {
    ClientConfig cc{.replicas = servers, .mode = ClientConfig::Mode::kLeader};
    if (shared) {
      endpoint_ = std::make_unique<ClientEndpoint>(net, Address(0x0b000001, 1));
      EXPECT_TRUE(endpoint_->Start().ok());
    }
    for (int j = 0; j < clients; ++j) {
      clients_.push_back(shared ? std::make_unique<Client>(endpoint_.get(), cc, 500 + j)
                                : std::make_unique<Client>(net, cc, 500 + j,
                                                           Address(0x0b000001 + j, 1)));
      EXPECT_TRUE(clients_.back()->Start().ok());
      remaining_.push_back(ops);
    }
    for (int j = 0; j < clients; ++j) Next(j);
  }
  bool Done() const {
    for (const auto& c : clients_) {
      if (c->busy()) return false;
    }
    return true;
  }
  const KvHistory& history() const { return history_; }
  const ClientEndpoint* endpoint() const { return endpoint_.get(); }

 private:
  void Next(int j) {
    if (remaining_[j]-- <= 0) return;
    const std::string key = absl::StrCat("k", net_->RandomBelow(keys_));
    const std::string value = absl::StrCat("v", ++counter_);
    std::string op = net_->RandomBelow(3) == 0   ? KvApp::Get(key)
                     : net_->RandomBelow(2) == 0 ? KvApp::Put(key, value)
                                                 : KvApp::Cas(key, absl::StrCat("v", counter_ - 1), value);
    const size_t at = history_.size();
    KvEvent e;
    e.client = j;
    e.op.ParseFromString(op);
    e.invoke = net_->Now();
    history_.push_back(e);
    clients_[j]->Invoke(op, [this, j, at](const std::string& result) {
      history_[at].response = net_->Now();
      history_[at].result = KvApp::ParseResult(result);
      Next(j);
    });
  }

  SimTransport* net_;
  const int keys_;
  std::unique_ptr<ClientEndpoint> endpoint_;  // outlives clients_
  std::vector<std::unique_ptr<Client>> clients_;
  std::vector<int> remaining_;
  KvHistory history_;
  uint64_t counter_ = 0;
};

inline std::vector<Address> Replicas(int n) {
  std::vector<Address> a;
  for (int i = 0; i < n; ++i) a.push_back(Address(0x0a000001 + i, 7000));
  return a;
}

}  // namespace dctk::spaxos::vr_test

#endif  // DCTK_SPECULATIVE_PAXOS_VR_LOAD_H_
