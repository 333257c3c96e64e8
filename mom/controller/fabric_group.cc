#include "mom/controller/fabric_group.h"

#include "absl/strings/str_cat.h"
#include "mom/controller/switch_config.h"

namespace dctk::mom {

absl::StatusOr<GroupConfig> FabricGroupConfig(const GroupRoutes& routes, uint16_t port,
                                              const std::vector<uint32_t>& sender_ids) {
  if (sender_ids.size() != routes.senders.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("MOM group ", routes.spec.group_id, ": ", sender_ids.size(),
                     " sender ids for ", routes.senders.size(), " senders"));
  }
  GroupConfig config{.group_id = routes.spec.group_id,
                     .group_address = transport::Address(ChannelGroupIp(routes.spec.group_id, 0), port),
                     .delivery = Delivery::kIpMulticast,
                     .design = routes.spec.design};
  for (size_t i = 0; i < sender_ids.size(); ++i) {
    const transport::Address address(SenderChannelIp(routes, static_cast<int>(i)), port);
    if (!config.sender_addresses.emplace(sender_ids[i], address).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MOM group ", routes.spec.group_id, ": sender id ", sender_ids[i], " given twice"));
    }
  }
  return config;
}

}  // namespace dctk::mom
