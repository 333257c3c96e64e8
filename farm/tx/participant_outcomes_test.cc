// Outcome memory at the participants (participant.h): per coordinator, from
// its truncation watermark up, instead of a bounded cache of recent
// decisions. Deterministic: the tests play coordinators' messages at a
// primary (machine 1) and a backup (machine 2) of region 7.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "farm/core/object.h"
#include "farm/tx/object_heap.h"
#include "farm/tx/participant.h"
#include "gtest/gtest.h"

namespace dctk::farm::tx {
namespace {

constexpr RegionId kRegion = 7;
constexpr uint64_t kRegionBytes = 1 << 20;
constexpr uint64_t kConfig = 1;

// The old bound: a participant remembered the last 1 Mi decisions (64 Ki
// committed ones across a restart).
constexpr uint64_t kOldBound = 1 << 20;

// One machine: a copy of region 7, a log (none with an empty path) and its
// participant.
struct Machine {
  Machine(fabric::MachineId id, const RegionTable* table, const std::string& log_path)
      : memory(kRegionBytes / 8),
        log(*TxLog::Open(log_path, FsyncPolicy::kNever)),
        p(id, table, log.get()) {
    p.HostRegion(kRegion, reinterpret_cast<uint8_t*>(memory.data()), kRegionBytes);
    p.SetConfig(kConfig);
  }
  std::vector<uint64_t> memory;
  std::unique_ptr<TxLog> log;
  Participant p;
};

class OutcomeTest : public ::testing::Test {
 protected:
  // The primary keeps its log at `primary_log` (empty: none).
  void Start(const std::string& primary_log = "") {
    EXPECT_TRUE(table_.Upsert({kRegion, kRegionBytes, {{1, 0}, {2, 0}}}).ok());
    primary_ = std::make_unique<Machine>(1, &table_, primary_log);
    backup_ = std::make_unique<Machine>(2, &table_, "");
    object_ = CreateObject(MakeTxId(9, 0, 1));
  }

  static std::string Path(absl::string_view suffix) {
    return absl::StrCat(::testing::TempDir(), "/",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name(), suffix);
  }

  // An 8-byte object, committed and truncated by `tx`.
  GlobalAddress CreateObject(TxId tx) {
    Reply r = primary_->p.Alloc(AllocRequest{kConfig, tx, kRegion, 8, 0});
    EXPECT_TRUE(StatusOf(r).ok()) << StatusOf(r);
    const GlobalAddress addr = GlobalAddress::FromRaw(r.value);
    EXPECT_TRUE(Commit(LockOf(tx, {addr, r.aux, EntryKind::kAlloc, 64, "new"}, tx)).ok());
    EXPECT_TRUE(Truncate(tx, tx).ok());
    return addr;
  }

  // A write of `data` to the object at the version the primary holds.
  WriteEntry WriteNow(absl::string_view data) const {
    const uint8_t* obj = *primary_->p.ObjectAt(object_);
    return {object_, VersionOf(*reinterpret_cast<const uint64_t*>(obj)), EntryKind::kWrite, 0,
            std::string(data)};
  }

  static LockRequest LockOf(TxId tx, WriteEntry e, Watermark watermark) {
    return LockRequest{kConfig, tx, {kRegion}, {std::move(e)}, watermark};
  }

  // LOCK, COMMIT-BACKUP and COMMIT-PRIMARY, each carrying `req.watermark`.
  absl::Status Commit(LockRequest req) {
    Reply r = primary_->p.Lock(req);
    if (absl::Status s = StatusOf(r); !s.ok()) return s;
    req.entries[0].slot_bytes = r.slot_bytes[0];
    if (absl::Status s = StatusOf(backup_->p.CommitBackup(req)); !s.ok()) return s;
    return StatusOf(primary_->p.CommitPrimary(TxRequest{kConfig, req.tx, req.watermark}));
  }

  // TRUNCATE at both.
  absl::Status Truncate(TxId tx, Watermark watermark) {
    if (absl::Status s = StatusOf(primary_->p.Truncate({kConfig, tx, watermark})); !s.ok())
      return s;
    return StatusOf(backup_->p.Truncate({kConfig, tx, watermark}));
  }

  // Coordinator `machine` commits `n` transactions one after the other,
  // each finished before the next (its watermark is the transaction
  // itself), that write regions the primary backs (elsewhere): what each
  // leaves here is its TRUNCATE (quick enough to play more than kOldBound).
  void CommitMany(uint32_t machine, uint64_t n) {
    for (uint64_t i = 1; i <= n; ++i) {
      const TxId tx = MakeTxId(machine, 0, i);
      ASSERT_TRUE(StatusOf(primary_->p.Truncate({kConfig, tx, tx})).ok()) << i;
    }
  }

  static Outcome Asked(Participant& p, TxId tx) {
    Reply r = p.QueryOutcome(TxRequest{kConfig, tx});
    EXPECT_TRUE(StatusOf(r).ok()) << StatusOf(r);
    return static_cast<Outcome>(r.value);
  }

  bool ObjectLocked() const {
    return IsLocked(*reinterpret_cast<const uint64_t*>(*primary_->p.ObjectAt(object_)));
  }

  RegionTable table_;
  std::unique_ptr<Machine> primary_, backup_;
  GlobalAddress object_;
};

// Coordinator A's transaction aborted and C's committed, but neither
// coordinator has finished it yet (sent a later watermark): however many
// other transactions commit meanwhile, more than the old bound, both
// outcomes are kept, and a late copy of A's LOCK is refused instead of
// locking the object again (A's ABORT left it at the version A read).
TEST_F(OutcomeTest, DecidedTransactionsAreRememberedPastTheOldBoundAndALateLockRefused) {
  Start();
  const TxId a = MakeTxId(10, 0, 5), c = MakeTxId(12, 0, 3);
  ASSERT_TRUE(Commit(LockOf(c, WriteNow("c"), c)).ok());
  ASSERT_TRUE(Truncate(c, c).ok());
  const LockRequest late = LockOf(a, WriteNow("a"), a);
  ASSERT_TRUE(StatusOf(primary_->p.Lock(late)).ok());
  ASSERT_TRUE(StatusOf(primary_->p.Abort({kConfig, a, a})).ok());
  CommitMany(11, kOldBound + 8);

  EXPECT_EQ(Asked(primary_->p, c), Outcome::kCommitted);
  EXPECT_EQ(Asked(primary_->p, a), Outcome::kAborted);
  absl::Status s = StatusOf(primary_->p.Lock(late));
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find(absl::StrCat("transaction ", a, " already aborted here")),
            std::string::npos)
      << s;
  EXPECT_FALSE(ObjectLocked()) << "a late LOCK of an aborted transaction locked it again";
  // What is remembered: A's, C's, B's last and the object's creator's (its
  // coordinator sent nothing since): what they have not finished.
  EXPECT_LE(primary_->p.remembered_outcomes(), 4u);
}

// Once A's watermark passes its transaction (A finished it), the outcome is
// gone: OUTCOME says finished (A knows), a late LOCK is refused, a late
// COMMIT-BACKUP is refused rather than logged as a record nobody decides.
TEST_F(OutcomeTest, BelowTheWatermarkATransactionIsFinished) {
  Start();
  const TxId a1 = MakeTxId(10, 0, 5), a2 = MakeTxId(10, 0, 6);
  LockRequest late = LockOf(a1, WriteNow("a"), a1);
  ASSERT_TRUE(Commit(late).ok());
  ASSERT_TRUE(Truncate(a1, a1).ok());
  ASSERT_TRUE(Commit(LockOf(a2, WriteNow("b"), /*watermark=*/a2)).ok());

  EXPECT_EQ(Asked(primary_->p, a1), Outcome::kFinished);
  EXPECT_EQ(Asked(backup_->p, a1), Outcome::kFinished);
  EXPECT_EQ(Asked(primary_->p, a2), Outcome::kCommitted);
  absl::Status s = StatusOf(primary_->p.Lock(late));
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find("below its coordinator's truncation point"), std::string::npos) << s;
  EXPECT_FALSE(ObjectLocked());
  late.entries[0].slot_bytes = 64;
  s = StatusOf(backup_->p.CommitBackup(late));
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  const std::vector<InFlightRecord> records = backup_->p.InFlight();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].tx, a2) << "a late COMMIT-BACKUP became a record";
  // A resend of a COMMIT-BACKUP of a committed transaction is acknowledged
  // and logs nothing.
  LockRequest again = LockOf(a2, WriteEntry{object_, 0, EntryKind::kWrite, 64, "b"}, a2);
  EXPECT_TRUE(StatusOf(backup_->p.CommitBackup(again)).ok());
}

// While recovery runs nothing is forgotten: it (or a run of it again after a
// step failed) asks KNOWN of the transactions it decides. Once it ends, the
// watermarks apply, and a coordinator the configuration removed (C, which
// died before its TRUNCATE) leaves nothing: recovery decided what it had in
// flight. Its late OUTCOME question is refused naming the removal, not
// answered "unknown in a newer configuration", which a coordinator reads as
// "no record survived, not committed" (at fe00caa its outcome was kept for
// good instead).
TEST_F(OutcomeTest, RecoveryKeepsTheOutcomesUntilItEndsThenARemovedCoordinatorsGo) {
  Start();
  const TxId a1 = MakeTxId(10, 0, 5), a2 = MakeTxId(10, 0, 6), c1 = MakeTxId(12, 0, 1);
  ASSERT_TRUE(Commit(LockOf(a1, WriteNow("a"), a1)).ok());
  ASSERT_TRUE(Truncate(a1, a1).ok());
  ASSERT_TRUE(Commit(LockOf(c1, WriteNow("c"), c1)).ok());  // C dies before TRUNCATE
  primary_->p.BeginRecovery(kConfig + 1, {});
  primary_->p.InstallConfig(kConfig + 1, {12});
  // A, on a region the failure did not touch, finishes a1 meanwhile.
  LockRequest next = LockOf(a2, WriteNow("b"), a2);
  next.config = kConfig + 1;
  ASSERT_TRUE(StatusOf(primary_->p.Lock(next)).ok());
  EXPECT_EQ(primary_->p.Known(a1), Outcome::kCommitted) << "forgotten while recovery runs";
  EXPECT_EQ(primary_->p.Known(c1), Outcome::kCommitted);
  primary_->p.Resolve({c1, true, {}});  // recovery decides C's transaction
  primary_->p.FinishRecovery();
  EXPECT_EQ(primary_->p.Known(a1), Outcome::kFinished);
  EXPECT_EQ(primary_->p.Known(c1), Outcome::kUnknown);
  EXPECT_EQ(primary_->p.remembered_outcomes(), 1u)
      << "only the object's creator's (its coordinator lives)";
  Reply asked = primary_->p.QueryOutcome(TxRequest{kConfig + 1, c1});
  absl::Status s = StatusOf(asked);
  EXPECT_TRUE(absl::IsFailedPrecondition(s))
      << s << " value " << asked.value << " aux " << asked.aux;
  EXPECT_NE(s.message().find("coordinator 12 of transaction"), std::string::npos) << s;
  EXPECT_NE(s.message().find("was removed (configuration 2 lists it)"), std::string::npos) << s;
  // C, removed while alive, sends a late TRUNCATE (of the configuration it
  // learned): it brings back nothing to keep.
  ASSERT_TRUE(StatusOf(primary_->p.Truncate({kConfig + 1, c1, MakeTxId(12, 0, 2)})).ok());
  ASSERT_TRUE(
      StatusOf(primary_->p.Abort({kConfig + 1, MakeTxId(12, 0, 2), MakeTxId(12, 0, 2)})).ok());
  EXPECT_EQ(primary_->p.remembered_outcomes(), 1u);
  // A coordinator removed outside a recovery (nothing in flight) goes at the install.
  ASSERT_TRUE(
      StatusOf(primary_->p.Truncate({kConfig + 1, MakeTxId(13, 0, 1), MakeTxId(13, 0, 1)})).ok());
  ASSERT_TRUE(
      StatusOf(primary_->p.Abort({kConfig + 1, MakeTxId(13, 0, 2), MakeTxId(13, 0, 2)})).ok());
  EXPECT_EQ(primary_->p.remembered_outcomes(), 2u);
  primary_->p.InstallConfig(kConfig + 2, {12, 13});
  EXPECT_EQ(primary_->p.remembered_outcomes(), 1u);
}

// A coordinator restarted under its machine and slot more than half the
// 40-bit sequence circle later (~6.4 days of microseconds) has sequences
// that look older than the watermark its predecessor left. Its higher
// incarnation starts the stream afresh: its LOCK is taken (by sequence
// alone it was refused as below the truncation point), and a late LOCK or
// COMMIT-BACKUP of the replaced process is refused naming both
// incarnations, also after a restart from a checkpoint and the log.
TEST_F(OutcomeTest, ARestartedCoordinatorIsANewIncarnationNotAnOlderSequence) {
  Start(Path(".log"));
  constexpr uint64_t kFirst = 1700000000000000, kSecond = kFirst + (uint64_t{1} << 39) + 5;
  const TxId old1 = MakeTxId(10, 0, kFirst), old2 = MakeTxId(10, 0, kFirst + 1),
             old3 = MakeTxId(10, 0, kFirst + 2);
  const TxId new1 = MakeTxId(10, 0, kSecond);  // masked to 40 bits: before old2 on the circle
  ASSERT_TRUE(TxBefore(new1, old2));
  ASSERT_TRUE(Commit(LockOf(old1, WriteNow("a"), Watermark(old1, kFirst))).ok());
  ASSERT_TRUE(Truncate(old1, Watermark(old1, kFirst)).ok());
  LockRequest late = LockOf(old3, WriteNow("b"), Watermark(old2, kFirst));  // not sent yet
  ASSERT_TRUE(primary_->p.TakeCheckpoint(Path(".ckpt"), false).ok());
  ASSERT_TRUE(StatusOf(primary_->p.Truncate({kConfig, old2, Watermark(old2, kFirst)}))
                  .ok());  // in the log only

  // By sequence alone the restarted coordinator is below the watermark.
  absl::Status s = StatusOf(primary_->p.Lock(LockOf(new1, WriteNow("c"), new1)));
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find("below its coordinator's truncation point"), std::string::npos) << s;

  Machine restarted(1, &table_, "");
  absl::StatusOr<RestoreReport> restored =
      restarted.p.RestoreFromFiles(Path(".ckpt"), Path(".log"));
  ASSERT_TRUE(restored.ok()) << restored.status();
  for (Participant* p : {&primary_->p, &restarted.p}) {
    EXPECT_EQ(p->Known(old1), Outcome::kFinished);
    LockRequest lock = LockOf(new1, WriteNow("c"), Watermark(new1, kSecond));
    Reply r = p->Lock(lock);
    ASSERT_TRUE(StatusOf(r).ok()) << StatusOf(r);
    EXPECT_EQ(p->Known(old1), Outcome::kUnknown) << "the predecessor's watermark still applies";
    ASSERT_TRUE(StatusOf(p->Abort({kConfig, new1, Watermark(new1, kSecond)})).ok());
    EXPECT_EQ(p->Known(new1), Outcome::kAborted);
    s = StatusOf(p->Lock(late));
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
    EXPECT_NE(s.message().find(absl::StrCat("is of incarnation ", kFirst,
                                            " of coordinator 10 (slot 0), which "
                                            "incarnation ",
                                            kSecond, " replaced")),
              std::string::npos)
        << s;
    late.entries[0].slot_bytes = 64;
    s = StatusOf(backup_->p.CommitBackup(late));
  }
  // The backup saw only the first incarnation: it takes its COMMIT-BACKUP.
  EXPECT_TRUE(s.ok()) << s;
  LockRequest from_new =
      LockOf(new1, WriteEntry{object_, 9, EntryKind::kWrite, 64, "c"}, Watermark(new1, kSecond));
  ASSERT_TRUE(StatusOf(backup_->p.CommitBackup(from_new)).ok());
  s = StatusOf(
      backup_->p.CommitBackup(LockOf(old3 + 1, from_new.entries[0], Watermark(old2, kFirst))));
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find("COMMIT-BACKUP refused by machine 2"), std::string::npos) << s;
  // A checkpoint keeps the incarnation.
  ASSERT_TRUE(backup_->p.TakeCheckpoint(Path(".backup.ckpt"), false).ok());
  Machine backup_again(2, &table_, "");
  ASSERT_TRUE(backup_again.p.RestoreFromFiles(Path(".backup.ckpt"), Path(".none")).ok());
  s = StatusOf(
      backup_again.p.CommitBackup(LockOf(old3 + 2, from_new.entries[0], Watermark(old2, kFirst))));
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
}

// A coordinator that leaves the cluster (FarmClient::Leave) drains its
// rings with an OUTCOME carrying its final watermark: the outcomes below it
// go, as with any message carrying one (a departed client is not removed, so
// nothing else would drop them).
TEST_F(OutcomeTest, AnOutcomeQuestionCarryingAWatermarkForgetsBelowIt) {
  Start();
  const TxId a1 = MakeTxId(10, 0, 5), a2 = MakeTxId(10, 0, 6);
  ASSERT_TRUE(Commit(LockOf(a1, WriteNow("a"), a1)).ok());
  ASSERT_TRUE(Truncate(a1, a1).ok());
  const size_t before = primary_->p.remembered_outcomes();
  EXPECT_EQ(Asked(primary_->p, a1), Outcome::kCommitted);  // no watermark: nothing changes
  EXPECT_EQ(primary_->p.remembered_outcomes(), before);
  Reply r = primary_->p.QueryOutcome(TxRequest{kConfig, a2, a2});
  ASSERT_TRUE(StatusOf(r).ok()) << StatusOf(r);
  EXPECT_EQ(static_cast<Outcome>(r.value), Outcome::kUnknown);
  EXPECT_EQ(primary_->p.Known(a1), Outcome::kFinished);
  EXPECT_EQ(primary_->p.remembered_outcomes(), before - 1);
}

// A restart from a checkpoint and the log after it: the watermarks and the
// outcomes above them are back, from both (the 64 Ki committed ids a
// checkpoint kept before, and no watermark at all, are gone).
TEST_F(OutcomeTest, WatermarksAndTheOutcomesAboveThemSurviveACheckpointAndLogReplay) {
  Start(Path(".log"));
  const TxId a1 = MakeTxId(10, 0, 5), a2 = MakeTxId(10, 0, 6), b1 = MakeTxId(11, 0, 1);
  const TxId c1 = MakeTxId(12, 0, 1), c2 = MakeTxId(12, 0, 2);
  const LockRequest late_a1 = LockOf(a1, WriteNow("a"), a1);
  ASSERT_TRUE(Commit(late_a1).ok());
  ASSERT_TRUE(Truncate(a1, a1).ok());
  ASSERT_TRUE(Commit(LockOf(a2, WriteNow("a"), a2)).ok());  // a1 finished; a2 not truncated
  ASSERT_TRUE(primary_->p.TakeCheckpoint(Path(".ckpt"), false).ok());
  // After the checkpoint, in the log only: B aborts, C finishes c1.
  ASSERT_TRUE(StatusOf(primary_->p.Lock(LockOf(b1, WriteNow("b"), b1))).ok());
  ASSERT_TRUE(StatusOf(primary_->p.Abort({kConfig, b1, b1})).ok());
  const LockRequest late_c1 = LockOf(c1, WriteNow("c"), c1);
  ASSERT_TRUE(Commit(late_c1).ok());
  ASSERT_TRUE(Truncate(c1, c1).ok());
  ASSERT_TRUE(StatusOf(primary_->p.Truncate({kConfig, c2, c2})).ok());  // C's next: c1 finished
  const size_t remembered = primary_->p.remembered_outcomes();

  Machine restarted(1, &table_, "");
  absl::StatusOr<RestoreReport> r = restarted.p.RestoreFromFiles(Path(".ckpt"), Path(".log"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->replayed, 0u);
  EXPECT_EQ(restarted.p.Known(a1), Outcome::kFinished);   // checkpoint watermark
  EXPECT_EQ(restarted.p.Known(a2), Outcome::kCommitted);  // checkpoint outcome
  EXPECT_EQ(restarted.p.Known(b1), Outcome::kAborted);    // log
  EXPECT_EQ(restarted.p.Known(c1), Outcome::kFinished);   // log: TRUNCATE's watermark
  EXPECT_EQ(restarted.p.Known(c2), Outcome::kCommitted);
  EXPECT_EQ(restarted.p.remembered_outcomes(), remembered);
  for (const LockRequest& late : {late_a1, late_c1}) {
    absl::Status s = StatusOf(restarted.p.Lock(late));
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  }
  uint8_t* obj = *restarted.p.ObjectAt(object_);
  EXPECT_FALSE(IsLocked(*reinterpret_cast<uint64_t*>(obj)));
}

// A log record whose watermark is not its transaction's coordinator's stops
// the restart, naming the record.
TEST_F(OutcomeTest, AMalformedWatermarkInTheLogIsDataLossNamingTheRecord) {
  Start();
  const TxId a1 = MakeTxId(10, 0, 5);
  LogRecord bad{LogType::kTruncate, a1, std::string(8, '\x01'), 1};
  Machine restarted(1, &table_, "");
  absl::StatusOr<RestoreReport> r = restarted.p.Restore(nullptr, {bad});
  EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("log record 1 (TRUNCATE of transaction"), std::string::npos)
      << r.status();
  EXPECT_NE(r.status().message().find("malformed truncation watermark"), std::string::npos)
      << r.status();
}

}  // namespace
}  // namespace dctk::farm::tx
