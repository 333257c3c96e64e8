// Port ranges as prefixes, so a range policy is an LPM-trie lookup, not a scan.
//
// [first, last] splits into at most 30 aligned blocks, each a port whose top
// `prefix_bits` bits are fixed. Example: [8000, 8003] -> {8000/14}; [1, 3] -> {1/16, 2/15}.
//   for (const PortPrefix& p : PortRangeToPrefixes(1024, 65535)) ...
#ifndef DCTK_BASTION_DATAPATH_PORT_RANGES_H_
#define DCTK_BASTION_DATAPATH_PORT_RANGES_H_

#include <cstdint>
#include <vector>

namespace dctk::bastion {

struct PortPrefix {
  uint16_t port = 0;
  uint8_t prefix_bits = 16;  // 0 = every port
  friend bool operator==(const PortPrefix& a, const PortPrefix& b) {
    return a.port == b.port && a.prefix_bits == b.prefix_bits;
  }
};

// Requires first <= last. The blocks are disjoint, ascending, and cover exactly the range.
std::vector<PortPrefix> PortRangeToPrefixes(uint16_t first, uint16_t last);

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_DATAPATH_PORT_RANGES_H_
