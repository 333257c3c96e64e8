// Layout of FaRM's chained associative hopscotch hashtable in region memory.
//
// The table is `buckets + 1` bucket objects followed by `overflow_blocks`
// overflow objects, all of kBucketBytes (object.h layout: header and
// per-cache-line versions, so each can be read lock-free). A bucket's payload
// is kSlots slots of [meta | key(16) | value(32)] and an 8-byte link to its
// first overflow block (byte offset in the table, 0 = none). A key whose home
// bucket is h lives in bucket h or h+1 (the neighborhood, read with ONE
// one-sided read of both objects) or, when both are full and no hopscotch
// displacement frees a slot, in h's overflow chain.
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

struct TableConfig {
  uint32_t buckets = 1024;
  uint32_t overflow_blocks = 64;
};

constexpr size_t TableBytes(const TableConfig& c) {
  return (size_t{c.buckets} + 1 + c.overflow_blocks) * kBucketBytes;
}

// A bucket's payload, decoded.
struct Bucket {
  struct Slot {
    uint64_t meta = 0;
    Key key{};
    Value value{};
    bool occupied() const { return (meta & kOccupied) != 0; }
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

}  // namespace dctk::farm::kv

#endif  // DCTK_FARM_KV_HASHTABLE_LAYOUT_H_
