// Crash tests: a coordinator stopping dead before each protocol step, and a
// primary or backup failing at each step while the coordinator goes on.
// After recovery every transaction reported committed is visible exactly
// once, no other one is visible, and no lock is left behind.
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "farm/core/object.h"
#include "farm/tx/recovery.h"
#include "farm/tx/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::farm::tx {
namespace {

using Client = TxClient<fabric::ShmFabric>;

LocalClusterOptions Options() {
  LocalClusterOptions o;
  o.client.rpc_timeout = absl::Milliseconds(500);
  o.client.outcome_timeout = absl::Seconds(20);
  return o;
}

// Two counters whose regions have different primaries, allocated near regions
// chosen from the table. Returns them with value 0.
std::pair<GlobalAddress, GlobalAddress> TwoCounters(ShmCluster& c, Client& client) {
  std::vector<RegionInfo> regions = c.table().All();
  std::sort(regions.begin(), regions.end(), [](auto& a, auto& b) { return a.id < b.id; });
  const RegionInfo* r1 = &regions[0];
  const RegionInfo* r2 = nullptr;
  for (const RegionInfo& r : regions) {
    if (r.primary().machine != r1->primary().machine) r2 = &r;
  }
  return CountersIn(client, r1->id, r2->id);
}

struct CoordinatorCrash {
  CommitStep step;
  int nth;          // crash before the nth message of that step (0-based)
  bool committed;   // what recovery must decide
};

class CoordinatorCrashTest : public ::testing::TestWithParam<CoordinatorCrash> {};

TEST_P(CoordinatorCrashTest, RecoveryDecidesFromTheLogs) {
  auto c = MakeShmCluster(Options());
  auto& client = c->client(1);
  auto [a, b] = TwoCounters(*c, client);
  int seen = 0;
  client.options().crash_before = [&](CommitStep step, fabric::MachineId) {
    return step == GetParam().step && seen++ == GetParam().nth;
  };
  absl::Status s = Increment(client, a, b);
  ASSERT_TRUE(absl::IsCancelled(s)) << s;
  client.options().crash_before = nullptr;
  absl::StatusOr<RecoveryReport> r = c->Recover({});
  ASSERT_TRUE(r.ok()) << r.status();
  const uint64_t want = GetParam().committed ? 1 : 0;
  EXPECT_EQ(Values(c->client(2), a, b), std::make_pair(want, want));
  // Nothing stays locked: the next increment commits.
  ASSERT_TRUE(Increment(c->client(3), a, b).ok());
  EXPECT_EQ(Values(c->client(2), a, b), std::make_pair(want + 1, want + 1));
}

INSTANTIATE_TEST_SUITE_P(
    EachStep, CoordinatorCrashTest,
    ::testing::Values(CoordinatorCrash{CommitStep::kLock, 0, false},
                      CoordinatorCrash{CommitStep::kLock, 1, false},  // one primary locked
                      CoordinatorCrash{CommitStep::kValidate, 0, false},
                      CoordinatorCrash{CommitStep::kCommitBackup, 0, false},
                      CoordinatorCrash{CommitStep::kCommitBackup, 1, true},  // one backup logged it
                      CoordinatorCrash{CommitStep::kCommitPrimary, 0, true},
                      CoordinatorCrash{CommitStep::kCommitPrimary, 1, true},
                      CoordinatorCrash{CommitStep::kTruncate, 0, true}),
    [](const auto& info) {
      std::string name = CommitStepName(info.param.step);
      name.erase(std::remove(name.begin(), name.end(), '-'), name.end());
      return absl::StrCat(name, info.param.nth);
    });

// A machine fails just before the coordinator's message of `step` to it; the
// coordinator (on a surviving machine) carries on and learns the outcome from
// recovery.
struct MachineCrash {
  CommitStep step;
  bool primary;     // kill a primary (else a backup) of the write set
  int committed;    // 1: must commit, 0: must not, -1: either (depends on message order)
};

class MachineCrashTest : public ::testing::TestWithParam<MachineCrash> {};

TEST_P(MachineCrashTest, CommittedExactlyOnceOrNotAtAll) {
  auto c = MakeShmCluster(Options());
  auto [a, b] = TwoCounters(*c, c->client(1));
  // The coordinator runs on a machine holding no replica of a's region, so
  // that killing a's primary or backup leaves it alive.
  const RegionInfo ra = *c->table().Lookup(a.region());
  fabric::MachineId coordinator = 0;
  for (fabric::MachineId m : {1, 2, 3}) {
    if (m != ra.replicas[0].machine && m != ra.replicas[1].machine) coordinator = m;
  }
  const fabric::MachineId victim = GetParam().primary ? ra.replicas[0].machine : ra.replicas[1].machine;
  auto& client = c->client(coordinator);
  absl::Notification killed;
  client.options().crash_before = [&](CommitStep step, fabric::MachineId target) {
    if (step == GetParam().step && target == victim && !killed.HasBeenNotified()) {
      c->Kill(victim);
      killed.Notify();
    }
    return false;
  };
  absl::Status outcome;
  std::thread coordinator_thread([&] { outcome = Increment(client, a, b); });
  killed.WaitForNotification();
  absl::StatusOr<RecoveryReport> r = c->Recover({victim});
  ASSERT_TRUE(r.ok()) << r.status();
  coordinator_thread.join();
  client.options().crash_before = nullptr;
  if (GetParam().committed == 1) {
    EXPECT_TRUE(outcome.ok()) << outcome;
  } else if (GetParam().committed == 0) {
    EXPECT_TRUE(absl::IsAborted(outcome) || absl::IsUnavailable(outcome) || absl::IsDeadlineExceeded(outcome))
        << outcome;
  } else {
    EXPECT_TRUE(outcome.ok() || absl::IsAborted(outcome)) << outcome;
  }
  const uint64_t want = outcome.ok() ? 1 : 0;
  EXPECT_EQ(Values(client, a, b), std::make_pair(want, want));
  ASSERT_TRUE(Increment(client, a, b).ok());
  EXPECT_EQ(Values(client, a, b), std::make_pair(want + 1, want + 1));
}

INSTANTIATE_TEST_SUITE_P(
    EachStep, MachineCrashTest,
    ::testing::Values(MachineCrash{CommitStep::kLock, true, 0},
                      // Other backups may have logged it first: then it commits.
                      MachineCrash{CommitStep::kCommitBackup, false, -1},
                      MachineCrash{CommitStep::kCommitPrimary, true, 1},
                      MachineCrash{CommitStep::kTruncate, true, 1},
                      MachineCrash{CommitStep::kTruncate, false, 1}),
    [](const auto& info) {
      std::string name = CommitStepName(info.param.step);
      name.erase(std::remove(name.begin(), name.end(), '-'), name.end());
      return absl::StrCat(name, info.param.primary ? "Primary" : "Backup");
    });

TEST(RecoveryTest, PromotedBackupServesCommittedData) {
  auto c = MakeShmCluster(Options());
  auto [a, b] = TwoCounters(*c, c->client(1));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Increment(c->client(1), a, b).ok());
  const RegionInfo before = *c->table().Lookup(a.region());
  const fabric::MachineId victim = before.primary().machine;
  fabric::MachineId reader = 1;
  while (reader == victim) ++reader;
  c->Kill(victim);
  absl::StatusOr<RecoveryReport> r = c->Recover({victim});
  ASSERT_TRUE(r.ok());
  const RegionInfo after = *c->table().Lookup(a.region());
  EXPECT_EQ(after.primary().machine, before.replicas[1].machine);
  EXPECT_EQ(Values(c->client(reader), a, b), std::make_pair(uint64_t{5}, uint64_t{5}));
  ASSERT_TRUE(Increment(c->client(reader), a, b).ok());
  EXPECT_EQ(Values(c->client(reader), a, b), std::make_pair(uint64_t{6}, uint64_t{6}));
}

// The coordinator truncated the transaction at one backup and stopped before
// truncating it at the other; then the primary of both written regions
// fails. The truncated backup dropped its record, so the other backup holds
// the only surviving record, of one region only: recovery must still commit
// (the truncation proves the commit), or the promoted backup loses its half.
TEST(RecoveryTest, TruncatedAtOneBackupCommitsAtTheOther) {
  LocalClusterOptions o = Options();
  o.machines = 4;
  o.regions = 12;
  auto c = MakeShmCluster(o);
  // Two regions with the same primary and different backups.
  const auto pair = RegionPair(*c, [](const RegionInfo& x, const RegionInfo& y) {
    return x.primary().machine == y.primary().machine &&
           x.replicas[1].machine < y.replicas[1].machine;
  });
  ASSERT_TRUE(pair.has_value()) << "placement gave no machine two regions with different backups";
  const RegionInfo* r1 = &pair->first;
  const RegionInfo* r2 = &pair->second;
  const fabric::MachineId primary = r1->primary().machine;
  const fabric::MachineId late_backup = r2->replicas[1].machine;
  fabric::MachineId coordinator = 1;
  while (coordinator == primary) ++coordinator;
  auto& client = c->client(coordinator);
  auto [a, b] = CountersIn(client, r1->id, r2->id);
  // TRUNCATE goes out in machine order: r1's backup has it, r2's does not.
  client.options().crash_before = [&](CommitStep step, fabric::MachineId target) {
    return step == CommitStep::kTruncate && target == late_backup;
  };
  absl::Status s = Increment(client, a, b);
  ASSERT_TRUE(absl::IsCancelled(s)) << s;
  client.options().crash_before = nullptr;
  c->Kill(primary);
  absl::StatusOr<RecoveryReport> r = c->Recover({primary});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Values(client, a, b), std::make_pair(uint64_t{1}, uint64_t{1}));
  ASSERT_TRUE(Increment(client, a, b).ok());
  EXPECT_EQ(Values(client, a, b), std::make_pair(uint64_t{2}, uint64_t{2}));
}

// Lock recovery: the coordinator stops before the COMMIT-PRIMARY of one
// primary, after the other applied it (committed there, readers see it);
// then the first primary fails. Until recovery resolves the transaction, its
// object at the promoted backup is locked, so no read returns the state from
// before the commit; then both counters show it.
TEST(RecoveryTest, PromotedBackupLocksWhatAnotherPrimaryCommitted) {
  auto c = MakeShmCluster(Options());
  auto [a, b] = TwoCounters(*c, c->client(1));
  const RegionInfo ra = *c->table().Lookup(a.region()), rb = *c->table().Lookup(b.region());
  // COMMIT-PRIMARY goes out in machine order: the later primary fails.
  const bool a_fails = ra.primary().machine > rb.primary().machine;
  const GlobalAddress lost = a_fails ? a : b, kept = a_fails ? b : a;
  const RegionInfo& lost_region = a_fails ? ra : rb;
  const fabric::MachineId victim = lost_region.primary().machine;
  const fabric::MachineId promoted = lost_region.replicas[1].machine;
  fabric::MachineId coordinator = 1;
  while (coordinator == victim) ++coordinator;
  auto& client = c->client(coordinator);
  client.options().crash_before = [&](CommitStep step, fabric::MachineId target) {
    return step == CommitStep::kCommitPrimary && target == victim;
  };
  absl::Status s = Increment(client, a, b);
  ASSERT_TRUE(absl::IsCancelled(s)) << s;
  client.options().crash_before = nullptr;
  {
    auto tx = client.Begin();
    absl::StatusOr<std::string> v = tx.Read(kept, 8);
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_EQ(AsU64(*v), 1u) << "the other primary applied COMMIT-PRIMARY";
  }
  c->Kill(victim);
  client.options().max_locked_reads = 4;
  absl::StatusOr<RecoveryReport> r = c->Recover({victim}, [&] {
    ASSERT_EQ(c->table().Lookup(lost.region())->primary().machine, promoted);
    absl::StatusOr<uint8_t*> obj = c->machine(promoted).participant().ObjectAt(lost);
    ASSERT_TRUE(obj.ok()) << obj.status();
    EXPECT_TRUE(IsLocked(__atomic_load_n(reinterpret_cast<uint64_t*>(*obj), __ATOMIC_ACQUIRE)));
    auto tx = client.Begin();
    absl::StatusOr<std::string> v = tx.Read(lost, 8);
    EXPECT_TRUE(absl::IsAborted(v.status()))
        << (v.ok() ? absl::StrCat("read ", AsU64(*v)) : v.status().ToString());
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->committed, 1);
  client.options().max_locked_reads = 256;
  EXPECT_EQ(Values(client, a, b), std::make_pair(uint64_t{1}, uint64_t{1}));
  ASSERT_TRUE(Increment(client, a, b).ok());
  EXPECT_EQ(Values(client, a, b), std::make_pair(uint64_t{2}, uint64_t{2}));
}

// LocalCluster installs each configuration with the CM's removed machines
// at the participants, as farmd does: once the CM removed machine 3, its
// coordinator (still running here) has its LOCKs refused, and OUTCOME of the
// transaction it left mid-commit is refused naming the removal, never
// answered from an outcome kept for a coordinator recovery already settled.
TEST(RecoveryTest, ARemovedCoordinatorIsRefusedAndItsOutcomesAreNotKept) {
  auto c = MakeShmCluster(Options());
  auto [a, b] = TwoCounters(*c, c->client(1));
  ASSERT_TRUE(Increment(c->client(1), a, b).ok());
  Client& removed = c->client(3);
  removed.options().crash_before = [](CommitStep step, fabric::MachineId) {
    return step == CommitStep::kCommitPrimary;
  };
  TxId stopped = 0;
  absl::Status s = Transfer(removed, a, b, a, &stopped);
  ASSERT_TRUE(absl::IsCancelled(s)) << s;
  removed.options().crash_before = nullptr;
  absl::StatusOr<RecoveryReport> r = c->Recover({3});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->committed, 1);

  s = Increment(removed, a, b);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find(
                absl::StrCat("coordinator 3 is not a member of configuration ", c->config())),
            std::string::npos)
      << s;
  for (fabric::MachineId m : {1, 2}) {
    const Reply outcome = c->machine(m).participant().QueryOutcome({c->config(), stopped, {}});
    EXPECT_EQ(outcome.code, static_cast<int>(absl::StatusCode::kFailedPrecondition))
        << "machine " << m << ": " << outcome.message;
    EXPECT_NE(outcome.message.find(absl::StrCat("coordinator 3 of transaction ", stopped,
                                                " was removed (configuration ", c->config())),
              std::string::npos)
        << outcome.message;
  }
  EXPECT_EQ(Values(c->client(1), a, b), std::make_pair(uint64_t{0}, uint64_t{2}))
      << "recovery commits the transfer (every backup logged it)";
}

TEST(RecoveryTest, DecisionRule) {
  LockRequest lock{1, 42, {1, 2}, {{GlobalAddress(1, 0), 1, EntryKind::kWrite, 64, "a"}}};
  LockRequest backup2{1, 42, {1, 2}, {{GlobalAddress(2, 0), 1, EntryKind::kWrite, 64, "b"}}};
  // LOCK records only: never reached a backup -> abort.
  auto d = DecideInFlight({{42, 1, LogType::kLock, false, lock}}, {});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_FALSE(d[0].commit);
  // A COMMIT-BACKUP, and every region held -> commit with both entries.
  d = DecideInFlight({{42, 1, LogType::kLock, false, lock}, {42, 3, LogType::kCommitBackup, false, backup2}}, {});
  EXPECT_TRUE(d[0].commit);
  EXPECT_EQ(d[0].entries.size(), 2u);
  // A COMMIT-BACKUP but region 1's entries are gone and nobody knows it
  // committed (a truncation would have told) -> abort (never reported).
  d = DecideInFlight({{42, 3, LogType::kCommitBackup, false, backup2}}, {});
  EXPECT_FALSE(d[0].commit);
  // Known committed somewhere -> commit.
  d = DecideInFlight({{42, 3, LogType::kCommitBackup, false, backup2}}, {42});
  EXPECT_TRUE(d[0].commit);
}

}  // namespace
}  // namespace dctk::farm::tx
