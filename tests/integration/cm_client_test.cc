// CmClient against three in-process CM replicas (Replica + CmApp) on real UDP
// sockets on 127.0.0.1: initialise, register, renew, place regions, expire a
// lease; the leader crashes and the configuration survives the view change.
#include "tests/integration/cm_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "common/transport/free_port.h"
#include "common/transport/udp_transport.h"
#include "gtest/gtest.h"
#include "speculative_paxos/replica.h"
#include "tests/integration/cm_app.h"

namespace dctk::integration {
namespace {

namespace cm = farm::cm;

// Three CM replicas on one UdpTransport, run by their own thread.
class CmGroup {
 public:
  CmGroup() {
    net_ = std::move(*transport::UdpTransport::Create());
    for (int i = 0; i < 3; ++i)
      config_.replicas.push_back(transport::Address::Loopback(transport::FreeLoopbackUdpPort()));
    for (int i = 0; i < 3; ++i) {
      apps_.push_back(std::make_unique<CmApp>());
      replicas_.push_back(std::make_unique<spaxos::Replica>(net_.get(), config_, i, apps_[i].get()));
      EXPECT_TRUE(replicas_[i]->Start().ok());
    }
    loop_ = std::thread([this] { net_->Run(); });
  }
  ~CmGroup() {
    net_->Stop();
    loop_.join();
    replicas_.clear();
  }
  const std::vector<transport::Address>& addresses() const { return config_.replicas; }
  // Destroys replica i on the loop (a crash: it stops answering).
  void Crash(int i) {
    absl::Notification done;
    net_->Post([&] {
      replicas_[i].reset();
      done.Notify();
    });
    done.WaitForNotification();
  }

 private:
  spaxos::ReplicaConfig config_;
  std::unique_ptr<transport::UdpTransport> net_;
  std::vector<std::unique_ptr<CmApp>> apps_;
  std::vector<std::unique_ptr<spaxos::Replica>> replicas_;
  std::thread loop_;
};

class CmClientTest : public ::testing::Test {
 protected:
  std::unique_ptr<CmClient> MakeClient() {
    CmClientOptions o;
    o.replicas = group_.addresses();
    o.now_ms = [this] { return now_ms_.load(); };
    absl::StatusOr<std::unique_ptr<CmClient>> c = CmClient::Create(o);
    EXPECT_TRUE(c.ok()) << c.status();
    return std::move(*c);
  }

  CmGroup group_;
  std::atomic<int64_t> now_ms_{1000};
};

TEST_F(CmClientTest, RegistersMachinesRenewsLeasesAndPlacesRegions) {
  std::unique_ptr<CmClient> c = MakeClient();
  ASSERT_TRUE(c->Initialize(2, 1 << 20, 100).ok());
  for (uint32_t m = 1; m <= 3; ++m) {
    absl::StatusOr<cm::Configuration> conf = c->Join(m, absl::StrCat("e", m), "");
    ASSERT_TRUE(conf.ok()) << conf.status();
    EXPECT_EQ(conf->machines_size(), static_cast<int>(m));
  }
  absl::StatusOr<uint32_t> region = c->CreateRegion();
  ASSERT_TRUE(region.ok()) << region.status();
  absl::StatusOr<cm::Configuration> conf = c->GetConfiguration();
  ASSERT_TRUE(conf.ok()) << conf.status();
  ASSERT_EQ(conf->regions_size(), 1);
  EXPECT_EQ(conf->regions(0).id(), *region);
  EXPECT_EQ(conf->regions(0).replicas_size(), 2);

  // Machines 1 and 2 renew at t=1050; machine 3 does not. At t=1120 only
  // machine 3's lease (1100) has run out.
  now_ms_ = 1050;
  ASSERT_TRUE(c->Renew(1).ok());
  ASSERT_TRUE(c->Renew(2).ok());
  now_ms_ = 1120;
  absl::StatusOr<std::vector<uint32_t>> removed = c->Tick();
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, std::vector<uint32_t>{3});
  EXPECT_EQ(c->Renew(3).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c->Join(3, "e3", "").status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(CmClientTest, InitializeIsIdempotentAndRejectsOtherParameters) {
  std::unique_ptr<CmClient> a = MakeClient();
  std::unique_ptr<CmClient> b = MakeClient();
  ASSERT_TRUE(a->Initialize(2, 1 << 20, 100).ok());
  EXPECT_TRUE(b->Initialize(2, 1 << 20, 100).ok());
  EXPECT_EQ(b->Initialize(3, 1 << 20, 100).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(CmClientTest, ConfigurationSurvivesLeaderCrash) {
  std::unique_ptr<CmClient> c = MakeClient();
  ASSERT_TRUE(c->Initialize(2, 1 << 20, 1000).ok());
  ASSERT_TRUE(c->Join(1, "e1", "").ok());
  ASSERT_TRUE(c->Join(2, "e2", "").ok());
  group_.Crash(0);  // replica 0 leads view 0
  absl::StatusOr<cm::Configuration> conf = c->Join(3, "e3", "");
  ASSERT_TRUE(conf.ok()) << conf.status();
  EXPECT_EQ(conf->machines_size(), 3);
  ASSERT_TRUE(c->Renew(1).ok());
  conf = c->GetConfiguration();
  ASSERT_TRUE(conf.ok()) << conf.status();
  // The survivors executed the same log: a Get ordered after every call
  // above was answered by a quorum holding all of them.
  EXPECT_EQ(conf->machines_size(), 3);
  EXPECT_EQ(conf->id(), 4u);  // Init 1, three joins
}

}  // namespace
}  // namespace dctk::integration
