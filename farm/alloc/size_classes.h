// FaRM's slab size classes: 256 classes from 64 B to 1 MB, each a multiple
// of the 64-byte cache line. Small classes step by one cache line; from about
// 8 KB they grow geometrically (~3.9% per class), bounding internal
// fragmentation to one line below 8 KB and ~4% above it.
//
// Example:
//   absl::StatusOr<int> c = SizeClassFor(100);   // class 1
//   uint32_t bytes = ClassSize(*c);              // 128
#ifndef DCTK_FARM_ALLOC_SIZE_CLASSES_H_
#define DCTK_FARM_ALLOC_SIZE_CLASSES_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"

namespace dctk::farm {

inline constexpr int kNumSizeClasses = 256;
inline constexpr uint32_t kMinClassSize = 64;
inline constexpr uint32_t kMaxClassSize = 1 << 20;

uint32_t ClassSize(int size_class);
// The smallest class holding `bytes` (0 < bytes <= 1 MB).
absl::StatusOr<int> SizeClassFor(size_t bytes);

}  // namespace dctk::farm

#endif  // DCTK_FARM_ALLOC_SIZE_CLASSES_H_
