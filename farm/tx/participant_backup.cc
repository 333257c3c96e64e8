// A participant's backup side (participant.h): the COMMIT-BACKUP records
// waiting to be applied, applied in their order per heap block where the
// block's size class is at stake, and re-replication copies.
#include <algorithm>
#include <utility>

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
  for (auto& [seq, b] : backed_) {
    if (b.tx == 0) continue;  // a re-replication copy: no transaction to decide
    for (const WriteEntry& e : b.request.entries) {
      // An allocation's slot holds no object here yet (and its block may
      // still change class): only objects that exist are locked.
      if (e.kind == EntryKind::kAlloc || !(blocked_ || recovering_.contains(e.addr.region())) ||
          IsPrimary(e.addr.region())) {
        continue;
      }
      uint8_t* obj = nullptr;
      size_t lines = 0;
      if (!Locate(e.addr, 0, &obj, &lines).ok()) continue;  // not copied here yet
      const std::pair<GlobalAddress, uint8_t*> lock(e.addr, obj);
      if (std::find(b.locked.begin(), b.locked.end(), lock) != b.locked.end()) continue;
      internal::LockUnchanged(obj);
      b.locked.push_back(lock);
    }
  }
}

void Participant::ReleaseRecoveryLocks(const Backed& b) {
  for (const auto& [addr, obj] : b.locked) {
    bool held = false;
    for (const auto& [seq, other] : backed_) {
      if (&other == &b) continue;
      for (const auto& l : other.locked) held |= l.second == obj;
    }
    if (held) {
      internal::LockUnchanged(obj);  // installing `b` unlocked it
    } else {
      internal::UnlockUnchanged(obj);
    }
  }
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
