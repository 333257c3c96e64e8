// Re-replication: after a machine is removed, the CM gives every region short
// of copies a new backup, which copies the region from its primary while
// transactions go on and is then marked caught up.
//   - Bank transfers run from 4 coordinators on machine 1 while machine A is
//     killed, recovered and re-replicated; every region is back at 2 complete
//     copies; then machine B, a former backup promoted to primary by A's
//     failure, is killed too: nothing is lost, the total balance holds and
//     every transfer reported committed is in the balances exactly once.
//   - The copy against concurrent commits, step by step: a chunk copied
//     before a commit (write, free, allocation) and applied after the commit
//     reached the new backup never undoes it.
#include <atomic>
#include <random>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "farm/core/object.h"
#include "farm/tx/test_util.h"
#include "gtest/gtest.h"

namespace dctk::farm::tx {
namespace {

constexpr int kAccounts = 48;
constexpr uint64_t kInitial = 1000;

struct Transfer {
  int from, to;
  uint64_t amount;
};

// Every live object of every region is identical (version and payload) at
// each complete replica.
void ExpectReplicasEqual(ShmCluster& c) {
  for (const cm::Region& region : c.cm().config().regions()) {
    ASSERT_FALSE(region.lost()) << "region " << region.id();
    const fabric::MachineId primary = region.replicas(0).machine();
    auto chunk = c.machine(primary).participant().CopyChunk(region.id(), 0, region.size());
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    for (int i = 1; i < region.replicas_size(); ++i) {
      ASSERT_FALSE(region.replicas(i).copying());
      Participant& backup = c.machine(region.replicas(i).machine()).participant();
      for (const WriteEntry& e : chunk->objects) {
        absl::StatusOr<uint8_t*> obj = backup.ObjectAt(e.addr);
        ASSERT_TRUE(obj.ok()) << "region " << region.id() << " at machine " << region.replicas(i).machine()
                              << ": " << obj.status();
        uint64_t header;
        std::memcpy(&header, *obj, 8);
        EXPECT_EQ(VersionOf(header), e.version + 1) << e.addr.ToString();
        std::string data(e.data.size(), '\0');
        ExtractPayload(*obj, data.data(), data.size());
        EXPECT_EQ(data, e.data) << e.addr.ToString();
      }
    }
  }
}

// A region whose primary is `m` and whose backup is another machine that is
// not `keep`: killing `m` promotes that backup.
fabric::MachineId PromotedBackupIfKilled(const cm::Configuration& c, fabric::MachineId m, fabric::MachineId keep) {
  for (const cm::Region& r : c.regions()) {
    if (r.replicas_size() < 2 || r.replicas(0).machine() != m) continue;
    if (r.replicas(1).machine() != keep) return r.replicas(1).machine();
  }
  return 0;
}

TEST(RereplicationTest, TwoFailuresUnderBankTransfers) {
  LocalClusterOptions o;
  o.machines = 4;
  o.regions = 8;
  o.clients_per_machine = 4;
  o.client.rpc_timeout = absl::Milliseconds(500);
  auto c = MakeShmCluster(o);
  std::vector<GlobalAddress> accounts;
  for (int i = 0; i < kAccounts; ++i) {
    auto tx = c->client(1 + i % 4).Begin();
    absl::StatusOr<GlobalAddress> a = tx.Alloc(8);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(tx.Write(*a, U64(kInitial)).ok());
    ASSERT_TRUE(tx.Commit().ok());
    accounts.push_back(*a);
  }
  // First victim: a machine (not 1, where the coordinators run) whose
  // failure promotes a backup that is not machine 1 either; that backup is
  // the second victim.
  fabric::MachineId first = 0, second = 0;
  for (fabric::MachineId m : {2u, 3u, 4u}) {
    second = PromotedBackupIfKilled(c->cm().config(), m, 1);
    if (second != 0) {
      first = m;
      break;
    }
  }
  ASSERT_NE(first, 0u) << "placement gave no region a primary and backup outside machine 1";

  absl::Mutex mu;
  std::vector<Transfer> committed;
  int unknown = 0;
  std::atomic<int> done{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int slot = 0; slot < 4; ++slot) {
    threads.emplace_back([&, slot] {
      auto& client = c->client(1, slot);
      std::mt19937 rng(slot + 1);
      while (!stop.load()) {
        const int from = rng() % kAccounts;
        const int to = (from + 1 + rng() % (kAccounts - 1)) % kAccounts;
        auto tx = client.Begin();
        absl::StatusOr<std::string> a = tx.Read(accounts[from], 8);
        absl::StatusOr<std::string> b = a.ok() ? tx.Read(accounts[to], 8) : a;
        if (!a.ok() || !b.ok()) continue;
        const uint64_t amount = std::min<uint64_t>(AsU64(*a), 1 + rng() % 20);
        absl::Status s = tx.Write(accounts[from], U64(AsU64(*a) - amount));
        if (s.ok()) s = tx.Write(accounts[to], U64(AsU64(*b) + amount));
        if (s.ok()) s = tx.Commit();
        absl::MutexLock l(&mu);
        if (s.ok()) {
          committed.push_back({from, to, amount});
          done.fetch_add(1);
        } else if (absl::IsUnknown(s)) {
          ++unknown;
        }
      }
    });
  }
  auto wait_for = [&](int more) {
    const int target = done.load() + more;
    while (done.load() < target) std::this_thread::yield();
  };

  wait_for(200);
  c->Kill(first);
  absl::StatusOr<RecoveryReport> r = c->Recover({first});
  ASSERT_TRUE(r.ok()) << r.status();
  wait_for(50);
  absl::StatusOr<RereplicationReport> rr = c->Rereplicate(/*chunk_bytes=*/4096);
  ASSERT_TRUE(rr.ok()) << rr.status();
  EXPECT_GT(rr->backups_added, 0);
  EXPECT_GT(rr->objects_copied, 0);
  for (const cm::Region& region : c->cm().config().regions()) {
    ASSERT_EQ(region.replicas_size(), 2) << "region " << region.id();
    for (const cm::Replica& rep : region.replicas()) EXPECT_FALSE(rep.copying());
  }
  wait_for(200);

  bool promoted = false;  // `second` is the primary of a region `first` was primary of
  for (const cm::Region& region : c->cm().config().regions()) promoted |= region.replicas(0).machine() == second;
  EXPECT_TRUE(promoted);
  c->Kill(second);
  r = c->Recover({second});
  ASSERT_TRUE(r.ok()) << r.status();
  for (const cm::Region& region : c->cm().config().regions()) EXPECT_FALSE(region.lost()) << region.id();
  rr = c->Rereplicate(4096);
  ASSERT_TRUE(rr.ok()) << rr.status();
  wait_for(200);
  stop.store(true);
  for (auto& t : threads) t.join();

  for (const cm::Region& region : c->cm().config().regions()) {
    EXPECT_EQ(region.replicas_size(), 2) << "region " << region.id();
  }
  // Backups apply a commit at its TRUNCATE, which may still be queued when
  // the coordinators stop; a reconfiguration settles every record first.
  ASSERT_TRUE(c->Recover({}).ok());
  ExpectReplicasEqual(*c);
  std::vector<int64_t> expect(kAccounts, kInitial);
  for (const Transfer& t : committed) {
    expect[t.from] -= static_cast<int64_t>(t.amount);
    expect[t.to] += static_cast<int64_t>(t.amount);
  }
  auto audit = c->client(1).Begin();
  uint64_t total = 0;
  for (int i = 0; i < kAccounts; ++i) {
    absl::StatusOr<std::string> v = audit.Read(accounts[i], 8);
    ASSERT_TRUE(v.ok()) << v.status();
    total += AsU64(*v);
    EXPECT_EQ(static_cast<int64_t>(AsU64(*v)), expect[i]) << "account " << i;
  }
  ASSERT_TRUE(audit.Commit().ok());
  EXPECT_EQ(total, kAccounts * kInitial);
  EXPECT_EQ(unknown, 0);
  printf("%zu transfers committed; killed %u then %u; last re-replication: %d backups, %d objects, %llu bytes\n",
         committed.size(), first, second, rr->backups_added, rr->objects_copied,
         static_cast<unsigned long long>(rr->bytes_copied));
}

// The copy point argument, one step at a time: a chunk taken before commits
// and applied after they reached the new backup must not undo them.
TEST(RereplicationTest, StaleChunkNeverUndoesANewerCommit) {
  LocalClusterOptions o;
  o.machines = 3;
  o.regions = 1;
  auto c = MakeShmCluster(o);
  const cm::Region region = c->cm().config().regions(0);
  const fabric::MachineId primary = region.replicas(0).machine();
  const fabric::MachineId backup = region.replicas(1).machine();
  fabric::MachineId spare = 1;
  while (spare == primary || spare == backup) ++spare;
  GlobalAddress written, freed;
  {
    auto tx = c->client(primary).Begin();
    written = *tx.Alloc(8);
    freed = *tx.Alloc(8);
    ASSERT_TRUE(tx.Write(written, U64(1)).ok());
    ASSERT_TRUE(tx.Write(freed, U64(2)).ok());
    ASSERT_TRUE(tx.Commit().ok());
  }
  // The backup fails; the spare machine is added as a copying backup.
  c->Kill(backup);
  ASSERT_TRUE(c->Recover({backup}).ok());
  absl::StatusOr<std::vector<BackupJob>> jobs = c->AddBackups();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].machine, spare);
  // A chunk taken now, then commits that reach the new backup as records.
  auto stale = c->machine(primary).participant().CopyChunk(region.id(), 0, region.size());
  ASSERT_TRUE(stale.ok()) << stale.status();
  ASSERT_EQ(stale->objects.size(), 2u);
  GlobalAddress added;
  {
    auto tx = c->client(primary).Begin();
    ASSERT_TRUE(tx.Write(written, U64(10)).ok());
    ASSERT_TRUE(tx.Free(freed).ok());
    added = *tx.Alloc(8);
    ASSERT_TRUE(tx.Write(added, U64(3)).ok());
    ASSERT_TRUE(tx.Commit().ok());
  }
  Participant& to = c->machine(spare).participant();
  absl::StatusOr<int> installed = to.ApplyChunk(region.id(), stale->Entries());
  ASSERT_TRUE(installed.ok()) << installed.status();
  EXPECT_EQ(*installed, 0);  // both objects are newer at the backup already
  RereplicationReport report;
  ASSERT_TRUE(c->CopyToBackup((*jobs)[0], 64, &report).ok());
  EXPECT_EQ(report.objects_copied, 2);  // `written` and `added`; `freed` is gone
  // The spare now holds exactly the primary's state; promote it and read.
  c->Kill(primary);
  ASSERT_TRUE(c->Recover({primary}).ok());
  ASSERT_EQ(c->cm().config().regions(0).replicas(0).machine(), spare);
  auto tx = c->client(spare).Begin();
  EXPECT_EQ(AsU64(*tx.Read(written, 8)), 10u);
  EXPECT_EQ(AsU64(*tx.Read(added, 8)), 3u);
  ASSERT_TRUE(tx.Commit().ok());
  auto gone = c->client(spare).Begin();
  EXPECT_TRUE(absl::IsFailedPrecondition(gone.Read(freed, 8).status()));
  // The promoted copy's heap knows its objects: a new allocation does not
  // reuse a live slot.
  auto alloc = c->client(spare).Begin();
  absl::StatusOr<GlobalAddress> fresh = alloc.Alloc(8);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_NE(*fresh, written);
  EXPECT_NE(*fresh, added);
  ASSERT_TRUE(alloc.Write(*fresh, U64(4)).ok());
  ASSERT_TRUE(alloc.Commit().ok());
}

// A copying backup whose region's primary fails is not promoted: with no
// complete copy left the region is lost, not served from a partial copy.
TEST(RereplicationTest, PrimaryLostBeforeCopyEndsLosesTheRegion) {
  LocalClusterOptions o;
  o.machines = 3;
  o.regions = 1;
  auto c = MakeShmCluster(o);
  const cm::Region region = c->cm().config().regions(0);
  c->Kill(region.replicas(1).machine());
  ASSERT_TRUE(c->Recover({region.replicas(1).machine()}).ok());
  absl::StatusOr<std::vector<BackupJob>> jobs = c->AddBackups();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 1u);
  c->Kill(region.replicas(0).machine());
  ASSERT_TRUE(c->Recover({region.replicas(0).machine()}).ok());
  EXPECT_TRUE(c->cm().config().regions(0).lost());
}

// A new backup's copy is in its log: the machine's files alone (no
// checkpoint taken since the copy) restore the copied objects and the
// commits that reached the backup after them.
TEST(RereplicationTest, CopiedObjectsAreReplayedFromTheLog) {
  LocalClusterOptions o;
  o.machines = 3;
  o.regions = 1;
  o.log_dir = absl::StrCat(getenv("TEST_TMPDIR"), "/copied-", getpid());
  ASSERT_EQ(system(absl::StrCat("rm -rf ", o.log_dir, " && mkdir -p ", o.log_dir).c_str()), 0);
  auto c = MakeShmCluster(o);
  const cm::Region region = c->cm().config().regions(0);
  const fabric::MachineId primary = region.replicas(0).machine();
  const fabric::MachineId lost = region.replicas(1).machine();
  fabric::MachineId spare = 1;
  while (spare == primary || spare == lost) ++spare;
  std::vector<GlobalAddress> objects;
  {
    auto tx = c->client(primary).Begin();
    for (uint64_t i = 0; i < 20; ++i) {
      absl::StatusOr<GlobalAddress> a = tx.Alloc(8 + 40 * (i % 3));
      ASSERT_TRUE(a.ok()) << a.status();
      ASSERT_TRUE(tx.Write(*a, U64(i)).ok());
      objects.push_back(*a);
    }
    ASSERT_TRUE(tx.Commit().ok());
  }
  c->Kill(lost);
  ASSERT_TRUE(c->Recover({lost}).ok());
  absl::StatusOr<RereplicationReport> rr = c->Rereplicate(/*chunk_bytes=*/256);
  ASSERT_TRUE(rr.ok()) << rr.status();
  ASSERT_EQ(rr->backups_added, 1);
  // A commit after the copy reaches the new backup as COMMIT-BACKUP + TRUNCATE.
  {
    auto tx = c->client(primary).Begin();
    ASSERT_TRUE(tx.Write(objects[0], U64(100)).ok());
    ASSERT_TRUE(tx.Commit().ok());
  }
  // The spare's files, restored into fresh memory.
  absl::StatusOr<std::unique_ptr<TxLog>> scratch_log = TxLog::Open("", FsyncPolicy::kNever);
  ASSERT_TRUE(scratch_log.ok());
  Participant restarted(spare, &c->table(), scratch_log->get());
  std::vector<uint8_t> memory(region.size(), 0);
  restarted.HostRegion(region.id(), memory.data(), memory.size());
  absl::StatusOr<RestoreReport> restored =
      restarted.RestoreFromFiles(c->checkpoint_path(spare), c->log_path(spare));
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->checkpoint_lsn, 0u);
  for (size_t i = 0; i < objects.size(); ++i) {
    absl::StatusOr<uint8_t*> obj = restarted.ObjectAt(objects[i]);
    ASSERT_TRUE(obj.ok()) << objects[i].ToString() << ": " << obj.status();
    uint64_t v = 0;
    ExtractPayload(*obj, reinterpret_cast<char*>(&v), 8);
    EXPECT_EQ(v, i == 0 ? 100u : i) << objects[i].ToString();
  }
}

}  // namespace
}  // namespace dctk::farm::tx
