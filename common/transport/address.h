// Address: an IPv4 address and UDP port, the endpoint name on every dctk transport.
//
// SimTransport uses the same type (with made-up addresses), so protocol code and
// configs are identical in simulation and on real sockets. Multicast groups are
// Addresses in 224.0.0.0/4.
//
// Example:
//   absl::StatusOr<Address> a = Address::Parse("127.0.0.1:7000");
//   if (a.ok() && a->is_multicast()) ...
#ifndef DCTK_COMMON_TRANSPORT_ADDRESS_H_
#define DCTK_COMMON_TRANSPORT_ADDRESS_H_

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace dctk::transport {

class Address {
 public:
  constexpr Address() = default;
  // `ip` in host byte order.
  constexpr Address(uint32_t ip, uint16_t port) : ip_(ip), port_(port) {}

  static constexpr Address Loopback(uint16_t port) { return Address(0x7f000001, port); }
  // Parses "a.b.c.d:port"; the error names the text and what is wrong with it.
  static absl::StatusOr<Address> Parse(absl::string_view text);

  uint32_t ip() const { return ip_; }
  uint16_t port() const { return port_; }
  bool is_multicast() const { return (ip_ >> 28) == 0xe; }
  std::string ToString() const;

  friend bool operator==(const Address& a, const Address& b) {
    return a.ip_ == b.ip_ && a.port_ == b.port_;
  }
  friend bool operator!=(const Address& a, const Address& b) { return !(a == b); }
  friend bool operator<(const Address& a, const Address& b) {
    return a.ip_ != b.ip_ ? a.ip_ < b.ip_ : a.port_ < b.port_;
  }
  template <typename H>
  friend H AbslHashValue(H h, const Address& a) {
    return H::combine(std::move(h), a.ip_, a.port_);
  }

 private:
  uint32_t ip_ = 0;
  uint16_t port_ = 0;
};

}  // namespace dctk::transport

#endif  // DCTK_COMMON_TRANSPORT_ADDRESS_H_
