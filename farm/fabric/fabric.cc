#include "farm/fabric/fabric.h"

#include "absl/strings/str_format.h"

namespace dctk::farm::fabric {

std::string RemoteAddress::ToString() const {
  return absl::StrFormat("machine %u key %u offset %u", machine, key, offset);
}

const char* CompletionCodeName(CompletionCode code) {
  switch (code) {
    case CompletionCode::kSuccess: return "SUCCESS";
    case CompletionCode::kUnknownMachine: return "UNKNOWN_MACHINE";
    case CompletionCode::kInvalidKey: return "INVALID_KEY";
    case CompletionCode::kOutOfBounds: return "OUT_OF_BOUNDS";
    case CompletionCode::kMisaligned: return "MISALIGNED";
    case CompletionCode::kLocalProtection: return "LOCAL_PROTECTION";
    case CompletionCode::kRemoteError: return "REMOTE_ERROR";
  }
  return "UNKNOWN_CODE";
}

const char* PageKindName(PageKind kind) {
  switch (kind) {
    case PageKind::kSmall: return "4k";
    case PageKind::kTransparentHuge: return "thp";
    case PageKind::kHugetlb: return "hugetlb-2m";
  }
  return "unknown";
}

const char* OpTypeName(OpType op) {
  switch (op) {
    case OpType::kRead: return "READ";
    case OpType::kWrite: return "WRITE";
    case OpType::kCompareAndSwap: return "CAS";
  }
  return "UNKNOWN_OP";
}

absl::Status Completion::ToStatus() const {
  if (ok()) return absl::OkStatus();
  std::string msg = absl::StrFormat("fabric %s of %u bytes at %s (wr_id %u): %s",
                                    OpTypeName(op), length, remote.ToString(),
                                    wr_id, CompletionCodeName(code));
  switch (code) {
    case CompletionCode::kUnknownMachine:
    case CompletionCode::kInvalidKey:
      return absl::NotFoundError(msg);
    case CompletionCode::kOutOfBounds:
      return absl::OutOfRangeError(msg);
    case CompletionCode::kMisaligned:
    case CompletionCode::kLocalProtection:
      return absl::InvalidArgumentError(msg);
    default:
      return absl::UnavailableError(msg);
  }
}

}  // namespace dctk::farm::fabric
