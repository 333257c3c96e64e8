#include "mom/switch/drop_reason.h"

namespace dctk::mom {

absl::string_view DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kMalformed:
      return "malformed";
    case DropReason::kNotIpv4:
      return "not_ipv4";
    case DropReason::kNoRoute:
      return "no_route";
    case DropReason::kNotMomPacket:
      return "not_mom_packet";
    case DropReason::kQueueFull:
      return "queue_full";
    case DropReason::kTxFull:
      return "tx_full";
    case DropReason::kTooBig:
      return "too_big";
    case DropReason::kNoBuffers:
      return "no_buffers";
  }
  return "unknown";
}

}  // namespace dctk::mom
