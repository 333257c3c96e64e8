// The baselines on SimTransport, driven by the shared client library.
#include "speculative_paxos/vr_replica.h"

#include <algorithm>
#include <functional>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/transport/framing.h"
#include "common/transport/sim_transport.h"
#include "gtest/gtest.h"
#include "speculative_paxos/client.h"
#include "speculative_paxos/kv_app.h"
#include "speculative_paxos/lincheck.h"
#include "speculative_paxos/vr_load.h"

namespace dctk::spaxos {
namespace {

using transport::Address;
using transport::SimTransport;
using transport::TypeId;
using vr_test::Load;
using vr_test::Replicas;

void RunVr(uint64_t seed, int max_batch, double drop, bool shared = false) {
  SimTransport net(seed);
  VrConfig config{.replicas = Replicas(3), .max_batch = max_batch};
  std::vector<std::unique_ptr<KvApp>> apps;
  std::vector<std::unique_ptr<VrReplica>> replicas;
  for (int i = 0; i < 3; ++i) {
    apps.push_back(std::make_unique<KvApp>());
    replicas.push_back(std::make_unique<VrReplica>(&net, config, i, apps.back().get()));
    ASSERT_TRUE(replicas.back()->Start().ok());
  }
  if (drop > 0) net.AddFilter(1, net.DropWithProbability(drop));
  Load load(&net, config.replicas, 4, 30, /*keys=*/4, shared);
  ASSERT_TRUE(net.RunUntil([&] { return load.Done(); }, absl::Seconds(10)));
  net.RemoveFilter(1);
  if (shared && drop == 0) {
    // Closed loop on one endpoint: requests issued together travel together
    // (how many do depends on the leader's batching), and so do their replies.
    EXPECT_EQ(load.endpoint()->stats().requests, 120u);
    EXPECT_LT(load.endpoint()->stats().request_datagrams, 100u);
    EXPECT_LT(load.endpoint()->stats().reply_datagrams, 100u);
  }
  ASSERT_TRUE(net.RunUntil(
      [&] {
        return replicas[1]->executed() == replicas[0]->executed() &&
               replicas[2]->executed() == replicas[0]->executed();
      },
      absl::Seconds(1)));
  EXPECT_EQ(replicas[0]->executed(), 120u);
  EXPECT_EQ(apps[1]->Lookup("k0"), apps[0]->Lookup("k0"));
  absl::Status lin = CheckLinearizable(load.history());
  EXPECT_TRUE(lin.ok()) << lin;
  if (max_batch > 1) EXPECT_LT(replicas[0]->stats().prepares, 120u);
}

TEST(VrReplicaTest, NormalCase) { RunVr(1, 1, 0); }
TEST(VrReplicaTest, Batching) { RunVr(2, 8, 0); }
TEST(VrReplicaTest, DropsAreResent) { RunVr(3, 1, 0.05); }
TEST(VrReplicaTest, BatchingWithDrops) { RunVr(4, 8, 0.05); }
TEST(VrReplicaTest, SharedClientEndpoint) { RunVr(5, 8, 0, /*shared=*/true); }
TEST(VrReplicaTest, SharedClientEndpointWithDrops) { RunVr(6, 1, 0.05, /*shared=*/true); }

// The leader crashes mid-run (and, with `second`, the next leader after it
// heals): the others change view, every client completes, the history is
// linearizable and the survivors agree.
void RunVrLeaderCrash(uint64_t seed, int max_batch, double drop) {
  SimTransport net(seed);
  VrConfig config{.replicas = Replicas(5), .max_batch = max_batch};
  std::vector<std::unique_ptr<KvApp>> apps;
  std::vector<std::unique_ptr<VrReplica>> replicas;
  for (int i = 0; i < 5; ++i) {
    apps.push_back(std::make_unique<KvApp>());
    replicas.push_back(std::make_unique<VrReplica>(&net, config, i, apps.back().get()));
    ASSERT_TRUE(replicas.back()->Start().ok());
  }
  if (drop > 0) net.AddFilter(1, net.DropWithProbability(drop));
  net.Timer(absl::Milliseconds(1 + net.RandomBelow(5)), [&] { replicas[0].reset(); });
  net.Timer(absl::Milliseconds(50 + net.RandomBelow(20)), [&] {
    for (int i = 1; i < 5; ++i) {
      if (replicas[i]->normal() && replicas[i]->IsLeader()) {
        replicas[i].reset();  // f = 2: a second crash is survivable
        return;
      }
    }
  });
  Load load(&net, config.replicas, 4, 100, /*keys=*/16);
  ASSERT_TRUE(net.RunUntil([&] { return load.Done(); }, absl::Seconds(20))) << "seed " << seed;
  net.RemoveFilter(1);
  std::vector<VrReplica*> alive;
  for (auto& r : replicas) {
    if (r) alive.push_back(r.get());
  }
  ASSERT_GE(alive.size(), 3u);
  ASSERT_TRUE(net.RunUntil(
      [&] {
        for (VrReplica* r : alive) {
          if (!r->normal() || r->executed() != alive[0]->executed() ||
              r->view() != alive[0]->view()) {
            return false;
          }
        }
        return alive[0]->executed() == alive[0]->log().end();
      },
      absl::Seconds(1)))
      << "seed " << seed;
  EXPECT_GE(alive[0]->view(), 1u) << "seed " << seed;
  EXPECT_EQ(alive[0]->executed(), 400u) << "seed " << seed;
  absl::Status lin = CheckLinearizable(load.history());
  EXPECT_TRUE(lin.ok()) << "seed " << seed << ": " << lin;
}

TEST(VrReplicaTest, LeaderCrashesCauseViewChanges) {
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    RunVrLeaderCrash(seed, seed % 2 == 0 ? 8 : 1, seed % 3 == 0 ? 0.03 : 0);
  }
}

TEST(UnreplicatedServerTest, ServesTheSameClients) {
  SimTransport net(5);
  KvApp app;
  UnreplicatedServer server(&net, Address(0x0a000001, 7000), &app);
  ASSERT_TRUE(server.Start().ok());
  net.AddFilter(1, net.DropWithProbability(0.05));
  Load load(&net, {Address(0x0a000001, 7000)}, 3, 30);
  ASSERT_TRUE(net.RunUntil([&] { return load.Done(); }, absl::Seconds(10)));
  EXPECT_EQ(server.executed(), 90u);
  absl::Status lin = CheckLinearizable(load.history());
  EXPECT_TRUE(lin.ok()) << lin;
}

}  // namespace
}  // namespace dctk::spaxos

namespace dctk::spaxos {
namespace {

// A follower crashes and restarts without state (recovery), then, once it
// has recovered, the leader crashes: with f = 1 the recovered replica is half
// of the view change's quorum, so any acknowledged write it forgot would be
// lost. Every client completes, the history is linearizable, the survivors
// agree on all 1,200 operations.
void RunVrRecovery(uint64_t seed) {
  SimTransport net(seed);
  VrConfig config{.replicas = Replicas(3), .max_batch = seed % 2 == 0 ? 1 : 8};
  std::vector<std::unique_ptr<KvApp>> apps;
  std::vector<std::unique_ptr<VrReplica>> replicas;
  for (int i = 0; i < 3; ++i) {
    apps.push_back(std::make_unique<KvApp>());
    replicas.push_back(std::make_unique<VrReplica>(&net, config, i, apps.back().get()));
    ASSERT_TRUE(replicas.back()->Start().ok());
  }
  const int victim = 1 + static_cast<int>(net.RandomBelow(2));
  bool leader_crashed = false;
  net.Timer(absl::Milliseconds(2 + net.RandomBelow(5)), [&] { replicas[victim].reset(); });
  std::function<void()> crash_leader_once_recovered = [&] {
    if (replicas[victim]->recovering()) {
      net.Timer(absl::Microseconds(500), crash_leader_once_recovered);
      return;
    }
    replicas[0].reset();
    leader_crashed = true;
  };
  net.Timer(absl::Milliseconds(15 + net.RandomBelow(10)), [&] {
    apps[victim] = std::make_unique<KvApp>();
    replicas[victim] = std::make_unique<VrReplica>(&net, config, victim, apps[victim].get(),
                                                   /*recovering=*/true);
    ASSERT_TRUE(replicas[victim]->Start().ok());
    crash_leader_once_recovered();
  });
  Load load(&net, config.replicas, 4, 300, /*keys=*/40);
  ASSERT_TRUE(net.RunUntil([&] { return load.Done(); }, absl::Seconds(20))) << "seed " << seed;
  ASSERT_TRUE(leader_crashed) << "seed " << seed << ": the load ended before the leader crash";
  VrReplica* a = replicas[1].get();
  VrReplica* b = replicas[2].get();
  ASSERT_TRUE(net.RunUntil(
      [&] {
        return a->normal() && b->normal() && a->view() == b->view() &&
               a->executed() == b->executed() && a->executed() == a->log().end();
      },
      absl::Seconds(1)))
      << "seed " << seed;
  EXPECT_EQ(replicas[victim]->stats().recoveries, 1u) << "seed " << seed;
  EXPECT_GE(a->view(), 1u) << "seed " << seed;
  EXPECT_EQ(a->executed(), 1200u) << "seed " << seed;
  EXPECT_EQ(apps[1]->Lookup("k0"), apps[2]->Lookup("k0")) << "seed " << seed;
  absl::Status lin = CheckLinearizable(load.history());
  EXPECT_TRUE(lin.ok()) << "seed " << seed << ": " << lin;
}

TEST(VrReplicaTest, RestartedReplicaRecoversThenLeaderCrashes) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    RunVrRecovery(seed);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace dctk::spaxos

namespace dctk::spaxos {
namespace {

// Every datagram a replica sends, largest size and count per message type.
struct DatagramWatch {
  DatagramWatch(SimTransport* net, const std::vector<Address>& replicas) {
    net->AddFilter(-1, [this, replicas](const Address& from, const Address&,
                                        const transport::Envelope& msg, absl::Duration*) {
      if (std::find(replicas.begin(), replicas.end(), from) != replicas.end()) {
        largest = std::max(largest, transport::kFrameHeaderSize + msg.payload().size());
        ++count[msg.type_id()];
      }
      return true;
    });
  }
  size_t largest = 0;
  std::map<uint32_t, uint64_t> count;
};

constexpr int kSmallBudget = 300;

// A follower cut off from everyone while the others commit hundreds of
// operations becomes the next leader when the leader crashes the moment the
// partition heals: its commit point is far behind, so the other survivor's
// DoViewChange carries hundreds of entries, in 300-byte pieces (some lost),
// a window at a time; the rest of the log reaches the follower as catch-up
// prepares. Every client completes, the history is linearizable, the
// survivors agree, no replica datagram exceeds the budget.
void RunVrLongViewChange(uint64_t seed, double loss) {
  SimTransport net(seed);
  VrConfig config{.replicas = Replicas(3), .max_batch = seed % 2 == 0 ? 1 : 8,
                  .view_change_timeout = absl::Milliseconds(100),
                  .max_datagram = kSmallBudget};
  DatagramWatch watch(&net, config.replicas);
  std::vector<std::unique_ptr<KvApp>> apps;
  std::vector<std::unique_ptr<VrReplica>> replicas;
  for (int i = 0; i < 3; ++i) {
    apps.push_back(std::make_unique<KvApp>());
    replicas.push_back(std::make_unique<VrReplica>(&net, config, i, apps.back().get()));
    ASSERT_TRUE(replicas.back()->Start().ok());
  }
  std::vector<Address> others = {config.replicas[0], config.replicas[2]};
  for (int j = 0; j < 4; ++j) others.push_back(Address(0x0b000001 + j, 1));
  net.AddFilter(1, net.Partition({config.replicas[1]}, others));
  if (loss > 0) {
    net.AddFilter(2, net.DropWithProbability(loss, {.type_id = TypeId<VrDoViewChange>()}));
  }
  net.Timer(absl::Milliseconds(40), [&] {
    net.RemoveFilter(1);
    replicas[0].reset();
  });
  Load load(&net, config.replicas, 4, 400, /*keys=*/40);
  ASSERT_TRUE(net.RunUntil([&] { return load.Done(); }, absl::Seconds(30))) << "seed " << seed;
  net.RemoveFilter(2);
  VrReplica* a = replicas[1].get();
  VrReplica* b = replicas[2].get();
  ASSERT_TRUE(net.RunUntil(
      [&] {
        return a->normal() && b->normal() && a->view() == b->view() &&
               a->executed() == b->executed() && a->executed() == a->log().end();
      },
      absl::Seconds(1)))
      << "seed " << seed;
  EXPECT_GE(a->view(), 1u) << "seed " << seed;
  EXPECT_EQ(a->executed(), 1600u) << "seed " << seed;
  EXPECT_EQ(apps[1]->Lookup("k0"), apps[2]->Lookup("k0")) << "seed " << seed;
  absl::Status lin = CheckLinearizable(load.history());
  EXPECT_TRUE(lin.ok()) << "seed " << seed << ": " << lin;
  EXPECT_LE(watch.largest, static_cast<size_t>(kSmallBudget)) << "seed " << seed;
  // The report went in many pieces (hundreds of entries, ~3 per piece).
  EXPECT_GT(watch.count[TypeId<VrDoViewChange>()], 50u) << "seed " << seed;
}

TEST(VrReplicaTest, LongViewChangeInPieces) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    RunVrLongViewChange(seed, 0);
    if (HasFatalFailure()) return;
  }
}

TEST(VrReplicaTest, LongViewChangeInPiecesWithLoss) {
  for (uint64_t seed = 5; seed <= 8; ++seed) {
    RunVrLongViewChange(seed, 0.1);
    if (HasFatalFailure()) return;
  }
}

// A follower restarted without state copies the whole log (hundreds of
// entries) in 300-byte prepares, a window per acknowledgement, with 20% of
// prepares lost; once it has recovered, the leader crashes, so the recovered
// replica is half of the next view's quorum.
TEST(VrReplicaTest, LongRecoveryInPiecesWithLoss) {
  SimTransport net(11);
  VrConfig config{.replicas = Replicas(3), .max_batch = 8, .max_datagram = kSmallBudget};
  DatagramWatch watch(&net, config.replicas);
  std::vector<std::unique_ptr<KvApp>> apps;
  std::vector<std::unique_ptr<VrReplica>> replicas;
  for (int i = 0; i < 3; ++i) {
    apps.push_back(std::make_unique<KvApp>());
    replicas.push_back(std::make_unique<VrReplica>(&net, config, i, apps.back().get()));
    ASSERT_TRUE(replicas.back()->Start().ok());
  }
  net.Timer(absl::Milliseconds(1), [&] { replicas[2].reset(); });
  uint64_t log_at_restart = 0;
  bool leader_crashed = false;
  std::function<void()> crash_leader_once_recovered = [&] {
    if (replicas[2]->recovering()) {
      net.Timer(absl::Microseconds(500), crash_leader_once_recovered);
      return;
    }
    net.RemoveFilter(1);
    replicas[0].reset();
    leader_crashed = true;
  };
  net.Timer(absl::Milliseconds(60), [&] {
    log_at_restart = replicas[0]->log().end();
    apps[2] = std::make_unique<KvApp>();
    replicas[2] =
        std::make_unique<VrReplica>(&net, config, 2, apps[2].get(), /*recovering=*/true);
    ASSERT_TRUE(replicas[2]->Start().ok());
    net.AddFilter(1, net.DropWithProbability(0.2, {.type_id = TypeId<VrPrepare>()}));
    crash_leader_once_recovered();
  });
  Load load(&net, config.replicas, 4, 500, /*keys=*/40);
  ASSERT_TRUE(net.RunUntil([&] { return load.Done(); }, absl::Seconds(30)));
  ASSERT_TRUE(leader_crashed) << "the load ended before the leader crash";
  EXPECT_GE(log_at_restart, 300u);
  ASSERT_TRUE(net.RunUntil(
      [&] {
        return replicas[1]->normal() && replicas[2]->normal() &&
               replicas[1]->executed() == replicas[2]->executed() &&
               replicas[1]->executed() == replicas[1]->log().end();
      },
      absl::Seconds(1)));
  EXPECT_EQ(replicas[2]->stats().recoveries, 1u);
  EXPECT_EQ(replicas[1]->executed(), 2000u);
  EXPECT_EQ(apps[1]->Lookup("k0"), apps[2]->Lookup("k0"));
  absl::Status lin = CheckLinearizable(load.history());
  EXPECT_TRUE(lin.ok()) << lin;
  EXPECT_LE(watch.largest, static_cast<size_t>(kSmallBudget));
}

TEST(VrReplicaTest, RejectsDatagramBudgetOutOfRange) {
  SimTransport net(1);
  KvApp app;
  VrReplica r(&net, {.replicas = Replicas(3), .max_datagram = 100}, 0, &app);
  EXPECT_FALSE(r.Start().ok());
}

}  // namespace
}  // namespace dctk::spaxos
