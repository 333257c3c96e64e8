// Locks across failures: a transaction whose write set spans a primary that
// is killed and other machines, killed at each step of its commit; a
// transaction that starts in a new configuration while a backup is still
// recovering into it (the window farmd's CM opens between its RESUMEs); and
// a LOCK that reaches a slow machine after its coordinator gave up. After
// each, no object is locked at any live replica, the transaction is applied
// exactly once or not at all (both counters agree with what the coordinator
// was told), and no outcome is Unknown.
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/notification.h"
#include "farm/core/object.h"
#include "farm/tx/test_util.h"
#include "gtest/gtest.h"

namespace dctk::farm::tx {
namespace {

using Client = TxClient<fabric::ShmFabric>;

LocalClusterOptions Options() {
  LocalClusterOptions o;
  o.client.rpc_timeout = absl::Milliseconds(300);
  o.client.outcome_timeout = absl::Seconds(5);
  return o;
}

GlobalAddress Counter(Client& client, RegionId region) {
  auto tx = client.Begin();
  absl::StatusOr<GlobalAddress> a = tx.Alloc(8, GlobalAddress(region, 0));
  EXPECT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(tx.Write(*a, U64(0)).ok());
  EXPECT_TRUE(tx.Commit().ok());
  return *a;
}

// Every live replica's copy of `addr` is unlocked.
void ExpectUnlockedEverywhere(ShmCluster& c, GlobalAddress addr) {
  const RegionInfo info = *c.table().Lookup(addr.region());
  for (const Replica& r : info.replicas) {
    absl::StatusOr<uint8_t*> obj = c.machine(r.machine).participant().ObjectAt(addr);
    ASSERT_TRUE(obj.ok()) << obj.status();
    const uint64_t header = __atomic_load_n(reinterpret_cast<uint64_t*>(*obj), __ATOMIC_ACQUIRE);
    EXPECT_FALSE(IsLocked(header)) << addr.ToString() << " is locked at machine " << r.machine;
  }
}

bool NotCommitted(const absl::Status& s) {
  return absl::IsAborted(s) || absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s);
}

struct Kill {
  CommitStep step;
  int nth;  // before the coordinator's nth message (0-based) of that step, whatever its target
};

class KillPrimaryAtEachStepTest : public ::testing::TestWithParam<Kill> {};

// a's region's primary is killed mid-commit of an increment of a (there) and
// b (on another primary); the coordinator, on a machine holding no copy of
// a's region, goes on while recovery runs.
TEST_P(KillPrimaryAtEachStepTest, NoLockLeftAndAppliedOnceOrNotAtAll) {
  auto c = MakeShmCluster(Options());
  std::vector<RegionInfo> regions = c->table().All();
  std::sort(regions.begin(), regions.end(), [](auto& x, auto& y) { return x.id < y.id; });
  const RegionInfo ra = regions[0];
  const fabric::MachineId victim = ra.primary().machine;
  fabric::MachineId coordinator = 0;
  for (fabric::MachineId m : {1, 2, 3}) {
    if (m != ra.replicas[0].machine && m != ra.replicas[1].machine) coordinator = m;
  }
  const RegionInfo* rb = nullptr;
  for (const RegionInfo& r : regions) {
    if (r.primary().machine != victim) rb = &r;
  }
  ASSERT_NE(rb, nullptr);
  auto& client = c->client(coordinator);
  const GlobalAddress a = Counter(client, ra.id), b = Counter(client, rb->id);
  ASSERT_TRUE(Increment(client, a, b).ok());  // both at 1

  absl::Notification killed;
  int seen = 0;
  client.options().crash_before = [&](CommitStep step, fabric::MachineId) {
    if (step == GetParam().step && seen++ == GetParam().nth && !killed.HasBeenNotified()) {
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

  EXPECT_TRUE(outcome.ok() || NotCommitted(outcome)) << outcome;
  const uint64_t want = outcome.ok() ? 2 : 1;
  EXPECT_EQ(Values(client, a, b), std::make_pair(want, want)) << outcome;
  ExpectUnlockedEverywhere(*c, a);
  ExpectUnlockedEverywhere(*c, b);
  ASSERT_TRUE(Increment(client, a, b).ok());
  EXPECT_EQ(Values(client, a, b), std::make_pair(want + 1, want + 1));
}

INSTANTIATE_TEST_SUITE_P(
    EachStep, KillPrimaryAtEachStepTest,
    ::testing::Values(Kill{CommitStep::kLock, 0}, Kill{CommitStep::kLock, 1}, Kill{CommitStep::kValidate, 0},
                      Kill{CommitStep::kCommitBackup, 0}, Kill{CommitStep::kCommitBackup, 1},
                      Kill{CommitStep::kCommitPrimary, 0}, Kill{CommitStep::kCommitPrimary, 1},
                      Kill{CommitStep::kTruncate, 0}, Kill{CommitStep::kTruncate, 1}),
    [](const auto& info) {
      std::string name = CommitStepName(info.param.step);
      name.erase(std::remove(name.begin(), name.end(), '-'), name.end());
      return absl::StrCat(name, info.param.nth);
    });

// The main job's failure: after a primary was killed and recovery promoted
// its backup, a coordinator already in the new configuration locks an object
// at the promoted primary while a backup of its write set has not resumed
// yet (farmd's CM resumes the machines one after the other). The backup
// refuses COMMIT-BACKUP ("recovery in progress"), but no recovery will ever
// decide this transaction: the one running collected its records before the
// transaction began. The coordinator must wait for the backup to resume and
// go on, not wait for a decision that never comes (Unknown, locks held).
TEST(RecoveryLocksTest, CommitWhileABackupIsStillResumingIntoTheConfiguration) {
  auto c = MakeShmCluster(Options());
  const fabric::MachineId victim = 3;
  absl::flat_hash_set<RegionId> victims_primary;
  for (const RegionInfo& r : c->table().All()) {
    if (r.primary().machine == victim) victims_primary.insert(r.id);
  }
  c->Kill(victim);
  ASSERT_TRUE(c->Recover({victim}).ok());
  // a: a region whose primary was killed (one copy left, at the promoted
  // backup); b: a region with two live copies, whose backup will lag.
  const RegionInfo* ra = nullptr;
  const RegionInfo* rb = nullptr;
  std::vector<RegionInfo> regions = c->table().All();
  for (const RegionInfo& r : regions) {
    if (victims_primary.contains(r.id) && ra == nullptr) ra = &r;
    if (r.replicas.size() == 2 && rb == nullptr) rb = &r;
  }
  ASSERT_TRUE(ra != nullptr && rb != nullptr);
  const fabric::MachineId lagging = rb->replicas[1].machine;
  auto& client = c->client(1);
  const GlobalAddress a = Counter(client, ra->id), b = Counter(client, rb->id);

  Participant& backup = c->machine(lagging).participant();
  const uint64_t refused_before = backup.stats().refused_config;
  client.options().crash_before = [&](CommitStep step, fabric::MachineId target) {
    if (step == CommitStep::kCommitBackup && target == lagging) backup.Block();  // not resumed yet
    return false;
  };
  // The CM's RESUME reaches the lagging machine once it has refused.
  std::thread resumer([&] {
    while (backup.stats().refused_config == refused_before) absl::SleepFor(absl::Milliseconds(1));
    backup.Resume(c->config());
  });
  const absl::Status outcome = Increment(client, a, b);
  resumer.join();
  client.options().crash_before = nullptr;
  EXPECT_TRUE(outcome.ok()) << outcome;
  const uint64_t want = outcome.ok() ? 1 : 0;
  EXPECT_EQ(Values(client, a, b), std::make_pair(want, want));
  ExpectUnlockedEverywhere(*c, a);
  ExpectUnlockedEverywhere(*c, b);
  ASSERT_TRUE(Increment(c->client(2), a, b).ok());
}

// A LOCK that a slow machine serves after its coordinator timed out on it
// must not keep its locks: the coordinator's ABORT follows it on the ring.
TEST(RecoveryLocksTest, LockServedAfterTheCoordinatorGaveUpIsReleased) {
  auto c = MakeShmCluster(Options());
  std::vector<RegionInfo> regions = c->table().All();
  std::sort(regions.begin(), regions.end(), [](auto& x, auto& y) { return x.id < y.id; });
  // Coordinator on machine 1; a and b on two other machines' primaries.
  const RegionInfo* ra = nullptr;
  const RegionInfo* rb = nullptr;
  for (const RegionInfo& r : regions) {
    if (r.primary().machine == 2 && ra == nullptr) ra = &r;
    if (r.primary().machine == 3 && rb == nullptr) rb = &r;
  }
  ASSERT_TRUE(ra != nullptr && rb != nullptr);
  auto& client = c->client(1);
  const GlobalAddress a = Counter(client, ra->id), b = Counter(client, rb->id);
  const fabric::MachineId slow = 3;
  client.options().crash_before = [&](CommitStep step, fabric::MachineId target) {
    if (step == CommitStep::kLock && target == slow) c->machine(slow).Stop();  // stalls past rpc_timeout
    return false;
  };
  const absl::Status outcome = Increment(client, a, b);
  client.options().crash_before = nullptr;
  EXPECT_TRUE(absl::IsDeadlineExceeded(outcome)) << outcome;
  c->machine(slow).Start();  // serves the late LOCK (and whatever followed it on the ring)
  // This transaction's LOCK at the slow machine queues behind the old one.
  const absl::Status next = Increment(client, a, b);
  ASSERT_TRUE(next.ok()) << next;
  EXPECT_EQ(Values(client, a, b), std::make_pair(uint64_t{1}, uint64_t{1}));
  ExpectUnlockedEverywhere(*c, a);
  ExpectUnlockedEverywhere(*c, b);
}

}  // namespace
}  // namespace dctk::farm::tx
