#include "farm/fabric/internal/tcp_exchange.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace dctk::farm::fabric::internal {
namespace {

absl::Status Errno(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat("fabric connection manager: ", what, ": ", strerror(errno)));
}

absl::StatusOr<sockaddr_in> ParseEndpoint(absl::string_view endpoint) {
  const size_t colon = endpoint.rfind(':');
  uint32_t port = 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  if (colon == absl::string_view::npos ||
      !absl::SimpleAtoi(endpoint.substr(colon + 1), &port) || port > 65535 ||
      inet_pton(AF_INET, std::string(endpoint.substr(0, colon)).c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("fabric endpoint '", endpoint, "' is not IPv4 host:port"));
  }
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

void SetTimeouts(int fd) {
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

}  // namespace

absl::StatusOr<int> TcpListen(absl::string_view host, std::string* endpoint) {
  // "a.b.c.d": any free port; "a.b.c.d:port": that port, at once again after a restart.
  const size_t colon = host.find(':');
  absl::StatusOr<sockaddr_in> addr = ParseEndpoint(colon == absl::string_view::npos ? absl::StrCat(host, ":0") : host);
  if (!addr.ok()) return addr.status();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  socklen_t len = sizeof(*addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&*addr), len) != 0 || listen(fd, 64) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&*addr), &len) != 0) {
    absl::Status s = Errno(absl::StrCat("bind/listen on ", host));
    close(fd);
    return s;
  }
  *endpoint = absl::StrCat(host.substr(0, colon), ":", ntohs(addr->sin_port));
  return fd;
}

absl::Status ReadFull(int fd, void* buf, size_t size) {
  auto* p = static_cast<char*>(buf);
  while (size > 0) {
    ssize_t n = read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return absl::UnavailableError("fabric connection manager: peer closed early");
    if (n < 0) return Errno("read");
    p += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status WriteFull(int fd, const void* buf, size_t size) {
  const auto* p = static_cast<const char*>(buf);
  while (size > 0) {
    ssize_t n = send(fd, p, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("send");
    p += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<int> TcpConnect(absl::string_view endpoint) {
  absl::StatusOr<sockaddr_in> addr = ParseEndpoint(endpoint);
  if (!addr.ok()) return addr.status();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  if (connect(fd, reinterpret_cast<sockaddr*>(&*addr), sizeof(*addr)) != 0) {
    absl::Status s = Errno(absl::StrCat("connect to ", endpoint));
    close(fd);
    return s;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

absl::Status TcpExchange(absl::string_view endpoint, const void* request, size_t request_size,
                         void* reply, size_t reply_size) {
  absl::StatusOr<sockaddr_in> addr = ParseEndpoint(endpoint);
  if (!addr.ok()) return addr.status();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  SetTimeouts(fd);
  absl::Status s;
  if (connect(fd, reinterpret_cast<sockaddr*>(&*addr), sizeof(*addr)) != 0) {
    s = Errno(absl::StrCat("connect to ", endpoint));
  } else {
    s = WriteFull(fd, request, request_size);
    if (s.ok()) s = ReadFull(fd, reply, reply_size);
  }
  close(fd);
  return s;
}

}  // namespace dctk::farm::fabric::internal
