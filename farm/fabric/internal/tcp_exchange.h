// Fixed-size request/response exchange over TCP, used by the verbs fabric's
// connection manager to trade queue-pair and region information (the role
// rdma_cm or an out-of-band socket plays in RDMA programs). One request per
// connection; control path only.
//
// Example:
//   absl::StatusOr<int> fd = TcpListen("127.0.0.1", &endpoint);
//   absl::Status s = TcpExchange(endpoint, &request, sizeof(request), &reply, sizeof(reply));
#ifndef DCTK_FARM_FABRIC_INTERNAL_TCP_EXCHANGE_H_
#define DCTK_FARM_FABRIC_INTERNAL_TCP_EXCHANGE_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dctk::farm::fabric::internal {

// Listens on `host` port 0; *endpoint becomes "host:port".
absl::StatusOr<int> TcpListen(absl::string_view host, std::string* endpoint);

// Connects to "host:port", sends `request`, reads exactly `reply_size` bytes.
absl::Status TcpExchange(absl::string_view endpoint, const void* request, size_t request_size,
                         void* reply, size_t reply_size);

// A connected, blocking TCP socket to "host:port" with TCP_NODELAY set.
absl::StatusOr<int> TcpConnect(absl::string_view endpoint);

// Reads / writes exactly `size` bytes (5 s timeout each way).
absl::Status ReadFull(int fd, void* buf, size_t size);
absl::Status WriteFull(int fd, const void* buf, size_t size);

}  // namespace dctk::farm::fabric::internal

#endif  // DCTK_FARM_FABRIC_INTERNAL_TCP_EXCHANGE_H_
