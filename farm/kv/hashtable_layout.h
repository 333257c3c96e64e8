// Layout of FaRM's chained associative hopscotch hashtable in region memory.
//
// The table is `buckets + 1` bucket objects followed by `overflow_blocks`
// overflow objects, all of kBucketBytes (object.h layout: header and
// per-cache-line versions, so each can be read lock-free), then a value heap
// of `value_heap_bytes` for values stored out of line. A bucket's payload
// is kSlots slots of [meta | key(16) | value(32)] and an 8-byte link to its
// first overflow block (byte offset in the table, 0 = none). A key whose home
// bucket is h lives in bucket h or h+1 (the neighborhood, read with ONE
// one-sided read of both objects) or, when both are full and no hopscotch
// displacement frees a slot, in h's overflow chain.
//
// Values of up to 32 bytes are inline in the slot (meta holds the length).
// Longer values live out of line in a heap object [key(16) | length(8) |
// bytes] and the slot holds [heap offset(8) | length(8)]: such a lookup costs
// a second read, and the copy is accepted only if it names the key and length
// the slot promised (the object may have been freed and reused meanwhile).
//
// Example:
//   size_t bytes = TableBytes({.buckets = 1024, .overflow_blocks = 64});
#ifndef DCTK_FARM_KV_HASHTABLE_LAYOUT_H_
#define DCTK_FARM_KV_HASHTABLE_LAYOUT_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "farm/core/object.h"

namespace dctk::farm::kv {

using Key = std::array<uint8_t, 16>;
using Value = std::array<uint8_t, 32>;

inline constexpr size_t kSlots = 8;
inline constexpr size_t kSlotBytes = 8 + 16 + 32;
inline constexpr size_t kBucketPayload = kSlots * kSlotBytes + 8;
inline constexpr size_t kBucketBytes = ObjectBytes(kBucketPayload);
inline constexpr uint64_t kOccupied = 1;
inline constexpr uint64_t kOutOfLine = 2;
inline constexpr int kInlineLengthShift = 8;  // meta bits 8..15: inline value length
inline constexpr size_t kMaxInlineValue = 32;
// Out-of-line value object payload: key, length, then the value bytes.
inline constexpr size_t kHeapValueHeader = 16 + 8;

struct TableConfig {
  uint32_t buckets = 1024;
  uint32_t overflow_blocks = 64;
  // Bytes for out-of-line values (0: only values up to 32 bytes fit).
  uint64_t value_heap_bytes = 0;
  // Largest value PutBytes accepts; readers keep a buffer this large.
  uint32_t max_value_bytes = 4096;
};

constexpr size_t IndexBytes(const TableConfig& c) {
  return (size_t{c.buckets} + 1 + c.overflow_blocks) * kBucketBytes;
}
constexpr size_t TableBytes(const TableConfig& c) { return IndexBytes(c) + c.value_heap_bytes; }
// Bytes of the heap object holding an out-of-line value of `len` bytes.
constexpr size_t HeapObjectBytes(size_t len) { return ObjectBytes(kHeapValueHeader + len); }

// A bucket's payload, decoded.
struct Bucket {
  struct Slot {
    uint64_t meta = 0;
    Key key{};
    Value value{};
    bool occupied() const { return (meta & kOccupied) != 0; }
    bool out_of_line() const { return (meta & kOutOfLine) != 0; }
    size_t inline_length() const { return (meta >> kInlineLengthShift) & 0xff; }
    // Out-of-line slots: where the value object is and how long the value is.
    uint64_t heap_offset() const {
      uint64_t o;
      std::memcpy(&o, value.data(), 8);
      return o;
    }
    uint64_t heap_length() const {
      uint64_t n;
      std::memcpy(&n, value.data() + 8, 8);
      return n;
    }
    static Slot Inline(const Key& k, const uint8_t* bytes, size_t len) {
      Slot s{kOccupied | (uint64_t{len} << kInlineLengthShift), k, {}};
      std::memcpy(s.value.data(), bytes, len);
      return s;
    }
    static Slot OutOfLine(const Key& k, uint64_t offset, uint64_t len) {
      Slot s{kOccupied | kOutOfLine, k, {}};
      std::memcpy(s.value.data(), &offset, 8);
      std::memcpy(s.value.data() + 8, &len, 8);
      return s;
    }
  };
  std::array<Slot, kSlots> slots;
  uint64_t overflow = 0;

  void Decode(const uint8_t* payload) {
    for (size_t i = 0; i < kSlots; ++i) {
      const uint8_t* p = payload + i * kSlotBytes;
      std::memcpy(&slots[i].meta, p, 8);
      std::memcpy(slots[i].key.data(), p + 8, 16);
      std::memcpy(slots[i].value.data(), p + 24, 32);
    }
    std::memcpy(&overflow, payload + kSlots * kSlotBytes, 8);
  }
  void Encode(uint8_t* payload) const {
    for (size_t i = 0; i < kSlots; ++i) {
      uint8_t* p = payload + i * kSlotBytes;
      std::memcpy(p, &slots[i].meta, 8);
      std::memcpy(p + 8, slots[i].key.data(), 16);
      std::memcpy(p + 24, slots[i].value.data(), 32);
    }
    std::memcpy(payload + kSlots * kSlotBytes, &overflow, 8);
  }
  int Find(const Key& k) const {
    for (size_t i = 0; i < kSlots; ++i) {
      if (slots[i].occupied() && slots[i].key == k) return static_cast<int>(i);
    }
    return -1;
  }
  int FreeSlot() const {
    for (size_t i = 0; i < kSlots; ++i) {
      if (!slots[i].occupied()) return static_cast<int>(i);
    }
    return -1;
  }
};

inline uint64_t HashKey(const Key& k) {
  uint64_t a, b;
  std::memcpy(&a, k.data(), 8);
  std::memcpy(&b, k.data() + 8, 8);
  uint64_t x = a ^ (b * 0x9E3779B97F4A7C15ULL);
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

inline uint32_t HomeBucket(const Key& k, uint32_t buckets) {
  return static_cast<uint32_t>(HashKey(k) % buckets);
}

// The table (of `shards`, one per machine) that holds `k`: from the hash's
// high half, so it is independent of the home bucket within a shard.
inline uint32_t ShardOf(const Key& k, uint32_t shards) {
  return static_cast<uint32_t>((HashKey(k) >> 32) % shards);
}

}  // namespace dctk::farm::kv

#endif  // DCTK_FARM_KV_HASHTABLE_LAYOUT_H_
