#include "farm/cm/config_state.h"

#include <set>

#include "gtest/gtest.h"

namespace dctk::farm::cm {
namespace {

ConfigState ThreeMachines(int regions) {
  ConfigState cm;
  EXPECT_EQ(cm.Execute(InitCommand(2, 8 << 20, 100)).code(), 0);
  for (uint32_t m = 1; m <= 3; ++m) EXPECT_EQ(cm.Execute(JoinCommand(m, "ep" + std::to_string(m), "", 0)).code(), 0);
  for (int i = 0; i < regions; ++i) EXPECT_EQ(cm.Execute(CreateRegionCommand()).code(), 0);
  return cm;
}

TEST(ConfigStateTest, PlacesRegionsOnDistinctMachines) {
  ConfigState cm = ThreeMachines(12);
  ASSERT_EQ(cm.config().regions_size(), 12);
  std::set<uint32_t> primaries;
  for (const Region& r : cm.config().regions()) {
    ASSERT_EQ(r.replicas_size(), 2);
    EXPECT_NE(r.replicas(0).machine(), r.replicas(1).machine());
    primaries.insert(r.replicas(0).machine());
  }
  EXPECT_GT(primaries.size(), 1u);
}

TEST(ConfigStateTest, ExpiredLeasePromotesBackups) {
  ConfigState cm = ThreeMachines(12);
  const Configuration before = cm.config();
  EXPECT_EQ(cm.Execute(RenewCommand(1, 90)).code(), 0);
  EXPECT_EQ(cm.Execute(RenewCommand(2, 90)).code(), 0);
  Result r = cm.Execute(TickCommand(150));  // machine 3's lease ended at 100
  ASSERT_EQ(r.code(), 0) << r.message();
  ASSERT_EQ(r.removed_size(), 1);
  EXPECT_EQ(r.removed(0), 3u);
  EXPECT_GT(r.config().id(), before.id());
  for (int i = 0; i < before.regions_size(); ++i) {
    const Region& old = before.regions(i);
    const Region& now = r.config().regions(i);
    std::vector<uint32_t> expect;
    for (const Replica& rep : old.replicas()) {
      if (rep.machine() != 3) expect.push_back(rep.machine());
    }
    ASSERT_EQ(now.replicas_size(), static_cast<int>(expect.size()));
    for (size_t j = 0; j < expect.size(); ++j) EXPECT_EQ(now.replicas(j).machine(), expect[j]);
    EXPECT_FALSE(now.lost());
  }
  // A removed machine cannot come back under the same id.
  EXPECT_EQ(cm.Execute(JoinCommand(3, "ep3", "", 200)).code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(cm.Execute(RenewCommand(3, 200)).code(), static_cast<int>(absl::StatusCode::kNotFound));
}

// A slow machine whose renewals arrive late, but each before its lease ran
// out, stays a member; only a missed lease removes it.
TEST(ConfigStateTest, LateButNotMissedRenewalsKeepTheLease) {
  ConfigState cm = ThreeMachines(3);
  const uint64_t id = cm.config().id();
  for (int64_t now = 99; now < 1000; now += 99) {  // each renewal 1 ms before expiry
    for (uint32_t m = 1; m <= 3; ++m) ASSERT_EQ(cm.Execute(RenewCommand(m, now)).code(), 0);
    Result r = cm.Execute(TickCommand(now + 99));
    EXPECT_EQ(r.removed_size(), 0) << "at " << now;
  }
  EXPECT_EQ(cm.config().id(), id);
  // A renewal stamped with an older time never shortens a lease.
  ASSERT_EQ(cm.Execute(RenewCommand(1, 0)).code(), 0);
  EXPECT_EQ(cm.Execute(TickCommand(1080)).removed_size(), 0);
  Result r = cm.Execute(TickCommand(1091));  // leases ran out at 990 + 100
  EXPECT_EQ(r.removed_size(), 3);
}

// A machine a coordinator suspects keeps the lease it holds (the CM never
// removes a machine before its lease runs out: it may still be serving) but
// gets no renewal, so the Tick after that lease removes it and promotes its
// backups. Only storage members can be suspected.
TEST(ConfigStateTest, SuspectedMachineIsRemovedWhenItsLeaseRunsOut) {
  ConfigState cm = ThreeMachines(3);
  EXPECT_EQ(cm.Execute(JoinCommand(100, "ep100", "", 0, /*client=*/true)).code(), 0);
  const uint64_t id = cm.config().id();
  for (uint32_t m : {1u, 2u, 3u, 100u}) EXPECT_EQ(cm.Execute(RenewCommand(m, 50)).code(), 0);  // leases to 150
  Result r = cm.Execute(SuspectCommand(2, /*by=*/100));
  ASSERT_EQ(r.code(), 0) << r.message();
  EXPECT_EQ(r.config().id(), id) << "no machine acts differently yet";
  Result renew = cm.Execute(RenewCommand(2, 60));
  EXPECT_EQ(renew.code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_NE(renew.message().find("suspected"), std::string::npos) << renew.message();
  EXPECT_EQ(cm.Execute(JoinCommand(2, "ep2", "", 60)).code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  for (uint32_t m : {1u, 3u, 100u}) EXPECT_EQ(cm.Execute(RenewCommand(m, 120)).code(), 0);
  EXPECT_EQ(cm.Execute(TickCommand(140)).removed_size(), 0) << "removed before its lease ran out";
  r = cm.Execute(TickCommand(160));
  ASSERT_EQ(r.removed_size(), 1);
  EXPECT_EQ(r.removed(0), 2u);
  EXPECT_GT(r.config().id(), id);
  EXPECT_EQ(cm.Execute(SuspectCommand(2, 100)).code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_EQ(cm.Execute(SuspectCommand(100, 1)).code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
}

TEST(ConfigStateTest, ClientsAreLeasedButHoldNoRegions) {
  ConfigState cm;
  cm.Execute(InitCommand(2, 8 << 20, 100));
  cm.Execute(JoinCommand(1, "ep1", "", 0));
  cm.Execute(JoinCommand(2, "ep2", "", 0));
  cm.Execute(JoinCommand(100, "client", "", 0, /*client=*/true));
  for (int i = 0; i < 8; ++i) ASSERT_EQ(cm.Execute(CreateRegionCommand()).code(), 0);
  for (const Region& r : cm.config().regions()) {
    for (const Replica& rep : r.replicas()) EXPECT_NE(rep.machine(), 100u);
  }
  cm.Execute(RenewCommand(1, 90));
  cm.Execute(RenewCommand(2, 90));
  Result r = cm.Execute(TickCommand(150));
  ASSERT_EQ(r.removed_size(), 1);
  EXPECT_EQ(r.removed(0), 100u);
  for (const Region& region : r.config().regions()) EXPECT_EQ(region.replicas_size(), 2);
}

// A client with nothing unfinished leaves as it joined: no configuration
// change, no failed entry, and its id may join again (a later client).
TEST(ConfigStateTest, AClientThatLeavesIsNotAFailureAndItsIdJoinsAgain) {
  ConfigState cm = ThreeMachines(3);
  const Configuration before = cm.config();
  ASSERT_EQ(cm.Execute(JoinCommand(100, "ep100", "", 0, /*client=*/true)).code(), 0);
  Result r = cm.Execute(LeaveCommand(100));
  ASSERT_EQ(r.code(), 0) << r.message();
  EXPECT_EQ(r.removed_size(), 0);
  EXPECT_EQ(r.config().id(), before.id());
  EXPECT_EQ(r.config().failed_size(), 0);
  // As before it joined, but for the incarnation its Join issued.
  Configuration after = r.config();
  EXPECT_GT(after.last_incarnation(), before.last_incarnation());
  after.set_last_incarnation(before.last_incarnation());
  EXPECT_EQ(after.SerializeAsString(), before.SerializeAsString());
  // A Tick past its lease removes nothing: it is gone already.
  for (uint32_t m : {1u, 2u, 3u}) ASSERT_EQ(cm.Execute(RenewCommand(m, 150)).code(), 0);
  EXPECT_EQ(cm.Execute(TickCommand(200)).removed_size(), 0);
  // Another client under the same id, at another endpoint.
  r = cm.Execute(JoinCommand(100, "ep100-again", "", 200, /*client=*/true));
  ASSERT_EQ(r.code(), 0) << r.message();
  ASSERT_EQ(r.config().machines_size(), 4);
  EXPECT_EQ(r.config().machines(3).endpoint(), "ep100-again");
}

uint64_t IncarnationOf(const Configuration& c, uint32_t machine) {
  for (const Machine& m : c.machines()) {
    if (m.id() == machine) return m.incarnation();
  }
  ADD_FAILURE() << "machine " << machine << " is not a member";
  return 0;
}

// Every Join that admits a member issues an incarnation higher than any
// before it (a client's coordinator incarnation: a later client under a
// reused id outranks every earlier one), above every start time in
// microseconds, from the commands alone: replicas agree.
TEST(ConfigStateTest, JoinsIssueIncarnationsHigherThanEveryEarlierOne) {
  ConfigState cm = ThreeMachines(3);
  const uint64_t year_2100_us = 4102444800ull * 1000000;
  uint64_t last = 0;
  for (const Machine& m : cm.config().machines()) {
    EXPECT_GT(m.incarnation(), last) << "machine " << m.id();
    last = m.incarnation();
  }
  const uint64_t config = cm.config().id();
  std::vector<uint64_t> issued;
  for (int i = 0; i < 3; ++i) {
    Result r = cm.Execute(JoinCommand(100, "ep100", "", 10 * i, /*client=*/true));
    ASSERT_EQ(r.code(), 0) << r.message();
    issued.push_back(IncarnationOf(r.config(), 100));
    EXPECT_GT(issued.back(), last) << "join " << i;
    EXPECT_GT(issued.back(), year_2100_us);
    last = issued.back();
    // A Join again while a member (same endpoint) renews; it issues nothing.
    r = cm.Execute(JoinCommand(100, "ep100", "", 10 * i + 1, /*client=*/true));
    EXPECT_EQ(IncarnationOf(r.config(), 100), issued.back());
    ASSERT_EQ(cm.Execute(LeaveCommand(100)).code(), 0);
  }
  EXPECT_EQ(cm.config().id(), config) << "clients joined and left without a reconfiguration";
  // A removal bumps the configuration; later joins stay above.
  ASSERT_EQ(cm.Execute(RemoveMachineCommand(3)).code(), 0);
  Result r = cm.Execute(JoinCommand(101, "ep101", "", 50, /*client=*/true));
  EXPECT_GT(IncarnationOf(r.config(), 101), last);

  ConfigState replica = ThreeMachines(3);
  for (int i = 0; i < 3; ++i) {
    replica.Execute(JoinCommand(100, "elsewhere", "", 1000 * i, /*client=*/true));
    EXPECT_EQ(IncarnationOf(replica.config(), 100), issued[i]) << "join " << i;
    replica.Execute(LeaveCommand(100));
  }
}

// A fresh CM (restarted with the machines) issues low incarnations while
// the cluster is down; restoring the cluster issues its members' again,
// above every one the machines' files' configuration had issued.
TEST(ConfigStateTest, RestoringFromFilesIssuesIncarnationsAboveTheFilesOnes) {
  ConfigState old = ThreeMachines(2);
  ASSERT_EQ(old.Execute(JoinCommand(100, "ep100", "", 0, /*client=*/true)).code(), 0);
  const uint64_t before = IncarnationOf(old.config(), 100);
  ConfigState cm;
  ASSERT_EQ(cm.Execute(InitCommand(2, 8 << 20, 100)).code(), 0);
  for (uint32_t m = 1; m <= 3; ++m) ASSERT_EQ(cm.Execute(JoinCommand(m, "new", "", 0)).code(), 0);
  ASSERT_EQ(cm.Execute(JoinCommand(100, "ep100-again", "", 0, /*client=*/true)).code(), 0);
  EXPECT_LT(IncarnationOf(cm.config(), 100), before) << "a fresh state's first ones are low";
  Result r = cm.Execute(InstallRestartPlanCommand(old.config()));
  ASSERT_EQ(r.code(), 0) << r.message();
  for (const Machine& m : r.config().machines()) EXPECT_GT(m.incarnation(), before) << m.id();
}

TEST(ConfigStateTest, AClientLeavingWithUnfinishedTransactionsIsRemovedAsFailed) {
  ConfigState cm = ThreeMachines(3);
  ASSERT_EQ(cm.Execute(JoinCommand(100, "ep100", "", 0, /*client=*/true)).code(), 0);
  const uint64_t id = cm.config().id();
  Result r = cm.Execute(LeaveCommand(100, /*unfinished=*/2));
  ASSERT_EQ(r.code(), 0) << r.message();
  ASSERT_EQ(r.removed_size(), 1);
  EXPECT_EQ(r.removed(0), 100u);
  EXPECT_GT(r.config().id(), id) << "recovery runs into a new configuration";
  ASSERT_EQ(r.config().failed_size(), 1);
  EXPECT_EQ(r.config().failed(0), 100u);
  EXPECT_EQ(cm.Execute(JoinCommand(100, "ep100", "", 10, /*client=*/true)).code(),
            static_cast<int>(absl::StatusCode::kFailedPrecondition));
}

TEST(ConfigStateTest, LeaveOfAnUnknownMemberTwiceOrOfAStorageMachineIsRefused) {
  ConfigState cm = ThreeMachines(3);
  ASSERT_EQ(cm.Execute(JoinCommand(100, "ep100", "", 0, /*client=*/true)).code(), 0);
  const std::string before = cm.Snapshot();
  Result r = cm.Execute(LeaveCommand(7));
  EXPECT_EQ(r.code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_NE(r.message().find("CM Leave: machine 7 is not a member"), std::string::npos)
      << r.message();
  r = cm.Execute(LeaveCommand(2));
  EXPECT_EQ(r.code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_NE(r.message().find("machine 2 is a storage machine"), std::string::npos) << r.message();
  EXPECT_EQ(cm.Snapshot(), before) << "a refused Leave changed the state";
  ASSERT_EQ(cm.Execute(LeaveCommand(100)).code(), 0);
  r = cm.Execute(LeaveCommand(100));
  EXPECT_EQ(r.code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_NE(r.message().find("already left"), std::string::npos) << r.message();
}

TEST(ConfigStateTest, RegionWithNoReplicaLeftIsLost) {
  ConfigState cm = ThreeMachines(3);
  const Region r0 = cm.config().regions(0);
  cm.Execute(RemoveMachineCommand(r0.replicas(0).machine()));
  cm.Execute(RemoveMachineCommand(r0.replicas(1).machine()));
  EXPECT_TRUE(cm.config().regions(0).lost());
}

ConfigState FourMachines(int regions) {
  ConfigState cm;
  EXPECT_EQ(cm.Execute(InitCommand(2, 8 << 20, 100)).code(), 0);
  for (uint32_t m = 1; m <= 4; ++m) EXPECT_EQ(cm.Execute(JoinCommand(m, "ep" + std::to_string(m), "", 0)).code(), 0);
  for (int i = 0; i < regions; ++i) EXPECT_EQ(cm.Execute(CreateRegionCommand()).code(), 0);
  return cm;
}

TEST(ConfigStateTest, AddBackupsRestoresCopiesAfterARemoval) {
  ConfigState cm = FourMachines(12);
  ASSERT_EQ(cm.Execute(RemoveMachineCommand(4)).code(), 0);
  const uint64_t before = cm.config().id();
  int short_regions = 0;
  for (const Region& r : cm.config().regions()) short_regions += r.replicas_size() < 2;
  ASSERT_GT(short_regions, 0);
  Result r = cm.Execute(AddBackupsCommand());
  ASSERT_EQ(r.code(), 0) << r.message();
  EXPECT_EQ(r.added_size(), short_regions);
  EXPECT_EQ(r.config().id(), before + 1);  // one configuration for all of them
  for (const AddedBackup& a : r.added()) EXPECT_NE(a.machine(), 4u);
  for (const Region& region : r.config().regions()) {
    ASSERT_EQ(region.replicas_size(), 2);
    EXPECT_NE(region.replicas(0).machine(), region.replicas(1).machine());
    EXPECT_FALSE(region.replicas(0).copying());
    if (region.replicas(1).copying()) EXPECT_EQ(region.replicas(1).added_in(), before + 1);
  }
  // Nothing short any more: a second AddBackups changes nothing.
  Result again = cm.Execute(AddBackupsCommand());
  EXPECT_EQ(again.added_size(), 0);
  EXPECT_EQ(again.config().id(), before + 1);
  // Same commands, same choices on another replica of the CM.
  ConfigState other = FourMachines(12);
  other.Execute(RemoveMachineCommand(4));
  other.Execute(AddBackupsCommand());
  EXPECT_EQ(other.Snapshot(), cm.Snapshot());
}

TEST(ConfigStateTest, CopyingBackupIsNeverPromoted) {
  ConfigState cm = FourMachines(12);
  cm.Execute(RemoveMachineCommand(4));
  Result added = cm.Execute(AddBackupsCommand());
  ASSERT_GT(added.added_size(), 0);
  const AddedBackup a = added.added(0);
  uint32_t primary = 0;
  for (const Region& r : cm.config().regions()) {
    if (r.id() == a.region()) primary = r.replicas(0).machine();
  }
  // The primary fails before the new backup finished copying: no complete
  // copy is left, so the region is lost rather than served from a partial one.
  ASSERT_EQ(cm.Execute(RemoveMachineCommand(primary)).code(), 0);
  for (const Region& r : cm.config().regions()) {
    if (r.id() == a.region()) EXPECT_TRUE(r.lost());
  }
}

TEST(ConfigStateTest, CaughtUpBackupCountsAndIsPromoted) {
  ConfigState cm = FourMachines(12);
  cm.Execute(RemoveMachineCommand(4));
  Result added = cm.Execute(AddBackupsCommand());
  ASSERT_GT(added.added_size(), 0);
  const uint64_t added_in = added.config().id();
  const AddedBackup a = added.added(0);
  // A stale or wrong CaughtUp is refused.
  EXPECT_EQ(cm.Execute(CaughtUpCommand(a.region(), a.machine(), added_in - 1)).code(),
            static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(cm.Execute(CaughtUpCommand(a.region(), 4, added_in)).code(),
            static_cast<int>(absl::StatusCode::kNotFound));
  Result up = cm.Execute(CaughtUpCommand(a.region(), a.machine(), added_in));
  ASSERT_EQ(up.code(), 0) << up.message();
  EXPECT_EQ(up.config().id(), added_in);  // no machine acts differently
  EXPECT_EQ(cm.Execute(CaughtUpCommand(a.region(), a.machine(), added_in)).code(),
            static_cast<int>(absl::StatusCode::kFailedPrecondition));
  uint32_t primary = 0;
  for (const Region& r : cm.config().regions()) {
    if (r.id() == a.region()) primary = r.replicas(0).machine();
  }
  cm.Execute(RemoveMachineCommand(primary));
  for (const Region& r : cm.config().regions()) {
    if (r.id() != a.region()) continue;
    EXPECT_FALSE(r.lost());
    ASSERT_GE(r.replicas_size(), 1);
    EXPECT_EQ(r.replicas(0).machine(), a.machine());
  }
}

TEST(ConfigStateTest, AddBackupsWithNoSpareMachineAddsNothing) {
  ConfigState cm = ThreeMachines(6);
  cm.Execute(RemoveMachineCommand(3));
  Result r = cm.Execute(AddBackupsCommand());
  ASSERT_EQ(r.code(), 0);
  for (const Region& region : r.config().regions()) EXPECT_EQ(region.replicas_size(), 2);
  cm.Execute(RemoveMachineCommand(2));
  const uint64_t id = cm.config().id();
  r = cm.Execute(AddBackupsCommand());  // one machine left: one copy is all there can be
  EXPECT_EQ(r.added_size(), 0);
  EXPECT_EQ(r.config().id(), id);
}

TEST(ConfigStateTest, SameCommandsSameState) {
  ConfigState a = ThreeMachines(5), b = ThreeMachines(5);
  a.Execute(SetReplicaKeyCommand(1, a.config().regions(0).replicas(0).machine(), 9));
  b.Execute(SetReplicaKeyCommand(1, b.config().regions(0).replicas(0).machine(), 9));
  EXPECT_EQ(a.Snapshot(), b.Snapshot());
}

TEST(ConfigStateTest, BadCommands) {
  ConfigState cm;
  EXPECT_EQ(cm.Execute(CreateRegionCommand()).code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  Result r;
  ASSERT_TRUE(r.ParseFromString(cm.Execute(absl::string_view("\xff\xff garbage"))));
  EXPECT_EQ(r.code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  cm.Execute(InitCommand(2, 8 << 20, 100));
  EXPECT_EQ(cm.Execute(JoinCommand(0, "x", "", 0)).code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(cm.Execute(SetReplicaKeyCommand(42, 1, 1)).code(), static_cast<int>(absl::StatusCode::kNotFound));
}

TEST(ReplicatedConfigStateTest, RollbackUndoesSpeculativeSlots) {
  ReplicatedConfigState rs;
  rs.Execute(1, InitCommand(2, 8 << 20, 100).SerializeAsString());
  rs.Execute(2, JoinCommand(1, "a", "", 0).SerializeAsString());
  const std::string after2 = rs.state().Snapshot();
  rs.Execute(3, JoinCommand(2, "b", "", 0).SerializeAsString());
  rs.Execute(4, CreateRegionCommand().SerializeAsString());
  rs.Rollback(2);
  EXPECT_EQ(rs.state().Snapshot(), after2);
  rs.Commit(2);
  rs.Execute(3, JoinCommand(3, "c", "", 0).SerializeAsString());
  ASSERT_EQ(rs.state().config().machines_size(), 2);
  EXPECT_EQ(rs.state().config().machines(1).id(), 3u);
}

// The replicated CM (Speculative Paxos in the integration) may execute a
// Leave speculatively and roll it back: the client is a member again, and
// the Leave executed in its agreed slot gives every replica the same state.
TEST(ReplicatedConfigStateTest, ASpeculativeLeaveRolledBackLeavesTheClientAMember) {
  ReplicatedConfigState rs;
  rs.Execute(1, InitCommand(2, 8 << 20, 100).SerializeAsString());
  rs.Execute(2, JoinCommand(1, "a", "", 0).SerializeAsString());
  rs.Execute(3, JoinCommand(100, "c", "", 0, /*client=*/true).SerializeAsString());
  const std::string after3 = rs.state().Snapshot();
  Result left;
  ASSERT_TRUE(left.ParseFromString(rs.Execute(4, LeaveCommand(100).SerializeAsString())));
  ASSERT_EQ(left.code(), 0) << left.message();
  EXPECT_EQ(rs.state().config().machines_size(), 1);
  rs.Rollback(3);
  EXPECT_EQ(rs.state().Snapshot(), after3);
  rs.Execute(4, RenewCommand(100, 10).SerializeAsString());
  rs.Execute(5, LeaveCommand(100).SerializeAsString());
  rs.Commit(5);
  ConfigState replay;
  replay.Execute(InitCommand(2, 8 << 20, 100));
  replay.Execute(JoinCommand(1, "a", "", 0));
  replay.Execute(JoinCommand(100, "c", "", 0, /*client=*/true));
  replay.Execute(RenewCommand(100, 10));
  replay.Execute(LeaveCommand(100));
  EXPECT_EQ(rs.state().Snapshot(), replay.Snapshot());
}

TEST(ReplicatedConfigStateTest, SnapshotIsTheStateAfterItsSlotAndRestoreReplacesAll) {
  ReplicatedConfigState rs;
  rs.Execute(1, InitCommand(2, 8 << 20, 100).SerializeAsString());
  rs.Execute(2, JoinCommand(1, "a", "", 0).SerializeAsString());
  const std::string after2 = rs.state().Snapshot();
  rs.Execute(3, JoinCommand(2, "b", "", 0).SerializeAsString());
  rs.Commit(2);
  EXPECT_EQ(rs.Snapshot(2), after2);  // slot 3 ran speculatively: not in it
  EXPECT_EQ(rs.Snapshot(3), rs.state().Snapshot());

  ReplicatedConfigState other;
  ASSERT_TRUE(other.Restore(rs.Snapshot(2)).ok());
  EXPECT_EQ(other.state().Snapshot(), after2);
  other.Execute(3, JoinCommand(2, "b", "", 0).SerializeAsString());
  EXPECT_EQ(other.state().Snapshot(), rs.state().Snapshot());
  other.Rollback(2);  // nothing below the restored state to undo
  EXPECT_EQ(other.state().Snapshot(), after2);

  EXPECT_FALSE(other.Restore("\xff not a configuration").ok());
  EXPECT_EQ(other.state().Snapshot(), after2);  // kept
}

// A whole-cluster restart over a surviving (replicated) state: once every
// storage machine is gone and regions are lost, BeginRestart lets the
// removed machines join again under their ids, and InstallRestartPlan
// places the regions where their files hold them.
TEST(ConfigStateTest, BeginRestartThenInstallRestartPlan) {
  ConfigState cm = ThreeMachines(3);
  const Configuration before = cm.config();
  EXPECT_EQ(cm.Execute(BeginRestartCommand()).code(), static_cast<int>(absl::StatusCode::kFailedPrecondition))
      << "storage machines are members";
  EXPECT_EQ(cm.Execute(JoinCommand(100, "client", "", 0, /*client=*/true)).code(), 0);
  EXPECT_EQ(cm.Execute(RenewCommand(100, 1000)).code(), 0);
  Result down = cm.Execute(TickCommand(500));
  ASSERT_EQ(down.removed_size(), 3) << down.ShortDebugString();
  for (const Region& r : cm.config().regions()) EXPECT_TRUE(r.lost());
  EXPECT_EQ(cm.Execute(JoinCommand(1, "ep1b", "", 600)).code(), static_cast<int>(absl::StatusCode::kFailedPrecondition))
      << "not restarting yet: a removed id stays out";

  Result begin = cm.Execute(BeginRestartCommand());
  ASSERT_EQ(begin.code(), 0) << begin.message();
  EXPECT_TRUE(begin.config().restarting());
  EXPECT_GT(begin.config().id(), down.config().id());
  EXPECT_EQ(cm.Execute(BeginRestartCommand()).config().id(), begin.config().id()) << "idempotent";
  for (uint32_t m : {1, 2}) ASSERT_EQ(cm.Execute(JoinCommand(m, "again" + std::to_string(m), "", 600)).code(), 0);

  // Machine 3 did not come back: the plan keeps what 1 and 2 hold.
  Configuration plan = before;
  plan.clear_machines();
  plan.set_id(before.id() + 50);
  plan.add_failed(3);
  for (Region& r : *plan.mutable_regions()) {
    Region kept = r;
    kept.clear_replicas();
    for (const Replica& rep : r.replicas()) {
      if (rep.machine() != 3) *kept.add_replicas() = rep;
    }
    r = kept;
  }
  Configuration wrong = plan;
  wrong.mutable_regions(0)->add_replicas()->set_machine(3);
  EXPECT_EQ(cm.Execute(InstallRestartPlanCommand(wrong)).code(), static_cast<int>(absl::StatusCode::kFailedPrecondition))
      << "machine 3 is not a member";
  wrong = plan;
  wrong.set_lease_ms(7);
  EXPECT_EQ(cm.Execute(InstallRestartPlanCommand(wrong)).code(), static_cast<int>(absl::StatusCode::kInvalidArgument));

  Result done = cm.Execute(InstallRestartPlanCommand(plan));
  ASSERT_EQ(done.code(), 0) << done.message();
  const Configuration& c = done.config();
  EXPECT_FALSE(c.restarting());
  EXPECT_GE(c.id(), plan.id());
  EXPECT_GT(c.id(), begin.config().id());
  ASSERT_EQ(c.machines_size(), 3);  // 1, 2 and the client, with their leases
  EXPECT_EQ(c.machines(0).endpoint(), "again1");
  ASSERT_EQ(c.regions_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(c.regions(i).lost());
    EXPECT_EQ(c.regions(i).replicas_size(), plan.regions(i).replicas_size());
  }
  EXPECT_EQ(std::set<uint32_t>(c.failed().begin(), c.failed().end()), std::set<uint32_t>{3});
  EXPECT_EQ(cm.Execute(JoinCommand(3, "ep3b", "", 700)).code(), static_cast<int>(absl::StatusCode::kFailedPrecondition))
      << "the restart is over";
  EXPECT_EQ(cm.Execute(InstallRestartPlanCommand(plan)).code(), static_cast<int>(absl::StatusCode::kFailedPrecondition))
      << "the cluster runs";
}

// A fresh state (a local CM restarted with the machines) takes a plan too.
TEST(ConfigStateTest, FreshStateInstallsARestartPlan) {
  ConfigState old = ThreeMachines(2);
  ConfigState cm;
  ASSERT_EQ(cm.Execute(InitCommand(2, 8 << 20, 100)).code(), 0);
  for (uint32_t m = 1; m <= 3; ++m) ASSERT_EQ(cm.Execute(JoinCommand(m, "new", "", 0)).code(), 0);
  Result r = cm.Execute(InstallRestartPlanCommand(old.config()));
  ASSERT_EQ(r.code(), 0) << r.message();
  EXPECT_EQ(r.config().regions_size(), 2);
  EXPECT_EQ(r.config().machines(0).endpoint(), "new");
}

TEST(ConfigStateTest, RenewalsRecordTheNewestConfigurationAClientFollows) {
  ConfigState cm;
  cm.Execute(InitCommand(2, 8 << 20, 100));
  cm.Execute(JoinCommand(1, "ep1", "", 0));
  cm.Execute(JoinCommand(100, "client", "", 0, /*client=*/true));
  EXPECT_EQ(cm.config().machines(1).applied_config(), 0u);
  ASSERT_EQ(cm.Execute(RenewCommand(100, 10, 7)).code(), 0);
  EXPECT_EQ(cm.config().machines(1).applied_config(), 7u);
  // A renewal overtaken by a later one (or one that says nothing) lowers nothing.
  ASSERT_EQ(cm.Execute(RenewCommand(100, 20, 5)).code(), 0);
  ASSERT_EQ(cm.Execute(RenewCommand(100, 30)).code(), 0);
  EXPECT_EQ(cm.config().machines(1).applied_config(), 7u);
  EXPECT_EQ(cm.config().machines(1).lease_expiry_ms(), 130);
}

// Clients 100 and 101 with leases to 100 when the wait for configuration 9
// began; storage machines are never waited for (they follow configurations
// through the CM's calls).
TEST(ConfigStateTest, ClientsBehindAreThoseNeitherAcknowledgingNorExpired) {
  ConfigState cm;
  cm.Execute(InitCommand(2, 8 << 20, 100));
  cm.Execute(JoinCommand(1, "ep1", "", 0));
  cm.Execute(JoinCommand(100, "c100", "", 0, /*client=*/true));
  cm.Execute(JoinCommand(101, "c101", "", 0, /*client=*/true));
  const Configuration at_start = cm.config();
  EXPECT_EQ(ClientsBehind(at_start, cm.config(), 9, 50), (std::vector<uint32_t>{100, 101}));
  cm.Execute(RenewCommand(100, 60, 9));  // acknowledges
  cm.Execute(RenewCommand(101, 60, 8));  // renews, still behind
  EXPECT_EQ(ClientsBehind(at_start, cm.config(), 9, 60), (std::vector<uint32_t>{101}));
  // 101's renewal at 60 does not extend the wait: its lease as of the start ran out.
  EXPECT_EQ(ClientsBehind(at_start, cm.config(), 9, 100), (std::vector<uint32_t>{101}));
  EXPECT_TRUE(ClientsBehind(at_start, cm.config(), 9, 101).empty());
  // A client removed meanwhile is not waited for.
  cm.Execute(RemoveMachineCommand(101));
  EXPECT_TRUE(ClientsBehind(at_start, cm.config(), 9, 60).empty());
}

}  // namespace
}  // namespace dctk::farm::cm
