// Participant checkpoints and restart from checkpoint + log (participant.h).
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "farm/core/object.h"
#include "farm/tx/internal/object_ops.h"
#include "farm/tx/participant.h"

namespace dctk::farm::tx {
namespace {

bool AllZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (w != 0) return false;
  }
  return true;
}

}  // namespace

uint64_t Participant::logged_bytes() const {
  absl::ReaderMutexLock l(&mu_);
  return log_->bytes();
}

uint64_t Participant::retained_log_bytes() const {
  absl::ReaderMutexLock l(&mu_);
  return log_->retained_bytes();
}

absl::StatusOr<CheckpointReport> Participant::TakeCheckpoint(const std::string& path, bool sync) {
  Checkpoint c;
  CheckpointReport report;
  {
    absl::MutexLock l(&mu_);
    c.lsn = log_->last_lsn();
    c.config = config_;
    for (const auto& [tx, p] : locked_) {
      PendingRecord rec{tx, false, p.committed, p.request};
      for (size_t i = 0; i < p.lines.size(); ++i) {
        rec.request.entries[i].slot_bytes = static_cast<uint32_t>(p.lines[i] * kLineSize);
      }
      c.pending.push_back(std::move(rec));
    }
    // In their order (a copy as tx 0); `primary_committed` of a backup
    // record: committed, waiting behind earlier records of its blocks.
    for (const auto& [seq, b] : backed_) c.pending.push_back({b.tx, true, b.committed, b.request});
    // The watermarks and the outcomes above them (all of them while a
    // recovery runs): a backup that missed a TRUNCATE before a crash learns
    // at restart from its primary's that the transaction committed.
    for (const auto& [stream, s] : streams_) {
      if (s.watermark != 0) c.watermarks.push_back({s.watermark, s.incarnation});
      for (const auto& [tx, o] : s.outcomes) {
        c.outcomes.push_back({tx, o == Outcome::kCommitted});
      }
    }
    for (const auto& [id, h] : hosted_) {
      RegionImage image{id,
                        h.size,
                        h.heap->LiveFrom(0, std::numeric_limits<uint64_t>::max()),
                        h.heap->Floors(),
                        h.heap->Classes(),
                        {}};
      for (uint64_t page = 0; (page + 1) * kCheckpointPage <= h.size; ++page) {
        const uint8_t* from = h.base + page * kCheckpointPage;
        if (AllZero(from, kCheckpointPage)) continue;
        image.pages.push_back({static_cast<uint32_t>(page),
                               std::string(reinterpret_cast<const char*>(from), kCheckpointPage)});
      }
      // Objects locked by pending transactions (or by lock recovery) hold
      // their last committed state: the image keeps that state, unlocked
      // (restore locks them again, recovery's lock recovery too); a slot
      // lock recovery locked for an allocation is free, at its old header.
      absl::flat_hash_map<uint32_t, std::string*> by_page;
      for (auto& [index, bytes] : image.pages) by_page[index] = &bytes;
      auto unlocked = [&](GlobalAddress addr, const RecoveryLock* slot = nullptr) {
        if (addr.region() != id) return;
        auto pg = by_page.find(static_cast<uint32_t>(addr.offset() / kCheckpointPage));
        if (pg == by_page.end()) return;
        char* header = pg->second->data() + addr.offset() % kCheckpointPage;
        uint64_t h64;
        std::memcpy(&h64, header, 8);
        h64 = slot != nullptr ? slot->version : h64 & ~kLockBit;
        std::memcpy(header, &h64, 8);
      };
      for (const auto& [tx, p] : locked_) {
        for (size_t i = 0; i < p.locked.size(); ++i) unlocked(p.request.entries[i].addr);
      }
      for (const auto& [seq, b] : backed_) {
        for (const RecoveryLock& l : b.locked) unlocked(l.addr, l.slot ? &l : nullptr);
      }
      report.image_bytes += image.pages.size() * kCheckpointPage;
      c.regions.push_back(std::move(image));
    }
    // Later records go to a new segment, so everything up to c.lsn can go.
    absl::Status s = log_->Roll();
    if (!s.ok()) return s;
  }
  report.lsn = c.lsn;
  absl::Status s = WriteCheckpoint(path, c, sync);
  if (!s.ok()) return s;
  absl::MutexLock l(&mu_);
  absl::StatusOr<uint64_t> reclaimed = log_->Trim(c.lsn + 1);
  if (!reclaimed.ok()) return reclaimed.status();
  report.reclaimed_bytes = *reclaimed;
  return report;
}

absl::Status Participant::Relock(const LockRequest& r, Pending* p) {
  p->request = r;
  for (const WriteEntry& e : r.entries) {
    uint8_t* obj = nullptr;
    size_t lines = 0;
    absl::Status s = Locate(e.addr, e.slot_bytes, &obj, &lines);
    // An allocation locked the slot Reserve handed out, at the header it
    // left there, neither of which the log holds: both come back first.
    if (s.ok() && e.kind == EntryKind::kAlloc) {
      s = hosted_.at(e.addr.region()).heap->ReserveAgain(e.addr, e.slot_bytes, r.tx, e.version);
      if (s.ok()) reserved_in_.emplace(r.tx, r.config);
    }
    std::string why;
    if (s.ok() && !internal::LockForEntry(obj, e, &why)) s = absl::FailedPreconditionError(why);
    if (!s.ok()) {
      ReleaseLocks(*p);
      return absl::DataLossError(absl::StrCat("machine ", self_, ": replaying LOCK of transaction ", r.tx,
                                              ": the state does not match the log: ", s.message()));
    }
    p->locked.push_back(obj);
    p->lines.push_back(lines);
  }
  return absl::OkStatus();
}

absl::Status Participant::Replay(const LogRecord& rec) {
  auto decode = [&]() -> absl::StatusOr<LockRequest> {
    absl::StatusOr<LockRequest> r = DecodeLockRequest(rec.payload);
    if (!r.ok()) {
      return absl::DataLossError(absl::StrCat("machine ", self_, ": log record ", rec.lsn, " (",
                                              LogTypeName(rec.type), "): ", r.status().message()));
    }
    return r;
  };
  switch (rec.type) {
    case LogType::kLock: {
      absl::StatusOr<LockRequest> r = decode();
      if (!r.ok()) return r.status();
      Truncated(r->watermark);
      // Write entries name no slot size: the heap knows the live object.
      Pending p;
      absl::Status s = Relock(*r, &p);
      if (!s.ok()) return s;
      locked_[rec.tx] = std::move(p);
      return absl::OkStatus();
    }
    case LogType::kCommitBackup: {
      absl::StatusOr<LockRequest> r = decode();
      if (!r.ok()) return r.status();
      Truncated(r->watermark);
      Enqueue(rec.tx, std::move(*r), false);
      return absl::OkStatus();
    }
    case LogType::kCommitPrimary: {
      if (absl::Status s = ReplayWatermark(rec); !s.ok()) return s;
      auto it = locked_.find(rec.tx);
      if (it == locked_.end()) {
        return absl::DataLossError(absl::StrCat("machine ", self_, ": log record ", rec.lsn,
                                                ": COMMIT-PRIMARY of transaction ", rec.tx, " without its LOCK"));
      }
      if (!it->second.committed) CommitPrimaryHere(rec.tx, it->second);
      return absl::OkStatus();
    }
    case LogType::kAbort:
    case LogType::kTruncate: {
      if (absl::Status s = ReplayWatermark(rec); !s.ok()) return s;
      if (rec.type == LogType::kAbort) {
        AbortHere(rec.tx);
      } else {
        TruncateHere(rec.tx);
      }
      return absl::OkStatus();
    }
    case LogType::kRecoveredCommit: {
      absl::StatusOr<LockRequest> r = decode();
      if (!r.ok()) return r.status();
      ResolveHere({rec.tx, true, std::move(r->entries)});
      return absl::OkStatus();
    }
    case LogType::kRecoveredAbort: ResolveHere({rec.tx, false, {}}); return absl::OkStatus();
    case LogType::kCopied: {
      absl::StatusOr<LockRequest> r = decode();
      if (!r.ok()) return r.status();
      if (r->entries.empty()) return absl::OkStatus();
      const RegionId id = r->entries.front().addr.region();
      if (!hosted_.contains(id)) {
        return absl::DataLossError(absl::StrCat("machine ", self_, ": log record ", rec.lsn,
                                                ": copy of region ", id,
                                                ", which is not hosted here"));
      }
      ApplyChunkHere(r->entries);
      return absl::OkStatus();
    }
  }
  return absl::DataLossError(absl::StrCat("machine ", self_, ": log record ", rec.lsn, " has unknown type ",
                                          static_cast<int>(rec.type)));
}

absl::StatusOr<RestoreReport> Participant::Restore(const Checkpoint* c, const std::vector<LogRecord>& records) {
  absl::MutexLock l(&mu_);
  RestoreReport report;
  if (c != nullptr) {
    report.checkpoint_lsn = c->lsn;
    for (const RegionImage& image : c->regions) {
      auto it = hosted_.find(image.id);
      if (it == hosted_.end() || it->second.size != image.size) {
        return absl::FailedPreconditionError(absl::StrCat("machine ", self_, ": the checkpoint holds region ", image.id,
                                                          " of ", image.size, " bytes, which is not hosted here"));
      }
      Hosted& h = it->second;
      h.heap = std::make_unique<ObjectHeap>(image.id, h.base, h.size);
      for (const auto& [block, floor] : image.floors) h.heap->SetFloor(block, floor);
      for (const auto& [block, slot_bytes] : image.classes) {
        absl::Status s = h.heap->SetClass(block, slot_bytes);
        if (!s.ok()) {
          return absl::DataLossError(
              absl::StrCat("machine ", self_, ": checkpoint heap: ", s.message()));
        }
      }
      for (const auto& [page, bytes] : image.pages) {
        std::memcpy(h.base + uint64_t{page} * kCheckpointPage, bytes.data(), kCheckpointPage);
      }
      for (const auto& [addr, slot] : image.live) {
        absl::Status s = h.heap->MarkLive(addr, slot);
        if (!s.ok()) return absl::DataLossError(absl::StrCat("machine ", self_, ": checkpoint heap: ", s.message()));
      }
      report.pages += image.pages.size();
    }
    for (const Watermark& w : c->watermarks) Truncated(w);
    for (const auto& [tx, committed] : c->outcomes) {
      Remember(tx, committed ? Outcome::kCommitted : Outcome::kAborted);
    }
    for (const PendingRecord& rec : c->pending) {
      if (rec.backup) {
        Enqueue(rec.tx, rec.request, rec.primary_committed);
        continue;
      }
      Pending p;
      if (rec.primary_committed) {
        p.request = rec.request;
        for (const WriteEntry& e : rec.request.entries) p.lines.push_back(e.slot_bytes / kLineSize);
        p.committed = true;
      } else {
        absl::Status s = Relock(rec.request, &p);
        if (!s.ok()) return s;
      }
      locked_[rec.tx] = std::move(p);
    }
  }
  uint64_t expect = c == nullptr ? 1 : c->lsn + 1;
  for (const LogRecord& rec : records) {
    if (rec.lsn < expect) continue;
    if (rec.lsn != expect) {
      return absl::DataLossError(absl::StrCat("machine ", self_, ": log records ", expect, "..", rec.lsn - 1,
                                              " are missing"));
    }
    absl::Status s = Replay(rec);
    if (!s.ok()) return s;
    ++expect;
    ++report.replayed;
  }
  ApplyBacked();
  report.pending = locked_.size();
  for (const auto& [seq, b] : backed_) report.pending += b.tx != 0 && !b.committed;
  return report;
}

absl::StatusOr<RestoreReport> Participant::RestoreFromFiles(const std::string& checkpoint_path,
                                                            const std::string& log_path) {
  absl::StatusOr<Checkpoint> c = ReadCheckpoint(checkpoint_path);
  if (!c.ok() && !absl::IsNotFound(c.status())) return c.status();
  const uint64_t from = c.ok() ? c->lsn + 1 : 1;
  absl::StatusOr<uint64_t> first = FirstRetainedLsn(log_path);
  if (!first.ok()) return first.status();
  if (*first > from) {
    return absl::DataLossError(absl::StrCat("machine ", self_, ": the log ", log_path, " starts at record ", *first,
                                            " but ", c.ok() ? absl::StrCat("the checkpoint covers only up to ", c->lsn)
                                                            : std::string("there is no checkpoint")));
  }
  std::vector<LogRecord> records;
  if (*first != 0) {
    absl::StatusOr<std::vector<LogRecord>> r = ReadTxLog(log_path, from);
    if (!r.ok()) return r.status();
    records = std::move(*r);
  }
  return Restore(c.ok() ? &*c : nullptr, records);
}

}  // namespace dctk::farm::tx
