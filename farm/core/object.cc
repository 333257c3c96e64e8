#include "farm/core/object.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace dctk::farm {
namespace {

uint64_t* Word(uint8_t* obj, size_t line, size_t word) {
  return reinterpret_cast<uint64_t*>(obj + line * kLineSize + word * 8);
}
uint64_t Load(const uint8_t* p) {
  return __atomic_load_n(reinterpret_cast<const uint64_t*>(p), __ATOMIC_ACQUIRE);
}
void Store(uint64_t* p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

// Payload byte range of line `i` within the object: [begin, begin + size).
size_t LinePayloadBegin(size_t line) { return line == 0 ? 8 : 0; }
size_t LinePayloadSize(size_t line) { return line == 0 ? kFirstLinePayload : kLinePayload; }

}  // namespace

void InitObject(uint8_t* obj, size_t lines) {
  for (size_t i = 0; i < lines; ++i) Store(Word(obj, i, kLineWords - 1), LineVersionWord(1, i));
  Store(Word(obj, 0, 0), kAllocatedBit | 1);
}

void FreeObjectLocked(uint8_t* obj) {
  const uint64_t h = Load(obj);
  Store(Word(obj, 0, 0), (VersionOf(h) + 1) & kVersionMask);
}

namespace {
uint64_t LineVersionIn(const uint8_t* copy, size_t line) {
  uint64_t word;
  std::memcpy(&word, copy + line * kLineSize + (kLineWords - 1) * 8, 8);
  return word;
}
}  // namespace

bool StartsObject(const uint8_t* copy) { return (LineVersionIn(copy, 0) & kObjectStartBit) != 0; }

absl::Status CheckSnapshot(const uint8_t* copy, size_t lines) {
  uint64_t header;
  std::memcpy(&header, copy, 8);
  if (!IsAllocated(header)) return absl::FailedPreconditionError("no object allocated here");
  // Before the lock bit: a "header" inside another object is payload, which
  // may claim a lock no writer will ever release.
  if (!StartsObject(copy)) {
    return absl::FailedPreconditionError(
        "not the start of an object (the line there is inside another object)");
  }
  if (IsLocked(header)) return absl::UnavailableError("object is locked by a writer");
  const uint64_t v = VersionOf(header);
  for (size_t i = 0; i < lines; ++i) {
    const uint64_t line_version = LineVersionIn(copy, i);
    if (line_version != LineVersionWord(v, i)) {
      return absl::UnavailableError(absl::StrCat("torn read: line ", i, " at version ",
                                                 line_version & ~kObjectStartBit, ", header at ",
                                                 v));
    }
  }
  return absl::OkStatus();
}

void ExtractPayload(const uint8_t* copy, void* out, size_t len) {
  auto* dst = static_cast<uint8_t*>(out);
  for (size_t line = 0; len > 0; ++line) {
    const size_t n = std::min(len, LinePayloadSize(line));
    std::memcpy(dst, copy + line * kLineSize + LinePayloadBegin(line), n);
    dst += n;
    len -= n;
  }
}

bool ObjectWriter::TryLock(uint8_t* obj, uint64_t expected_version) {
  uint64_t expected = kAllocatedBit | expected_version;
  return __atomic_compare_exchange_n(Word(obj, 0, 0), &expected, expected | kLockBit, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

void ObjectWriter::Write(uint8_t* obj, size_t lines, const void* payload, size_t len) {
  const uint64_t next = (VersionOf(Load(obj)) + 1) & kVersionMask;
  const auto* src = static_cast<const uint8_t*>(payload);
  size_t done = 0;
  for (size_t line = 0; line < lines; ++line) {
    // Version first, then payload: see the header comment.
    Store(Word(obj, line, kLineWords - 1), LineVersionWord(next, line));
    const size_t begin = LinePayloadBegin(line);
    for (size_t w = begin / 8; w < kLineWords - 1; ++w) {
      uint64_t word = 0;
      const size_t n = done < len ? std::min<size_t>(8, len - done) : 0;
      std::memcpy(&word, src + done, n);
      done += n;
      Store(Word(obj, line, w), word);
    }
  }
}

void ObjectWriter::Unlock(uint8_t* obj, bool bump_version) {
  const uint64_t h = Load(obj);
  const uint64_t v = bump_version ? (VersionOf(h) + 1) & kVersionMask : VersionOf(h);
  Store(Word(obj, 0, 0), (h & kAllocatedBit) | v);
}

}  // namespace dctk::farm
