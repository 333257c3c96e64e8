// Log compaction of the VR baseline on SimTransport: memory stays bounded
// over a long run, and replicas that need compacted entries (a lagging
// follower, a restarted one, a new leader behind the others) copy a
// checkpoint. Histories stay linearizable and the replicas agree.
#include <algorithm>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/transport/sim_transport.h"
#include "gtest/gtest.h"
#include "speculative_paxos/kv_app.h"
#include "speculative_paxos/lincheck.h"
#include "speculative_paxos/vr_load.h"
#include "speculative_paxos/vr_replica.h"

namespace dctk::spaxos {
namespace {

using transport::Address;
using transport::SimTransport;
using transport::TypeId;
using vr_test::Load;
using vr_test::Replicas;

struct VrGroup {
  VrGroup(uint64_t seed, uint64_t interval, int chunk = 32 * 1024) : net(seed) {
    config = {.replicas = Replicas(3), .checkpoint_interval = interval, .snapshot_chunk = chunk};
    for (int i = 0; i < 3; ++i) Start(i, /*recovering=*/false);
  }
  void Start(int i, bool recovering) {
    apps[i] = std::make_unique<KvApp>();
    replicas[i] = std::make_unique<VrReplica>(&net, config, i, apps[i].get(), recovering);
    ASSERT_TRUE(replicas[i]->Start().ok());
  }
  // The live replicas are normal in one view and executed the same prefix.
  bool Agree() const {
    const VrReplica* first = nullptr;
    for (const auto& r : replicas) {
      if (!r) continue;
      if (!r->normal()) return false;
      if (first == nullptr) first = r.get();
      if (r->view() != first->view() || r->executed() != first->executed()) return false;
    }
    return true;
  }
  void ExpectSameStores(int keys) const {
    const KvApp* first = nullptr;
    for (int i = 0; i < 3; ++i) {
      if (!replicas[i]) continue;
      if (first == nullptr) first = apps[i].get();
      for (int k = 0; k < keys; ++k) {
        const std::string key = absl::StrCat("k", k);
        EXPECT_EQ(apps[i]->Lookup(key), first->Lookup(key)) << key << " replica " << i;
      }
    }
  }

  SimTransport net;
  VrConfig config;
  std::unique_ptr<KvApp> apps[3];
  std::unique_ptr<VrReplica> replicas[3];
};

// 4 clients x 500 operations with 2% drops: with checkpoints every 64
// entries no replica ever holds more than a few intervals of log; without,
// the log holds everything.
TEST(VrCheckpointTest, LongRunKeepsTheLogBounded) {
  for (uint64_t interval : {uint64_t{0}, uint64_t{64}}) {
    SCOPED_TRACE(interval);
    VrGroup g(1, interval);
    g.net.AddFilter(1, g.net.DropWithProbability(0.02));
    uint64_t most = 0;
    std::function<void()> sample = [&] {
      for (const auto& r : g.replicas) most = std::max<uint64_t>(most, r->log().size());
      g.net.Timer(absl::Milliseconds(1), sample);
    };
    sample();
    Load load(&g.net, g.config.replicas, 4, 500, /*keys=*/48);
    ASSERT_TRUE(g.net.RunUntil([&] { return load.Done(); }, absl::Seconds(60)));
    g.net.RemoveFilter(1);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Agree(); }, absl::Seconds(5)));
    absl::Status lin = CheckLinearizable(load.history());
    EXPECT_TRUE(lin.ok()) << lin;
    g.ExpectSameStores(48);
    for (const auto& r : g.replicas) {
      EXPECT_EQ(r->executed(), 2000u);
      if (interval == 0) {
        EXPECT_EQ(r->log().size(), 2000u);
        EXPECT_EQ(r->stats().checkpoints, 0u);
      } else {
        EXPECT_LE(r->log().size(), 3 * interval);
        EXPECT_GE(r->stats().checkpoints, 2000 / interval - 1);
        EXPECT_LE(r->log().num_client_records(), 4u);
      }
    }
    if (interval > 0) EXPECT_LE(most, 4 * interval);
  }
}

// A follower cut off for 300 operations catches up from the leader's
// checkpoint, copied in 64-byte chunks with 20% of them lost.
TEST(VrCheckpointTest, LaggingFollowerCatchesUpFromACheckpoint) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE(seed);
    VrGroup g(seed, /*interval=*/32, /*chunk=*/64);
    g.net.AddFilter(2, g.net.DropWithProbability(0.2, {.type_id = TypeId<SnapshotReply>()}));
    g.net.AddFilter(1, g.net.Partition({g.config.replicas[2]},
                                       {g.config.replicas[0], g.config.replicas[1]}));
    Load load(&g.net, g.config.replicas, 4, 150, /*keys=*/16);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.replicas[0]->executed() >= 300; },
                               absl::Seconds(30)));
    g.net.RemoveFilter(1);
    ASSERT_TRUE(g.net.RunUntil([&] { return load.Done(); }, absl::Seconds(30)));
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Agree(); }, absl::Seconds(5)));
    EXPECT_GE(g.replicas[2]->stats().snapshots_installed, 1u);
    EXPECT_EQ(g.replicas[2]->executed(), 600u);
    absl::Status lin = CheckLinearizable(load.history());
    EXPECT_TRUE(lin.ok()) << lin;
    g.ExpectSameStores(16);
  }
}

// A follower restarts without state and recovers from the leader's
// checkpoint; then the leader crashes, so the recovered replica is half of
// the view change's quorum.
TEST(VrCheckpointTest, RestartedReplicaRecoversFromACheckpointThenLeaderCrashes) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SCOPED_TRACE(seed);
    VrGroup g(seed, /*interval=*/16, /*chunk=*/128);
    if (seed % 2 == 0) g.net.AddFilter(1, g.net.DropWithProbability(0.03));
    Load load(&g.net, g.config.replicas, 4, 150, /*keys=*/16);
    g.net.Timer(absl::Milliseconds(3), [&] { g.replicas[1].reset(); });
    g.net.Timer(absl::Milliseconds(20), [&] { g.Start(1, /*recovering=*/true); });
    ASSERT_TRUE(g.net.RunUntil(
        [&] { return g.replicas[1] && g.replicas[1]->stats().recoveries == 1; },
        absl::Seconds(30)));
    EXPECT_GE(g.replicas[1]->stats().snapshots_installed, 1u);
    g.replicas[0].reset();
    ASSERT_TRUE(g.net.RunUntil([&] { return load.Done(); }, absl::Seconds(30)));
    g.net.RemoveFilter(1);
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Agree(); }, absl::Seconds(5)));
    EXPECT_EQ(g.replicas[1]->executed(), 600u);
    absl::Status lin = CheckLinearizable(load.history());
    EXPECT_TRUE(lin.ok()) << lin;
    g.ExpectSameStores(16);
  }
}

// The next view's leader is cut off from the other replicas while they
// compact past its commit point; the leader crashes as the cut heals, so
// the other survivor's report starts above the new leader's base: the new
// leader copies its checkpoint (or commits its own prefix) and asks again.
TEST(VrCheckpointTest, NewLeaderBehindTheOthersCompactionPoint) {
  uint64_t rebases = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SCOPED_TRACE(seed);
    VrGroup g(seed, /*interval=*/8, /*chunk=*/96);
    g.net.AddFilter(1, g.net.Partition({g.config.replicas[1]},
                                       {g.config.replicas[0], g.config.replicas[2]}));
    Load load(&g.net, g.config.replicas, 4, 100, /*keys=*/16);
    g.net.Timer(absl::Milliseconds(60), [&] {
      g.net.RemoveFilter(1);
      g.replicas[0].reset();
    });
    ASSERT_TRUE(g.net.RunUntil([&] { return load.Done(); }, absl::Seconds(30)));
    ASSERT_TRUE(g.net.RunUntil([&] { return g.Agree(); }, absl::Seconds(5)));
    EXPECT_EQ(g.replicas[1]->executed(), 400u);
    absl::Status lin = CheckLinearizable(load.history());
    EXPECT_TRUE(lin.ok()) << lin;
    g.ExpectSameStores(16);
    rebases += g.replicas[1]->stats().change_rebases + g.replicas[2]->stats().change_rebases;
  }
  EXPECT_GT(rebases, 0u);
}

}  // namespace
}  // namespace dctk::spaxos
