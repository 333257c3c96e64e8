// DropReason: why the MOM switch data plane dropped a packet. Every drop has
// one; counters are kept per reason (Cilium's drop_reasons.h habit).
#ifndef DCTK_MOM_SWITCH_DROP_REASON_H_
#define DCTK_MOM_SWITCH_DROP_REASON_H_

#include <array>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace dctk::mom {

enum class DropReason : uint8_t {
  kMalformed = 0,    // truncated, or inconsistent Ethernet / IPv4 / UDP headers
  kNotIpv4 = 1,      // EtherType is not IPv4 (or not UDP inside)
  kNoRoute = 2,      // no multicast rule for (group, in port), no unicast route
  kNotMomPacket = 3, // this switch must stamp the group, but the payload is no MomPacket
  kQueueFull = 4,    // the out port's queue for the packet's band is full
  kTxFull = 5,       // the port's device took fewer frames than offered (tx ring full)
  kTooBig = 6,       // longer than the out port's MTU and not fragmentable (DF set, too
                     // many fragments), or than the switch receives whole (truncated
                     // by the receive ring: mom_switch --max_datagram_bytes)
  kNoBuffers = 7,    // no mbuf left to build a fragment
};
inline constexpr int kNumDropReasons = 8;

using DropCounts = std::array<uint64_t, kNumDropReasons>;

// "malformed", "not_ipv4", "no_route", "not_mom_packet", "queue_full", "tx_full",
// "too_big", "no_buffers".
absl::string_view DropReasonName(DropReason reason);

}  // namespace dctk::mom

#endif  // DCTK_MOM_SWITCH_DROP_REASON_H_
