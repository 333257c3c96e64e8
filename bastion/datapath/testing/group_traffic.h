// MOM-shaped group traffic for Bastion's multicast tests and benchmark: datagrams laid out
// as a dctk transport frame carrying a MomPacket whose first field is the group_seq slot
// (what mom::MomSender sends in serialized groups; see mom/mom.proto and
// mom/switch/packet.h), and UDP socket helpers (bind, join, receive with a deadline).
//
// Example:
//   std::string d = MomDatagram(/*sender_seq=*/1);
//   sendto(fd, d.data(), d.size(), 0, group_addr, sizeof(*group_addr));
//   absl::StatusOr<std::string> got = Receive(member_fd, absl::Seconds(20));
//   uint64_t seq = GroupSeqOf(*got);   // stamped by the datapath
#ifndef DCTK_BASTION_DATAPATH_TESTING_GROUP_TRAFFIC_H_
#define DCTK_BASTION_DATAPATH_TESTING_GROUP_TRAFFIC_H_

#include <netinet/in.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace dctk::bastion::testing {

// A MomPacket datagram: group_seq 0 (the slot), sender_seq, then `padding` bytes.
std::string MomDatagram(uint64_t sender_seq, size_t padding = 16);
// The group_seq / sender_seq a MomDatagram carries (0 if it is too short).
uint64_t GroupSeqOf(absl::string_view datagram);
uint64_t SenderSeqOf(absl::string_view datagram);

sockaddr_in SocketAddress(uint32_t ip, uint16_t port);  // ip in host order
// Binds `fd` (UDP) to 0.0.0.0:port and joins `group` on the interface with address `local`.
absl::Status BindAndJoin(int fd, uint16_t port, uint32_t group, uint32_t local);
// Makes `fd` send multicast from the interface with address `local`, without looping a
// copy back to the sender itself.
absl::Status MulticastFrom(int fd, uint32_t local);
// The next datagram on `fd`, or DeadlineExceeded after `timeout`.
absl::StatusOr<std::string> Receive(int fd, absl::Duration timeout);

}  // namespace dctk::bastion::testing

#endif  // DCTK_BASTION_DATAPATH_TESTING_GROUP_TRAFFIC_H_
