#include "bastion/datapath/port_ranges.h"

#include "glog/logging.h"

namespace dctk::bastion {

std::vector<PortPrefix> PortRangeToPrefixes(uint16_t first, uint16_t last) {
  CHECK_LE(first, last);
  std::vector<PortPrefix> out;
  uint32_t lo = first;
  const uint32_t hi = last;
  while (lo <= hi) {
    // The largest aligned block starting at lo that stays within hi.
    int size_bits = 0;
    while (size_bits < 16 && (lo & ((1u << (size_bits + 1)) - 1)) == 0 &&
           lo + (1u << (size_bits + 1)) - 1 <= hi) {
      ++size_bits;
    }
    out.push_back({static_cast<uint16_t>(lo), static_cast<uint8_t>(16 - size_bits)});
    lo += 1u << size_bits;
  }
  return out;
}

}  // namespace dctk::bastion
