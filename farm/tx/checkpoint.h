// Checkpoints: a consistent image of every region copy a machine holds,
// written to one file, with the transaction-log position (LSN, tx_log.h) it
// covers. A machine restarting with its files loads its checkpoint and
// replays only the log records after that LSN (Participant::Restore), so the
// log before it can be deleted (TxLog::Trim) and restart work is bounded.
//
// Contents: the LSN and configuration; the transactions still pending at the
// participant at that LSN (locked at a primary, or logged at a backup and
// not yet truncated: their records, as recovery reports them); each
// coordinator's truncation watermark (with its incarnation) and the outcomes of its transactions at
// or above it (participant.h: so a restarted primary still answers
// "committed" to recovery for a backup that missed its TRUNCATE); and per
// region its id, size, live objects (address, slot size), its heap blocks'
// version floors and size classes (object_heap.h) and every 4 KiB
// page that is not all zero, with lock bits cleared (a locked object holds
// its last committed state).
//
// File: "FARMCKP6", the body, then [FNV-1a 64 of the body]["CKPTEND1"]; a
// file of an older format (FARMCKP5: watermarks without incarnations;
// FARMCKP4: committed ids without watermarks; FARMCKP3: objects without
// start bits) is refused with DataLoss naming its format.
// WriteCheckpoint writes `<path>.tmp`, syncs it and renames it over `path`,
// so a crash mid-write leaves the previous checkpoint whole; ReadCheckpoint
// refuses a short or damaged file with DataLoss (never a partial image).
//
// Example:
//   CHECK_OK(WriteCheckpoint("/var/farm/m1.ckpt", ckpt));
//   absl::StatusOr<Checkpoint> back = ReadCheckpoint("/var/farm/m1.ckpt");
#ifndef DCTK_FARM_TX_CHECKPOINT_H_
#define DCTK_FARM_TX_CHECKPOINT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "farm/core/address.h"
#include "farm/tx/wire.h"

namespace dctk::farm::tx {

inline constexpr size_t kCheckpointPage = 4096;

struct RegionImage {
  RegionId id = 0;
  uint64_t size = 0;
  std::vector<std::pair<GlobalAddress, uint32_t>> live;  // objects and their slot sizes
  std::vector<std::pair<uint32_t, uint64_t>> floors;     // heap blocks' version floors
  std::vector<std::pair<uint32_t, uint32_t>> classes;    // heap blocks' slot sizes
  std::vector<std::pair<uint32_t, std::string>> pages;    // page index, kCheckpointPage bytes
};

struct PendingRecord {
  TxId tx = 0;                    // 0: a re-replication copy waiting at a backup
  bool backup = false;            // COMMIT-BACKUP logged here (else LOCK at a primary)
  // A primary's: COMMIT-PRIMARY applied. A backup's: committed, waiting to be
  // applied behind earlier records of its heap blocks (backup records are in
  // their order).
  bool primary_committed = false;
  LockRequest request;            // entries carry their slot sizes
};

struct Checkpoint {
  uint64_t lsn = 0;  // every log record up to this one is in the image
  uint64_t config = 0;
  std::vector<PendingRecord> pending;
  // One watermark per coordinator stream (wire.h TxStream, with the
  // coordinator's incarnation), and the decided transactions at or above
  // them: true if committed, false if aborted.
  std::vector<Watermark> watermarks;
  std::vector<std::pair<TxId, bool>> outcomes;
  std::vector<RegionImage> regions;
};

absl::Status WriteCheckpoint(const std::string& path, const Checkpoint& c, bool sync);
absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path);

}  // namespace dctk::farm::tx

#endif  // DCTK_FARM_TX_CHECKPOINT_H_
