#include "speculative_paxos/over_mom/group_text.h"

#include <algorithm>
#include <map>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace dctk::spaxos {

std::string GroupToText(const mom::GroupConfig& config) {
  // Sorted by sender id, so the text is stable.
  std::map<uint32_t, transport::Address> senders(config.sender_addresses.begin(),
                                                 config.sender_addresses.end());
  std::vector<std::string> sender_parts, member_parts;
  for (const auto& [id, address] : senders) {
    sender_parts.push_back(absl::StrCat(id, "@", address.ToString()));
  }
  for (const transport::Address& m : config.members) member_parts.push_back(m.ToString());
  return absl::StrCat(
      "id=", config.group_id, " design=", mom::DesignName(config.design), " delivery=",
      config.delivery == mom::Delivery::kIpMulticast ? "multicast" : "unicast",
      " group=", config.group_address.ToString(), " senders=", absl::StrJoin(sender_parts, ","),
      " members=", absl::StrJoin(member_parts, ","));
}

absl::StatusOr<mom::GroupConfig> GroupFromText(absl::string_view text) {
  mom::GroupConfig config;
  for (absl::string_view field : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    const std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(field, '=');
    const auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("MOM group text: field '", field, "': ", why));
    };
    if (kv.first == "id") {
      if (!absl::SimpleAtoi(kv.second, &config.group_id)) return bad("not a number");
    } else if (kv.first == "design") {
      absl::StatusOr<mom::Design> d = mom::ParseDesign(kv.second);
      if (!d.ok()) return bad(d.status().message());
      config.design = *d;
    } else if (kv.first == "delivery") {
      if (kv.second == "multicast") {
        config.delivery = mom::Delivery::kIpMulticast;
      } else if (kv.second == "unicast") {
        config.delivery = mom::Delivery::kReplicatedUnicast;
      } else {
        return bad("multicast or unicast");
      }
    } else if (kv.first == "group") {
      absl::StatusOr<transport::Address> a = transport::Address::Parse(kv.second);
      if (!a.ok()) return bad(a.status().message());
      config.group_address = *a;
    } else if (kv.first == "senders") {
      for (absl::string_view s : absl::StrSplit(kv.second, ',', absl::SkipEmpty())) {
        const std::pair<absl::string_view, absl::string_view> ia = absl::StrSplit(s, '@');
        uint32_t id = 0;
        if (!absl::SimpleAtoi(ia.first, &id)) return bad(absl::StrCat("sender id '", ia.first, "'"));
        absl::StatusOr<transport::Address> a = transport::Address::Parse(ia.second);
        if (!a.ok()) return bad(a.status().message());
        config.sender_addresses[id] = *a;
      }
    } else if (kv.first == "members") {
      for (absl::string_view m : absl::StrSplit(kv.second, ',', absl::SkipEmpty())) {
        absl::StatusOr<transport::Address> a = transport::Address::Parse(m);
        if (!a.ok()) return bad(a.status().message());
        config.members.push_back(*a);
      }
    } else {
      return bad("unknown field");
    }
  }
  if (absl::Status s = mom::ValidateGroupConfig(config); !s.ok()) return s;
  return config;
}

}  // namespace dctk::spaxos
