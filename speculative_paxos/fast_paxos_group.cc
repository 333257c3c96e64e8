#include "speculative_paxos/fast_paxos_group.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/transport/framing.h"
#include "glog/logging.h"

namespace dctk::spaxos {

using transport::Address;

FastPaxosGroup::FastPaxosGroup(uint64_t seed, FastPaxosConfig c) : net(seed), config(std::move(c)) {
  config.replicas.clear();
  for (int i = 0; i < 3; ++i) config.replicas.push_back(Address(0x0a000001 + i, 7000));
  net.AddFilter(-1, [this](const Address& from, const Address&, const transport::Envelope& m,
                           absl::Duration*) {
    if (std::find(config.replicas.begin(), config.replicas.end(), from) !=
        config.replicas.end()) {
      largest_ = std::max(largest_, transport::kFrameHeaderSize + m.payload().size());
    }
    return true;
  });
  for (int i = 0; i < 3; ++i) {
    apps.push_back(std::make_unique<KvApp>());
    replicas.push_back(std::make_unique<FastPaxosReplica>(&net, config, i, apps.back().get()));
    CHECK(replicas.back()->Start().ok());
  }
}

void FastPaxosGroup::StartClients(int n, int ops, int keys, bool shared) {
  ClientConfig cc{.replicas = config.replicas};
  if (shared) {
    endpoint = std::make_unique<ClientEndpoint>(&net, Address(0x0b000100, 1));
    CHECK(endpoint->Start().ok());
  }
  const size_t first = clients.size();
  for (int j = 0; j < n; ++j) {
    const uint64_t id = 500 + first + j;
    if (shared) {
      clients.push_back(std::make_unique<Client>(endpoint.get(), cc, id));
    } else {
      clients.push_back(
          std::make_unique<Client>(&net, cc, id, Address(0x0b000001 + first + j, 1)));
    }
    CHECK(clients.back()->Start().ok());
    remaining_.push_back(ops);
  }
  keys_ = keys;
  for (size_t j = first; j < clients.size(); ++j) Next(static_cast<int>(j));
}

bool FastPaxosGroup::Done() const {
  for (size_t j = 0; j < clients.size(); ++j) {
    if (clients[j]->busy() || remaining_[j] > 0) return false;
  }
  return true;
}

bool FastPaxosGroup::Agree() const {
  const FastPaxosReplica* first = nullptr;
  bool has_coordinator = false;
  for (const auto& r : replicas) {
    if (!r) continue;
    if (!r->normal()) return false;
    if (r->IsCoordinator()) has_coordinator = true;
    if (first == nullptr) {
      first = r.get();
      continue;
    }
    const Log& a = first->log();
    const Log& b = r->log();
    if (r->view() != first->view() || a.end() != b.end() ||
        a.HashAt(a.end()) != b.HashAt(b.end())) {
      return false;
    }
  }
  return has_coordinator;
}

void FastPaxosGroup::Crash(int i) {
  if (!replicas[i]) return;
  gone_.push_back(replicas[i]->stats());
  replicas[i].reset();
}

FastPaxosReplica* FastPaxosGroup::Coordinator() const {
  for (const auto& r : replicas) {
    if (r && r->normal() && r->IsCoordinator()) return r.get();
  }
  return nullptr;
}

bool FastPaxosGroup::SameStores(int keys) const {
  const KvApp* first = nullptr;
  for (size_t i = 0; i < replicas.size(); ++i) {
    if (!replicas[i]) continue;
    if (first == nullptr) {
      first = apps[i].get();
      continue;
    }
    for (int k = 0; k < keys; ++k) {
      const std::string key = absl::StrCat("k", k);
      if (apps[i]->Lookup(key) != first->Lookup(key)) return false;
    }
  }
  return true;
}

uint64_t FastPaxosGroup::Sum(uint64_t FastPaxosStats::*field) const {
  uint64_t total = 0;
  for (const auto& r : replicas) {
    if (r) total += r->stats().*field;
  }
  for (const FastPaxosStats& s : gone_) total += s.*field;
  return total;
}

void FastPaxosGroup::Next(int j) {
  if (remaining_[j] <= 0) return;
  --remaining_[j];
  const std::string key = absl::StrCat("k", net.RandomBelow(keys_));
  const std::string value = absl::StrCat("v", ++counter_);
  std::string op = net.RandomBelow(3) == 0   ? KvApp::Get(key)
                   : net.RandomBelow(2) == 0 ? KvApp::Put(key, value)
                                             : KvApp::Cas(key, absl::StrCat("v", counter_ - 1), value);
  const size_t at = history.size();
  KvEvent e;
  e.client = j;
  e.op.ParseFromString(op);
  e.invoke = net.Now();
  history.push_back(e);
  clients[j]->Invoke(op, [this, j, at](const std::string& result) {
    history[at].response = net.Now();
    history[at].result = KvApp::ParseResult(result);
    Next(j);
  });
}

}  // namespace dctk::spaxos
