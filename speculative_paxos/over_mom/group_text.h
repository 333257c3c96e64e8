// GroupText: a mom::GroupConfig as one line of text, so the bench can hand the
// group it computed from the controller's routes to the replica and client
// processes it starts (flag --group of spaxos_mom_node).
//
//   id=5 design=serialized delivery=multicast group=239.0.5.0:7200
//   senders=1001@239.0.5.0:7200,1002@239.0.5.0:7200 members=10.201.0.2:7100,...
//
// Fields are separated by spaces; `senders` and `members` may be empty.
//
// Example:
//   std::string text = GroupToText(config);
//   absl::StatusOr<mom::GroupConfig> back = GroupFromText(text);
#ifndef DCTK_SPECULATIVE_PAXOS_OVER_MOM_GROUP_TEXT_H_
#define DCTK_SPECULATIVE_PAXOS_OVER_MOM_GROUP_TEXT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mom/group.h"

namespace dctk::spaxos {

std::string GroupToText(const mom::GroupConfig& config);
// Errors name the field that did not parse; the result is validated
// (mom::ValidateGroupConfig).
absl::StatusOr<mom::GroupConfig> GroupFromText(absl::string_view text);

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_OVER_MOM_GROUP_TEXT_H_
