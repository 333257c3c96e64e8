// The messages of FaRM's commit protocol (coordinator <-> participants) and
// their byte encoding over the message rings. Every request carries the
// configuration id the coordinator used, so a participant can refuse work
// from a configuration that recovery has replaced.
//
// A write-set entry names one object: its address, the version the
// transaction read, what to do (write, allocate, free) and the new payload.
// LOCK and COMMIT-BACKUP carry entries plus the ids of every region the
// transaction writes, which recovery needs to decide its outcome.
//
// Truncation watermarks (FaRM's piggybacked truncation point): a
// coordinator's transaction ids increase, so with each LOCK, COMMIT-BACKUP,
// COMMIT-PRIMARY, ABORT and TRUNCATE it tells the participant the lowest
// transaction of its own (same machine and slot: TxStream) that is not
// finished yet. Every one below it is decided, and the coordinator knows its
// outcome and sends no more messages for it; the participant forgets their
// outcomes (participant.h). With it goes the coordinator's incarnation
// (Watermark): sequences start at a coordinator's start time on a 40-bit
// circle, so one restarted under the same machine and slot much later (more
// than half the circle, ~6.4 days) could look older than the watermark its
// predecessor left; a higher incarnation instead starts the stream afresh at
// the participants, and a lower one is a late message of a replaced
// process. On the wire the watermark follows the request only when there is
// one (8 bytes, 16 with the incarnation), so it costs nothing otherwise and
// log records without it (or without the incarnation) still read.
//
// Example:
//   LockRequest req{.config = 3, .tx = id, .regions = {7}, .entries = {...}};
//   std::string bytes = Encode(req);
//   absl::StatusOr<LockRequest> back = DecodeLockRequest(bytes);
#ifndef DCTK_FARM_TX_WIRE_H_
#define DCTK_FARM_TX_WIRE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "farm/core/address.h"

namespace dctk::farm::tx {

// Transaction ids: [coordinator machine:16][client slot:8][sequence:40].
using TxId = uint64_t;
constexpr TxId MakeTxId(uint32_t machine, uint32_t slot, uint64_t seq) {
  return (uint64_t{machine} << 48) | (uint64_t{slot & 0xff} << 40) | (seq & ((uint64_t{1} << 40) - 1));
}
constexpr uint32_t TxCoordinator(TxId id) { return static_cast<uint32_t>(id >> 48); }
// The coordinator stream a transaction belongs to: its machine and slot, whose
// sequences increase (watermarks are per stream).
constexpr uint32_t TxStream(TxId id) { return static_cast<uint32_t>(id >> 40); }
// Whether `a` comes before `b` of the same stream: sequences compared on the
// 40-bit circle (serial number arithmetic), so a coordinator whose sequence
// wraps, or one restarted under its id (sequences start at its start time),
// still comes after what it sent before.
constexpr bool TxBefore(TxId a, TxId b) {
  constexpr uint64_t kSeqMask = (uint64_t{1} << 40) - 1;
  return a != b && ((b - a) & kSeqMask) < (uint64_t{1} << 39);
}

// A coordinator's truncation point: the lowest transaction of its stream not
// finished yet (0: none told), and the coordinator's incarnation (0: not
// told), which grows with every process under the same machine and slot
// (TxClientOptions::incarnation). A TxId converts to a watermark without one.
struct Watermark {
  TxId tx = 0;
  uint64_t incarnation = 0;
  constexpr Watermark() = default;
  constexpr Watermark(TxId t, uint64_t i = 0) : tx(t), incarnation(i) {}  // NOLINT: a TxId is one
  friend constexpr bool operator==(const Watermark&, const Watermark&) = default;
};

// Handler ids on a machine's RPC endpoint.
enum Handler : uint16_t {
  kLock = 1,
  kCommitBackup = 2,
  kCommitPrimary = 3,
  kAbort = 4,
  kTruncate = 5,
  kAlloc = 6,
  kOutcome = 7,
};

// kBlockMark is no transaction's: a re-replication copy's state of a heap
// block (participant.h, ApplyChunk): `addr` is the block's start, `slot_bytes`
// its size class (0: none), `version` its version floor (object_heap.h).
enum class EntryKind : uint8_t { kWrite = 0, kAlloc = 1, kFree = 2, kBlockMark = 3 };

struct WriteEntry {
  GlobalAddress addr;
  uint64_t version = 0;  // the version read (new version = version + 1)
  EntryKind kind = EntryKind::kWrite;
  uint32_t slot_bytes = 0;  // kAlloc: the slot's size (backups mirror the heap)
  std::string data;         // payload (empty for kFree)
};

// LOCK (to primaries) and COMMIT-BACKUP (to backups) share this shape.
struct LockRequest {
  uint64_t config = 0;
  TxId tx = 0;
  std::vector<uint32_t> regions;  // every region the transaction writes
  std::vector<WriteEntry> entries;
  // The coordinator's truncation point: the lowest transaction of tx's
  // stream not finished yet, so at most tx (0: none told).
  Watermark watermark;
};

// COMMIT-PRIMARY, ABORT, TRUNCATE, OUTCOME: just the transaction (and the
// watermark, as in LockRequest).
struct TxRequest {
  uint64_t config = 0;
  TxId tx = 0;
  Watermark watermark;
};

struct AllocRequest {
  uint64_t config = 0;
  TxId tx = 0;
  uint32_t region = 0;
  uint32_t bytes = 0;   // payload bytes
  uint64_t near = 0;    // raw GlobalAddress hint, 0 for none
};

// Every reply: a status code and message, plus a value (an address for
// ALLOC, an outcome for OUTCOME). A LOCK reply tells the coordinator each
// object's slot size, which it passes on to the backups in COMMIT-BACKUP.
struct Reply {
  int code = 0;  // absl::StatusCode
  std::string message;
  uint64_t value = 0;
  uint64_t aux = 0;  // ALLOC: the free slot's current version
  std::vector<uint32_t> slot_bytes;  // LOCK: each entry's slot size, in order
};

std::string Encode(const LockRequest& r);
std::string Encode(const TxRequest& r);
std::string Encode(const AllocRequest& r);
std::string Encode(const Reply& r);
absl::StatusOr<LockRequest> DecodeLockRequest(absl::string_view bytes);
absl::StatusOr<TxRequest> DecodeTxRequest(absl::string_view bytes);
absl::StatusOr<AllocRequest> DecodeAllocRequest(absl::string_view bytes);
absl::StatusOr<Reply> DecodeReply(absl::string_view bytes);

Reply ReplyFrom(const absl::Status& s, uint64_t value = 0, uint64_t aux = 0);
absl::Status StatusOf(const Reply& r);

}  // namespace dctk::farm::tx

#endif  // DCTK_FARM_TX_WIRE_H_
