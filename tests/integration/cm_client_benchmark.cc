// Latency of one CM command through Speculative Paxos (3 in-process replicas
// on loopback UDP, one blocking CmClient) against the same protocol running
// the KV app (a PUT) as the baseline, measured in the same run. The CM result
// carries the whole configuration and each Execute snapshots the state for
// undo, so the cost grows with the cluster: the argument is the number of
// member machines (each holding one region).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "common/transport/free_port.h"
#include "common/transport/udp_transport.h"
#include "glog/logging.h"
#include "speculative_paxos/kv_app.h"
#include "speculative_paxos/replica.h"
#include "speculative_paxos/threaded_client.h"
#include "tests/integration/cm_app.h"
#include "tests/integration/cm_client.h"

namespace dctk::integration {
namespace {

// Three replicas of App on one UdpTransport and thread.
template <typename App>
class Group {
 public:
  Group() {
    net_ = std::move(*transport::UdpTransport::Create());
    for (int i = 0; i < 3; ++i)
      config_.replicas.push_back(transport::Address::Loopback(transport::FreeLoopbackUdpPort()));
    for (int i = 0; i < 3; ++i) {
      apps_.push_back(std::make_unique<App>());
      replicas_.push_back(std::make_unique<spaxos::Replica>(net_.get(), config_, i, apps_[i].get()));
      CHECK(replicas_[i]->Start().ok());
    }
    loop_ = std::thread([this] { net_->Run(); });
  }
  ~Group() {
    net_->Stop();
    loop_.join();
  }
  const std::vector<transport::Address>& addresses() const { return config_.replicas; }

 private:
  spaxos::ReplicaConfig config_;
  std::unique_ptr<transport::UdpTransport> net_;
  std::vector<std::unique_ptr<App>> apps_;
  std::vector<std::unique_ptr<spaxos::Replica>> replicas_;
  std::thread loop_;
};

void BM_CmRenew(benchmark::State& state) {
  Group<CmApp> group;
  CmClientOptions o;
  o.replicas = group.addresses();
  std::unique_ptr<CmClient> c = std::move(*CmClient::Create(o));
  CHECK(c->Initialize(2, 1 << 20, 60000).ok());
  const int machines = static_cast<int>(state.range(0));
  for (int m = 1; m <= machines; ++m) CHECK(c->Join(m, absl::StrCat("10.0.0.", m, ":7100"), "").ok());
  for (int m = 1; m <= machines; ++m) CHECK(c->CreateRegion().ok());
  uint32_t m = 0;
  for (auto _ : state) {
    CHECK(c->Renew(1 + (m++ % machines)).ok());
  }
  state.counters["fast_path_pct"] = 100.0 * c->stats().fast_path / c->stats().completed;
}
BENCHMARK(BM_CmRenew)->Arg(3)->Arg(64)->UseRealTime();

void BM_KvPutBaseline(benchmark::State& state) {
  Group<spaxos::KvApp> group;
  spaxos::ThreadedClientOptions o;
  o.client.replicas = group.addresses();
  std::unique_ptr<spaxos::ThreadedClient> c = std::move(*spaxos::ThreadedClient::Create(o));
  for (auto _ : state) {
    CHECK(c->CallAndWait(spaxos::KvApp::Put("k", "v"), absl::Seconds(2)).ok());
  }
}
BENCHMARK(BM_KvPutBaseline)->UseRealTime();

}  // namespace
}  // namespace dctk::integration
