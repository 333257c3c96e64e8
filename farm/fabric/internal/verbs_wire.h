// Wire format of the verbs fabric's connection manager (see verbs_fabric.h):
// one fixed-size CmRequest per TCP connection, answered by one CmReply.
// Both ends are this code on x86-64 hosts, so structs go as raw bytes.
//
// Example:
//   CmRequest req{CmType::kDescribeRegion, my_id, key};
//   CmReply reply;
//   TcpExchange(endpoint, &req, sizeof(req), &reply, sizeof(reply));
#ifndef DCTK_FARM_FABRIC_INTERNAL_VERBS_WIRE_H_
#define DCTK_FARM_FABRIC_INTERNAL_VERBS_WIRE_H_

#include <cstdint>

namespace dctk::farm::fabric::internal {

struct QpInfo {
  uint32_t qpn = 0;
  uint32_t psn = 0;
  uint16_t lid = 0;
  uint8_t gid[16] = {};
};

enum class CmType : uint32_t { kConnectQp = 1, kDescribeRegion = 2 };
enum class CmResult : uint32_t { kOk = 0, kNoSuchRegion = 1, kFailed = 2 };

struct CmRequest {
  CmType type = CmType::kConnectQp;
  uint32_t machine = 0;
  uint32_t key = 0;
  QpInfo qp;
};

struct CmReply {
  CmResult result = CmResult::kFailed;
  uint32_t rkey = 0;
  uint64_t addr = 0;
  uint64_t size = 0;
  QpInfo qp;
};

}  // namespace dctk::farm::fabric::internal

#endif  // DCTK_FARM_FABRIC_INTERNAL_VERBS_WIRE_H_
