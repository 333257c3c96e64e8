// The shm fabric's control channel: fixed-size messages over a SOCK_SEQPACKET
// unix socket (abstract namespace), carrying a region's memfd with SCM_RIGHTS.
// This is the emulated NIC driver's connection manager; it runs at connect and
// registration time only, never for a one-sided operation.
//
// Protocol (client = the machine that wants to access the server's regions):
//   client -> server  kHello{machine = client id}
//   server -> client  kHello{machine = server id}, then kRegion{key, size, fd}
//                     for each live region, then kSnapshotEnd
//   later server -> client kRegion / kDeregister, each answered by kAck.
//
// Example:
//   absl::Status s = SendControl(fd, {ControlType::kHello, my_id}, /*pass_fd=*/-1);
#ifndef DCTK_FARM_FABRIC_INTERNAL_SHM_CONTROL_H_
#define DCTK_FARM_FABRIC_INTERNAL_SHM_CONTROL_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dctk::farm::fabric::internal {

enum class ControlType : uint32_t {
  kHello = 1,
  kRegion = 2,
  kDeregister = 3,
  kSnapshotEnd = 4,
  kAck = 5,
};

struct ControlMessage {
  ControlType type = ControlType::kHello;
  uint32_t machine = 0;
  uint32_t key = 0;
  uint32_t page_kind = 0;  // kRegion: the region's PageKind
  uint64_t size = 0;
};

// Sends one message, with `pass_fd` attached when >= 0.
absl::Status SendControl(int sock, const ControlMessage& msg, int pass_fd);

// Receives one message (blocking, subject to the socket's SO_RCVTIMEO). A
// received descriptor is stored in *received_fd (else -1); the caller owns it.
absl::StatusOr<ControlMessage> RecvControl(int sock, int* received_fd);

// Listening socket bound to a fresh abstract name; returns the fd, and the
// name (without the leading NUL) in *name.
absl::StatusOr<int> ListenAbstract(absl::string_view prefix, std::string* name);
absl::StatusOr<int> ConnectAbstract(absl::string_view name);

}  // namespace dctk::farm::fabric::internal

#endif  // DCTK_FARM_FABRIC_INTERNAL_SHM_CONTROL_H_
