#include "farm/alloc/size_classes.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace dctk::farm {
namespace {

struct Table {
  std::array<uint32_t, kNumSizeClasses> size;
  Table() {
    const double ratio = std::pow(double{kMaxClassSize} / kMinClassSize, 1.0 / (kNumSizeClasses - 1));
    uint32_t prev = 0;
    for (int i = 0; i < kNumSizeClasses; ++i) {
      const double geometric = kMinClassSize * std::pow(ratio, i);
      uint32_t s = static_cast<uint32_t>(std::ceil(geometric / 64.0)) * 64;
      s = std::max(s, prev + 64);
      size[i] = s;
      prev = s;
    }
    size[kNumSizeClasses - 1] = kMaxClassSize;
    CHECK_GT(size[kNumSizeClasses - 1], size[kNumSizeClasses - 2]);
  }
};

const Table& Classes() {
  static const Table* table = new Table();
  return *table;
}

}  // namespace

uint32_t ClassSize(int size_class) { return Classes().size[size_class]; }

absl::StatusOr<int> SizeClassFor(size_t bytes) {
  if (bytes == 0 || bytes > kMaxClassSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("allocation of ", bytes, " bytes: objects are 1 byte to 1 MB"));
  }
  const auto& s = Classes().size;
  return static_cast<int>(std::lower_bound(s.begin(), s.end(), bytes) - s.begin());
}

}  // namespace dctk::farm
