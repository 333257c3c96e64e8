// Object operations a participant performs on its own copy of a region
// during commit and recovery, on top of farm/core/object.h's layout: lock
// for a write-set entry, apply it under the lock, undo, and install a
// committed entry at an exact version (backups and recovery, idempotent).
#ifndef DCTK_FARM_TX_INTERNAL_OBJECT_OPS_H_
#define DCTK_FARM_TX_INTERNAL_OBJECT_OPS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "farm/tx/wire.h"

namespace dctk::farm::tx::internal {

// Locks `obj` for `e`: writes and frees need the object allocated, unlocked
// and at e.version; an allocation needs the slot unallocated, unlocked and at
// e.version. On failure, says why (locked, version moved, not allocated).
bool LockForEntry(uint8_t* obj, const WriteEntry& e, std::string* why);
// Under the lock: makes `e` take effect (version e.version + 1) and unlocks.
void ApplyLocked(uint8_t* obj, size_t lines, const WriteEntry& e);
// Releases the lock without changing the object.
void UnlockUnchanged(uint8_t* obj);
// Locks the object as it is (lock recovery at a backup about to serve).
void LockUnchanged(uint8_t* obj);
// Sets the (unlocked) object to e's outcome at version e.version + 1 unless it
// is already at that version or newer. Returns whether it changed anything.
bool InstallIfNewer(uint8_t* obj, size_t lines, const WriteEntry& e);

}  // namespace dctk::farm::tx::internal

#endif  // DCTK_FARM_TX_INTERNAL_OBJECT_OPS_H_
