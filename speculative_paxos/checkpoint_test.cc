// Log compaction on SimTransport: bounded logs over a long run, lagging and
// restarted replicas catching up through a checkpoint, view changes right
// after compaction and with a new leader below a follower's compaction
// point, and duplicates of compacted requests.
#include <algorithm>

#include "gtest/gtest.h"
#include "speculative_paxos/sim_cluster.h"

namespace dctk::spaxos {
namespace {

using transport::Address;
using transport::Envelope;
using transport::SimTransport;
using transport::TypeId;

SimClusterOptions Options(uint64_t seed, int clients, uint64_t interval) {
  SimClusterOptions o;
  o.seed = seed;
  o.num_clients = clients;
  o.replica.checkpoint_interval = interval;
  o.replica.snapshot_chunk = 64;  // several chunks per checkpoint
  return o;
}

void ExpectHealthy(SimCluster& c) {
  EXPECT_TRUE(c.CheckCommitted().ok()) << c.CheckCommitted();
  EXPECT_TRUE(c.commit_violation().ok()) << c.commit_violation();
  absl::Status lin = CheckLinearizable(c.history());
  EXPECT_TRUE(lin.ok()) << lin;
  for (int i = 0; i < c.num_replicas(); ++i) {
    if (Replica* r = c.replica(i)) {
      EXPECT_EQ(r->stats().rejected[static_cast<int>(Reject::kMergeFailed)], 0u);
    }
  }
}

// Every replica's store equals replica 0's (once converged).
void ExpectSameStores(SimCluster& c, int num_keys) {
  for (int i = 1; i < c.num_replicas(); ++i) {
    for (int k = 0; k < num_keys; ++k) {
      const std::string key = absl::StrCat("k", k);
      EXPECT_EQ(c.app(i)->Lookup(key), c.app(0)->Lookup(key)) << "replica " << i << " " << key;
    }
  }
}

// Largest log (entries held) and undo depth seen, sampled every virtual ms.
struct Peak {
  uint64_t log = 0;
  size_t undo = 0;
};

std::unique_ptr<transport::Timeout> SamplePeaks(SimCluster& c, Peak* peak) {
  auto t = std::make_unique<transport::Timeout>(&c.net(), absl::Milliseconds(1), [&c, peak] {
    for (int i = 0; i < c.num_replicas(); ++i) {
      if (c.replica(i) == nullptr) continue;
      peak->log = std::max(peak->log, c.replica(i)->log().size());
      peak->undo = std::max(peak->undo, c.app(i)->undo_depth());
    }
  });
  t->Start();
  return t;
}

TEST(CheckpointTest, LongRunKeepsLogBounded) {
  // Enough keys that the checker's 64 operations per key suffice.
  constexpr int kOps = 1500, kClients = 3, kKeys = 160;
  for (uint64_t interval : {uint64_t{0}, uint64_t{64}}) {
    SCOPED_TRACE(interval);
    SimCluster c(Options(11, kClients, interval));
    Peak peak;
    auto sampler = SamplePeaks(c, &peak);
    c.StartClosedLoop(kOps, kKeys);
    ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(60)));
    ASSERT_TRUE(c.net().RunUntil([&] { return c.Converged(); }, absl::Seconds(5)));
    sampler.reset();
    ExpectHealthy(c);
    ExpectSameStores(c, kKeys);
    for (int i = 0; i < 3; ++i) {
      const Replica& r = *c.replica(i);
      EXPECT_EQ(r.log().end(), uint64_t{kOps * kClients});
      if (interval == 0) {
        EXPECT_EQ(r.log().size(), r.log().end());  // nothing dropped
        EXPECT_EQ(r.stats().checkpoints, 0u);
      } else {
        // Entries since the previous checkpoint only. A checkpoint is taken
        // at the first commit at least `interval` past the last one, and one
        // sync commits up to a few dozen entries here.
        EXPECT_LE(r.log().size(), 3 * interval);
        EXPECT_GE(r.stats().checkpoints, uint64_t{kOps * kClients / (2 * interval)});
        EXPECT_EQ(r.log().num_client_records(), size_t{kClients});
        EXPECT_GT(r.checkpoint_bytes(), 0u);
      }
    }
    if (interval > 0) {
      // As above, plus what is speculative between two syncs.
      EXPECT_LE(peak.log, 4 * interval);
      EXPECT_LE(peak.undo, 64u);
    } else {
      EXPECT_EQ(peak.log, uint64_t{kOps * kClients});
    }
  }
}

TEST(CheckpointTest, LaggingReplicaCatchesUpFromCheckpoint) {
  SimCluster c(Options(12, 2, 16));
  std::vector<Address> rest = {c.replica_address(0), c.replica_address(1),
                               c.client(0).address(), c.client(1).address()};
  c.net().AddFilter(1, c.net().Partition({c.replica_address(2)}, rest));
  c.StartClosedLoop(100, 16);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(10)));
  ASSERT_GT(c.replica(0)->log().base(), c.replica(2)->log().end());
  c.net().RemoveFilter(1);
  c.StartClosedLoop(20, 16);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(10)));
  ASSERT_TRUE(c.net().RunUntil([&] { return c.Converged(); }, absl::Seconds(5)));
  EXPECT_GE(c.replica(2)->stats().snapshots_installed, 1u);
  EXPECT_EQ(c.replica(2)->stats().rejected[static_cast<int>(Reject::kMergeFailed)], 0u);
  ExpectHealthy(c);
  ExpectSameStores(c, 16);
}

TEST(CheckpointTest, RestartedReplicaRecoversFromCheckpoint) {
  SimCluster c(Options(13, 2, 16));
  c.StartClosedLoop(60, 16);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(10)));
  c.Crash(1);
  c.Restart(1);  // state lost
  c.StartClosedLoop(60, 16);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(10)));
  ASSERT_TRUE(c.net().RunUntil([&] { return c.Converged(); }, absl::Seconds(5)));
  EXPECT_GE(c.replica(1)->stats().snapshots_installed, 1u);
  EXPECT_GT(c.replica(1)->log().base(), 0u);
  ExpectHealthy(c);
  ExpectSameStores(c, 16);
}

TEST(CheckpointTest, ViewChangeRightAfterCompaction) {
  for (uint64_t seed = 20; seed < 30; ++seed) {
    SCOPED_TRACE(seed);
    SimCluster c(Options(seed, 3, 8));
    c.StartClosedLoop(80, 16);
    // The instant the leader has compacted its log for the second time.
    ASSERT_TRUE(c.net().RunUntil([&] { return c.replica(0)->log().base() > 0; },
                                 absl::Seconds(10)));
    c.Crash(0);
    ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(10)));
    ASSERT_TRUE(c.net().RunUntil([&] { return c.Converged(); }, absl::Seconds(5)));
    EXPECT_GE(c.replica(1)->stats().view_changes, 1u);
    c.Restart(0);
    c.StartClosedLoop(20, 16);
    ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(10)));
    ASSERT_TRUE(c.net().RunUntil([&] { return c.Converged(); }, absl::Seconds(5)));
    ExpectHealthy(c);
    ExpectSameStores(c, 16);
  }
}

// Replica 1, the next view's leader, gets no commits (and, with
// `no_requests`, no requests) while the others commit and compact; then the
// leader crashes. The new leader's base is below the others' compaction
// point: it commits that prefix from its own log, or fetches a checkpoint.
void RunNewLeaderBelowCompaction(bool no_requests) {
  SimClusterOptions o = Options(14, 2, 16);
  o.replica.leader_timeout = absl::Seconds(1);
  SimCluster c(o);
  SimTransport& net = c.net();
  const Address r1 = c.replica_address(1);
  net.AddFilter(1, [&, r1](const Address&, const Address& to, const Envelope& msg,
                           absl::Duration*) {
    if (to != r1) return true;
    if (msg.Is<SyncPrepare>() || msg.Is<SyncCommit>()) return false;
    return !(no_requests && (msg.Is<Request>() || msg.Is<RequestBatch>()));
  });
  c.StartClosedLoop(50, 16);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(10)));
  ASSERT_GT(c.replica(2)->log().base(), c.replica(1)->commit_point());
  net.RemoveFilter(1);
  c.Crash(0);
  c.StartClosedLoop(20, 16);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(10)));
  ASSERT_TRUE(net.RunUntil([&] { return c.Converged(); }, absl::Seconds(5)));
  EXPECT_EQ(c.Leader(), 1);
  EXPECT_GE(c.replica(1)->stats().change_rebases, 1u);
  EXPECT_EQ(c.replica(1)->stats().snapshots_installed, no_requests ? 1u : 0u);
  ExpectHealthy(c);
  for (int k = 0; k < 16; ++k) {
    const std::string key = absl::StrCat("k", k);
    EXPECT_EQ(c.app(1)->Lookup(key), c.app(2)->Lookup(key)) << key;
  }
}

TEST(CheckpointTest, NewLeaderHoldsCompactedPrefix) { RunNewLeaderBelowCompaction(false); }
TEST(CheckpointTest, NewLeaderFetchesCheckpoint) { RunNewLeaderBelowCompaction(true); }

// Sends raw requests (replies go to the address the log recorded).
class Sender : public transport::TransportReceiver {
 public:
  void ReceiveMessage(const Address&, const Envelope&) override {}
};

// Appends every Reply replica -> `to` passing the net to `out`.
SimTransport::Filter RecordReplies(const Address& to, std::vector<Reply>* out) {
  return [to, out](const Address&, const Address& dst, const Envelope& msg, absl::Duration*) {
    if (dst != to) return true;
    Reply r;
    ReplyBatch b;
    if (msg.Is<Reply>() && msg.Parse(&r)) out->push_back(r);
    if (msg.Is<ReplyBatch>() && msg.Parse(&b)) {
      for (const Reply& x : b.replies()) out->push_back(x);
    }
    return true;
  };
}

TEST(CheckpointTest, DuplicateOfCompactedRequestGetsItsReply) {
  SimCluster c(Options(15, 1, 8));
  KvResult first;
  c.Invoke(0, KvApp::Cas("k", absl::nullopt, "v"), [&](const KvResult& r) { first = r; });
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(1)));
  ASSERT_TRUE(first.ok());
  c.StartClosedLoop(40, 16);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(5)));
  ASSERT_TRUE(c.net().RunUntil([&] { return c.Converged(); }, absl::Seconds(5)));
  // One client: request id i is at slot i. Entries up to the compaction
  // point are gone; the newest of them is the client's record.
  const uint64_t base = c.replica(0)->log().base();
  ASSERT_GT(base, 1u);
  const LogEntry* record = c.replica(0)->log().Find(1000, base);
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(record->slot, base);
  EXPECT_TRUE(record->op.empty());
  Sender sender;
  ASSERT_TRUE(c.net().Register(&sender, Address(0x0a000201, 9000), {}).ok());
  std::vector<Reply> replies;
  c.net().AddFilter(1, RecordReplies(c.client(0).address(), &replies));
  // Its duplicate (as if the client had lost every reply) gets the reply.
  Request dup;
  dup.set_client_id(1000);
  dup.set_request_id(base);
  dup.set_op(KvApp::Get("k0"));
  ASSERT_TRUE(c.net().Send(&sender, c.replica_address(0), dup).ok());
  c.net().RunUntilIdle();
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_TRUE(replies[0].committed());
  EXPECT_EQ(replies[0].slot(), base);
  EXPECT_EQ(replies[0].hash(), record->hash);
  EXPECT_EQ(replies[0].result(), record->result);
  // The answer the client got for that request (its base-th operation).
  EXPECT_EQ(record->result, c.history()[base - 1].result.SerializeAsString());
  replies.clear();
  Request stale;
  stale.set_client_id(1000);
  stale.set_request_id(1);
  stale.set_op(KvApp::Cas("k", absl::nullopt, "v"));
  const uint64_t before = c.replica(0)->stats().rejected[static_cast<int>(Reject::kStaleRequest)];
  ASSERT_TRUE(c.net().Send(&sender, c.replica_address(0), stale).ok());
  c.net().RunUntilIdle();
  EXPECT_TRUE(replies.empty());  // older than the client's newest: ignored
  EXPECT_EQ(c.replica(0)->stats().rejected[static_cast<int>(Reject::kStaleRequest)], before + 1);
  EXPECT_EQ(c.replica(0)->log().end(), 41u);  // never executed twice
  c.net().RemoveFilter(1);
  c.net().Unregister(&sender);
  ExpectHealthy(c);
}

}  // namespace
}  // namespace dctk::spaxos
