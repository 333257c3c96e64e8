// Speculative Paxos on SimTransport: normal case, sync, and each fault alone.
#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "speculative_paxos/sim_cluster.h"

namespace dctk::spaxos {
namespace {

using transport::SimTransport;
using transport::TypeId;

SimClusterOptions Options(uint64_t seed, int clients = 1) {
  SimClusterOptions o;
  o.seed = seed;
  o.num_clients = clients;
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

TEST(ReplicaTest, NormalCaseCompletesInOneRoundTrip) {
  SimCluster c(Options(1));
  KvResult got;
  c.Invoke(0, KvApp::Put("k", "v"));
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(1)));
  c.Invoke(0, KvApp::Get("k"), [&](const KvResult& r) { got = r; });
  const absl::Time start = c.net().Now();
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(1)));
  // One request and one reply: two one-way latencies of virtual time.
  EXPECT_EQ(c.net().Now() - start, 2 * SimTransport::kDefaultLatency);
  EXPECT_EQ(got.value(), "v");
  EXPECT_EQ(c.client(0).stats().fast_path, 2u);
  EXPECT_EQ(c.client(0).stats().resends, 0u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c.replica(i)->log().end(), 2u);
  ExpectHealthy(c);
}

TEST(ReplicaTest, MulticastRequests) {
  SimClusterOptions o = Options(2);
  o.multicast = true;
  SimCluster c(o);
  c.StartClosedLoop(20, 2);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(1)));
  EXPECT_EQ(c.client(0).stats().fast_path, 20u);
  ExpectHealthy(c);
}

TEST(ReplicaTest, RequestsThroughMomGroup) {
  SimClusterOptions o = Options(2, 2);
  o.mom = true;
  SimCluster c(o);
  c.StartClosedLoop(20, 2);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(1)));
  EXPECT_EQ(c.client(0).stats().fast_path + c.client(1).stats().fast_path, 40u);
  for (int i = 0; i < 3; ++i) {
    ASSERT_NE(c.replica(i)->mom_receiver(), nullptr);
    EXPECT_EQ(c.replica(i)->mom_receiver()->stats().delivered, 40u) << "replica " << i;
  }
  ExpectHealthy(c);
}

TEST(ReplicaTest, SharedEndpointBatchesRequestsAndReplies) {
  SimClusterOptions o = Options(4, 4);
  o.shared_endpoint = true;
  SimCluster c(o);
  c.StartClosedLoop(20, 4);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(1)));
  uint64_t fast = 0;
  for (int j = 0; j < 4; ++j) fast += c.client(j).stats().fast_path;
  EXPECT_EQ(fast, 80u);  // every request of a batch still completes on a superquorum
  // 80 requests to 3 replicas; after the first round (sent one by one) the
  // four clients' requests leave together, and replies come back together.
  const ClientEndpointStats& s = c.endpoint()->stats();
  EXPECT_EQ(s.requests, 240u);
  EXPECT_LT(s.request_datagrams, 240u / 3);
  EXPECT_LT(s.reply_datagrams, 240u / 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c.replica(i)->log().end(), 80u);
  ExpectHealthy(c);
}

TEST(ReplicaTest, SharedEndpointBatchesStayWithinTheDatagramBudget) {
  SimClusterOptions o = Options(6, 12);
  o.shared_endpoint = true;
  SimCluster c(o);
  size_t largest = 0;
  uint64_t batches = 0;
  c.net().AddFilter(1, [&](const transport::Address&, const transport::Address&,
                           const transport::Envelope& msg, absl::Duration*) {
    if (msg.Is<RequestBatch>()) {
      ++batches;
      largest = std::max(largest, msg.payload().size() + transport::kFrameHeaderSize);
    }
    return true;
  });
  // Twelve 300-byte PUTs issued together: one batch would be ~3.8 KB.
  for (int j = 0; j < 12; ++j) {
    c.Invoke(j, KvApp::Put("k" + std::to_string(j), std::string(300, 'v')));
  }
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(1)));
  EXPECT_LE(largest, static_cast<size_t>(ClientEndpoint::kDefaultMaxDatagram));
  EXPECT_GE(batches, 3u * 3);  // at least three batches to each replica
  for (int j = 0; j < 12; ++j) EXPECT_EQ(c.client(j).stats().fast_path, 1u);
  ExpectHealthy(c);
}

TEST(ReplicaTest, SharedEndpointRefusesADatagramBudgetOutOfBounds) {
  SimTransport net(1);
  for (int budget : {255, 65508}) {
    ClientEndpoint endpoint(&net, transport::Address(0x0a000101, 8000), {}, budget);
    const absl::Status s = endpoint.Start();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message(), absl::StrCat("ClientEndpoint max_datagram: ", budget,
                                        " bytes, need 256 .. 65507 (UDP payload)"));
  }
  EXPECT_TRUE(ClientEndpoint::CheckMaxDatagram(256).ok());
  EXPECT_TRUE(ClientEndpoint::CheckMaxDatagram(65507).ok());
}

TEST(ReplicaTest, SharedEndpointUnderReordering) {
  SimClusterOptions o = Options(5, 4);
  o.shared_endpoint = true;
  SimCluster c(o);
  c.net().AddFilter(1, c.net().Reorder(0.2, absl::Microseconds(100)));
  c.StartClosedLoop(25, 3);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(2)));
  c.net().RemoveFilter(1);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(1), [&] { return c.Converged(); }));
  ExpectHealthy(c);
}

TEST(ReplicaTest, SyncCommitsPrefixAndTellsApp) {
  SimCluster c(Options(3, 2));
  c.StartClosedLoop(30, 3);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(1)));
  c.net().RunFor(absl::Milliseconds(10));  // a few sync rounds
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(c.replica(i)->commit_point(), 60u) << "replica " << i;
    EXPECT_EQ(c.app(i)->undo_depth(), 0u) << "replica " << i;
    EXPECT_EQ(c.replica(i)->log().At(60)->state, EntryState::kCommitted);
  }
  ExpectHealthy(c);
}

TEST(ReplicaTest, ReorderingDivergesThenReconciles) {
  SimCluster c(Options(4, 4));
  c.net().AddFilter(1, c.net().Reorder(0.2, absl::Microseconds(200),
                                       {.type_id = TypeId<Request>()}));
  c.StartClosedLoop(40, 3);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(5)));
  uint64_t reconciliations = 0, slow = 0;
  for (int i = 0; i < 3; ++i) reconciliations += c.replica(i)->stats().reconciliations;
  for (int j = 0; j < 4; ++j) slow += c.client(j).stats().slow_path;
  EXPECT_GT(reconciliations, 0u);
  EXPECT_GT(slow, 0u);
  c.net().RemoveFilter(1);
  ASSERT_TRUE(c.net().RunUntil([&] { return c.Converged(); }, absl::Seconds(1)));
  ExpectHealthy(c);
}

// Replicas `misordered` get client 0's request 20 us late, after client 1's.
void Misorder(SimCluster& c, std::vector<int> misordered) {
  for (int r : misordered) {
    c.net().AddFilter(r, c.net().Delay(absl::Microseconds(20),
                                       {.type_id = TypeId<Request>(),
                                        .from = c.client(0).address(),
                                        .to = c.replica_address(r)}));
  }
  c.Invoke(0, KvApp::Put("k", "a"));
  c.Invoke(1, KvApp::Put("k", "b"));
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(1)));
}

TEST(ReplicaTest, OneMisorderedFollowerAdoptsLeadersOrder) {
  SimCluster c(Options(9, 2));
  Misorder(c, {2});
  // The clients' replies disagree, they ask the leader, whose immediate sync
  // carries its order; replica 2 adopts it and answers again: both complete
  // on a superquorum, with no transfer and no reconciliation.
  EXPECT_EQ(c.replica(2)->stats().order_repairs, 1u);
  EXPECT_EQ(c.client(0).stats().fast_path + c.client(1).stats().fast_path, 2u);
  EXPECT_EQ(c.client(0).stats().resends + c.client(1).stats().resends, 0u);
  EXPECT_EQ(c.replica(0)->stats().reconciliations, 0u);
  c.net().RemoveFilter(2);
  ASSERT_TRUE(c.net().RunUntil([&] { return c.Converged(); }, absl::Seconds(1)));
  EXPECT_EQ(c.replica(2)->stats().transfers, 0u);
  EXPECT_EQ(c.app(2)->Lookup("k"), c.app(0)->Lookup("k"));
  ExpectHealthy(c);
}

TEST(ReplicaTest, WithFiveReplicasMisorderedFollowersCopyTheCommit) {
  // f = 2: a superquorum (4) may exclude the leader, so followers never adopt
  // its order. Two misordered followers leave no superquorum; the leader
  // commits with f+1 and replicas 2 and 3 copy the committed prefix.
  SimClusterOptions o = Options(9, 2);
  o.num_replicas = 5;
  SimCluster c(o);
  Misorder(c, {2, 3});
  EXPECT_EQ(c.replica(2)->stats().order_repairs + c.replica(3)->stats().order_repairs, 0u);
  EXPECT_EQ(c.client(0).stats().slow_path + c.client(1).stats().slow_path, 2u);
  EXPECT_EQ(c.replica(0)->stats().reconciliations, 0u);
  c.net().RemoveFilter(2);
  c.net().RemoveFilter(3);
  ASSERT_TRUE(c.net().RunUntil([&] { return c.Converged(); }, absl::Seconds(1)));
  EXPECT_EQ(c.replica(2)->stats().transfers, 1u);
  EXPECT_EQ(c.replica(3)->stats().transfers, 1u);
  EXPECT_EQ(c.app(2)->Lookup("k"), c.app(0)->Lookup("k"));
  ExpectHealthy(c);
}

TEST(ReplicaTest, DropsAndDuplicates) {
  SimCluster c(Options(5, 3));
  c.net().AddFilter(1, c.net().DropWithProbability(0.05));
  c.net().AddFilter(2, c.net().Duplicate(0.1));
  c.StartClosedLoop(40, 3);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(10)));
  c.net().RemoveFilter(1);
  ASSERT_TRUE(c.net().RunUntil([&] { return c.Converged(); }, absl::Seconds(1)));
  ExpectHealthy(c);
}

TEST(ReplicaTest, LeaderCrashCausesViewChange) {
  SimCluster c(Options(6, 2));
  c.StartClosedLoop(20, 2);
  c.net().RunFor(absl::Milliseconds(2));
  c.Crash(0);
  c.StartClosedLoop(20, 2);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(5)));
  ASSERT_NE(c.replica(1), nullptr);
  EXPECT_GE(c.replica(1)->stamp().view, 1u);
  EXPECT_EQ(c.Leader(), 1);
  ExpectHealthy(c);
}

TEST(ReplicaTest, RestartedReplicaRecoversByStateTransfer) {
  SimCluster c(Options(7, 2));
  c.StartClosedLoop(20, 2);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(1)));
  c.Crash(2);
  c.StartClosedLoop(20, 2);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(5)));
  c.Restart(2);
  ASSERT_TRUE(c.net().RunUntil(
      [&] { return c.replica(2)->status() == ReplicaStatus::kNormal; }, absl::Seconds(1)));
  c.StartClosedLoop(10, 2);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(5), [&] { return c.Converged(); }));
  EXPECT_EQ(c.replica(2)->commit_point(), c.replica(0)->commit_point());
  EXPECT_EQ(c.app(2)->Lookup("k0"), c.app(0)->Lookup("k0"));
  ExpectHealthy(c);
}

TEST(ReplicaTest, MinorityPartitionOfLeaderHeals) {
  SimCluster c(Options(8, 2));
  c.StartClosedLoop(10, 2);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(1)));
  c.net().AddFilter(1, c.net().Partition({c.replica_address(0)},
                                         {c.replica_address(1), c.replica_address(2)}));
  // The fast path needs no leader, so requests keep completing; the silent
  // leader is replaced all the same.
  c.StartClosedLoop(20, 2);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(5), [&] { return c.Leader() == 1; }));
  c.net().RemoveFilter(1);
  c.StartClosedLoop(10, 2);
  ASSERT_TRUE(c.RunUntilIdleClients(absl::Seconds(5), [&] { return c.Converged(); }));
  EXPECT_EQ(c.replica(0)->stamp(), c.replica(1)->stamp());
  ExpectHealthy(c);
}

// After a log change replicas answer the clients of the new log at once
// (replica_change.cc): with a resend timeout of 200 ms, a client that
// completes within a few virtual ms and never resent did not wait for it.
constexpr absl::Duration kLongResend = absl::Milliseconds(200);
constexpr absl::Duration kSoon = absl::Milliseconds(5);

SimClusterOptions LongResendOptions(uint64_t seed, int clients) {
  SimClusterOptions o = Options(seed, clients);
  o.resend_timeout = kLongResend;
  return o;
}

// The leader never gets client 0's request, so the client's reconcile
// request starts a reconciliation, whose merged log takes the request from a
// follower's report. From then on `silent` replica's replies to the client
// are lost: replica 0 (the leader), so the followers' answers on installing
// the log must complete it; or replica 2, so the leader's answer once it
// commits must (with replica 1's).
void ExpectReconciliationAnswersAtOnce(uint32_t silent) {
  SimCluster c(LongResendOptions(11, 1));
  c.net().AddFilter(1, c.net().DropAll({.type_id = TypeId<Request>(),
                                        .from = c.client(0).address(),
                                        .to = c.replica_address(0)}));
  const absl::Time start = c.net().Now();
  c.Invoke(0, KvApp::Put("k", "v"));
  ASSERT_TRUE(c.net().RunUntil([&] { return c.replica(0)->stats().reconciliations > 0; }, kSoon));
  c.net().AddFilter(
      2, c.net().DropAll({.from = c.replica_address(silent), .to = c.client(0).address()}));
  ASSERT_TRUE(c.RunUntilIdleClients(kSoon));
  EXPECT_LT(c.net().Now() - start, kSoon);
  EXPECT_EQ(c.client(0).stats().resends, 0u);
  EXPECT_EQ(c.client(0).stats().slow_path, 1u);
  EXPECT_EQ(c.replica(0)->stats().reconciliations, 1u);
  EXPECT_EQ(c.replica(0)->stats().view_changes, 0u);
  c.net().RemoveFilter(1);
  c.net().RemoveFilter(2);
  ASSERT_TRUE(c.net().RunUntil([&] { return c.Converged(); }, absl::Seconds(1)));
  ExpectHealthy(c);
}

TEST(ReplicaTest, AfterReconciliationFollowersAnswerAtOnce) {
  ExpectReconciliationAnswersAtOnce(0);
}

TEST(ReplicaTest, AfterReconciliationLeaderAnswersOnCommit) {
  ExpectReconciliationAnswersAtOnce(2);
}

TEST(ReplicaTest, RequestDroppedByTheMergedLogRunsAgainAtOnce) {
  SimCluster c(LongResendOptions(12, 2));
  // Client 1's request misses the leader: its reconcile request starts a
  // reconciliation. Replica 2 hears of it late, so the leader merges its own
  // and replica 1's reports; client 0's request reaches replicas 0 and 1
  // only after the change, so the merged log lacks it, and replica 2, which
  // executed it before, must run it again after installing the log.
  c.net().AddFilter(1, c.net().DropAll({.type_id = TypeId<Request>(),
                                        .from = c.client(1).address(),
                                        .to = c.replica_address(0)}));
  c.net().AddFilter(2, c.net().Delay(absl::Milliseconds(1), {.type_id = TypeId<StartChange>(),
                                                             .to = c.replica_address(2)}));
  for (int r : {0, 1}) {
    c.net().AddFilter(3 + r, c.net().Delay(absl::Microseconds(500), {.type_id = TypeId<Request>(),
                                                                     .from = c.client(0).address(),
                                                                     .to = c.replica_address(r)}));
  }
  const absl::Time start = c.net().Now();
  c.Invoke(1, KvApp::Put("a", "1"));
  c.Invoke(0, KvApp::Put("b", "2"));
  ASSERT_TRUE(c.RunUntilIdleClients(kSoon));
  EXPECT_LT(c.net().Now() - start, kSoon);
  EXPECT_EQ(c.replica(0)->stats().reconciliations, 1u);
  EXPECT_GE(c.replica(2)->stats().rolled_back, 1u);  // it held client 0's request
  // Replica 2 answers again in the new log, in the slot the others give it:
  // a superquorum, no resend, no slow path.
  EXPECT_EQ(c.client(0).stats().fast_path, 1u);
  EXPECT_EQ(c.client(0).stats().resends + c.client(1).stats().resends, 0u);
  for (int f = 1; f <= 4; ++f) c.net().RemoveFilter(f);
  ASSERT_TRUE(c.net().RunUntil([&] { return c.Converged(); }, absl::Seconds(1)));
  EXPECT_EQ(c.replica(2)->stats().transfers, 0u);
  EXPECT_EQ(c.app(2)->Lookup("b"), c.app(0)->Lookup("b"));
  ExpectHealthy(c);
}

TEST(ReplicaTest, AfterViewChangeOutstandingRequestsCompleteAtOnce) {
  SimCluster c(LongResendOptions(13, 2));
  c.Crash(0);
  // No superquorum without the leader: both requests wait for the view change.
  c.Invoke(0, KvApp::Put("a", "1"));
  c.Invoke(1, KvApp::Put("b", "2"));
  ASSERT_TRUE(c.net().RunUntil([&] { return c.Leader() == 1; }, kLongResend / 2));
  EXPECT_FALSE(c.ClientsIdle());
  const absl::Time changed = c.net().Now();
  ASSERT_TRUE(c.RunUntilIdleClients(kSoon));
  EXPECT_LT(c.net().Now() - changed, kSoon);
  for (int j = 0; j < 2; ++j) {
    EXPECT_EQ(c.client(j).stats().resends, 0u) << "client " << j;
    EXPECT_EQ(c.client(j).stats().slow_path, 1u) << "client " << j;
  }
  ExpectHealthy(c);
}

}  // namespace
}  // namespace dctk::spaxos
