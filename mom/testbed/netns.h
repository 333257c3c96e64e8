// Small helpers for real-network tests and tools: UDP sockets created inside
// a network namespace (the socket keeps its namespace after the thread
// switches back), entering a namespace for good. Shell commands (ip, nft) go
// through common/process's RunCommand.
//
// Example:
//   absl::StatusOr<int> fd = UdpSocketInNetns("mom123_h0");
#ifndef DCTK_MOM_TESTBED_NETNS_H_
#define DCTK_MOM_TESTBED_NETNS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dctk::mom {

// A UDP socket in network namespace `netns` (/var/run/netns/NAME).
absl::StatusOr<int> UdpSocketInNetns(const std::string& netns);

// Moves the calling thread into network namespace `netns` for good: for a
// thread dedicated to one host (its sockets, e.g. a UdpTransport's, are then
// created there).
absl::Status EnterNetns(const std::string& netns);

// "a.b.c.d" of a host-byte-order IPv4 address.
std::string Ipv4Text(uint32_t ip);

}  // namespace dctk::mom

#endif  // DCTK_MOM_TESTBED_NETNS_H_
