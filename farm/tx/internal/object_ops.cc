#include "farm/tx/internal/object_ops.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "farm/core/object.h"

namespace dctk::farm::tx::internal {
namespace {

uint64_t* Word(uint8_t* obj, size_t line, size_t word) {
  return reinterpret_cast<uint64_t*>(obj + line * kLineSize + word * 8);
}
uint64_t LoadHeader(uint8_t* obj) { return __atomic_load_n(Word(obj, 0, 0), __ATOMIC_ACQUIRE); }
void StoreHeader(uint8_t* obj, uint64_t h) { __atomic_store_n(Word(obj, 0, 0), h, __ATOMIC_RELEASE); }

// Line versions first, then payload, as ObjectWriter::Write does (object.h),
// but at an explicit version.
void WriteLines(uint8_t* obj, size_t lines, const std::string& data, uint64_t version) {
  size_t done = 0;
  for (size_t line = 0; line < lines; ++line) {
    __atomic_store_n(Word(obj, line, kLineWords - 1), LineVersionWord(version, line),
                     __ATOMIC_RELEASE);
    for (size_t w = line == 0 ? 1 : 0; w < kLineWords - 1; ++w) {
      uint64_t word = 0;
      const size_t n = done < data.size() ? std::min<size_t>(8, data.size() - done) : 0;
      std::memcpy(&word, data.data() + done, n);
      done += n;
      __atomic_store_n(Word(obj, line, w), word, __ATOMIC_RELEASE);
    }
  }
}

}  // namespace

bool LockForEntry(uint8_t* obj, const WriteEntry& e, std::string* why) {
  const bool want_allocated = e.kind != EntryKind::kAlloc;
  uint64_t expected = (want_allocated ? kAllocatedBit : 0) | e.version;
  if (__atomic_compare_exchange_n(Word(obj, 0, 0), &expected, expected | kLockBit, false,
                                  __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    return true;
  }
  // `expected` now holds the header found.
  if (IsLocked(expected)) {
    *why = absl::StrCat(e.addr.ToString(), " is locked by another transaction");
  } else if (IsAllocated(expected) != want_allocated) {
    *why = want_allocated ? absl::StrCat(e.addr.ToString(), " is not allocated (freed)")
                          : absl::StrCat(e.addr.ToString(), " was allocated meanwhile");
  } else {
    *why = absl::StrCat(e.addr.ToString(), " changed: read at version ", e.version, ", now at ",
                        VersionOf(expected));
  }
  return false;
}

void ApplyLocked(uint8_t* obj, size_t lines, const WriteEntry& e) {
  const uint64_t next = (e.version + 1) & kVersionMask;
  switch (e.kind) {
    case EntryKind::kWrite:
    case EntryKind::kAlloc:
      WriteLines(obj, lines, e.data, next);
      StoreHeader(obj, kAllocatedBit | next);
      break;
    case EntryKind::kFree:
      StoreHeader(obj, next);
      break;
  }
}

void UnlockUnchanged(uint8_t* obj) { StoreHeader(obj, LoadHeader(obj) & ~kLockBit); }

void LockUnchanged(uint8_t* obj) { StoreHeader(obj, LoadHeader(obj) | kLockBit); }

bool InstallIfNewer(uint8_t* obj, size_t lines, const WriteEntry& e) {
  const uint64_t next = (e.version + 1) & kVersionMask;
  if (VersionOf(LoadHeader(obj)) >= next) return false;
  if (e.kind == EntryKind::kFree) {
    StoreHeader(obj, next);
  } else {
    // Lock while the lines change, so a reader of this copy never accepts a mix.
    StoreHeader(obj, LoadHeader(obj) | kLockBit);
    WriteLines(obj, lines, e.data, next);
    StoreHeader(obj, kAllocatedBit | next);
  }
  return true;
}

}  // namespace dctk::farm::tx::internal
