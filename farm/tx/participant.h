// Participant: one machine's side of FaRM's commit protocol, over its own
// copies of the regions it hosts (as primary or backup). It is transport
// free: TxMachine (machine.h) feeds it the requests arriving on its message
// rings, a coordinator on the same machine calls it directly (the
// single-machine fast path), and recovery (recovery.h) drives it too.
//
//   LOCK (primary)           log; lock every entry at its read version, or
//                            unlock what it took and refuse with the reason
//   COMMIT-BACKUP (backup)   log the entries; acknowledge (applied once
//                            committed, in COMMIT-BACKUP order per block)
//   COMMIT-PRIMARY (primary) log; apply the locked entries, unlock
//   ABORT (primary)          log; unlock, drop the transaction's reservations
//   TRUNCATE (both)          backups apply their logged entries; forget the tx
//   ALLOC (primary)          reserve a slot in the region's ObjectHeap
//
// A backup applies a committed transaction's entries (at TRUNCATE, or when
// recovery decides) only after every transaction whose COMMIT-BACKUP it logged
// earlier and that touches one of the same 1 MB heap blocks with objects of
// another size class was applied or aborted. COMMIT-BACKUP order is the
// primaries' order for transactions that depend on each other (a
// transaction's COMMIT-BACKUPs are acknowledged before its COMMIT-PRIMARY,
// which comes before any LOCK that sees its effects), so the frees that
// emptied a block reach the heap mirror before an allocation that reused the
// block for another size class, whatever order the TRUNCATEs of their
// coordinators arrive in. Entries of one size class need no order (exact
// versions), so a record whose coordinator died before COMMIT-PRIMARY holds
// back nothing: while it holds its objects' locks and slots at the
// primaries, no block it touches can change class. Entries recovery learned
// from other machines, and re-replication copies, queue behind what is
// logged here.
//
// Lock recovery (FaRM SOSP'15, section 5.3): when recovery starts for a
// region this machine backs (BeginRecovery, Block), it locks every object
// that a COMMIT-BACKUP record not applied yet writes there, before the
// region can serve as a promoted primary: the transaction may already have
// committed at another participant, and a one-sided read must not see the
// object's state from before that commit (readers retry a locked object).
// An allocation's slot is reserved in the heap and locked as an object
// (its first line says so), so a reader following a pointer committed
// elsewhere retries instead of finding no object. A backup that holds no
// record of a transaction recovery decided to commit (with f >= 2, the
// coordinator reached another backup only) gets the decided entries from
// recovery before the new configuration is installed (RecoverLocks, FaRM's
// NEED-RECOVERY in reverse: recovery already holds every backup's records),
// logs them as its own COMMIT-BACKUP record and locks them the same way.
// Applying the record (commit) or dropping it (abort) releases the lock.
//
// Requests from another configuration than the current one are refused with
// Unavailable, and so are requests for a region while recovery runs for it
// (BeginRecovery ... FinishRecovery): a region whose replicas did not change
// keeps serving the new configuration's transactions meanwhile. Once a
// configuration was installed with its removed members (InstallConfig), a
// LOCK or ALLOC whose coordinator it lists as removed is refused with
// FailedPrecondition: a client the CM removed at lease expiry (recovery
// decided its transactions) must not take locks no lease expiry would ever
// release.
//
// Every record is written to the TxLog before the reply, and (kEveryRecord)
// synced before the reply leaves: group commit (tx_log.h). A handler
// appends its record under the participant's lock and syncs it after
// releasing the lock, so records other threads append meanwhile share its
// fdatasync; a thread that runs many handlers before sending any of their
// replies (TxMachine's server thread: the requests of one pass over its
// rings) holds a BatchedReplies, and calls SyncLog() once before the first
// of those replies goes out.
//
// Outcomes (OUTCOME, recovery's KNOWN) are kept per coordinator stream
// (wire.h TxStream) from its truncation watermark up: each message of a
// coordinator says which of its transactions are finished, and their
// outcomes are forgotten, so what is remembered is bounded by what the
// coordinators have in flight, not by a count. A LOCK of a transaction
// decided here, or below its watermark, is refused, and a COMMIT-BACKUP of
// one is acknowledged only if it committed (a resend); OUTCOME of one below
// the watermark answers kFinished (its coordinator knows). While recovery
// runs, nothing is forgotten (a run of it, or one run again after a step
// failed, asks KNOWN of the transactions it decides); at its end the
// watermarks apply, and the streams of every coordinator the installed
// configuration lists as removed go whole: recovery decided what it left,
// and OUTCOME of its transactions is refused from then on
// (FailedPrecondition naming the removal), never answered as if no record
// had survived. A watermark carries its coordinator's incarnation: a higher
// one (a process restarted under the same machine and slot) starts its
// stream afresh, and a LOCK or COMMIT-BACKUP of a lower one (the replaced
// process) is refused. LOCK, COMMIT-BACKUP, COMMIT-PRIMARY, ABORT and
// TRUNCATE records carry the watermark, and checkpoints keep the
// watermarks with the outcomes above them.
//
// Example:
//   Participant p(/*self=*/1, &table, log.get());
//   p.HostRegion(7, base, size);
//   p.SetConfig(1);
//   Reply r = p.Lock(lock_request);
#ifndef DCTK_FARM_TX_PARTICIPANT_H_
#define DCTK_FARM_TX_PARTICIPANT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "farm/core/region_table.h"
#include "farm/fabric/fabric.h"
#include "farm/tx/checkpoint.h"
#include "farm/tx/object_heap.h"
#include "farm/tx/tx_log.h"
#include "farm/tx/wire.h"

namespace dctk::farm::tx {

// kFinished: below its coordinator's truncation watermark (the coordinator
// knows the outcome; this participant no longer does).
enum class Outcome : uint64_t { kUnknown = 0, kCommitted = 1, kAborted = 2, kFinished = 3 };

// A transaction's record at one participant that recovery must resolve.
struct InFlightRecord {
  TxId tx = 0;
  fabric::MachineId machine = 0;
  LogType type = LogType::kLock;  // kLock (locked or committed at primary) / kCommitBackup
  bool primary_committed = false; // COMMIT-PRIMARY applied here
  LockRequest request;
};

// What recovery decided for a transaction, with every entry it found.
struct Resolution {
  TxId tx = 0;
  bool commit = false;
  std::vector<WriteEntry> entries;
};

// Re-replication: consistent copies of a region's live objects, each as the
// committed entry that would produce it (kind kAlloc, version = copied - 1,
// slot_bytes, payload), the marks of the heap blocks the chunk spans (their
// size classes and version floors, EntryKind::kBlockMark), and where the next
// chunk starts.
struct RegionChunk {
  std::vector<WriteEntry> objects;
  std::vector<WriteEntry> blocks;
  uint64_t next = 0;  // the region's size once the last chunk was taken

  // What ApplyChunk takes: the marks, then the objects.
  std::vector<WriteEntry> Entries() const;
};

struct CheckpointReport {
  uint64_t lsn = 0;              // the log position it covers
  uint64_t image_bytes = 0;      // pages written
  uint64_t reclaimed_bytes = 0;  // log segments deleted
};

struct RestoreReport {
  uint64_t checkpoint_lsn = 0;  // 0: no checkpoint
  uint64_t pages = 0;           // loaded from the checkpoint
  uint64_t replayed = 0;        // log records after it
  size_t pending = 0;           // transactions left in flight (for recovery)
};

struct ParticipantStats {
  uint64_t locks = 0, lock_conflicts = 0, commit_backups = 0, commit_primaries = 0;
  uint64_t aborts = 0, truncates = 0, allocs = 0, refused_config = 0;
};

class Participant {
 public:
  Participant(fabric::MachineId self, const RegionTable* table, TxLog* log);

  // This machine holds a copy of region `id` at `base` (primary or backup,
  // as the region table says).
  void HostRegion(RegionId id, uint8_t* base, uint64_t size);
  bool Hosts(RegionId id) const;
  void SetConfig(uint64_t config);
  // Configuration `config` with the machines and clients it lists as
  // removed (the CM's `failed`: never members again): from now on a LOCK or
  // ALLOC of a transaction they coordinate is refused (FailedPrecondition),
  // and, after a Block or BeginRecovery into a newer configuration, every
  // LOCK or ALLOC until that one's removed members are installed
  // (Unavailable; farmd installs them right after BeginRecovery, from BLOCK's
  // RecoveryScope).
  // Without it any coordinator is admitted (LocalCluster and farmd install it).
  void InstallConfig(uint64_t config, std::vector<fabric::MachineId> removed);
  uint64_t config() const;

  // While one lives, the handlers this thread runs on `p` leave their
  // records unsynced: the thread calls p.SyncLog() before it sends any of
  // their replies.
  class BatchedReplies {
   public:
    explicit BatchedReplies(const Participant& p);
    ~BatchedReplies();
    BatchedReplies(const BatchedReplies&) = delete;
    BatchedReplies& operator=(const BatchedReplies&) = delete;

   private:
    const Participant* outer_;
  };
  // Syncs every record logged so far (kEveryRecord: one fdatasync shared
  // with any other thread syncing; none if all are on disk already).
  void SyncLog();

  Reply Lock(const LockRequest& r);
  Reply CommitBackup(const LockRequest& r);
  Reply CommitPrimary(const TxRequest& r);
  Reply Abort(const TxRequest& r);
  Reply Truncate(const TxRequest& r);
  Reply Alloc(const AllocRequest& r);
  // value: the Outcome; aux: the current configuration (0 while blocked).
  // FailedPrecondition for a transaction of a coordinator the installed
  // configuration removed, once recovery ended (its outcomes are dropped).
  // A watermark it carries applies as on any other message.
  Reply QueryOutcome(const TxRequest& r);

  // Recovery into `new_config` (recovery.h): from now on only requests of
  // `new_config` are served, and none for the `recovering` regions (their
  // replicas changed) until FinishRecovery; every other region keeps
  // serving, so transactions on regions a failure did not touch commit while
  // the touched ones recover.
  void BeginRecovery(uint64_t new_config, const std::vector<RegionId>& recovering);
  // The regions serve again (empty: every recovering region).
  void FinishRecovery(const std::vector<RegionId>& regions = {});
  // Recovery of everything: refuse every protocol request until
  // Resume(new_config) (also ends a BeginRecovery).
  void Block();
  void Resume(uint64_t config);
  // Lock recovery of the transactions recovery decided to commit (`commits`,
  // from DecideInFlight), before the new configuration is installed: for
  // each one this machine has neither applied nor holds a COMMIT-BACKUP
  // record of, and that writes a region hosted here, the decided entries
  // become this machine's record (logged as COMMIT-BACKUP, reported by
  // InFlight, applied by Resolve), and the objects and slots they write in
  // the regions recovering here as a backup are locked. InvalidArgument,
  // naming the transaction and the entry, for an abort or an entry no
  // transaction writes (a block mark, a slot of no size class, an object
  // beyond its region); nothing is logged or locked then.
  absl::Status RecoverLocks(const std::vector<Resolution>& commits);
  // The records recovery must resolve: those of transactions of
  // configurations before `before` (0: all). Transactions of the new
  // configuration, admitted on untouched regions during recovery, go on.
  std::vector<InFlightRecord> InFlight(uint64_t before = 0) const;
  Outcome Known(TxId tx) const;
  // Outcomes remembered now (all coordinators): what their in-flight
  // transactions, and recoveries running, hold back.
  size_t remembered_outcomes() const;
  // Applies (commit) or undoes (abort) the transaction here: entries of
  // regions hosted here are installed; locks it holds are released. A
  // transaction already decided here that holds no record (a recovery run
  // again after a step failed elsewhere) is left as it is.
  void Resolve(const Resolution& r);
  // Drops every reservation (recovery: their transactions cannot commit).
  void ReleaseAllReservations();
  // Drops the reservations of transactions of configurations before
  // `config` (a scoped recovery: the new configuration's go on).
  void ReleaseReservationsBefore(uint64_t config);

  // Re-replication, at the primary: the live objects of region `id` that
  // start at offsets >= `from`, about `max_bytes` of them, copied under this
  // participant's lock (so none is torn or mid-commit; a locked object is
  // copied as its last committed state). FailedPrecondition if this machine
  // is not the region's primary.
  absl::StatusOr<RegionChunk> CopyChunk(RegionId id, uint64_t from, uint64_t max_bytes) const;
  // At a new (copying) backup, `entries` from RegionChunk::Entries: adopts
  // each block mark (ObjectHeap::AdoptMark), installs each copied object
  // unless this copy already holds that version or a newer one (from a
  // COMMIT-BACKUP record installed meanwhile), and marks it live in the heap.
  // Returns how many objects it installed. The chunk is logged (COPIED), so a
  // restart from this machine's files has the copy without waiting for a
  // checkpoint.
  absl::StatusOr<int> ApplyChunk(RegionId id, const std::vector<WriteEntry>& entries);

  // Checkpoints (checkpoint.h): writes a consistent image of every region
  // copy here, at the log's current LSN, to `path` (`sync`: fdatasync it),
  // then trims the log before that LSN. Commits pause only while the image is
  // copied in memory, not while it is written.
  absl::StatusOr<CheckpointReport> TakeCheckpoint(const std::string& path, bool sync);
  // Restart: loads the checkpoint at `checkpoint_path` (none: the log must
  // still start at LSN 1) into the regions hosted here (HostRegion first, on
  // zeroed memory; the same ids and sizes), then replays the log at
  // `log_path` after it. Committed state is back; transactions that were in
  // flight are pending again, for recovery (RecoverTransactions) to decide.
  // A damaged checkpoint or log is DataLoss and nothing is applied from it
  // past the damage (a torn final log record is ignored as incomplete).
  // Call before this participant serves or logs anything.
  absl::StatusOr<RestoreReport> RestoreFromFiles(const std::string& checkpoint_path, const std::string& log_path);
  absl::StatusOr<RestoreReport> Restore(const Checkpoint* checkpoint, const std::vector<LogRecord>& records);
  uint64_t logged_bytes() const;         // appended to the log since it was opened
  uint64_t retained_log_bytes() const;   // in its segment files now

  // The local copy of an object (tests, re-replication).
  absl::StatusOr<uint8_t*> ObjectAt(GlobalAddress addr) const;
  ParticipantStats stats() const;

 private:
  struct Hosted {
    uint8_t* base;
    uint64_t size;
    std::unique_ptr<ObjectHeap> heap;
  };
  // An object (or an allocation's slot) lock recovery locked.
  struct RecoveryLock {
    GlobalAddress addr;
    uint8_t* obj = nullptr;
    bool slot = false;     // an allocation's slot, reserved and locked as an object
    uint64_t version = 0;  // slot: its free header before (what an abort restores)
  };
  // A COMMIT-BACKUP record (tx != 0) or a re-replication copy (tx 0)
  // waiting to be applied.
  struct Backed {
    TxId tx = 0;
    LockRequest request;
    bool committed = false;  // TRUNCATE arrived or recovery decided commit
    // Objects lock recovery locked for it, until it is applied or aborted.
    std::vector<RecoveryLock> locked;
  };
  struct Pending {
    LockRequest request;
    bool committed = false;  // COMMIT-PRIMARY done (primary)
    std::vector<uint8_t*> locked;  // objects locked, parallel to request.entries
    std::vector<size_t> lines;     // their slots' lines
  };

  absl::Status Admit(uint64_t config, const char* what) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // FailedPrecondition if `tx`'s coordinator was removed (InstallConfig).
  absl::Status AdmitCoordinator(TxId tx, const char* what) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Unavailable if recovery runs for one of `regions` (or for `tx`'s).
  absl::Status AdmitRegions(const std::vector<WriteEntry>& entries, const char* what) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::Status AdmitRegion(RegionId region, const char* what) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::Status AdmitTx(TxId tx, const char* what) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  bool Recovering() const ABSL_SHARED_LOCKS_REQUIRED(mu_) { return blocked_ || deciding_ || !recovering_.empty(); }
  bool IsPrimary(RegionId id) const;
  void ReleaseReservations(TxId tx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The copy of `addr` here and its slot's lines.
  // `slot_bytes` 0: ask the heap (the object must be live or reserved).
  absl::Status Locate(GlobalAddress addr, uint32_t slot_bytes, uint8_t** obj, size_t* lines) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void UpdateHeap(const WriteEntry& e, size_t lines) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ApplyChunk without logging (also its replay); the region is hosted here.
  int ApplyChunkHere(const std::vector<WriteEntry>& objects) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The refusal of a block mark (wire.h) sent in a transaction's `what`.
  absl::Status NotATransactionEntry(const WriteEntry& e, const char* what) const;
  // InvalidArgument unless `e` is a block mark or an object of region `id`.
  absl::Status CheckCopied(RegionId id, const WriteEntry& e) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void ReleaseLocks(Pending& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Lock recovery (above): locks the objects written by the records not
  // applied yet in the regions that recover here as a backup, and reserves
  // and locks their allocations' slots (unless an earlier record not applied
  // yet puts another size class in the slot's heap block: that one comes
  // first, and the slot does not exist until it did).
  void LockRecovery() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reserves the slot of allocation `e` of record `tx` and locks it as an
  // object; false if it cannot be reserved here.
  bool LockSlot(TxId tx, const WriteEntry& e, RecoveryLock* lock)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Releases the objects lock recovery locked for `b` (applied or aborted),
  // except those another record not applied yet holds too; a slot whose
  // allocation was not installed is free again, at its old header.
  void ReleaseRecoveryLocks(const Backed& b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // RecoverLocks' check of one decision: InvalidArgument naming what is wrong.
  absl::Status CheckDecided(const Resolution& r) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Installs committed entries (idempotent, at their exact versions); the
  // heap follows each object. Returns how many objects changed.
  int Install(const std::vector<WriteEntry>& entries) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues a record behind those logged before it (a known tx keeps its
  // place); returns its sequence number.
  uint64_t Enqueue(TxId tx, LockRequest request, bool committed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies every committed record that no earlier unapplied record holds
  // back (one with entries of another slot size in the same blocks).
  // Returns what Install returned for record `seq`.
  int ApplyBacked(uint64_t seq = 0) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const Backed* FindBacked(TxId tx) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The effects of each record, without logging (handlers and replay).
  void CommitPrimaryHere(TxId tx, Pending& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AbortHere(TxId tx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TruncateHere(TxId tx) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ResolveHere(const Resolution& r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes the locks of a LOCK record again (replay, checkpoint restore),
  // reserving the slots of its allocations again first (ObjectHeap::ReserveAgain).
  absl::Status Relock(const LockRequest& r, Pending* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Replay(const LogRecord& rec) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Outcome bookkeeping (participant_outcomes.cc).
  void Remember(TxId tx, Outcome o) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A coordinator's truncation point (0: none): its transactions below it
  // are finished. Their outcomes go now, or when recovery ends. A higher
  // incarnation than the stream's starts it afresh; false (nothing changed)
  // if a higher one replaced the watermark's incarnation.
  bool Truncated(const Watermark& watermark) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The refusal of `what` of a transaction whose incarnation was replaced.
  absl::Status Replaced(TxId tx, const Watermark& w, const char* what) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The installed configuration removed `coordinator` and no recovery runs:
  // recovery decided everything it left, so nothing is kept for it.
  bool Retired(fabric::MachineId coordinator) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Forgets the outcomes below the watermarks and the streams of retired
  // coordinators (not while recovering).
  void ForgetFinished() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The payload of a COMMIT-PRIMARY, ABORT or TRUNCATE record: the
  // watermark its request carried (empty: none), and its replay.
  static std::string WatermarkRecord(const Watermark& watermark);
  absl::Status ReplayWatermark(const LogRecord& rec) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Outcome KnownHere(TxId tx) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  Reply OutcomeHere(TxId tx) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Committed, aborted or finished here (a record of it may still be held).
  bool Decided(TxId tx) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // FailedPrecondition for a LOCK (or a COMMIT-BACKUP not to acknowledge)
  // of a decided transaction; OK otherwise.
  absl::Status RefuseDecided(TxId tx, const char* what) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Appends a record. Under a SyncBeforeReply or a BatchedReplies of this
  // thread its sync is theirs; otherwise it is synced here (under mu_).
  void Log(LogType type, TxId tx, absl::string_view payload) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Declared in a handler before it takes mu_: syncs the record the handler
  // logged once mu_ is released, before the reply is returned.
  class SyncBeforeReply {
   public:
    explicit SyncBeforeReply(Participant* p);
    ~SyncBeforeReply();
    SyncBeforeReply(const SyncBeforeReply&) = delete;
    SyncBeforeReply& operator=(const SyncBeforeReply&) = delete;

   private:
    friend class Participant;
    Participant* const p_;
    SyncBeforeReply* const outer_;
    uint64_t lsn_ = 0;  // the record to sync (0: none)
  };
  // The participant whose replies this thread batches, and the handler it runs now.
  static thread_local const Participant* batched_;
  static thread_local SyncBeforeReply* handler_;

  const fabric::MachineId self_;
  const RegionTable* table_;
  TxLog* log_;

  mutable absl::Mutex mu_;
  uint64_t config_ ABSL_GUARDED_BY(mu_) = 0;
  // The removed members of configuration removed_in_ (0: none installed).
  uint64_t removed_in_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_set<fabric::MachineId> removed_ ABSL_GUARDED_BY(mu_);
  bool blocked_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<RegionId> recovering_ ABSL_GUARDED_BY(mu_);
  // Between BeginRecovery and the end of its recovery (even with no region
  // recovering: a join changes no replicas), the older configurations'
  // transactions are not all decided yet, so OUTCOME must not report a
  // finished recovery.
  bool deciding_ ABSL_GUARDED_BY(mu_) = false;
  // The configuration of each transaction holding reservations here.
  absl::flat_hash_map<TxId, uint64_t> reserved_in_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<RegionId, Hosted> hosted_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<TxId, Pending> locked_ ABSL_GUARDED_BY(mu_);        // at primaries
  // At backups, by COMMIT-BACKUP order (sequence number), and the tx index.
  absl::btree_map<uint64_t, Backed> backed_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<TxId, uint64_t> backed_seq_ ABSL_GUARDED_BY(mu_);
  uint64_t next_backed_ ABSL_GUARDED_BY(mu_) = 1;
  // Per coordinator stream: its truncation watermark and the decisions of
  // its transactions from there on (below it too while recovery runs).
  struct Stream {
    TxId watermark = 0;
    uint64_t incarnation = 0;  // of the coordinator that sent the watermark (0: not told)
    absl::flat_hash_map<TxId, Outcome> outcomes;
  };
  absl::flat_hash_map<uint32_t, Stream> streams_ ABSL_GUARDED_BY(mu_);
  ParticipantStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dctk::farm::tx

#endif  // DCTK_FARM_TX_PARTICIPANT_H_
