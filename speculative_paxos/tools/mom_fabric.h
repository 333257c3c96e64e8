// MomFabric: a MOM group on the switch fabric, read from a MomFabricGroup file
// (mom_fabric.proto) and the common/config cluster file it refers to, for
// spaxos_replica (--mom_fabric) and spaxos_client (--mom_fabric --node):
// what speculative_paxos/over_mom hands its processes on the command line.
//
// Replicas use `group` as it is: they join the group address and every
// sender's channel. A client process runs on one sender node: ForSender gives
// the group with each of its clients' MOM sender ids sending to that node's
// channel, and `nodes` the node's address to bind to.
//
// Example:
//   absl::StatusOr<MomFabric> fabric = LoadMomFabric("shard.mom", "shard.conf");
//   rc.mom = fabric->group;                                   // replica
//   cc.mom = *fabric->ForSender("client0", {MomSenderId(id)});  // client
#ifndef DCTK_SPECULATIVE_PAXOS_TOOLS_MOM_FABRIC_H_
#define DCTK_SPECULATIVE_PAXOS_TOOLS_MOM_FABRIC_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/transport/address.h"
#include "mom/group.h"

namespace dctk::spaxos {

struct MomFabric {
  // The group as its receivers see it (sender_addresses: every channel, by
  // position among the senders; receivers use only the addresses).
  mom::GroupConfig group;
  std::map<std::string, transport::Address> channels;  // sender node -> channel
  std::map<std::string, transport::Address> nodes;     // sender node -> its address

  // The group for clients on sender node `node` with these MOM sender ids.
  absl::StatusOr<mom::GroupConfig> ForSender(absl::string_view node,
                                             const std::vector<uint32_t>& sender_ids) const;
};

// Errors name the file, line and field.
absl::StatusOr<MomFabric> LoadMomFabric(absl::string_view path, absl::string_view cluster_path);
// The same from the files' text (tests).
absl::StatusOr<MomFabric> ParseMomFabric(absl::string_view text, absl::string_view filename,
                                         absl::string_view cluster_text,
                                         absl::string_view cluster_filename);

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_TOOLS_MOM_FABRIC_H_
