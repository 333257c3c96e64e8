// A participant's backup side (participant.h): the COMMIT-BACKUP records
// waiting to be applied, applied in their order per heap block where the
// block's size class is at stake, lock recovery of those records (and of the
// commits recovery decided that no record here holds), and re-replication
// copies.
#include <algorithm>
#include <utility>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "farm/alloc/block_allocator.h"
#include "farm/alloc/size_classes.h"
#include "farm/core/object.h"
#include "farm/tx/internal/object_ops.h"
#include "farm/tx/participant.h"
#include "glog/logging.h"

namespace dctk::farm::tx {
namespace {

// A heap block: region and block index.
std::pair<RegionId, uint64_t> BlockOf(GlobalAddress addr) {
  return {addr.region(), addr.offset() / kBlockBytes};
}

}  // namespace

const Participant::Backed* Participant::FindBacked(TxId tx) const {
  auto it = backed_seq_.find(tx);
  return it == backed_seq_.end() ? nullptr : &backed_.at(it->second);
}

uint64_t Participant::Enqueue(TxId tx, LockRequest request, bool committed) {
  if (tx != 0) {
    if (auto it = backed_seq_.find(tx); it != backed_seq_.end()) {
      backed_.at(it->second).committed |= committed;
      return it->second;
    }
  }
  const uint64_t seq = next_backed_++;
  backed_[seq] = Backed{tx, std::move(request), committed};
  if (tx != 0) backed_seq_[tx] = seq;
  return seq;
}

int Participant::ApplyBacked(uint64_t seq) {
  int installed = 0;
  // The slot size the entries of earlier records not applied yet have in
  // each block (0: several, or unknown). A later record waits behind them
  // only in a block where it has an entry of another slot size: one of the
  // two changes the block's size class (and formats it at its floor), so the
  // frees that emptied it must come first. Entries of the same size class
  // commute (each object installs at its exact version, the heap follows the
  // object, floors only rise), so an undecided record, e.g. one whose
  // coordinator died, holds back none of them.
  absl::flat_hash_map<std::pair<RegionId, uint64_t>, uint32_t> held;
  for (auto it = backed_.begin(); it != backed_.end();) {
    const Backed& b = it->second;
    bool ready = b.committed;
    for (size_t i = 0; ready && i < b.request.entries.size(); ++i) {
      const WriteEntry& e = b.request.entries[i];
      auto h = held.find(BlockOf(e.addr));
      ready = h == held.end() || (h->second != 0 && h->second == e.slot_bytes);
    }
    if (!ready) {
      for (const WriteEntry& e : b.request.entries) {
        auto [h, fresh] = held.emplace(BlockOf(e.addr), e.slot_bytes);
        if (!fresh && h->second != e.slot_bytes) h->second = 0;
      }
      ++it;
      continue;
    }
    const int n = Install(b.request.entries);
    ReleaseRecoveryLocks(b);
    if (it->first == seq) installed = n;
    if (b.tx != 0) backed_seq_.erase(b.tx);
    it = backed_.erase(it);
  }
  return installed;
}

int Participant::Install(const std::vector<WriteEntry>& entries) {
  int installed = 0;
  for (const WriteEntry& e : entries) {
    auto hosted = hosted_.find(e.addr.region());
    if (hosted == hosted_.end()) continue;  // another machine's region
    ObjectHeap* heap = hosted->second.heap.get();
    if (e.kind == EntryKind::kBlockMark) {
      heap->AdoptMark(e);
      continue;
    }
    // The block takes the object's size class first (formatted if it was
    // free), so the object never lands across slots of another class.
    absl::Status s = e.slot_bytes == 0 ? absl::OkStatus() : heap->Prepare(e.addr, e.slot_bytes);
    uint8_t* obj = nullptr;
    size_t lines = 0;
    if (s.ok()) s = Locate(e.addr, e.slot_bytes, &obj, &lines);
    if (!s.ok()) {
      LOG(ERROR) << "machine " << self_ << ": installing " << e.addr.ToString() << ": " << s;
      continue;
    }
    installed += internal::InstallIfNewer(obj, lines, e);
    heap->NoteVersion(e.addr, e.version + 1);
    // Whichever version won, the heap follows the object: live unless a
    // newer record freed it (or, copying, the free of an object whose copy
    // has not arrived: nothing to free).
    const uint64_t header = __atomic_load_n(reinterpret_cast<uint64_t*>(obj), __ATOMIC_ACQUIRE);
    if (IsAllocated(header)) {
      s = heap->MarkLive(e.addr, static_cast<uint32_t>(lines * kLineSize));
    } else if (heap->IsLive(e.addr)) {
      s = heap->MarkFree(e.addr);
    }
    LOG_IF(ERROR, !s.ok()) << "machine " << self_ << ": heap update for " << e.addr.ToString()
                           << ": " << s;
  }
  return installed;
}

void Participant::LockRecovery() {
  // The slot size the entries of earlier records not applied yet have in
  // each block (0: several), as in ApplyBacked.
  absl::flat_hash_map<std::pair<RegionId, uint64_t>, uint32_t> earlier;
  for (auto& [seq, b] : backed_) {
    for (size_t i = 0; b.tx != 0 && i < b.request.entries.size(); ++i) {
      const WriteEntry& e = b.request.entries[i];
      const RegionId region = e.addr.region();
      if (!(blocked_ || recovering_.contains(region)) || IsPrimary(region) ||
          !hosted_.contains(region) ||
          std::any_of(b.locked.begin(), b.locked.end(),
                      [&](const RecoveryLock& l) { return l.addr == e.addr; })) {
        continue;
      }
      RecoveryLock lock{e.addr};
      if (e.kind == EntryKind::kAlloc) {
        // An earlier record with another size class in the block changes
        // the block's class first: the slot does not exist here before that.
        auto h = earlier.find(BlockOf(e.addr));
        if ((h != earlier.end() && h->second != e.slot_bytes) || !LockSlot(b.tx, e, &lock)) {
          continue;
        }
      } else {
        size_t lines = 0;
        if (!Locate(e.addr, 0, &lock.obj, &lines).ok()) continue;  // not copied here yet
        internal::LockUnchanged(lock.obj);
      }
      b.locked.push_back(lock);
    }
    for (const WriteEntry& e : b.request.entries) {
      auto [h, fresh] = earlier.emplace(BlockOf(e.addr), e.slot_bytes);
      if (!fresh && h->second != e.slot_bytes) h->second = 0;
    }
  }
}

bool Participant::LockSlot(TxId tx, const WriteEntry& e, RecoveryLock* lock) {
  size_t lines = 0;
  if (!Locate(e.addr, e.slot_bytes, &lock->obj, &lines).ok() ||
      !hosted_.at(e.addr.region()).heap->ReserveAgain(e.addr, e.slot_bytes, tx, e.version).ok()) {
    return false;
  }
  lock->slot = true;
  lock->version = e.version & kVersionMask;
  // Line 0's version word first: a reader that sees the header takes the
  // slot for the start of an object (farm/core/object.h CheckSnapshot), finds
  // it locked and retries, as at any object a commit holds.
  __atomic_store_n(reinterpret_cast<uint64_t*>(lock->obj + (kLineWords - 1) * 8),
                   LineVersionWord(lock->version, 0), __ATOMIC_RELEASE);
  __atomic_store_n(reinterpret_cast<uint64_t*>(lock->obj), kLockBit | kAllocatedBit | lock->version,
                   __ATOMIC_RELEASE);
  return true;
}

void Participant::ReleaseRecoveryLocks(const Backed& b) {
  for (const RecoveryLock& l : b.locked) {
    bool held = false;
    for (const auto& [seq, other] : backed_) {
      if (&other == &b) continue;
      for (const RecoveryLock& o : other.locked) held |= o.obj == l.obj;
    }
    if (held) {
      internal::LockUnchanged(l.obj);  // installing `b` unlocked it
    } else if (l.slot && !hosted_.at(l.addr.region()).heap->IsLive(l.addr)) {
      // Not installed (aborted): a free slot again, at its old header.
      __atomic_store_n(reinterpret_cast<uint64_t*>(l.obj), l.version, __ATOMIC_RELEASE);
    } else {
      internal::UnlockUnchanged(l.obj);
    }
  }
}

absl::Status Participant::CheckDecided(const Resolution& r) const {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("lock recovery at machine ", self_, ": transaction ", r.tx, ": ", why));
  };
  if (!r.commit) return bad("not a decided commit");
  for (const WriteEntry& e : r.entries) {
    if (e.kind == EntryKind::kBlockMark) {
      return bad(absl::StrCat("the entry for ", e.addr.ToString(),
                              " is a re-replication copy's block mark"));
    }
    auto hosted = hosted_.find(e.addr.region());
    if (hosted == hosted_.end()) continue;  // another machine's region
    if (e.kind == EntryKind::kAlloc) {
      absl::StatusOr<int> size_class = SizeClassFor(e.slot_bytes);
      if (!size_class.ok() || ClassSize(*size_class) != e.slot_bytes) {
        return bad(absl::StrCat("the allocation at ", e.addr.ToString(), " has ", e.slot_bytes,
                                "-byte slots: not a slot size"));
      }
    }
    const uint64_t bytes = e.kind == EntryKind::kAlloc ? e.slot_bytes : kLineSize;
    if (e.addr.offset() % kLineSize != 0 || e.addr.offset() + bytes > hosted->second.size) {
      return bad(absl::StrCat("the entry for ", e.addr.ToString(), " is no object of region ",
                              e.addr.region(), " (", hosted->second.size, " bytes)"));
    }
  }
  return absl::OkStatus();
}

absl::Status Participant::RecoverLocks(const std::vector<Resolution>& commits) {
  absl::MutexLock l(&mu_);
  for (const Resolution& r : commits) {
    if (absl::Status s = CheckDecided(r); !s.ok()) return s;
  }
  for (const Resolution& r : commits) {
    // Its own record was locked when recovery began; applied here already
    // (a recovery run again): nothing to lock.
    if (backed_seq_.contains(r.tx) || Decided(r.tx) ||
        std::none_of(r.entries.begin(), r.entries.end(),
                     [&](const WriteEntry& e) { return hosted_.contains(e.addr.region()); })) {
      continue;
    }
    absl::btree_set<uint32_t> regions;
    for (const WriteEntry& e : r.entries) regions.insert(e.addr.region());
    // Every entry, so that this record alone decides the commit again if a
    // later recovery finds no other.
    LockRequest record{0, r.tx, {regions.begin(), regions.end()}, r.entries};
    Log(LogType::kCommitBackup, r.tx, Encode(record));
    Enqueue(r.tx, std::move(record), false);
  }
  LockRecovery();
  return absl::OkStatus();
}

void Participant::TruncateHere(TxId tx) {
  // A coordinator truncates only what committed. Recovery must still learn it
  // after this machine dropped its records: another backup may hold the
  // transaction's only surviving record of a region whose primary failed.
  Remember(tx, Outcome::kCommitted);
  if (auto it = locked_.find(tx); it != locked_.end() && it->second.committed) locked_.erase(it);
  if (auto it = backed_seq_.find(tx); it != backed_seq_.end()) {
    backed_.at(it->second).committed = true;
    ApplyBacked();
  }
}

std::vector<WriteEntry> RegionChunk::Entries() const {
  std::vector<WriteEntry> out = blocks;
  out.insert(out.end(), objects.begin(), objects.end());
  return out;
}

absl::Status Participant::CheckCopied(RegionId id, const WriteEntry& e) const {
  if (e.addr.region() != id) {
    return absl::InvalidArgumentError(
        absl::StrCat("copy of region ", id, ": entry for ", e.addr.ToString()));
  }
  const bool mark = e.kind == EntryKind::kBlockMark;
  absl::StatusOr<int> size_class = SizeClassFor(e.slot_bytes);
  if ((!mark || e.slot_bytes != 0) &&
      (!size_class.ok() || ClassSize(*size_class) != e.slot_bytes)) {
    return absl::InvalidArgumentError(absl::StrCat("copy of region ", id, ": ", e.addr.ToString(),
                                                   " with ", e.slot_bytes,
                                                   "-byte slots: not a slot size"));
  }
  if (!mark) {
    uint8_t* obj = nullptr;
    size_t lines = 0;
    return Locate(e.addr, e.slot_bytes, &obj, &lines);
  }
  if (e.addr.offset() % kBlockBytes != 0 || e.addr.offset() >= hosted_.at(id).size) {
    return absl::InvalidArgumentError(absl::StrCat("copy of region ", id, ": block mark at ",
                                                   e.addr.ToString(), " starts no heap block"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> Participant::ApplyChunk(RegionId id, const std::vector<WriteEntry>& entries) {
  absl::MutexLock l(&mu_);
  if (!hosted_.contains(id)) {
    return absl::FailedPreconditionError(
        absl::StrCat("copy of region ", id, " to machine ", self_, ": no copy here"));
  }
  for (const WriteEntry& e : entries) {
    if (absl::Status s = CheckCopied(id, e); !s.ok()) return s;
  }
  // Logged first, so that a restart from this machine's files replays the
  // copy before the commits that reached this backup after it.
  Log(LogType::kCopied, 0, Encode(LockRequest{0, 0, {}, entries}));
  return ApplyChunkHere(entries);
}

int Participant::ApplyChunkHere(const std::vector<WriteEntry>& objects) {
  // The copy reflects every commit before it was taken, so it goes behind
  // the records logged here before it: a free that emptied a block the copy
  // shows reused must reach the heap first.
  return ApplyBacked(Enqueue(0, LockRequest{0, 0, {}, objects}, true));
}

}  // namespace dctk::farm::tx
