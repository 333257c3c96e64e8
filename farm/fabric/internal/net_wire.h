// Wire format of the net fabric: requests from an initiator's Queue to the
// target's progress thread, answered in order on the same TCP connection.
// WRITE requests are followed by `length` payload bytes; successful READ
// responses by `length` data bytes. Both ends are this code on x86-64.
//
// Example:
//   NetRequest req{NetOp::kRead, key, offset, length};
#ifndef DCTK_FARM_FABRIC_INTERNAL_NET_WIRE_H_
#define DCTK_FARM_FABRIC_INTERNAL_NET_WIRE_H_

#include <cstdint>

namespace dctk::farm::fabric::internal {

enum class NetOp : uint8_t { kRead = 1, kWrite = 2, kCompareAndSwap = 3 };

// Largest READ or WRITE the net fabric carries in one operation.
inline constexpr uint32_t kNetMaxLength = 16u << 20;

struct NetRequest {
  NetOp op = NetOp::kRead;
  uint8_t reserved[3] = {};
  uint32_t key = 0;
  uint64_t offset = 0;
  uint32_t length = 0;
  uint32_t reserved2 = 0;
  uint64_t compare = 0;
  uint64_t swap = 0;
};

struct NetResponse {
  uint8_t code = 0;  // a fabric::CompletionCode
  uint8_t reserved[3] = {};
  uint32_t length = 0;  // data bytes that follow
  uint64_t old_value = 0;
};

}  // namespace dctk::farm::fabric::internal

#endif  // DCTK_FARM_FABRIC_INTERNAL_NET_WIRE_H_
