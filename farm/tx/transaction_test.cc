#include "farm/tx/transaction.h"

#include <cstdlib>
#include <cstring>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/notification.h"
#include "absl/types/optional.h"
#include "farm/core/object.h"
#include "farm/tx/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::farm::tx {
namespace {

using ::testing::HasSubstr;

// Commits a new 8-byte object holding `v` from `client`.
GlobalAddress NewCounter(TxClient<fabric::ShmFabric>& client, uint64_t v, GlobalAddress near = {}) {
  auto tx = client.Begin();
  absl::StatusOr<GlobalAddress> a = tx.Alloc(8, near);
  EXPECT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(tx.Write(*a, U64(v)).ok());
  absl::Status s = tx.Commit();
  EXPECT_TRUE(s.ok()) << s;
  return *a;
}

uint64_t ReadCounter(TxClient<fabric::ShmFabric>& client, GlobalAddress a) {
  auto tx = client.Begin();
  absl::StatusOr<std::string> v = tx.Read(a, 8);
  EXPECT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(tx.Commit().ok());
  return v.ok() ? AsU64(*v) : ~uint64_t{0};
}

TEST(TransactionTest, CommittedWritesAreSeenEverywhereAndReachTheBackups) {
  auto c = MakeShmCluster();
  const GlobalAddress a = NewCounter(c->client(1), 41);
  for (fabric::MachineId m : {1, 2, 3}) EXPECT_EQ(ReadCounter(c->client(m), a), 41u);
  {
    auto tx = c->client(2).Begin();
    ASSERT_TRUE(tx.Write(a, U64(42)).ok());
    ASSERT_TRUE(tx.Commit().ok());
  }
  EXPECT_EQ(ReadCounter(c->client(3), a), 42u);
  // Every replica's copy holds the committed value (backups apply at TRUNCATE).
  absl::StatusOr<RegionInfo> info = c->table().Lookup(a.region());
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->replicas.size(), 2u);
  for (const Replica& r : info->replicas) {
    absl::StatusOr<uint8_t*> obj = c->machine(r.machine).participant().ObjectAt(a);
    ASSERT_TRUE(obj.ok()) << obj.status();
    ASSERT_TRUE(CheckSnapshot(*obj, 1).ok());
    uint64_t v = 0;
    ExtractPayload(*obj, &v, 8);
    EXPECT_EQ(v, 42u) << "machine " << r.machine;
  }
}

TEST(TransactionTest, WriteWriteConflictAbortsWithReason) {
  auto c = MakeShmCluster();
  const GlobalAddress a = NewCounter(c->client(1), 1);
  auto t1 = c->client(1).Begin();
  auto t2 = c->client(2).Begin();
  ASSERT_TRUE(t1.Read(a, 8).ok());
  ASSERT_TRUE(t2.Read(a, 8).ok());
  ASSERT_TRUE(t1.Write(a, U64(10)).ok());
  ASSERT_TRUE(t2.Write(a, U64(20)).ok());
  ASSERT_TRUE(t2.Commit().ok());
  absl::Status s = t1.Commit();
  EXPECT_TRUE(absl::IsAborted(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("changed: read at version"));
  EXPECT_EQ(ReadCounter(c->client(3), a), 20u);
}

TEST(TransactionTest, ValidationCatchesAChangedReadSet) {
  auto c = MakeShmCluster();
  const GlobalAddress x = NewCounter(c->client(1), 1);
  const GlobalAddress y = NewCounter(c->client(2), 2);
  auto t1 = c->client(1).Begin();
  ASSERT_TRUE(t1.Read(x, 8).ok());
  ASSERT_TRUE(t1.Write(y, U64(3)).ok());
  {
    auto t2 = c->client(3).Begin();
    ASSERT_TRUE(t2.Write(x, U64(5)).ok());
    ASSERT_TRUE(t2.Commit().ok());
  }
  absl::Status s = t1.Commit();
  EXPECT_TRUE(absl::IsAborted(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("VALIDATE"));
  EXPECT_EQ(ReadCounter(c->client(1), y), 2u);  // nothing of t1 applied, locks released
  auto t3 = c->client(1).Begin();
  ASSERT_TRUE(t3.Write(y, U64(7)).ok());
  EXPECT_TRUE(t3.Commit().ok());
}

// A region other than `a`'s.
RegionId OtherRegion(ShmCluster& c, GlobalAddress a) {
  RegionId region = 0;
  for (const RegionInfo& r : c.table().All()) {
    if (r.id != a.region()) region = r.id;
  }
  EXPECT_NE(region, 0u);
  return region;
}

// Two 8-byte objects at the start of `region`'s first block, one line apart.
std::pair<GlobalAddress, GlobalAddress> AdjacentCounters(ShmCluster& c, RegionId region) {
  auto tx = c.client(1).Begin();
  const GlobalAddress first = *tx.Alloc(8, GlobalAddress(region, 0));
  const GlobalAddress x = *tx.Alloc(8, GlobalAddress(region, 0));
  EXPECT_TRUE(tx.Write(first, U64(1)).ok());
  EXPECT_TRUE(tx.Write(x, U64(1)).ok());
  EXPECT_TRUE(tx.Commit().ok());
  EXPECT_EQ(first.offset() + kLineSize, x.offset());
  return {first, x};
}

// Frees `first` and `x` (their block empties), then commits a 100-byte object
// in its place (128-byte slots now: line 1 of the object at `first` starts at
// x) whose payload bytes 48..55, the word at x, are `word_at_x`.
void ReuseForALargerObject(ShmCluster& c, GlobalAddress first, GlobalAddress x,
                           uint64_t word_at_x) {
  {
    auto tx = c.client(3).Begin();
    ASSERT_TRUE(tx.Free(first).ok());
    ASSERT_TRUE(tx.Free(x).ok());
    ASSERT_TRUE(tx.Commit().ok());
  }
  auto tx = c.client(3).Begin();
  absl::StatusOr<GlobalAddress> z = tx.Alloc(100, GlobalAddress(first.region(), 0));
  ASSERT_TRUE(z.ok()) << z.status();
  ASSERT_EQ(*z, first);
  std::string payload(100, 'z');
  std::memcpy(payload.data() + 48, &word_at_x, 8);
  ASSERT_TRUE(tx.Write(*z, payload).ok());
  ASSERT_TRUE(tx.Commit().ok());
}

// The words at `addr` in its region's primary copy, found from `live`, an
// object allocated in the same region (`addr` need not start one).
const uint64_t* PrimaryWords(ShmCluster& c, GlobalAddress live, GlobalAddress addr) {
  const fabric::MachineId primary = c.table().Lookup(live.region())->primary().machine;
  const uint8_t* obj = *c.machine(primary).participant().ObjectAt(live);
  return reinterpret_cast<const uint64_t*>(obj - live.offset() + addr.offset());
}

// An object freed after a transaction read it, its block reused by a larger
// class: the old address now falls on the second line of a new object whose
// payload there happens to equal the header the reader saw (allocated, at
// the read version). VALIDATE must not take those bytes for the old object.
TEST(TransactionTest, ValidationIsNotFooledByANewObjectOverAFreedAddress) {
  auto c = MakeShmCluster();
  const GlobalAddress y = NewCounter(c->client(1), 2);
  const auto [first, x] = AdjacentCounters(*c, OtherRegion(*c, y));
  auto reader = c->client(2).Begin();
  ASSERT_TRUE(reader.Read(x, 8).ok());
  ASSERT_TRUE(reader.Write(y, U64(3)).ok());
  ReuseForALargerObject(*c, first, x, /*word_at_x=*/PrimaryWords(*c, first, x)[0]);
  absl::Status s = reader.Commit();
  EXPECT_TRUE(absl::IsAborted(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("VALIDATE"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("its block reused"));
  EXPECT_EQ(ReadCounter(c->client(1), y), 2u);
}

// The same reuse, but the address is kept from outside the transaction and
// read for the first time after it: the word at x equals (allocated | the new
// object's version) and x's line version is that version too, so only the
// line version's start-of-object bit tells that no object starts at x.
TEST(TransactionTest, FirstReadOfAnAddressInsideANewerObjectFails) {
  auto c = MakeShmCluster();
  const GlobalAddress y = NewCounter(c->client(1), 2);
  const auto [first, x] = AdjacentCounters(*c, OtherRegion(*c, y));
  ReuseForALargerObject(*c, first, x, 0);
  const uint64_t next = VersionOf(PrimaryWords(*c, first, first)[0]) + 1;
  {
    // The object at `first` again, its word at x forged for its next version.
    auto tx = c->client(3).Begin();
    std::string payload(100, 'z');
    const uint64_t forged = kAllocatedBit | next;
    std::memcpy(payload.data() + 48, &forged, 8);
    ASSERT_TRUE(tx.Write(first, payload).ok());
    ASSERT_TRUE(tx.Commit().ok());
  }
  ASSERT_EQ(PrimaryWords(*c, first, x)[0], kAllocatedBit | next);
  ASSERT_EQ(PrimaryWords(*c, first, x)[kLineWords - 1] & kVersionMask, next);
  auto reader = c->client(2).Begin();
  absl::StatusOr<std::string> read = reader.Read(x, 8);
  EXPECT_TRUE(absl::IsFailedPrecondition(read.status())) << read.status();
  EXPECT_THAT(std::string(read.status().message()), HasSubstr(x.ToString()));
  EXPECT_THAT(std::string(read.status().message()), HasSubstr("not the start of an object"));
  // The transaction is over: nothing it does after the read can commit.
  EXPECT_FALSE(reader.Write(y, U64(3)).ok());
  EXPECT_FALSE(reader.Commit().ok());
  EXPECT_EQ(ReadCounter(c->client(1), y), 2u);
}

TEST(TransactionTest, ReadOnlyTransactionsValidateWithoutLocking) {
  auto c = MakeShmCluster();
  const GlobalAddress x = NewCounter(c->client(1), 1);
  const GlobalAddress y = NewCounter(c->client(2), 2);
  auto ro = c->client(3).Begin();
  ASSERT_TRUE(ro.Read(x, 8).ok());
  ASSERT_TRUE(ro.Read(y, 8).ok());
  EXPECT_TRUE(ro.Commit().ok());
  EXPECT_EQ(c->client(3).stats().read_only, 1u);

  auto stale = c->client(3).Begin();
  ASSERT_TRUE(stale.Read(x, 8).ok());
  ASSERT_TRUE(stale.Read(y, 8).ok());
  auto w = c->client(1).Begin();
  ASSERT_TRUE(w.Write(x, U64(9)).ok());
  ASSERT_TRUE(w.Commit().ok());  // the reader never blocks the writer
  EXPECT_TRUE(absl::IsAborted(stale.Commit()));
}

TEST(TransactionTest, LocalObjectsTakeTheFastPath) {
  auto c = MakeShmCluster();
  auto& client = c->client(1);
  const GlobalAddress a = NewCounter(client, 5);  // Alloc prefers regions whose primary is machine 1
  absl::StatusOr<RegionInfo> info = c->table().Lookup(a.region());
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->primary().machine, 1u);
  const uint64_t rpc_before = client.stats().rpc_calls;
  const uint64_t local_before = client.stats().fast_path_calls;
  auto tx = client.Begin();
  ASSERT_TRUE(tx.Write(a, U64(6)).ok());
  ASSERT_TRUE(tx.Commit().ok());
  // LOCK, COMMIT-PRIMARY and TRUNCATE locally; COMMIT-BACKUP and TRUNCATE to the backup.
  EXPECT_EQ(client.stats().fast_path_calls - local_before, 3u);
  EXPECT_EQ(client.stats().rpc_calls - rpc_before, 2u);
}

TEST(TransactionTest, FreeMakesReadsFailAndTheSlotReusable) {
  auto c = MakeShmCluster();
  const GlobalAddress a = NewCounter(c->client(1), 5);
  {
    auto tx = c->client(2).Begin();
    ASSERT_TRUE(tx.Free(a).ok());
    EXPECT_TRUE(absl::IsFailedPrecondition(tx.Read(a, 8).status()));
    ASSERT_TRUE(tx.Commit().ok());
  }
  auto tx = c->client(3).Begin();
  absl::StatusOr<std::string> r = tx.Read(a, 8);
  EXPECT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("freed or never allocated"));
  tx.Abort();
  // Writing a freed object fails at LOCK with a reason.
  const GlobalAddress b = NewCounter(c->client(1), 6, a);
  EXPECT_EQ(b, a);  // the freed slot is reused (same block, first free slot)
  EXPECT_EQ(ReadCounter(c->client(2), b), 6u);
}

TEST(TransactionTest, BadInputGetsClearErrorsAndCorruptsNothing) {
  auto c = MakeShmCluster();
  auto& client = c->client(1);
  const GlobalAddress a = NewCounter(client, 77);
  auto tx = client.Begin();
  EXPECT_TRUE(absl::IsNotFound(tx.Read(GlobalAddress(999, 0), 8).status()));
  EXPECT_TRUE(absl::IsOutOfRange(tx.Read(GlobalAddress(a.region(), (4 << 20) - 64), 100).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(tx.Read(GlobalAddress(a.region(), 8), 8).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(tx.Read(a, 0).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(tx.Alloc(2 << 20).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(tx.Write(a, std::string(2 << 20, 'x'))));
  // A read longer than the object never sees matching line versions.
  {
    auto t = client.Begin();
    absl::StatusOr<std::string> r = t.Read(a, 200);
    EXPECT_TRUE(absl::IsAborted(r.status())) << r.status();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("longer than the object"));
  }
  // A write larger than the object is refused at LOCK.
  ASSERT_TRUE(tx.Read(a, 8).ok());
  ASSERT_TRUE(tx.Write(a, std::string(200, 'x')).ok());
  absl::Status s = tx.Commit();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("the object holds 48"));
  EXPECT_EQ(ReadCounter(client, a), 77u);
}

TEST(TransactionTest, AllocationBeyondCapacityIsResourceExhausted) {
  LocalClusterOptions o;
  o.regions = 3;
  o.region_size = 2 << 20;  // two 1 MB blocks
  auto c = MakeShmCluster(o);
  auto& client = c->client(1);
  const GlobalAddress first = NewCounter(client, 1);
  // Fill the region holding `first` with ~400 KB objects (two per block; one
  // block already holds `first`'s size class).
  std::vector<GlobalAddress> big;
  absl::Status s;
  for (int i = 0; i < 10 && s.ok(); ++i) {
    auto tx = client.Begin();
    absl::StatusOr<GlobalAddress> b = tx.Alloc(400 << 10, first);
    s = b.status();
    if (!b.ok()) break;
    EXPECT_EQ(b->region(), first.region());
    ASSERT_TRUE(tx.Write(*b, "payload").ok());
    ASSERT_TRUE(tx.Commit().ok());
    big.push_back(*b);
  }
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("is full"));
  EXPECT_EQ(big.size(), 2u);
  EXPECT_EQ(ReadCounter(client, first), 1u);
  auto tx = client.Begin();
  absl::StatusOr<std::string> v = tx.Read(big[0], 7);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, "payload");
}

TEST(TransactionTest, AllocWithoutAHintTriesTheNextRegionWhileOneIsFull) {
  LocalClusterOptions o;
  o.regions = 3;
  o.region_size = 2 << 20;  // two 1 MB blocks: four ~400 KB objects
  auto c = MakeShmCluster(o);
  auto& client = c->client(1);
  absl::flat_hash_map<RegionId, int> per_region;
  absl::Status s;
  for (int i = 0; i < 20 && s.ok(); ++i) {
    auto tx = client.Begin();
    absl::StatusOr<GlobalAddress> b = tx.Alloc(400 << 10);
    s = b.status();
    if (!b.ok()) break;
    ASSERT_TRUE(tx.Write(*b, "payload").ok());
    ASSERT_TRUE(tx.Commit().ok());
    ++per_region[b->region()];
  }
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("all 3 regions tried are full"));
  ASSERT_EQ(per_region.size(), 3u);
  for (const auto& [region, n] : per_region) EXPECT_EQ(n, 4) << "region " << region;
}

TEST(TransactionTest, ATransactionDroppedBeforeCommitReleasesItsSlots) {
  LocalClusterOptions o;
  o.regions = 1;
  o.region_size = 2 << 20;
  auto c = MakeShmCluster(o);
  auto& client = c->client(1);
  // Without the release, the fifth reservation would find the region full.
  for (int i = 0; i < 8; ++i) {
    auto tx = client.Begin();
    absl::StatusOr<GlobalAddress> b = tx.Alloc(400 << 10);
    ASSERT_TRUE(b.ok()) << "allocation " << i << ": " << b.status();
  }
  // A moved transaction is finished at its source: only the target commits.
  auto from = client.Begin();
  absl::StatusOr<GlobalAddress> b = from.Alloc(8);
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE(from.Write(*b, U64(9)).ok());
  auto to = std::move(from);
  EXPECT_TRUE(absl::IsFailedPrecondition(from.Commit()));
  ASSERT_TRUE(to.Commit().ok());
  EXPECT_EQ(ReadCounter(client, *b), 9u);
}

TEST(TransactionTest, AReadOfNoObjectEndsTheTransaction) {
  auto c = MakeShmCluster();
  const GlobalAddress a = NewCounter(c->client(1), 5);
  const GlobalAddress b = NewCounter(c->client(1), 6, a);
  {
    auto tx = c->client(2).Begin();
    ASSERT_TRUE(tx.Free(a).ok());
    ASSERT_TRUE(tx.Commit().ok());
  }
  auto tx = c->client(2).Begin();
  EXPECT_TRUE(absl::IsFailedPrecondition(tx.Read(a, 8).status()));
  // Its absence was not recorded for VALIDATE: nothing after it may commit.
  EXPECT_THAT(std::string(tx.Write(b, U64(7)).message()), HasSubstr("has finished"));
  EXPECT_THAT(std::string(tx.Commit().message()), HasSubstr("has finished"));
  EXPECT_EQ(ReadCounter(c->client(3), b), 6u);
}

TEST(TransactionTest, LogFilesHoldTheProtocolRecords) {
  LocalClusterOptions o;
  o.log_dir = getenv("TEST_TMPDIR");
  o.fsync = FsyncPolicy::kEveryRecord;
  auto c = MakeShmCluster(o);
  auto tx = c->client(1).Begin();
  absl::StatusOr<GlobalAddress> a = tx.Alloc(8);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(tx.Write(*a, U64(1)).ok());
  ASSERT_TRUE(tx.Commit().ok());
  const TxId id = tx.id();
  absl::StatusOr<RegionInfo> info = c->table().Lookup(a->region());
  ASSERT_TRUE(info.ok());
  auto primary = ReadTxLog(c->machine(info->primary().machine).log().path());
  auto backup = ReadTxLog(c->machine(info->replicas[1].machine).log().path());
  ASSERT_TRUE(primary.ok() && backup.ok());
  std::vector<LogType> p, b;
  for (const LogRecord& r : *primary) {
    if (r.tx == id) p.push_back(r.type);
  }
  for (const LogRecord& r : *backup) {
    if (r.tx == id) b.push_back(r.type);
  }
  EXPECT_EQ(p, (std::vector<LogType>{LogType::kLock, LogType::kCommitPrimary, LogType::kTruncate}));
  EXPECT_EQ(b, (std::vector<LogType>{LogType::kCommitBackup, LogType::kTruncate}));
}

// Give-up on a new configuration: machine 3 takes a message of the commit
// and dies before answering (or logging); the coordinator's RPC timeout is an
// hour, so only the configuration that recovery installs can end its wait.
class GiveUpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LocalClusterOptions o;
    o.client.rpc_timeout = absl::Hours(1);
    o.client.give_up_on_new_config = true;
    c_ = MakeShmCluster(o);
  }

  // A region whose primary (replica 0) or backup (replica 1) is machine 3.
  absl::optional<RegionId> RegionWithMachine3As(size_t replica) {
    for (const RegionInfo& r : c_->table().All()) {
      if (r.replicas[replica].machine == 3) return r.id;
    }
    return absl::nullopt;
  }

  // Machine 3 drops the requests of `handler` unanswered, signalling each.
  void SwallowAtMachine3(Handler handler) {
    ASSERT_TRUE(c_->machine(3)
                    .WithEndpoint([&](msg::RpcEndpoint<fabric::ShmFabric>& ep) {
                      ep.Register(handler,
                                  [this, &ep](fabric::MachineId, absl::Span<const uint8_t>) {
                                    ep.DropResponse();
                                    if (!arrived_.HasBeenNotified()) arrived_.Notify();
                                    return std::string();
                                  });
                      return absl::OkStatus();
                    })
                    .ok());
  }

  // Machine 1 adds 1 to `a` on a thread; once machine 3 got the swallowed
  // message, machine 3 dies and recovery removes it. Returns Commit's status.
  absl::Status IncrementWhileMachine3Dies(GlobalAddress a) {
    absl::Status commit;
    std::thread coordinator([&] {
      auto tx = c_->client(1).Begin();
      absl::StatusOr<std::string> v = tx.Read(a, 8);
      commit = v.ok() ? tx.Write(a, U64(AsU64(*v) + 1)) : v.status();
      if (commit.ok()) commit = tx.Commit();
    });
    arrived_.WaitForNotification();
    c_->Kill(3);
    absl::StatusOr<RecoveryReport> r = c_->Recover({3});
    EXPECT_TRUE(r.ok()) << r.status();
    coordinator.join();
    return commit;
  }

  std::unique_ptr<ShmCluster> c_;
  absl::Notification arrived_;
};

TEST_F(GiveUpTest, ACommitBackupNobodyAnswersIsAbortedOnceRecoveryInstallsTheNewConfiguration) {
  const absl::optional<RegionId> region = RegionWithMachine3As(1);
  ASSERT_TRUE(region.has_value());
  const GlobalAddress a = NewCounter(c_->client(1), 5, GlobalAddress(*region, 0));
  SwallowAtMachine3(kCommitBackup);
  const absl::Status s = IncrementWhileMachine3Dies(a);
  EXPECT_TRUE(absl::IsAborted(s)) << s;
  EXPECT_GE(c_->client(1).stats().gave_up, 1u);
  EXPECT_EQ(ReadCounter(c_->client(2), a), 5u);
  EXPECT_EQ(ReadCounter(c_->client(1), a), 5u);
}

TEST_F(GiveUpTest, ALockNobodyAnswersEndsUncommittedAndNoAbortGoesToTheRemovedMachine) {
  const absl::optional<RegionId> region = RegionWithMachine3As(0);
  ASSERT_TRUE(region.has_value());
  const GlobalAddress a = NewCounter(c_->client(1), 5, GlobalAddress(*region, 0));
  SwallowAtMachine3(kLock);
  const uint64_t calls = c_->client(1).stats().rpc_calls;
  const absl::Status s = IncrementWhileMachine3Dies(a);
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;  // as after a timeout: not committed
  EXPECT_THAT(std::string(s.message()), HasSubstr("gave up"));
  EXPECT_EQ(c_->client(1).stats().gave_up, 1u);
  EXPECT_EQ(c_->client(1).stats().rpc_calls - calls, 1u);  // the LOCK; no ABORT to machine 3
  EXPECT_EQ(ReadCounter(c_->client(2), a), 5u);            // read at the promoted backup
}

}  // namespace
}  // namespace dctk::farm::tx
