// ProcessConfig: what a spaxos_replica / spaxos_client process reads from a
// common/config cluster file and its flags: the replica group's addresses, the
// optional multicast group clients send to, the protocol, and timeouts.
//
// The cluster file names a replica group (2f+1 members, members[0] leads
// first); `timeouts.heartbeat_ms` is the leader's sync / heartbeat period,
// `timeouts.view_change_ms` the leader timeout and `timeouts.request_ms` the
// client's resend timeout.
//
// Example:
//   absl::StatusOr<ProcessConfig> pc = LoadProcessConfig("shard.conf", "shard0",
//                                                        "shard0-ordered", "spaxos");
#ifndef DCTK_SPECULATIVE_PAXOS_TOOLS_PROCESS_CONFIG_H_
#define DCTK_SPECULATIVE_PAXOS_TOOLS_PROCESS_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "common/transport/address.h"
#include "mom/group.h"

namespace dctk::spaxos {

enum class Protocol { kSpeculativePaxos, kVr, kFastPaxos, kUnreplicated };

struct ProcessConfig {
  Protocol protocol = Protocol::kSpeculativePaxos;
  std::vector<transport::Address> replicas;
  absl::optional<transport::Address> multicast;
  absl::Duration heartbeat;
  absl::Duration view_change_timeout;
  absl::Duration request_timeout;
};

// The --protocol name of `p` ("spaxos", "vr", "fastpaxos", "unreplicated"),
// and back (InvalidArgument naming the flag for any other name).
const char* ProtocolName(Protocol p);
absl::StatusOr<Protocol> ParseProtocol(absl::string_view name);

// The MOM group (mom/group.h) on the multicast address: requests travel as
// MomPackets to the replicas (IP multicast, the naive design).
mom::GroupConfig MomGroup(const ProcessConfig& pc);

// `multicast` may be empty (clients send to each replica).
absl::StatusOr<ProcessConfig> LoadProcessConfig(absl::string_view path,
                                                absl::string_view group,
                                                absl::string_view multicast,
                                                absl::string_view protocol);

}  // namespace dctk::spaxos

#endif  // DCTK_SPECULATIVE_PAXOS_TOOLS_PROCESS_CONFIG_H_
