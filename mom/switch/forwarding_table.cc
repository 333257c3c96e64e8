#include "mom/switch/forwarding_table.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dctk::mom {

absl::StatusOr<ForwardingTable> ForwardingTable::Create(const SwitchConfig& config,
                                                        int num_ports) {
  const std::string where = absl::StrCat("switch '", config.switch_name(), "'");
  if (num_ports < 1 || num_ports > kMaxPorts) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", num_ports, " ports (supported: 1-", kMaxPorts, ")"));
  }
  ForwardingTable t;
  t.num_ports_ = num_ports;
  auto check_port = [&](uint32_t port, absl::string_view what, int index) -> absl::Status {
    if (port >= static_cast<uint32_t>(num_ports)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", what, " ", index,
                                                     ": port ", port, " >= ", num_ports));
    }
    return absl::OkStatus();
  };
  for (int i = 0; i < config.rules_size(); ++i) {
    const MulticastRule& rule = config.rules(i);
    if (absl::Status s = check_port(rule.in_port(), "multicast rule", i); !s.ok()) return s;
    if ((rule.group_ip() >> 28) != 0xe) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": multicast rule ", i, ": group_ip is not multicast"));
    }
    Forwarding f;
    for (uint32_t out : rule.out_ports()) {
      if (absl::Status s = check_port(out, "multicast rule", i); !s.ok()) return s;
      f.out_ports |= uint64_t{1} << out;
    }
    f.band = rule.high_priority() ? kHighPriorityBand : kBestEffortBand;
    f.stamp = rule.stamp_group_seq();
    f.group_id = rule.group_id();
    if (!t.multicast_.try_emplace({rule.group_ip(), rule.in_port()}, f).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": multicast rule ", i, " repeats a (group, in_port) of an earlier rule"));
    }
  }
  for (int i = 0; i < config.unicast_routes_size(); ++i) {
    const UnicastRoute& r = config.unicast_routes(i);
    if (absl::Status s = check_port(r.out_port(), "unicast route", i); !s.ok()) return s;
    if (r.prefix_len() > 32) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": unicast route ", i, ": prefix_len ", r.prefix_len(), " > 32"));
    }
    const uint32_t mask = r.prefix_len() == 0 ? 0 : ~uint32_t{0} << (32 - r.prefix_len());
    t.unicast_.push_back({r.prefix() & mask, mask, static_cast<int>(r.prefix_len()),
                          static_cast<int>(r.out_port())});
  }
  std::stable_sort(t.unicast_.begin(), t.unicast_.end(),
                   [](const Unicast& a, const Unicast& b) { return a.prefix_len > b.prefix_len; });
  return t;
}

absl::optional<DropReason> ForwardingTable::Lookup(int in_port, const PacketInfo& packet,
                                                   Forwarding* out) const {
  const bool marked = packet.dscp == kEfDscp;
  if ((packet.dst_ip >> 28) == 0xe) {
    auto it = multicast_.find(std::make_pair(packet.dst_ip, static_cast<uint32_t>(in_port)));
    if (it == multicast_.end()) return DropReason::kNoRoute;
    *out = it->second;
    if (marked) out->band = kHighPriorityBand;
    return absl::nullopt;
  }
  for (const Unicast& u : unicast_) {
    if ((packet.dst_ip & u.mask) == u.prefix) {
      *out = Forwarding{.out_ports = uint64_t{1} << u.port,
                        .band = marked ? kHighPriorityBand : kBestEffortBand};
      return absl::nullopt;
    }
  }
  return DropReason::kNoRoute;
}

}  // namespace dctk::mom
