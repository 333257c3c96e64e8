// ForwardingTable: the MOM switch's match tables, built from a SwitchConfig.
//
// Multicast: exact match on (destination group address, input port), as the
// controller computes rules (controller/routes.h); the result is a bitmap of
// output ports, whether the copies go in the high-priority band and whether
// this switch stamps group sequence numbers. Unicast: longest prefix match on
// the destination. Every packet is queued in band 0 (strict priority) if it
// carries DSCP 46 or its multicast rule is high priority, else band 1.
// Tables are immutable once built; the switch swaps in a new one to reconfigure.
//
// Example:
//   absl::StatusOr<ForwardingTable> t = ForwardingTable::Create(config, /*num_ports=*/4);
//   Forwarding f;
//   if (absl::optional<DropReason> r = t->Lookup(in_port, info, &f)) drop(*r);
#ifndef DCTK_MOM_SWITCH_FORWARDING_TABLE_H_
#define DCTK_MOM_SWITCH_FORWARDING_TABLE_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/optional.h"
#include "mom/controller/switch_config.pb.h"
#include "mom/switch/drop_reason.h"
#include "mom/switch/packet.h"

namespace dctk::mom {

inline constexpr uint8_t kHighPriorityBand = 0;
inline constexpr uint8_t kBestEffortBand = 1;
inline constexpr uint8_t kEfDscp = 46;

struct Forwarding {
  uint64_t out_ports = 0;  // bit i: send a copy out of port i
  uint8_t band = kBestEffortBand;
  bool stamp = false;      // this switch is the group's sequencer
  uint32_t group_id = 0;   // multicast only
};

class ForwardingTable {
 public:
  static constexpr int kMaxPorts = 64;

  // Checks ports (< num_ports <= kMaxPorts), prefix lengths and duplicate keys;
  // errors name the rule.
  static absl::StatusOr<ForwardingTable> Create(const SwitchConfig& config, int num_ports);

  absl::optional<DropReason> Lookup(int in_port, const PacketInfo& packet,
                                    Forwarding* out) const;

  int num_ports() const { return num_ports_; }

 private:
  struct Unicast {
    uint32_t prefix;
    uint32_t mask;
    int prefix_len;
    int port;
  };

  int num_ports_ = 0;
  absl::flat_hash_map<std::pair<uint32_t, uint32_t>, Forwarding> multicast_;
  std::vector<Unicast> unicast_;  // longest prefix first
};

}  // namespace dctk::mom

#endif  // DCTK_MOM_SWITCH_FORWARDING_TABLE_H_
