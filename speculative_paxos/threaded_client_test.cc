// ThreadedClient against in-process replicas on real UDP sockets (loopback):
// blocking and asynchronous calls, timeouts, and a leader failure hidden
// from the caller.
#include "speculative_paxos/threaded_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "common/transport/free_port.h"
#include "common/transport/udp_transport.h"
#include "gtest/gtest.h"
#include "speculative_paxos/kv_app.h"
#include "speculative_paxos/replica.h"

namespace dctk::spaxos {
namespace {

// Three replicas with KV apps on one UdpTransport, run by their own thread.
class Group {
 public:
  Group() {
    net_ = std::move(*transport::UdpTransport::Create());
    for (int i = 0; i < 3; ++i)
      config_.replicas.push_back(transport::Address::Loopback(transport::FreeLoopbackUdpPort()));
    config_.leader_timeout = absl::Milliseconds(40);
    for (int i = 0; i < 3; ++i) {
      apps_.push_back(std::make_unique<KvApp>());
      replicas_.push_back(std::make_unique<Replica>(net_.get(), config_, i, apps_[i].get()));
      EXPECT_TRUE(replicas_[i]->Start().ok());
    }
    loop_ = std::thread([this] { net_->Run(); });
  }
  ~Group() {
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
  ReplicaConfig config_;
  std::unique_ptr<transport::UdpTransport> net_;
  std::vector<std::unique_ptr<KvApp>> apps_;
  std::vector<std::unique_ptr<Replica>> replicas_;
  std::thread loop_;
};

std::unique_ptr<ThreadedClient> MakeClient(const std::vector<transport::Address>& replicas,
                                           int concurrency, bool await_replies = false) {
  ThreadedClientOptions o;
  o.client.replicas = replicas;
  o.client.await_replies = await_replies;
  o.concurrency = concurrency;
  absl::StatusOr<std::unique_ptr<ThreadedClient>> c = ThreadedClient::Create(o);
  EXPECT_TRUE(c.ok()) << c.status();
  return std::move(*c);
}

// With and without ClientConfig.await_replies (UdpTransport's io_uring wait
// for the replicas' replies on their own sockets).
class AwaitRepliesTest : public ::testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(ThreadedClientTest, AwaitRepliesTest, ::testing::Bool());

TEST_P(AwaitRepliesTest, BlockingAndAsyncCalls) {
  Group group;
  std::unique_ptr<ThreadedClient> client = MakeClient(group.addresses(), 4, GetParam());
  ASSERT_TRUE(client->CallAndWait(KvApp::Put("k", "v0"), absl::Seconds(10)).ok());
  // 32 asynchronous PUTs to distinct keys, four in flight at a time.
  constexpr int kCalls = 32;
  std::atomic<int> ok{0}, finished{0};
  absl::Notification all_done;
  for (int i = 0; i < kCalls; ++i) {
    client->Call(KvApp::Put(absl::StrCat("a", i), "x"), absl::Seconds(10),
                 [&](absl::StatusOr<std::string> r) {
                   if (r.ok()) ++ok;
                   if (++finished == kCalls) all_done.Notify();
                 });
  }
  all_done.WaitForNotification();
  EXPECT_EQ(ok.load(), kCalls);
  absl::StatusOr<std::string> got = client->CallAndWait(KvApp::Get("a31"), absl::Seconds(10));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(KvApp::ParseResult(*got).value(), "x");
  const ClientStats stats = client->stats();
  EXPECT_EQ(stats.completed, kCalls + 2u);
  EXPECT_EQ(stats.latency.count(), kCalls + 2u);
  EXPECT_GT(stats.latency.min(), 0u);
  // From a callback, on the client's own thread, stats() does not wait for it.
  absl::Notification read;
  uint64_t completed_in_callback = 0;
  client->Call(KvApp::Get("a0"), absl::Seconds(10), [&](absl::StatusOr<std::string>) {
    completed_in_callback = client->stats().completed;
    read.Notify();
  });
  read.WaitForNotification();
  EXPECT_EQ(completed_in_callback, kCalls + 3u);
}

TEST(ThreadedClientTest, CallWithoutReplicasTimesOut) {
  // Nobody listens on these ports.
  std::vector<transport::Address> nowhere;
  for (int i = 0; i < 3; ++i)
    nowhere.push_back(transport::Address::Loopback(transport::FreeLoopbackUdpPort()));
  std::unique_ptr<ThreadedClient> client = MakeClient(nowhere, 1);
  absl::StatusOr<std::string> r = client->CallAndWait(KvApp::Get("k"), absl::Milliseconds(50));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
  // A queued call behind it times out too, and the client stays usable.
  std::atomic<int> expired{0};
  absl::Notification both;
  for (int i = 0; i < 2; ++i) {
    client->Call(KvApp::Get("k"), absl::Milliseconds(30), [&](absl::StatusOr<std::string> r) {
      if (r.status().code() == absl::StatusCode::kDeadlineExceeded && ++expired == 2) {
        both.Notify();
      }
    });
  }
  both.WaitForNotification();
}

TEST_P(AwaitRepliesTest, LeaderFailureIsHidden) {
  Group group;
  std::unique_ptr<ThreadedClient> client = MakeClient(group.addresses(), 2, GetParam());
  ASSERT_TRUE(client->CallAndWait(KvApp::Put("k", "before"), absl::Seconds(10)).ok());
  group.Crash(0);  // the leader of view 0
  // The remaining two replicas change view; the caller only sees results.
  absl::StatusOr<std::string> put = client->CallAndWait(KvApp::Put("k", "after"),
                                                        absl::Seconds(10));
  ASSERT_TRUE(put.ok()) << put.status();
  absl::StatusOr<std::string> got = client->CallAndWait(KvApp::Get("k"), absl::Seconds(10));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(KvApp::ParseResult(*got).value(), "after");
}

TEST(ThreadedClientTest, DestroyCancelsPendingCalls) {
  std::vector<transport::Address> nowhere;
  for (int i = 0; i < 3; ++i)
    nowhere.push_back(transport::Address::Loopback(transport::FreeLoopbackUdpPort()));
  std::unique_ptr<ThreadedClient> client = MakeClient(nowhere, 1);
  std::atomic<int> cancelled{0};
  for (int i = 0; i < 3; ++i) {
    client->Call(KvApp::Get("k"), absl::Hours(1), [&](absl::StatusOr<std::string> r) {
      if (r.status().code() == absl::StatusCode::kCancelled) ++cancelled;
    });
  }
  client.reset();
  EXPECT_EQ(cancelled.load(), 3);
}

TEST(ThreadedClientTest, RejectsBadConcurrency) {
  ThreadedClientOptions o;
  o.concurrency = 0;
  EXPECT_EQ(ThreadedClient::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dctk::spaxos
