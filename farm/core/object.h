// FaRM objects in region memory, and the local writer protocol.
//
// An object is a run of 64-byte cache lines. Word 0 of line 0 is the header
// (lock bit, allocated bit, 62-bit version); the LAST word of every line is
// that line's version, the version of the write that last changed the line.
// Payload fills the rest: 48 bytes in line 0, 56 in each further line.
//
//   line 0: [header][payload x 6 words][line version | start bit]
//   line i: [payload x 7 words][line version]
//
// A one-sided read copies the whole object in ascending order (8-byte atomic
// words, or whole lines on an RDMA NIC) and is a consistent snapshot iff the
// header is unlocked and every line version equals the header's version.
//
// Line 0's version word also carries the start bit, which no other line's
// has. Payload can hold any word, so a reader given an address that is not
// (or no longer) the start of an object, e.g. one inside a larger object that
// reused a freed object's memory, may find a word there that looks like an
// allocated header at the right version; it cannot find the start bit, since
// version words are written only by the writers below, and every write stores
// each line's version word before that line's payload.
// Writers store a line's version BEFORE its payload words (release stores);
// the reader loads the version AFTER the payload (acquire loads), so a read
// that saw any word of a newer write also sees that line's newer version and
// retries. This holds at 8-byte granularity, stronger than FaRM's cache-line
// atomicity assumption, so the shm fabric's word-level tears are caught too.
//
// Writer protocol (local to the machine holding the object; transactions use
// it at the primary and backups): TryLock(expected version) -> Write -> Unlock
// (version + 1), or Unlock without a write to abort.
//
// Example:
//   uint8_t* obj = region_base + offset;         // ObjectLines(len) lines
//   InitObject(obj, ObjectLines(len));           // allocated, version 1
//   if (ObjectWriter::TryLock(obj, 1)) {
//     ObjectWriter::Write(obj, ObjectLines(len), data, len);
//     ObjectWriter::Unlock(obj, /*bump_version=*/true);   // now version 2
//   }
#ifndef DCTK_FARM_CORE_OBJECT_H_
#define DCTK_FARM_CORE_OBJECT_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"

namespace dctk::farm {

inline constexpr size_t kLineSize = 64;
inline constexpr size_t kLineWords = kLineSize / 8;
inline constexpr size_t kFirstLinePayload = 48;
inline constexpr size_t kLinePayload = 56;

inline constexpr uint64_t kLockBit = uint64_t{1} << 63;
inline constexpr uint64_t kAllocatedBit = uint64_t{1} << 62;
inline constexpr uint64_t kVersionMask = kAllocatedBit - 1;
// In a line's version word: this line is line 0 of an object.
inline constexpr uint64_t kObjectStartBit = uint64_t{1} << 63;

constexpr uint64_t VersionOf(uint64_t header) { return header & kVersionMask; }
constexpr bool IsLocked(uint64_t header) { return (header & kLockBit) != 0; }
constexpr bool IsAllocated(uint64_t header) { return (header & kAllocatedBit) != 0; }

// Cache lines an object with `payload` bytes occupies (at least one).
constexpr size_t ObjectLines(size_t payload) {
  return payload <= kFirstLinePayload
             ? 1
             : 1 + (payload - kFirstLinePayload + kLinePayload - 1) / kLinePayload;
}
constexpr size_t ObjectBytes(size_t payload) { return ObjectLines(payload) * kLineSize; }
constexpr size_t PayloadCapacity(size_t lines) { return kFirstLinePayload + (lines - 1) * kLinePayload; }
// The version word of line `line` of an object at `version`.
constexpr uint64_t LineVersionWord(uint64_t version, size_t line) {
  return line == 0 ? version | kObjectStartBit : version;
}

// Marks `lines` zeroed lines at `obj` (64-byte aligned) as an allocated object
// at version 1. Not concurrent with readers' expectations of its old contents.
void InitObject(uint8_t* obj, size_t lines);
// Clears the allocated bit under the lock (the caller holds it) and unlocks.
void FreeObjectLocked(uint8_t* obj);

// Checks a copy taken by a one-sided read: OK if consistent; Unavailable if
// locked or torn (retry); FailedPrecondition if no object is allocated there,
// or if the header looks allocated but the copy's first line is not line 0
// of an object (!StartsObject: the address is inside another object).
absl::Status CheckSnapshot(const uint8_t* copy, size_t lines);
// Whether the line at `copy` is line 0 of an object (its start bit is set).
bool StartsObject(const uint8_t* copy);
// Copies the payload out of a consistent snapshot (skipping header and versions).
void ExtractPayload(const uint8_t* copy, void* out, size_t len);

class ObjectWriter {
 public:
  // Locks the object iff it is allocated, unlocked and at `expected_version`.
  static bool TryLock(uint8_t* obj, uint64_t expected_version);
  // Writes `len` payload bytes under the lock: each line's version becomes
  // the header version + 1 before that line's payload changes.
  static void Write(uint8_t* obj, size_t lines, const void* payload, size_t len);
  // Releases the lock; with `bump_version` the object moves to version + 1
  // (after a Write), without it the version is unchanged (abort).
  static void Unlock(uint8_t* obj, bool bump_version);
};

}  // namespace dctk::farm

#endif  // DCTK_FARM_CORE_OBJECT_H_
