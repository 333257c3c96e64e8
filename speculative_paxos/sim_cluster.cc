#include "speculative_paxos/sim_cluster.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/transport/framing.h"
#include "glog/logging.h"

namespace dctk::spaxos {

SimCluster::SimCluster(SimClusterOptions options)
    : options_(std::move(options)), net_(options_.seed) {
  config_ = options_.replica;
  config_.replicas.clear();
  for (int i = 0; i < options_.num_replicas; ++i) {
    config_.replicas.push_back(transport::Address(0x0a000001 + i, 7000));
  }
  if (options_.multicast) config_.group = transport::Address(0xef010101, 7000);
  if (options_.mom) {
    config_.mom = mom::GroupConfig{.group_id = 1,
                                   .group_address = transport::Address(0xef010102, 7000),
                                   .members = config_.replicas};
  }
  for (int i = 0; i < options_.num_replicas; ++i) {
    apps_.push_back(std::make_unique<KvApp>());
    replicas_.push_back(std::make_unique<Replica>(&net_, config_, i, apps_.back().get()));
    absl::Status started = replicas_.back()->Start();
    CHECK(started.ok()) << started;
  }
  ClientConfig cc{.replicas = config_.replicas, .group = config_.group, .mom = config_.mom,
                  .resend_timeout = options_.resend_timeout};
  if (options_.shared_endpoint) {
    endpoint_ = std::make_unique<ClientEndpoint>(&net_, transport::Address(0x0a000101, 8000));
    absl::Status started = endpoint_->Start();
    CHECK(started.ok()) << started;
  }
  for (int j = 0; j < options_.num_clients; ++j) {
    if (endpoint_) {
      clients_.push_back(std::make_unique<Client>(endpoint_.get(), cc, /*client_id=*/1000 + j));
    } else {
      clients_.push_back(std::make_unique<Client>(&net_, cc, /*client_id=*/1000 + j,
                                                  transport::Address(0x0a000101 + j, 8000)));
    }
    absl::Status started = clients_.back()->Start();
    CHECK(started.ok()) << started;
  }
  // Filter id -1: before the tests' own (which may drop the copy).
  net_.AddFilter(-1, [this](const transport::Address& from, const transport::Address&,
                            const transport::Envelope& msg, absl::Duration*) {
    if (std::find(config_.replicas.begin(), config_.replicas.end(), from) !=
        config_.replicas.end()) {
      ++replica_datagrams_[msg.type_id()];
      max_replica_datagram_ = std::max(max_replica_datagram_,
                                       transport::kFrameHeaderSize + msg.payload().size());
    }
    return true;
  });
  verified_.assign(options_.num_replicas, 0);
  remaining_ops_.assign(options_.num_clients, 0);
  commit_checker_ = std::make_unique<transport::Timeout>(&net_, absl::Milliseconds(1), [this] {
    absl::Status s = CheckCommitted();
    if (!s.ok() && commit_violation_.ok()) commit_violation_ = s;
  });
  commit_checker_->Start();
}

SimCluster::~SimCluster() {
  commit_checker_.reset();
  clients_.clear();
  replicas_.clear();
}

void SimCluster::Invoke(int j, const std::string& op,
                        std::function<void(const KvResult&)> done) {
  const size_t at = history_.size();
  KvEvent e;
  e.client = j;
  CHECK(e.op.ParseFromString(op));
  e.invoke = net_.Now();
  history_.push_back(std::move(e));
  clients_[j]->Invoke(op, [this, at, done = std::move(done)](const std::string& result) {
    history_[at].response = net_.Now();
    history_[at].result = KvApp::ParseResult(result);
    const KvResult result_copy = history_[at].result;  // done() may grow history_
    if (done) done(result_copy);
  });
}

uint64_t SimCluster::replica_datagrams(uint32_t type_id) const {
  auto it = replica_datagrams_.find(type_id);
  return it == replica_datagrams_.end() ? 0 : it->second;
}

bool SimCluster::ClientsIdle() const {
  for (const auto& c : clients_) {
    if (c->busy()) return false;
  }
  return true;
}

bool SimCluster::RunUntilIdleClients(absl::Duration limit, std::function<bool()> extra) {
  return net_.RunUntil([&] { return ClientsIdle() && (!extra || extra()); }, limit);
}

void SimCluster::Crash(int i) {
  net_.Crash(config_.replicas[i]);
  replicas_[i].reset();
  apps_[i].reset();
  verified_[i] = 0;
}

void SimCluster::Restart(int i) {
  CHECK(replicas_[i] == nullptr) << "replica " << i << " is running";
  apps_[i] = std::make_unique<KvApp>();
  replicas_[i] = std::make_unique<Replica>(&net_, config_, i, apps_[i].get(),
                                           /*recovering=*/true);
  net_.Restart(config_.replicas[i]);
  {
    absl::Status started = replicas_[i]->Start();
    CHECK(started.ok()) << started;
  }
}

absl::Status SimCluster::CheckCommitted() {
  for (int i = 0; i < num_replicas(); ++i) {
    const Replica* r = replicas_[i].get();
    if (r == nullptr) continue;
    // Compacted slots are gone; the hash at the compaction point covers them.
    for (uint64_t slot = std::max(verified_[i] + 1, std::max<uint64_t>(r->log().base(), 1));
         slot <= r->commit_point(); ++slot) {
      const std::string& hash = r->log().HashAt(slot);
      if (slot > committed_hashes_.size()) committed_hashes_.resize(slot);  // "": not seen yet
      std::string& known = committed_hashes_[slot - 1];
      if (known.empty()) {
        known = hash;
      } else if (known != hash) {
        return absl::InternalError(absl::StrCat("replica ", i, " committed slot ", slot,
                                                " with a different entry than another"));
      }
    }
    verified_[i] = std::max(verified_[i], r->commit_point());
  }
  return absl::OkStatus();
}

void SimCluster::StartClosedLoop(int ops_per_client, int num_keys) {
  num_keys_ = num_keys;
  for (int j = 0; j < num_clients(); ++j) {
    remaining_ops_[j] = ops_per_client;
    if (!clients_[j]->busy()) IssueRandom(j);
  }
}

void SimCluster::IssueRandom(int j) {
  if (remaining_ops_[j] <= 0) return;
  --remaining_ops_[j];
  const std::string key = absl::StrCat("k", net_.RandomBelow(num_keys_));
  const std::string value = absl::StrCat("v", ++value_counter_);
  std::string op;
  switch (net_.RandomBelow(3)) {
    case 0:
      op = KvApp::Get(key);
      break;
    case 1:
      op = KvApp::Put(key, value);
      break;
    default: {
      // Expect a value some client wrote (or absence), so swaps sometimes win.
      absl::optional<std::string> expected;
      if (value_counter_ > 1 && net_.RandomBelow(4) != 0) {
        expected = absl::StrCat("v", value_counter_ - 1 - net_.RandomBelow(
                                                              std::min<uint64_t>(value_counter_ - 1, 4)));
      }
      op = KvApp::Cas(key, expected, value);
      break;
    }
  }
  Invoke(j, op, [this, j](const KvResult&) { IssueRandom(j); });
}

int SimCluster::Leader() const {
  int leader = -1;
  Stamp newest;
  for (int i = 0; i < num_replicas(); ++i) {
    const Replica* r = replicas_[i].get();
    if (r == nullptr || r->status() != ReplicaStatus::kNormal || !r->IsLeader()) continue;
    if (leader < 0 || r->stamp() > newest) {
      leader = i;
      newest = r->stamp();
    }
  }
  return leader;
}

bool SimCluster::Converged() const {
  const int leader = Leader();
  if (leader < 0) return false;
  const Replica& l = *replicas_[leader];
  if (l.commit_point() != l.log().end()) return false;
  for (const auto& r : replicas_) {
    if (r == nullptr) continue;
    // A follower may also hold speculative entries the leader never got (a
    // late duplicate of a completed request); the next reconciliation drops them.
    if (r->status() != ReplicaStatus::kNormal || r->stamp() != l.stamp() ||
        r->commit_point() != l.commit_point() ||
        r->log().HashAt(r->commit_point()) != l.log().HashAt(l.commit_point())) {
      return false;
    }
  }
  return true;
}

}  // namespace dctk::spaxos
