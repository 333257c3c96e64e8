#include "common/transport/address.h"

#include <arpa/inet.h>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace dctk::transport {

absl::StatusOr<Address> Address::Parse(absl::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("address '", text, "' has no ':port' (want a.b.c.d:port)"));
  }
  std::string host(text.substr(0, colon));
  in_addr in;
  if (inet_pton(AF_INET, host.c_str(), &in) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("address '", text, "': '", host, "' is not an IPv4 address"));
  }
  uint32_t port;
  if (!absl::SimpleAtoi(text.substr(colon + 1), &port) || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "address '", text, "': port '", text.substr(colon + 1), "' is not in 0-65535"));
  }
  return Address(ntohl(in.s_addr), static_cast<uint16_t>(port));
}

std::string Address::ToString() const {
  return absl::StrCat(ip_ >> 24, ".", (ip_ >> 16) & 0xff, ".", (ip_ >> 8) & 0xff, ".",
                      ip_ & 0xff, ":", port_);
}

}  // namespace dctk::transport
