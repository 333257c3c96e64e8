// ValueHeap: the owner-side allocator for a hashtable's out-of-line values
// (hashtable_layout.h). It hands out table offsets of heap objects sized in
// cache lines: a free list per line count, else a bump pointer through the
// heap area. Freed objects stay formatted objects (their header is never
// reset), so versions only grow and a reader holding a stale pointer sees a
// version change or a different key, never a stale snapshot that passes.
// Thread-safe (one mutex: taken once per out-of-line put or erase).
//
// Example:
//   ValueHeap heap(IndexBytes(config), TableBytes(config));
//   absl::StatusOr<ValueHeap::Block> b = heap.Allocate(HeapObjectBytes(100));
//   ... heap.Free(*b);
#ifndef DCTK_FARM_KV_VALUE_HEAP_H_
#define DCTK_FARM_KV_VALUE_HEAP_H_

#include <cstdint>
#include <map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace dctk::farm::kv {

class ValueHeap {
 public:
  struct Block {
    uint64_t offset = 0;  // from the start of the table
    uint64_t bytes = 0;   // a multiple of 64
    bool fresh = false;   // never used before: zeroed, not yet a formatted object
  };

  // Manages table offsets [begin, end).
  ValueHeap(uint64_t begin, uint64_t end) : next_(begin), end_(end) {}

  // `bytes` is rounded up to 64. ResourceExhausted when nothing fits.
  absl::StatusOr<Block> Allocate(uint64_t bytes);
  void Free(const Block& block);

  uint64_t bytes_in_use() const;

 private:
  mutable absl::Mutex mu_;
  uint64_t next_ ABSL_GUARDED_BY(mu_);
  const uint64_t end_;
  uint64_t in_use_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, std::vector<uint64_t>> free_ ABSL_GUARDED_BY(mu_);  // bytes -> offsets
};

}  // namespace dctk::farm::kv

#endif  // DCTK_FARM_KV_VALUE_HEAP_H_
