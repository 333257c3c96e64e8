// Heap block reuse across coordinators, at the participants (deterministic:
// the tests play two coordinators' messages in a chosen order). Region 7 is
// one 1 MB block with its primary on machine 1 and its backup on machine 2.
// Coordinator A allocates two big objects whose payload has every bit set,
// then frees both (the block empties at the primary) but its TRUNCATE reaches
// the backup late or never; coordinator B meanwhile allocates 128-byte
// objects in the same block, now of another size class: slot 1's header lies
// in the old payload. The primary must lock those allocations; the backup
// must apply A's frees before B's allocations whatever order the TRUNCATEs
// come in, also after a restart from its checkpoint and log, and a promoted
// backup must never hand B's objects out again.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "farm/core/object.h"
#include "farm/tx/object_heap.h"
#include "farm/tx/participant.h"
#include "farm/tx/recovery.h"
#include "gtest/gtest.h"

namespace dctk::farm::tx {
namespace {

constexpr RegionId kRegion = 7;
constexpr uint64_t kRegionBytes = 1 << 20;
constexpr uint64_t kConfig = 1;

// One machine: a copy of region 7, a log and its participant.
struct Machine {
  Machine(fabric::MachineId id, const RegionTable* table, const std::string& log_path)
      : memory(kRegionBytes / 8),
        log(*TxLog::Open(log_path, FsyncPolicy::kNever)),
        p(id, table, log.get()) {
    p.HostRegion(kRegion, base(), kRegionBytes);
    p.SetConfig(kConfig);
  }
  uint8_t* base() { return reinterpret_cast<uint8_t*>(memory.data()); }
  std::vector<uint64_t> memory;
  std::unique_ptr<TxLog> log;
  Participant p;
};

class HeapReuseTest : public ::testing::Test {
 protected:
  HeapReuseTest() {
    EXPECT_TRUE(table_.Upsert({kRegion, kRegionBytes, {{1, 0}, {2, 0}}}).ok());
    primary_ = std::make_unique<Machine>(1, &table_, Path(".primary.log"));
    backup_ = std::make_unique<Machine>(2, &table_, LogPath());
  }

  // Files of this test's backup.
  static std::string Path(absl::string_view suffix) {
    return absl::StrCat(::testing::TempDir(), "/",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name(), suffix);
  }
  std::string LogPath() const { return Path(".log"); }
  std::string CheckpointPath() const { return Path(".ckpt"); }

  // An allocation of `bytes` by `tx` at the primary, with its payload and
  // slot size (as a coordinator sends it).
  WriteEntry Alloc(TxId tx, size_t bytes, char fill) {
    Reply r =
        primary_->p.Alloc(AllocRequest{kConfig, tx, kRegion, static_cast<uint32_t>(bytes), 0});
    EXPECT_TRUE(StatusOf(r).ok()) << StatusOf(r);
    return WriteEntry{GlobalAddress::FromRaw(r.value), r.aux, EntryKind::kAlloc,
                      *SlotBytesFor(bytes), std::string(bytes, fill)};
  }

  // A free of the committed object at `addr`, at the version the primary holds.
  WriteEntry Free(GlobalAddress addr) {
    uint8_t* obj = *primary_->p.ObjectAt(addr);
    return WriteEntry{addr, VersionOf(*reinterpret_cast<uint64_t*>(obj)), EntryKind::kFree, 0, ""};
  }

  // A write of `fill` bytes over the committed object at `addr`, at the
  // version the primary holds.
  WriteEntry Write(GlobalAddress addr, size_t bytes, char fill) {
    WriteEntry e = Free(addr);
    e.kind = EntryKind::kWrite;
    e.data = std::string(bytes, fill);
    return e;
  }

  // LOCK and COMMIT-BACKUP, then the coordinator dies: undecided.
  void LockAndBackUp(TxId tx, std::vector<WriteEntry> entries) {
    LockRequest req{kConfig, tx, {kRegion}, std::move(entries)};
    Reply r = primary_->p.Lock(req);
    ASSERT_TRUE(StatusOf(r).ok()) << StatusOf(r);
    for (size_t i = 0; i < req.entries.size(); ++i) req.entries[i].slot_bytes = r.slot_bytes[i];
    ASSERT_TRUE(StatusOf(backup_->p.CommitBackup(req)).ok());
  }

  // LOCK, COMMIT-BACKUP and COMMIT-PRIMARY: committed, truncated nowhere.
  absl::Status Commit(TxId tx, std::vector<WriteEntry> entries) {
    LockRequest req{kConfig, tx, {kRegion}, std::move(entries)};
    Reply r = primary_->p.Lock(req);
    if (!StatusOf(r).ok()) return StatusOf(r);
    for (size_t i = 0; i < req.entries.size(); ++i) req.entries[i].slot_bytes = r.slot_bytes[i];
    if (absl::Status s = StatusOf(backup_->p.CommitBackup(req)); !s.ok()) return s;
    return StatusOf(primary_->p.CommitPrimary(TxRequest{kConfig, tx}));
  }

  void Truncate(Machine& m, TxId tx) {
    ASSERT_TRUE(StatusOf(m.p.Truncate(TxRequest{kConfig, tx})).ok());
  }

  // A's two big objects committed and freed (the free committed at the
  // primary only); B's two 128-byte objects committed and truncated at the
  // backup first. Returns B's objects.
  std::vector<WriteEntry> FreeThenReuse() {
    std::vector<WriteEntry> big = {Alloc(kA1, 2000, '\xff'), Alloc(kA1, 2000, '\xff')};
    EXPECT_TRUE(Commit(kA1, big).ok());
    Truncate(*primary_, kA1);
    Truncate(*backup_, kA1);
    EXPECT_TRUE(Commit(kA2, {Free(big[0].addr), Free(big[1].addr)}).ok());
    Truncate(*primary_, kA2);  // the backup's TRUNCATE of A2 is late
    std::vector<WriteEntry> small = {Alloc(kB1, 100, 'b'), Alloc(kB1, 100, 'c')};
    EXPECT_EQ(small[1].addr.offset(), 128u) << "in the old objects' payload";
    absl::Status s = Commit(kB1, small);
    EXPECT_TRUE(s.ok()) << "LOCK of an allocation in a reused block: " << s;
    Truncate(*primary_, kB1);
    Truncate(*backup_, kB1);
    return small;
  }

  // The backup holds `objects` (their payloads).
  static void ExpectBackupHolds(Machine& backup, const std::vector<WriteEntry>& objects) {
    for (const WriteEntry& e : objects) {
      absl::StatusOr<uint8_t*> obj = backup.p.ObjectAt(e.addr);
      ASSERT_TRUE(obj.ok()) << e.addr.ToString() << ": " << obj.status();
      std::string payload(e.data.size(), '\0');
      ExtractPayload(*obj, payload.data(), payload.size());
      EXPECT_EQ(payload, e.data) << e.addr.ToString();
    }
  }

  // The backup holds exactly the primary's region and B's objects.
  void ExpectBackupMatchesPrimary(Machine& backup, const std::vector<WriteEntry>& small) {
    ExpectBackupHolds(backup, small);
    EXPECT_TRUE(backup.memory == primary_->memory)
        << "the backup's copy differs from the primary's";
  }

  // T reserves a slot at the primary (its block formatted for the class);
  // then U's object is allocated in the block and freed (V), which empties
  // the block at the backup, which sees no reservations, and raises its
  // floor above the version T's LOCK will find. Returns T's allocation.
  WriteEntry ReserveThenEmptyAtTheBackup() {
    WriteEntry reserved = Alloc(kT, 100, 't');
    WriteEntry other = Alloc(kU, 100, 'u');
    EXPECT_TRUE(Commit(kU, {other}).ok());
    Truncate(*primary_, kU);
    Truncate(*backup_, kU);
    EXPECT_TRUE(Commit(kV, {Free(other.addr)}).ok());
    Truncate(*primary_, kV);
    Truncate(*backup_, kV);
    return reserved;
  }

  // A new backup (machine `id`) given the primary's copy of the region by
  // re-replication, in chunks of about 4 KB.
  std::unique_ptr<Machine> CopyTo(fabric::MachineId id) {
    auto copy = std::make_unique<Machine>(id, &table_, Path(absl::StrCat(".", id, ".log")));
    for (uint64_t from = 0; from < kRegionBytes;) {
      absl::StatusOr<RegionChunk> chunk = primary_->p.CopyChunk(kRegion, from, 4096);
      EXPECT_TRUE(chunk.ok()) << chunk.status();
      if (!chunk.ok()) break;
      absl::StatusOr<int> installed = copy->p.ApplyChunk(kRegion, chunk->Entries());
      EXPECT_TRUE(installed.ok()) << installed.status();
      from = chunk->next;
    }
    return copy;
  }

  void CommitAndTruncate(TxId tx, std::vector<WriteEntry> entries) {
    ASSERT_TRUE(Commit(tx, std::move(entries)).ok());
    Truncate(*primary_, tx);
    Truncate(*backup_, tx);
  }

  static constexpr TxId kA1 = MakeTxId(10, 0, 1), kA2 = MakeTxId(10, 0, 2);
  static constexpr TxId kT = MakeTxId(13, 0, 1), kU = MakeTxId(13, 0, 2), kV = MakeTxId(13, 0, 3);
  static constexpr TxId kB1 = MakeTxId(11, 0, 1);
  static constexpr TxId kD = MakeTxId(14, 0, 1), kE = MakeTxId(15, 0, 1);
  RegionTable table_;
  std::unique_ptr<Machine> primary_, backup_;
};

TEST_F(HeapReuseTest, ABackupAppliesTheFreesBeforeTheReuseWhateverTheTruncateOrder) {
  std::vector<WriteEntry> small = FreeThenReuse();
  // B is truncated at the backup but waits behind A2, logged before it.
  EXPECT_FALSE(backup_->p.ObjectAt(small[1].addr).ok())
      << "B applied before the frees that emptied the block";
  Truncate(*backup_, kA2);
  ExpectBackupMatchesPrimary(*backup_, small);
  EXPECT_TRUE(backup_->p.InFlight().empty());
}

TEST_F(HeapReuseTest, ARestartedBackupKeepsTheOrder) {
  std::vector<WriteEntry> small = FreeThenReuse();
  // A checkpoint while B waits, a record after it, then a restart.
  ASSERT_TRUE(backup_->p.TakeCheckpoint(CheckpointPath(), false).ok());
  WriteEntry more = Alloc(MakeTxId(11, 0, 2), 100, 'd');
  ASSERT_TRUE(Commit(MakeTxId(11, 0, 2), {more}).ok());
  Truncate(*primary_, MakeTxId(11, 0, 2));
  Truncate(*backup_, MakeTxId(11, 0, 2));
  backup_->log.reset();
  auto restarted = std::make_unique<Machine>(2, &table_, LogPath());
  absl::StatusOr<RestoreReport> r = restarted->p.RestoreFromFiles(CheckpointPath(), LogPath());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->pending, 1u) << "A2 only: B and the later one are committed, waiting";
  EXPECT_FALSE(restarted->p.ObjectAt(small[1].addr).ok()) << "B waits behind A2";
  Truncate(*restarted, kA2);
  small.push_back(more);
  ExpectBackupMatchesPrimary(*restarted, small);
}

TEST_F(HeapReuseTest, APromotedBackupNeverHandsOutALiveObjectAgain) {
  std::vector<WriteEntry> small = FreeThenReuse();
  // The primary fails before A2's TRUNCATE reaches the backup: recovery
  // decides A2 (its COMMIT-BACKUP covers every region it writes) and the
  // backup becomes the primary.
  RecoveryReport report = RecoverTransactions({&backup_->p}, kConfig + 1, [&] {
    ASSERT_TRUE(table_.Upsert({kRegion, kRegionBytes, {{2, 0}}}).ok());
  });
  EXPECT_EQ(report.committed, 1);
  for (const WriteEntry& e : small)
    ASSERT_TRUE(backup_->p.ObjectAt(e.addr).ok()) << e.addr.ToString();
  // New allocations at the promoted primary avoid B's objects and lock
  // (their slot headers are clean).
  for (uint64_t i = 0; i < 4; ++i) {
    const size_t bytes = 100;
    const TxId tx = MakeTxId(12, 0, i);
    Reply r =
        backup_->p.Alloc(AllocRequest{kConfig + 1, tx, kRegion, static_cast<uint32_t>(bytes), 0});
    ASSERT_TRUE(StatusOf(r).ok()) << StatusOf(r);
    const GlobalAddress a = GlobalAddress::FromRaw(r.value);
    for (const WriteEntry& e : small) ASSERT_NE(a, e.addr) << "a live object handed out again";
    LockRequest req{
        kConfig + 1, tx, {kRegion}, {{a, r.aux, EntryKind::kAlloc, 0, std::string(bytes, 'n')}}};
    ASSERT_TRUE(StatusOf(backup_->p.Lock(req)).ok()) << StatusOf(backup_->p.Lock(req));
    ASSERT_TRUE(StatusOf(backup_->p.CommitPrimary(TxRequest{kConfig + 1, tx})).ok());
    ASSERT_TRUE(StatusOf(backup_->p.Truncate(TxRequest{kConfig + 1, tx})).ok());
  }
  ExpectBackupHolds(*backup_, small);
}

// D's coordinator dies after COMMIT-BACKUP and before COMMIT-PRIMARY, and no
// recovery runs for it: D keeps its object locked at the primary, and its
// record undecided at the backup, which still applies E, a later commit in
// the same block and size class, at E's TRUNCATE.
TEST_F(HeapReuseTest, AnUndecidedRecordHoldsBackNoCommitOfItsSizeClass) {
  std::vector<WriteEntry> objects = {Alloc(kA1, 100, 'x'), Alloc(kA1, 100, 'y')};
  CommitAndTruncate(kA1, objects);
  const WriteEntry d = Write(objects[0].addr, 100, 'd');
  LockAndBackUp(kD, {d});
  objects[1] = Write(objects[1].addr, 100, 'e');
  CommitAndTruncate(kE, {objects[1]});
  ASSERT_EQ(backup_->p.InFlight().size(), 1u);
  EXPECT_EQ(backup_->p.InFlight()[0].tx, kD);
  ExpectBackupHolds(*backup_, objects);  // D's object is still locked at the primary
  // Recovery, when it runs, finds D's COMMIT-BACKUP and commits it.
  RecoveryReport report = RecoverTransactions({&primary_->p, &backup_->p}, kConfig + 1, [] {});
  EXPECT_EQ(report.committed, 1);
  objects[0] = d;
  ExpectBackupMatchesPrimary(*backup_, objects);
  EXPECT_TRUE(backup_->p.InFlight().empty());
}

// D's coordinator dies after COMMIT-PRIMARY: its TRUNCATE never reaches the
// backup. E then writes D's object again; the backup applies E at once (a
// newer version of the object) and D, once recovery commits it, changes
// nothing there.
TEST_F(HeapReuseTest, ACommitOverAnUntruncatedOneIsAppliedAndKept) {
  std::vector<WriteEntry> objects = {Alloc(kA1, 100, 'x')};
  CommitAndTruncate(kA1, objects);
  ASSERT_TRUE(Commit(kD, {Write(objects[0].addr, 100, 'd')}).ok());
  Truncate(*primary_, kD);
  objects[0] = Write(objects[0].addr, 100, 'e');
  CommitAndTruncate(kE, {objects[0]});
  ExpectBackupMatchesPrimary(*backup_, objects);
  RecoveryReport report = RecoverTransactions({&primary_->p, &backup_->p}, kConfig + 1, [] {});
  EXPECT_EQ(report.committed, 1);
  ExpectBackupMatchesPrimary(*backup_, objects);
  EXPECT_TRUE(backup_->p.InFlight().empty());
}

// A block emptied at a backup in the middle of its primary's use of it keeps
// its class there: formatting it again (at a floor above T's version) would
// make the backup skip T's object as older than the slot.
TEST_F(HeapReuseTest, ABackupInstallsAnAllocationReservedBeforeTheBlockEmptiedThere) {
  WriteEntry reserved = ReserveThenEmptyAtTheBackup();
  CommitAndTruncate(kT, {reserved});
  ExpectBackupMatchesPrimary(*backup_, {reserved});
}

TEST_F(HeapReuseTest, ABackupRestartedWhileTheBlockIsEmptyThereKeepsItsClass) {
  WriteEntry reserved = ReserveThenEmptyAtTheBackup();
  ASSERT_TRUE(backup_->p.TakeCheckpoint(CheckpointPath(), false).ok());
  backup_->log.reset();
  backup_ = std::make_unique<Machine>(2, &table_, LogPath());
  absl::StatusOr<RestoreReport> r = backup_->p.RestoreFromFiles(CheckpointPath(), LogPath());
  ASSERT_TRUE(r.ok()) << r.status();
  CommitAndTruncate(kT, {reserved});
  ExpectBackupMatchesPrimary(*backup_, {reserved});
}

// A re-replicated copy carries the blocks' floors: promoted, it formats a
// block whose objects were all freed before the copy above their versions, so
// a reader still holding an old object's address cannot validate it by
// version against a new object there.
TEST_F(HeapReuseTest, ARereplicatedCopyKeepsTheFloorOfObjectsFreedBeforeIt) {
  std::vector<WriteEntry> big = {Alloc(kA1, 2000, '\xff'), Alloc(kA1, 2000, '\xff')};
  CommitAndTruncate(kA1, big);
  CommitAndTruncate(kA2, {Free(big[0].addr), Free(big[1].addr)});
  std::unique_ptr<Machine> copy = CopyTo(3);
  ASSERT_TRUE(table_.Upsert({kRegion, kRegionBytes, {{3, 0}}}).ok());
  Reply r = copy->p.Alloc(AllocRequest{kConfig, kB1, kRegion, 100, 0});
  ASSERT_TRUE(StatusOf(r).ok()) << StatusOf(r);
  EXPECT_EQ(r.aux, 2u) << "the free slot's version: the block's floor, the old frees' version";
  EXPECT_EQ(copy->memory[big[1].addr.offset() / 8], 2u)
      << "a slot header at an old object's address";
  // Marks that name no block, or no size class, are refused whole.
  for (WriteEntry bad :
       {WriteEntry{GlobalAddress(kRegion, 64), 9, EntryKind::kBlockMark, 0, ""},
        WriteEntry{GlobalAddress(kRegion, 0), 9, EntryKind::kBlockMark, 100, ""},
        WriteEntry{GlobalAddress(kRegion, 1 << 20), 9, EntryKind::kBlockMark, 0, ""}}) {
    absl::StatusOr<int> applied = copy->p.ApplyChunk(kRegion, {bad});
    EXPECT_TRUE(absl::IsInvalidArgument(applied.status())) << applied.status();
  }
}

// The marks must not make a copy skip an object of the block's current use:
// T's slot was reserved at the primary before the block's floor rose.
TEST_F(HeapReuseTest, ARereplicatedCopyInstallsAnAllocationReservedBeforeIt) {
  WriteEntry reserved = ReserveThenEmptyAtTheBackup();
  std::unique_ptr<Machine> copy = CopyTo(3);
  LockRequest req{kConfig, kT, {kRegion}, {reserved}};
  ASSERT_TRUE(StatusOf(primary_->p.Lock(req)).ok());
  ASSERT_TRUE(StatusOf(copy->p.CommitBackup(req)).ok());
  ASSERT_TRUE(StatusOf(primary_->p.CommitPrimary(TxRequest{kConfig, kT})).ok());
  ASSERT_TRUE(StatusOf(copy->p.Truncate(TxRequest{kConfig, kT})).ok());
  absl::StatusOr<uint8_t*> obj = copy->p.ObjectAt(reserved.addr);
  ASSERT_TRUE(obj.ok()) << obj.status();
  std::string payload(reserved.data.size(), '\0');
  ExtractPayload(*obj, payload.data(), payload.size());
  EXPECT_EQ(payload, reserved.data);
  // A transaction's record carrying a block mark is refused.
  WriteEntry mark{GlobalAddress(kRegion, 0), 9, EntryKind::kBlockMark, 128, ""};
  absl::Status s = StatusOf(copy->p.CommitBackup(LockRequest{kConfig, kB1, {kRegion}, {mark}}));
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
}

TEST_F(HeapReuseTest, APrimaryRestoredFromItsLogAloneLocksItsAllocationsAgain) {
  // The LOCK of an allocation found the header Reserve left (the reused
  // block formatted at its floor, the slot lifted to it), which no record
  // holds. A whole-cluster restart replays the primary's log from record 1.
  std::vector<WriteEntry> small = FreeThenReuse();
  // Reserved before a commit raised the block's floor, locked after it, and
  // still in flight at the crash.
  const TxId late_tx = MakeTxId(11, 0, 3), early_tx = MakeTxId(11, 0, 4);
  WriteEntry late = Alloc(late_tx, 100, 'l');
  WriteEntry early = Alloc(early_tx, 100, 'e');
  ASSERT_TRUE(Commit(early_tx, {early}).ok());
  Truncate(*primary_, early_tx);
  Reply locked = primary_->p.Lock(LockRequest{kConfig, late_tx, {kRegion}, {late}});
  ASSERT_TRUE(StatusOf(locked).ok()) << StatusOf(locked);
  primary_->log.reset();
  auto restarted = std::make_unique<Machine>(1, &table_, Path(".primary.log"));
  absl::StatusOr<RestoreReport> r =
      restarted->p.RestoreFromFiles(Path(".primary.ckpt"), Path(".primary.log"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->checkpoint_lsn, 0u);
  EXPECT_EQ(r->pending, 1u) << "the late allocation, locked";
  EXPECT_TRUE(restarted->memory == primary_->memory) << "the restart differs from the live copy";
  ASSERT_TRUE(StatusOf(restarted->p.CommitPrimary(TxRequest{kConfig, late_tx})).ok());
  small.push_back(early);
  small.push_back(late);
  ExpectBackupHolds(*restarted, small);  // a primary, checked the same way
}

// The CM runs a recovery again when one of its steps failed at a machine,
// so a participant can get the RESOLVE of a transaction it resolved already,
// while the regions the failure did not touch served on. Meanwhile a block
// the transaction's allocation used emptied and took another size class,
// and the primary holds a slot of that class reserved in it. The second
// RESOLVE must leave the block alone: giving it its old class back at the
// backup formats it again there, above the version of that reserved slot,
// whose commit then never reaches the backup's copy.
TEST_F(HeapReuseTest, AResolveSentAgainChangesNothingWhereItWasResolved) {
  const WriteEntry big = Alloc(kD, 2000, 'd');
  LockAndBackUp(kD, {big});  // its coordinator dies: recovery commits it
  std::vector<InFlightRecord> records = primary_->p.InFlight();
  for (InFlightRecord& r : backup_->p.InFlight()) records.push_back(std::move(r));
  const std::vector<Resolution> decided = DecideInFlight(records, {});
  ASSERT_EQ(decided.size(), 1u);
  ASSERT_TRUE(decided[0].commit);
  for (Machine* m : {primary_.get(), backup_.get()}) m->p.Resolve(decided[0]);
  CommitAndTruncate(kA2, {Free(big.addr)});  // the block empties
  const WriteEntry reserved = ReserveThenEmptyAtTheBackup();
  for (Machine* m : {primary_.get(), backup_.get()}) m->p.Resolve(decided[0]);  // the run again
  CommitAndTruncate(kT, {reserved});
  ExpectBackupMatchesPrimary(*backup_, {reserved});
  EXPECT_EQ(primary_->p.Known(kD), Outcome::kCommitted);
  EXPECT_EQ(backup_->p.Known(kD), Outcome::kCommitted);
}

}  // namespace
}  // namespace dctk::farm::tx
