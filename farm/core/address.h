// GlobalAddress: a location in FaRM's shared address space, 32 bits of region
// id and 32 bits of offset within the region (regions are at most 4 GB; 2 GB
// by default). Region 0 is never allocated, so raw value 0 is the null address.
//
// Example:
//   GlobalAddress a(/*region=*/7, /*offset=*/4096);
//   uint64_t wire = a.raw();
//   GlobalAddress b = GlobalAddress::FromRaw(wire);   // b == a
//   GlobalAddress next = a.Plus(64);
#ifndef DCTK_FARM_CORE_ADDRESS_H_
#define DCTK_FARM_CORE_ADDRESS_H_

#include <cstdint>
#include <string>

#include "absl/strings/str_format.h"

namespace dctk::farm {

using RegionId = uint32_t;

class GlobalAddress {
 public:
  constexpr GlobalAddress() = default;
  constexpr GlobalAddress(RegionId region, uint32_t offset)
      : raw_((uint64_t{region} << 32) | offset) {}
  static constexpr GlobalAddress FromRaw(uint64_t raw) {
    GlobalAddress a;
    a.raw_ = raw;
    return a;
  }

  constexpr RegionId region() const { return static_cast<RegionId>(raw_ >> 32); }
  constexpr uint32_t offset() const { return static_cast<uint32_t>(raw_); }
  constexpr uint64_t raw() const { return raw_; }
  constexpr bool is_null() const { return raw_ == 0; }
  // Same region, offset moved by `delta` (the caller keeps it inside the region).
  constexpr GlobalAddress Plus(uint32_t delta) const { return GlobalAddress(region(), offset() + delta); }

  std::string ToString() const { return absl::StrFormat("%u:%#x", region(), offset()); }

  friend constexpr bool operator==(GlobalAddress a, GlobalAddress b) { return a.raw_ == b.raw_; }
  friend constexpr bool operator!=(GlobalAddress a, GlobalAddress b) { return a.raw_ != b.raw_; }
  friend constexpr bool operator<(GlobalAddress a, GlobalAddress b) { return a.raw_ < b.raw_; }
  template <typename H>
  friend H AbslHashValue(H h, GlobalAddress a) {
    return H::combine(std::move(h), a.raw_);
  }

 private:
  uint64_t raw_ = 0;
};

static_assert(sizeof(GlobalAddress) == 8);

}  // namespace dctk::farm

#endif  // DCTK_FARM_CORE_ADDRESS_H_
