#include "bastion/datapath/datapath.h"

#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace dctk::bastion {

std::string Ipv4ToString(uint32_t ip) {
  return absl::StrCat(ip >> 24, ".", (ip >> 16) & 0xff, ".", (ip >> 8) & 0xff, ".", ip & 0xff);
}

bool IsMulticast(uint32_t ip) { return (ip >> 28) == 0xe; }

absl::StatusOr<MacAddress> MacAddress::Parse(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ':');
  MacAddress mac;
  if (parts.size() != mac.bytes.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("MAC address '", text, "': want 6 hex bytes separated by ':'"));
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    uint32_t byte = 0;
    if (parts[i].size() != 2 || !absl::SimpleHexAtoi(parts[i], &byte)) {
      return absl::InvalidArgumentError(
          absl::StrCat("MAC address '", text, "': byte ", i + 1, " is not two hex digits"));
    }
    mac.bytes[i] = static_cast<uint8_t>(byte);
  }
  return mac;
}

std::string MacAddress::ToString() const {
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1], bytes[2],
                         bytes[3], bytes[4], bytes[5]);
}

absl::string_view VerdictName(uint32_t code) {
  switch (code) {
#define BASTION_PASS_NAME_(c, value, name, help) \
  case c:                                        \
    return name;
#define BASTION_DROP_NAME_(c, value, name, help, auditable) \
  case c:                                                   \
    return name;
    BASTION_FOR_EACH_PASS_VERDICT(BASTION_PASS_NAME_)
    BASTION_FOR_EACH_DROP_REASON(BASTION_DROP_NAME_)
#undef BASTION_PASS_NAME_
#undef BASTION_DROP_NAME_
  }
  return "unknown";
}

bool IsDropReason(uint32_t code) {
  switch (code) {
#define BASTION_DROP_CASE_(c, value, name, help, auditable) case c:
    BASTION_FOR_EACH_DROP_REASON(BASTION_DROP_CASE_)
#undef BASTION_DROP_CASE_
    return true;
  }
  return false;
}

}  // namespace dctk::bastion
