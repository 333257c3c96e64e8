// Per-region recovery (RecoverRegions through LocalCluster::Recover): a
// failure stops only the regions whose replicas changed. While a region the
// failed machine was primary of is still recovering (its in-flight
// transaction not yet resolved, its requests refused), a transaction on a
// region held only by surviving machines commits; afterwards the recovered
// region holds the decided outcome and serves again.
#include "farm/tx/recovery.h"

#include "farm/tx/test_util.h"
#include "gtest/gtest.h"

namespace dctk::farm::tx {
namespace {

using Client = TxClient<fabric::ShmFabric>;

// An 8-byte counter set to 0 in `region`.
GlobalAddress Counter(Client& client, RegionId region) {
  auto tx = client.Begin();
  absl::StatusOr<GlobalAddress> a = tx.Alloc(8, GlobalAddress(region, 0));
  EXPECT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->region(), region);
  EXPECT_TRUE(tx.Write(*a, U64(0)).ok());
  EXPECT_TRUE(tx.Commit().ok());
  return *a;
}

absl::Status Add(Client& client, GlobalAddress a) {
  auto tx = client.Begin();
  absl::StatusOr<std::string> v = tx.Read(a, 8);
  if (!v.ok()) return v.status();
  absl::Status s = tx.Write(a, U64(AsU64(*v) + 1));
  return s.ok() ? tx.Commit() : s;
}

uint64_t Value(Client& client, GlobalAddress a) {
  auto tx = client.Begin();
  absl::StatusOr<std::string> v = tx.Read(a, 8);
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? AsU64(*v) : 99;
}

TEST(ChangedRegionsTest, ReplicaListsThatDiffer) {
  cm::Configuration before, after;
  for (uint32_t id : {1, 2, 3}) {
    cm::Region* r = before.add_regions();
    r->set_id(id);
    r->add_replicas()->set_machine(1);
    r->add_replicas()->set_machine(id == 1 ? 2 : 3);
  }
  after = before;
  after.mutable_regions(1)->mutable_replicas()->RemoveLast();  // 3 removed
  after.mutable_regions(2)->mutable_replicas(1)->set_copying(true);  // not a change of members
  after.add_regions()->set_id(4);
  EXPECT_EQ(ChangedRegions(before, after), (std::vector<RegionId>{2, 4}));
  EXPECT_TRUE(ChangedRegions(before, before).empty());
}

TEST(RecoveryRegionsTest, AnUntouchedRegionCommitsWhileATouchedOneRecovers) {
  LocalClusterOptions o;
  o.regions = 12;
  o.client.rpc_timeout = absl::Milliseconds(500);
  o.client.outcome_timeout = absl::Seconds(20);
  auto c = MakeShmCluster(o);
  // `touched`: primary on machine 3 (which fails), its backup survives;
  // `untouched`: both copies on machines 1 and 2.
  RegionId touched = 0, untouched = 0;
  for (const RegionInfo& r : c->table().All()) {
    bool on3 = false;
    for (const Replica& rep : r.replicas) on3 |= rep.machine == 3;
    if (r.primary().machine == 3) touched = r.id;
    if (!on3) untouched = r.id;
  }
  ASSERT_NE(touched, 0u);
  ASSERT_NE(untouched, 0u);
  Client& c1 = c->client(1);
  Client& c2 = c->client(2);
  const GlobalAddress t = Counter(c1, touched);
  const GlobalAddress t2 = Counter(c1, touched);
  const GlobalAddress u = Counter(c1, untouched);

  // A coordinator stops dead after COMMIT-BACKUP: t stays locked at machine
  // 3, and the surviving backup's record makes recovery commit it.
  c1.options().crash_before = [](CommitStep step, fabric::MachineId) { return step == CommitStep::kCommitPrimary; };
  ASSERT_TRUE(absl::IsCancelled(Add(c1, t)));
  c1.options().crash_before = nullptr;
  c->Kill(3);

  bool ran = false;
  absl::StatusOr<RecoveryReport> r = c->Recover({3}, [&] {
    ran = true;
    // The touched region still recovers: its requests are refused...
    absl::Status s = Add(c2, t2);
    EXPECT_TRUE(absl::IsUnavailable(s)) << s;
    EXPECT_NE(s.message().find(absl::StrCat("region ", touched, " is recovering")), std::string::npos) << s;
    // ...while transactions on the untouched one commit.
    for (int i = 0; i < 10; ++i) {
      s = Add(c1, u);
      EXPECT_TRUE(s.ok()) << s;
    }
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(ran);
  EXPECT_EQ(r->in_flight, 1);
  EXPECT_EQ(r->committed, 1);
  EXPECT_EQ(Value(c2, u), 10u);
  EXPECT_EQ(Value(c2, t), 1u) << "the in-flight transaction was decided committed";
  // The touched region serves again, nothing left locked.
  ASSERT_TRUE(Add(c2, t).ok());
  ASSERT_TRUE(Add(c2, t2).ok());
  EXPECT_EQ(Value(c1, t), 2u);
  EXPECT_EQ(Value(c1, t2), 1u);
}

// A transaction of the new configuration that locked objects of an
// untouched region during recovery is not collected or decided by it: it
// finishes on its own.
TEST(RecoveryRegionsTest, TheNewConfigurationsTransactionsAreNotRecovered) {
  LocalClusterOptions o;
  o.regions = 12;
  auto c = MakeShmCluster(o);
  RegionId untouched = 0;
  for (const RegionInfo& r : c->table().All()) {
    bool on3 = false;
    for (const Replica& rep : r.replicas) on3 |= rep.machine == 3;
    if (!on3) untouched = r.id;
  }
  ASSERT_NE(untouched, 0u);
  Client& c1 = c->client(1);
  const GlobalAddress u = Counter(c1, untouched);
  c->Kill(3);
  absl::StatusOr<RecoveryReport> r = c->Recover({3}, [&] {
    // Stops after LOCK and VALIDATE: its locks are held while recovery resolves.
    c1.options().crash_before = [](CommitStep step, fabric::MachineId) { return step == CommitStep::kCommitBackup; };
    EXPECT_TRUE(absl::IsCancelled(Add(c1, u)));
    c1.options().crash_before = nullptr;
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->in_flight, 0) << "recovery decided a transaction of the new configuration";
  // Its lock is still held (its coordinator could still finish it): a
  // conflicting transaction aborts, and the next recovery decides it.
  EXPECT_TRUE(absl::IsAborted(Add(c->client(2), u)));
  absl::StatusOr<RecoveryReport> again = c->Recover({});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->in_flight, 1);
  EXPECT_EQ(again->aborted, 1);
  ASSERT_TRUE(Add(c->client(2), u).ok());
  EXPECT_EQ(Value(c1, u), 1u);
}

// A reconfiguration that changes no replicas (a machine joined) still
// decides the older configurations' transactions: until it has, OUTCOME
// must not say "recovered into the new configuration" (a coordinator would
// read that as "no record survived: not committed").
TEST(RecoveryRegionsTest, OutcomeSaysRecoveringUntilTheDecisionsAreInEvenWithNoRegionRecovering) {
  RegionTable table;
  absl::StatusOr<std::unique_ptr<TxLog>> log = TxLog::Open("", FsyncPolicy::kNever);
  ASSERT_TRUE(log.ok());
  Participant p(/*self=*/1, &table, log->get());
  p.SetConfig(1);
  p.BeginRecovery(2, {});
  EXPECT_EQ(p.QueryOutcome(TxRequest{2, 42}).aux, 0u);
  p.FinishRecovery();
  EXPECT_EQ(p.QueryOutcome(TxRequest{2, 42}).aux, 2u);
}

// The removed members of the configuration a recovery moves to: until they
// are known every LOCK of it waits (a removed client may have learned the new
// id), then only the removed coordinators are refused, during the recovery
// already (farmd installs them from BLOCK's RecoveryScope).
TEST(RecoveryRegionsTest, OnlyRemovedCoordinatorsAreRefusedOnceTheRemovedListIsInstalled) {
  RegionTable table;
  absl::StatusOr<std::unique_ptr<TxLog>> log = TxLog::Open("", FsyncPolicy::kNever);
  ASSERT_TRUE(log.ok());
  Participant p(/*self=*/1, &table, log->get());
  p.InstallConfig(1, {});
  p.BeginRecovery(2, {});
  absl::Status s = StatusOf(p.Lock(LockRequest{2, MakeTxId(7, 0, 1), {}, {}}));
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  p.InstallConfig(2, {100});
  s = StatusOf(p.Lock(LockRequest{2, MakeTxId(7, 0, 2), {}, {}}));
  EXPECT_TRUE(s.ok()) << s;
  s = StatusOf(p.Lock(LockRequest{2, MakeTxId(100, 0, 1), {}, {}}));
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find("coordinator 100 is not a member of configuration 2"),
            std::string::npos)
      << s;
}

}  // namespace
}  // namespace dctk::farm::tx
