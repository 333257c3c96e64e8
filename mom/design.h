// Design: which of the MOM network designs a group uses.
//
// The Speculative Paxos paper (Ports et al., NSDI 2015, section 3) proposes three
// ways for a data-center network to make multicast *mostly* ordered, each cheaper
// to deploy than the next is strong; `kNaive` is plain IP multicast, the baseline:
//   kNaive             shortest-path tree from each sender (paths differ in length)
//   kTopologyAware     every copy goes up to a root switch at equal distance from
//                      all receivers, then down: all paths have the same length
//   kTopologyAwareQos  the same routes, sent at high priority (DSCP 46, EF) so
//                      background traffic does not queue ahead of MOM traffic
//   kSerialized        all senders' copies go through one serialization switch
//                      that stamps a group sequence number (NOPaxos-style
//                      ordered unreliable multicast), also at high priority
// The controller computes routes per design; hosts only need to know whether
// to mark their traffic (HighPriority) and whether to expect stamps.
//
// Example:
//   absl::StatusOr<Design> d = ParseDesign("topology-aware-qos");
//   if (d.ok() && HighPriority(*d)) options.dscp = kMomDscp;
#ifndef DCTK_MOM_DESIGN_H_
#define DCTK_MOM_DESIGN_H_

#include <array>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dctk::mom {

enum class Design : uint8_t {
  kNaive = 0,
  kTopologyAware = 1,
  kTopologyAwareQos = 2,
  kSerialized = 3,
};

inline constexpr std::array<Design, 4> kAllDesigns = {
    Design::kNaive, Design::kTopologyAware, Design::kTopologyAwareQos,
    Design::kSerialized};

// DSCP Expedited Forwarding: the code point MOM traffic carries when its design
// asks for high priority.
inline constexpr uint8_t kMomDscp = 46;

// "naive", "topology-aware", "topology-aware-qos", "serialized".
absl::string_view DesignName(Design design);
absl::StatusOr<Design> ParseDesign(absl::string_view name);

// Whether the design sends MOM traffic at high priority (DSCP kMomDscp).
inline bool HighPriority(Design design) {
  return design == Design::kTopologyAwareQos || design == Design::kSerialized;
}

// Whether every copy passes through one root switch shared by all senders, which
// stamps group sequence numbers.
inline bool Serialized(Design design) { return design == Design::kSerialized; }

}  // namespace dctk::mom

#endif  // DCTK_MOM_DESIGN_H_
