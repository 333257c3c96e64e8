#include "farm/kv/value_heap.h"

#include "absl/strings/str_cat.h"

namespace dctk::farm::kv {

absl::StatusOr<ValueHeap::Block> ValueHeap::Allocate(uint64_t bytes) {
  bytes = (bytes + 63) / 64 * 64;
  absl::MutexLock l(&mu_);
  auto it = free_.find(bytes);
  if (it != free_.end() && !it->second.empty()) {
    const uint64_t offset = it->second.back();
    it->second.pop_back();
    in_use_ += bytes;
    return Block{offset, bytes, false};
  }
  if (end_ - next_ < bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("hashtable value heap: no room for ", bytes,
                                                     " bytes (", in_use_, " in use)"));
  }
  const uint64_t offset = next_;
  next_ += bytes;
  in_use_ += bytes;
  return Block{offset, bytes, true};
}

void ValueHeap::Free(const Block& block) {
  absl::MutexLock l(&mu_);
  free_[block.bytes].push_back(block.offset);
  in_use_ -= block.bytes;
}

uint64_t ValueHeap::bytes_in_use() const {
  absl::MutexLock l(&mu_);
  return in_use_;
}

}  // namespace dctk::farm::kv
