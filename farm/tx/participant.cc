#include "farm/tx/participant.h"

#include "absl/strings/str_cat.h"
#include "farm/core/object.h"
#include "farm/tx/internal/object_ops.h"
#include "glog/logging.h"

namespace dctk::farm::tx {

thread_local const Participant* Participant::batched_ = nullptr;
thread_local Participant::SyncBeforeReply* Participant::handler_ = nullptr;

Participant::BatchedReplies::BatchedReplies(const Participant& p) : outer_(batched_) {
  batched_ = &p;
}

Participant::BatchedReplies::~BatchedReplies() { batched_ = outer_; }

Participant::SyncBeforeReply::SyncBeforeReply(Participant* p) : p_(p), outer_(handler_) {
  handler_ = this;
}

Participant::SyncBeforeReply::~SyncBeforeReply() {
  handler_ = outer_;
  if (lsn_ == 0) return;
  absl::Status s = p_->log_->Sync(lsn_);
  // A participant that cannot log must not acknowledge: stop the machine.
  CHECK(s.ok()) << "machine " << p_->self_ << ": " << s;
}

void Participant::SyncLog() {
  absl::Status s = log_->Sync(log_->last_lsn());
  CHECK(s.ok()) << "machine " << self_ << ": " << s;
}

Participant::Participant(fabric::MachineId self, const RegionTable* table, TxLog* log)
    : self_(self), table_(table), log_(log) {}

void Participant::HostRegion(RegionId id, uint8_t* base, uint64_t size) {
  absl::MutexLock l(&mu_);
  hosted_[id] = Hosted{base, size, std::make_unique<ObjectHeap>(id, base, size)};
}

bool Participant::Hosts(RegionId id) const {
  absl::ReaderMutexLock l(&mu_);
  return hosted_.contains(id);
}

void Participant::SetConfig(uint64_t config) {
  absl::MutexLock l(&mu_);
  config_ = config;
}

void Participant::InstallConfig(uint64_t config, std::vector<fabric::MachineId> removed) {
  absl::MutexLock l(&mu_);
  config_ = config;
  removed_in_ = config;
  removed_ = absl::flat_hash_set<fabric::MachineId>(removed.begin(), removed.end());
  ForgetFinished();  // outside a recovery: the removed coordinators' streams go now
}

uint64_t Participant::config() const {
  absl::ReaderMutexLock l(&mu_);
  return config_;
}

absl::Status Participant::Admit(uint64_t config, const char* what) const {
  if (blocked_) {
    return absl::UnavailableError(absl::StrCat(what, " refused by machine ", self_, ": recovery in progress"));
  }
  if (config != config_) {
    return absl::UnavailableError(absl::StrCat(what, " refused by machine ", self_, ": configuration ",
                                               config, " is not the current one (", config_, ")"));
  }
  return absl::OkStatus();
}

absl::Status Participant::AdmitCoordinator(TxId tx, const char* what) const {
  if (removed_in_ == 0) return absl::OkStatus();
  if (removed_in_ != config_) {  // recovery into config_ runs: it may have removed this coordinator
    return absl::UnavailableError(absl::StrCat(what, " refused by machine ", self_,
                                               ": configuration ", config_,
                                               " is not installed here yet"));
  }
  const fabric::MachineId c = TxCoordinator(tx);
  if (!removed_.contains(c)) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(what, " refused by machine ", self_, ": coordinator ", c,
                   " is not a member of configuration ", config_,
                   " (its lease expired: the CM removed it and recovered its transactions)"));
}

absl::Status Participant::AdmitRegion(RegionId region, const char* what) const {
  if (!recovering_.contains(region)) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat(what, " refused by machine ", self_, ": region ", region, " is recovering"));
}

absl::Status Participant::AdmitRegions(const std::vector<WriteEntry>& entries, const char* what) const {
  if (recovering_.empty()) return absl::OkStatus();
  for (const WriteEntry& e : entries) {
    if (absl::Status s = AdmitRegion(e.addr.region(), what); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Participant::AdmitTx(TxId tx, const char* what) const {
  if (recovering_.empty()) return absl::OkStatus();
  if (auto it = locked_.find(tx); it != locked_.end()) return AdmitRegions(it->second.request.entries, what);
  if (const Backed* b = FindBacked(tx)) return AdmitRegions(b->request.entries, what);
  return absl::OkStatus();
}

bool Participant::IsPrimary(RegionId id) const {
  absl::StatusOr<RegionInfo> info = table_->Lookup(id);
  return info.ok() && info->primary().machine == self_;
}

absl::Status Participant::Locate(GlobalAddress addr, uint32_t slot_bytes, uint8_t** obj,
                                 size_t* lines) const {
  auto it = hosted_.find(addr.region());
  if (it == hosted_.end()) {
    return absl::NotFoundError(absl::StrCat("machine ", self_, " holds no copy of region ", addr.region(),
                                            " (address ", addr.ToString(), ")"));
  }
  if (slot_bytes == 0) {
    absl::StatusOr<uint32_t> b = it->second.heap->SlotBytes(addr);
    if (!b.ok()) return b.status();
    slot_bytes = *b;
  }
  if (slot_bytes % kLineSize != 0 || addr.offset() + uint64_t{slot_bytes} > it->second.size) {
    return absl::OutOfRangeError(absl::StrCat("object ", addr.ToString(), " of ", slot_bytes,
                                              " bytes leaves region ", addr.region()));
  }
  *obj = it->second.base + addr.offset();
  *lines = slot_bytes / kLineSize;
  return absl::OkStatus();
}

absl::Status Participant::NotATransactionEntry(const WriteEntry& e, const char* what) const {
  return absl::InvalidArgumentError(absl::StrCat(what, " at machine ", self_, ": the entry for ",
                                                 e.addr.ToString(),
                                                 " is a re-replication copy's block mark"));
}

void Participant::Log(LogType type, TxId tx, absl::string_view payload) {
  absl::StatusOr<uint64_t> lsn = log_->Write(type, tx, payload);
  absl::Status s = lsn.status();
  if (s.ok() && batched_ != this) {
    if (handler_ != nullptr && handler_->p_ == this) {
      handler_->lsn_ = *lsn;
      return;
    }
    s = log_->Sync(*lsn);
  }
  // A participant that cannot log must not acknowledge: stop the machine.
  CHECK(s.ok()) << "machine " << self_ << ": " << s;
}

void Participant::ReleaseLocks(Pending& p) {
  for (uint8_t* obj : p.locked) internal::UnlockUnchanged(obj);
  p.locked.clear();
}

void Participant::ReleaseReservations(TxId tx) {
  for (auto& [id, h] : hosted_) h.heap->Release(tx);
  reserved_in_.erase(tx);
}

void Participant::UpdateHeap(const WriteEntry& e, size_t lines) {
  ObjectHeap* heap = hosted_.at(e.addr.region()).heap.get();
  heap->NoteVersion(e.addr, e.version + 1);
  absl::Status s;
  if (e.kind == EntryKind::kAlloc) s = heap->MarkLive(e.addr, static_cast<uint32_t>(lines * kLineSize));
  // A backup still copying the region may see the free of an object whose
  // copy has not arrived (its heap has no such object): nothing to free.
  if (e.kind == EntryKind::kFree && heap->IsLive(e.addr)) s = heap->MarkFree(e.addr);
  LOG_IF(ERROR, !s.ok()) << "machine " << self_ << ": heap update for " << e.addr.ToString() << ": " << s;
}

Reply Participant::Lock(const LockRequest& r) {
  SyncBeforeReply sync(this);
  absl::MutexLock l(&mu_);
  if (absl::Status s = Admit(r.config, "LOCK"); !s.ok()) {
    ++stats_.refused_config;
    return ReplyFrom(s);
  }
  if (absl::Status s = AdmitCoordinator(r.tx, "LOCK"); !s.ok()) return ReplyFrom(s);
  if (absl::Status s = AdmitRegions(r.entries, "LOCK"); !s.ok()) return ReplyFrom(s);
  if (!Truncated(r.watermark)) return ReplyFrom(Replaced(r.tx, r.watermark, "LOCK"));
  // A late LOCK of a transaction decided here (or finished) must not lock again.
  if (absl::Status s = RefuseDecided(r.tx, "LOCK"); !s.ok()) return ReplyFrom(s);
  ++stats_.locks;
  Pending p;
  Reply ok;
  for (const WriteEntry& e : r.entries) {
    absl::Status s;
    if (!IsPrimary(e.addr.region())) {
      s = absl::FailedPreconditionError(absl::StrCat("machine ", self_, " is not the primary of region ",
                                                     e.addr.region(), " (address ", e.addr.ToString(), ")"));
    } else if (e.kind == EntryKind::kBlockMark) {
      s = NotATransactionEntry(e, "LOCK");
    } else if (e.kind == EntryKind::kAlloc && hosted_.contains(e.addr.region())) {
      s = hosted_.at(e.addr.region()).heap->CheckReserved(e.addr, r.tx);
    }
    uint8_t* obj = nullptr;
    size_t lines = 0;
    if (s.ok()) s = Locate(e.addr, 0, &obj, &lines);
    if (s.ok() && e.kind != EntryKind::kFree && e.data.size() > PayloadCapacity(lines)) {
      s = absl::InvalidArgumentError(absl::StrCat("write of ", e.data.size(), " bytes to ", e.addr.ToString(),
                                                  ": the object holds ", PayloadCapacity(lines)));
    }
    std::string why;
    if (s.ok() && !internal::LockForEntry(obj, e, &why)) {
      ++stats_.lock_conflicts;
      s = absl::AbortedError(absl::StrCat("LOCK at machine ", self_, ": ", why));
    }
    if (!s.ok()) {
      ReleaseLocks(p);
      return ReplyFrom(s);
    }
    p.locked.push_back(obj);
    p.lines.push_back(lines);
    ok.slot_bytes.push_back(static_cast<uint32_t>(lines * kLineSize));
  }
  p.request = r;
  Log(LogType::kLock, r.tx, Encode(r));
  locked_[r.tx] = std::move(p);
  return ok;
}

Reply Participant::CommitBackup(const LockRequest& r) {
  SyncBeforeReply sync(this);
  absl::MutexLock l(&mu_);
  if (absl::Status s = Admit(r.config, "COMMIT-BACKUP"); !s.ok()) {
    ++stats_.refused_config;
    return ReplyFrom(s);
  }
  if (absl::Status s = AdmitRegions(r.entries, "COMMIT-BACKUP"); !s.ok()) return ReplyFrom(s);
  if (!Truncated(r.watermark)) return ReplyFrom(Replaced(r.tx, r.watermark, "COMMIT-BACKUP"));
  if (!backed_seq_.contains(r.tx) && Decided(r.tx)) {
    // Applied here already (a resend): nothing to log. Aborted or finished:
    // a record now would never be decided.
    if (KnownHere(r.tx) == Outcome::kCommitted) return Reply{};
    return ReplyFrom(RefuseDecided(r.tx, "COMMIT-BACKUP"));
  }
  for (const WriteEntry& e : r.entries) {
    if (e.kind == EntryKind::kBlockMark) return ReplyFrom(NotATransactionEntry(e, "COMMIT-BACKUP"));
    if (!hosted_.contains(e.addr.region())) {
      return ReplyFrom(absl::FailedPreconditionError(
          absl::StrCat("COMMIT-BACKUP at machine ", self_, ": no copy of region ", e.addr.region())));
    }
  }
  ++stats_.commit_backups;
  Log(LogType::kCommitBackup, r.tx, Encode(r));
  Enqueue(r.tx, r, false);
  return Reply{};
}

Reply Participant::CommitPrimary(const TxRequest& r) {
  SyncBeforeReply sync(this);
  absl::MutexLock l(&mu_);
  if (absl::Status s = Admit(r.config, "COMMIT-PRIMARY"); !s.ok()) {
    ++stats_.refused_config;
    return ReplyFrom(s);
  }
  if (absl::Status s = AdmitTx(r.tx, "COMMIT-PRIMARY"); !s.ok()) return ReplyFrom(s);
  Truncated(r.watermark);
  auto it = locked_.find(r.tx);
  if (it == locked_.end()) {
    return ReplyFrom(absl::FailedPreconditionError(
        absl::StrCat("COMMIT-PRIMARY at machine ", self_, ": transaction ", r.tx, " holds no locks here")));
  }
  Pending& p = it->second;
  if (p.committed) return Reply{};
  ++stats_.commit_primaries;
  Log(LogType::kCommitPrimary, r.tx, WatermarkRecord(r.watermark));
  CommitPrimaryHere(r.tx, p);
  return Reply{};
}

void Participant::CommitPrimaryHere(TxId tx, Pending& p) {
  for (size_t i = 0; i < p.request.entries.size(); ++i) {
    internal::ApplyLocked(p.locked[i], p.lines[i], p.request.entries[i]);
    UpdateHeap(p.request.entries[i], p.lines[i]);
  }
  p.locked.clear();
  p.committed = true;
  ReleaseReservations(tx);
  Remember(tx, Outcome::kCommitted);
}

Reply Participant::Abort(const TxRequest& r) {
  SyncBeforeReply sync(this);
  absl::MutexLock l(&mu_);
  if (absl::Status s = Admit(r.config, "ABORT"); !s.ok()) {
    ++stats_.refused_config;
    return ReplyFrom(s);
  }
  if (absl::Status s = AdmitTx(r.tx, "ABORT"); !s.ok()) return ReplyFrom(s);
  Truncated(r.watermark);
  auto it = locked_.find(r.tx);
  if (it != locked_.end() && it->second.committed) {
    return ReplyFrom(absl::FailedPreconditionError(
        absl::StrCat("ABORT at machine ", self_, ": transaction ", r.tx, " already committed here")));
  }
  ++stats_.aborts;
  Log(LogType::kAbort, r.tx, WatermarkRecord(r.watermark));
  AbortHere(r.tx);
  return Reply{};
}

void Participant::AbortHere(TxId tx) {
  if (auto it = locked_.find(tx); it != locked_.end()) {
    ReleaseLocks(it->second);
    locked_.erase(it);
  }
  ReleaseReservations(tx);
  Remember(tx, Outcome::kAborted);
}

Reply Participant::Truncate(const TxRequest& r) {
  SyncBeforeReply sync(this);
  absl::MutexLock l(&mu_);
  if (absl::Status s = Admit(r.config, "TRUNCATE"); !s.ok()) {
    ++stats_.refused_config;
    return ReplyFrom(s);
  }
  if (absl::Status s = AdmitTx(r.tx, "TRUNCATE"); !s.ok()) return ReplyFrom(s);
  Truncated(r.watermark);
  ++stats_.truncates;
  Log(LogType::kTruncate, r.tx, WatermarkRecord(r.watermark));
  TruncateHere(r.tx);
  return Reply{};
}

Reply Participant::Alloc(const AllocRequest& r) {
  absl::MutexLock l(&mu_);
  if (absl::Status s = Admit(r.config, "ALLOC"); !s.ok()) return ReplyFrom(s);
  if (absl::Status s = AdmitCoordinator(r.tx, "ALLOC"); !s.ok()) return ReplyFrom(s);
  if (absl::Status s = AdmitRegion(r.region, "ALLOC"); !s.ok()) return ReplyFrom(s);
  auto it = hosted_.find(r.region);
  if (it == hosted_.end() || !IsPrimary(r.region)) {
    return ReplyFrom(absl::FailedPreconditionError(
        absl::StrCat("ALLOC at machine ", self_, ": not the primary of region ", r.region)));
  }
  absl::StatusOr<GlobalAddress> a = it->second.heap->Reserve(r.bytes, r.tx, GlobalAddress::FromRaw(r.near));
  if (!a.ok()) return ReplyFrom(a.status());
  reserved_in_[r.tx] = r.config;
  ++stats_.allocs;
  const uint64_t header = __atomic_load_n(reinterpret_cast<uint64_t*>(it->second.base + a->offset()),
                                          __ATOMIC_ACQUIRE);
  return ReplyFrom(absl::OkStatus(), a->raw(), VersionOf(header));
}

Reply Participant::QueryOutcome(const TxRequest& r) {
  if (r.watermark.tx != 0) {
    // A coordinator's last word (FarmClient::Leave drains its rings with
    // one): the outcomes below its watermark go, as with any message
    // carrying it (not logged: a restart only remembers them again).
    absl::MutexLock l(&mu_);
    Truncated(r.watermark);
    return OutcomeHere(r.tx);
  }
  absl::ReaderMutexLock l(&mu_);
  return OutcomeHere(r.tx);
}

Reply Participant::OutcomeHere(TxId tx) const {
  const Outcome o = KnownHere(tx);
  if (o == Outcome::kUnknown && Retired(TxCoordinator(tx))) {
    // Not "unknown in a newer configuration", which reads as "no record
    // survived, not committed": recovery may have committed it.
    return ReplyFrom(absl::FailedPreconditionError(
        absl::StrCat("OUTCOME refused by machine ", self_, ": coordinator ", TxCoordinator(tx),
                     " of transaction ", tx, " was removed (configuration ", removed_in_,
                     " lists it): recovery decided its transactions and ",
                     "their outcomes are no longer kept")));
  }
  // aux: the configuration this participant has completed recovery into
  // (0 while recovering), so a coordinator can tell "no record survived".
  return ReplyFrom(absl::OkStatus(), static_cast<uint64_t>(o), Recovering() ? 0 : config_);
}

void Participant::Block() {
  absl::MutexLock l(&mu_);
  blocked_ = true;
  LockRecovery();
}

void Participant::Resume(uint64_t config) {
  absl::MutexLock l(&mu_);
  config_ = config;
  blocked_ = false;
  deciding_ = false;
  recovering_.clear();
  ForgetFinished();
}

void Participant::BeginRecovery(uint64_t new_config, const std::vector<RegionId>& recovering) {
  absl::MutexLock l(&mu_);
  config_ = new_config;
  deciding_ = true;
  recovering_.insert(recovering.begin(), recovering.end());
  LockRecovery();
}

void Participant::FinishRecovery(const std::vector<RegionId>& regions) {
  absl::MutexLock l(&mu_);
  if (regions.empty()) {
    recovering_.clear();
  } else {
    for (RegionId r : regions) recovering_.erase(r);
  }
  if (recovering_.empty()) deciding_ = false;
  ForgetFinished();
}

std::vector<InFlightRecord> Participant::InFlight(uint64_t before) const {
  absl::ReaderMutexLock l(&mu_);
  std::vector<InFlightRecord> out;
  for (const auto& [tx, p] : locked_) {
    if (before != 0 && p.request.config >= before) continue;
    InFlightRecord rec{tx, self_, LogType::kLock, p.committed, p.request};
    for (size_t i = 0; i < p.lines.size(); ++i) {
      rec.request.entries[i].slot_bytes = static_cast<uint32_t>(p.lines[i] * kLineSize);
    }
    out.push_back(std::move(rec));
  }
  for (const auto& [seq, b] : backed_) {
    if (b.tx == 0 || b.committed) continue;  // decided: waiting for earlier records only
    if (before == 0 || b.request.config < before)
      out.push_back({b.tx, self_, LogType::kCommitBackup, false, b.request});
  }
  return out;
}

void Participant::Resolve(const Resolution& r) {
  SyncBeforeReply sync(this);
  absl::MutexLock l(&mu_);
  // Its entries are installed and its locks released already. Installing
  // the entries again could give a heap block that emptied since, and took
  // another size class, its old class back (formatted over a slot the
  // primary holds reserved).
  if (Decided(r.tx) && !locked_.contains(r.tx) && !backed_seq_.contains(r.tx)) return;
  // The committed entries go to the log so that a restart can replay them.
  Log(r.commit ? LogType::kRecoveredCommit : LogType::kRecoveredAbort, r.tx,
      r.commit ? Encode(LockRequest{0, r.tx, {}, r.entries}) : std::string());
  ResolveHere(r);
}

void Participant::ResolveHere(const Resolution& r) {
  auto it = locked_.find(r.tx);
  if (it != locked_.end()) {
    Pending& p = it->second;
    if (r.commit && !p.committed) {
      for (size_t i = 0; i < p.request.entries.size(); ++i) {
        internal::ApplyLocked(p.locked[i], p.lines[i], p.request.entries[i]);
        UpdateHeap(p.request.entries[i], p.lines[i]);
      }
      p.locked.clear();
    }
    if (!r.commit) ReleaseLocks(p);
    locked_.erase(it);
  }
  if (auto seq = backed_seq_.find(r.tx); seq != backed_seq_.end()) {
    Backed& b = backed_.at(seq->second);
    if (r.commit && !r.entries.empty()) b.request.entries = r.entries;
    b.committed = r.commit;
    if (!r.commit) {
      ReleaseRecoveryLocks(b);
      backed_.erase(seq->second);
      backed_seq_.erase(seq);
    }
  } else if (r.commit && !r.entries.empty()) {
    Enqueue(r.tx, LockRequest{0, r.tx, {}, r.entries}, true);
  }
  ApplyBacked();
  ReleaseReservations(r.tx);
  Remember(r.tx, r.commit ? Outcome::kCommitted : Outcome::kAborted);
}

void Participant::ReleaseAllReservations() {
  absl::MutexLock l(&mu_);
  for (auto& [id, h] : hosted_) h.heap->ReleaseAll();
  reserved_in_.clear();
}

void Participant::ReleaseReservationsBefore(uint64_t config) {
  absl::MutexLock l(&mu_);
  for (auto it = reserved_in_.begin(); it != reserved_in_.end();) {
    if (it->second >= config) {
      ++it;
      continue;
    }
    for (auto& [id, h] : hosted_) h.heap->Release(it->first);
    reserved_in_.erase(it++);
  }
}

absl::StatusOr<RegionChunk> Participant::CopyChunk(RegionId id, uint64_t from, uint64_t max_bytes) const {
  absl::ReaderMutexLock l(&mu_);
  auto it = hosted_.find(id);
  if (it == hosted_.end() || !IsPrimary(id)) {
    return absl::FailedPreconditionError(
        absl::StrCat("copy of region ", id, " from machine ", self_, ": not its primary"));
  }
  const Hosted& h = it->second;
  RegionChunk chunk;
  chunk.next = h.size;
  for (const auto& [addr, slot_bytes] : h.heap->LiveFrom(from, max_bytes)) {
    const uint8_t* obj = h.base + addr.offset();
    const size_t lines = slot_bytes / kLineSize;
    // Commits change objects only under mu_ (held here), so the copy is
    // whole; a locked object still holds its last committed state.
    std::vector<uint64_t> copy(slot_bytes / 8);
    for (size_t w = 0; w < copy.size(); ++w) {
      copy[w] = __atomic_load_n(reinterpret_cast<const uint64_t*>(obj) + w, __ATOMIC_ACQUIRE);
    }
    const uint64_t header = copy[0] & ~kLockBit;
    WriteEntry e;
    e.addr = addr;
    e.version = (VersionOf(header) - 1) & kVersionMask;
    e.kind = EntryKind::kAlloc;
    e.slot_bytes = slot_bytes;
    e.data.resize(PayloadCapacity(lines));
    ExtractPayload(reinterpret_cast<const uint8_t*>(copy.data()), e.data.data(), e.data.size());
    chunk.objects.push_back(std::move(e));
    chunk.next = addr.offset() + uint64_t{slot_bytes};
  }
  chunk.blocks = h.heap->BlockMarks(from, chunk.next);
  return chunk;
}

absl::StatusOr<uint8_t*> Participant::ObjectAt(GlobalAddress addr) const {
  absl::ReaderMutexLock l(&mu_);
  uint8_t* obj = nullptr;
  size_t lines = 0;
  absl::Status s = Locate(addr, 0, &obj, &lines);
  if (!s.ok()) return s;
  return obj;
}

ParticipantStats Participant::stats() const {
  absl::ReaderMutexLock l(&mu_);
  return stats_;
}

}  // namespace dctk::farm::tx
