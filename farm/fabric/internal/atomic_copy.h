// Copies between local memory and a shared (remotely accessed) region the way
// an RDMA NIC does: 8-byte atomic accesses in ascending address order, never
// memcpy. Each 8-byte word is read or written whole, but nothing spans words,
// so a copy racing with a writer can mix old and new words (a torn read), as
// DMA over PCIe does at cache-line granularity.
//
// Loads are acquire and stores release: if a reader sees a word written late
// by a writer, every later word it reads reflects the writer's earlier stores.
// FaRM's per-cache-line versions rely on this (see farm/core/object.h).
//
// `Delay` is called between cache lines; the adversarial fabric mode passes a
// functor that yields, the normal mode a no-op that compiles away.
//
// Example:
//   AtomicRead(region_base + offset, local_buf, 256, NoDelay{});
#ifndef DCTK_FARM_FABRIC_INTERNAL_ATOMIC_COPY_H_
#define DCTK_FARM_FABRIC_INTERNAL_ATOMIC_COPY_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace dctk::farm::fabric::internal {

inline constexpr size_t kCacheLine = 64;

struct NoDelay {
  void operator()() const {}
};

inline uint64_t LoadWord(const uint8_t* p) {
  return __atomic_load_n(reinterpret_cast<const uint64_t*>(p), __ATOMIC_ACQUIRE);
}

// `src` must be readable in whole aligned 8-byte words covering the range
// (regions are page-aligned and page-sized, so this holds).
template <typename Delay>
inline void AtomicRead(const uint8_t* src, uint8_t* dst, size_t len, Delay delay) {
  if (len == 0) return;
  const uintptr_t mis = reinterpret_cast<uintptr_t>(src) & 7;
  if (mis != 0) {
    const uint64_t w = LoadWord(src - mis);
    const size_t n = len < 8 - mis ? len : 8 - mis;
    std::memcpy(dst, reinterpret_cast<const uint8_t*>(&w) + mis, n);
    src += n;
    dst += n;
    len -= n;
  }
  while (len >= 8) {
    if ((reinterpret_cast<uintptr_t>(src) & (kCacheLine - 1)) == 0) delay();
    const uint64_t w = LoadWord(src);
    std::memcpy(dst, &w, 8);
    src += 8;
    dst += 8;
    len -= 8;
  }
  if (len != 0) {
    if ((reinterpret_cast<uintptr_t>(src) & (kCacheLine - 1)) == 0) delay();
    const uint64_t w = LoadWord(src);
    std::memcpy(dst, &w, len);
  }
}

template <typename Delay>
inline void AtomicWrite(uint8_t* dst, const uint8_t* src, size_t len, Delay delay) {
  // Unaligned head and tail go byte by byte (each byte store is atomic).
  while (len != 0 && (reinterpret_cast<uintptr_t>(dst) & 7) != 0) {
    __atomic_store_n(dst++, *src++, __ATOMIC_RELEASE);
    --len;
  }
  while (len >= 8) {
    if ((reinterpret_cast<uintptr_t>(dst) & (kCacheLine - 1)) == 0) delay();
    uint64_t w;
    std::memcpy(&w, src, 8);
    __atomic_store_n(reinterpret_cast<uint64_t*>(dst), w, __ATOMIC_RELEASE);
    src += 8;
    dst += 8;
    len -= 8;
  }
  while (len != 0) {
    __atomic_store_n(dst++, *src++, __ATOMIC_RELEASE);
    --len;
  }
}

inline uint64_t AtomicCompareAndSwap(uint8_t* at, uint64_t expected, uint64_t desired) {
  __atomic_compare_exchange_n(reinterpret_cast<uint64_t*>(at), &expected, desired,
                              /*weak=*/false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
  return expected;  // on failure holds the value found; on success the old value
}

}  // namespace dctk::farm::fabric::internal

#endif  // DCTK_FARM_FABRIC_INTERNAL_ATOMIC_COPY_H_
