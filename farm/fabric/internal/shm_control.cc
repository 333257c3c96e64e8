#include "farm/fabric/internal/shm_control.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"

namespace dctk::farm::fabric::internal {
namespace {

absl::Status Errno(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat("shm fabric control: ", what, ": ", strerror(errno)));
}

sockaddr_un AbstractAddress(absl::string_view name, socklen_t* len) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  addr.sun_path[0] = '\0';
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  *len = offsetof(sockaddr_un, sun_path) + 1 + name.size();
  return addr;
}

}  // namespace

absl::Status SendControl(int sock, const ControlMessage& msg, int pass_fd) {
  iovec iov{const_cast<ControlMessage*>(&msg), sizeof(msg)};
  msghdr hdr{};
  hdr.msg_iov = &iov;
  hdr.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (pass_fd >= 0) {
    hdr.msg_control = control;
    hdr.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&hdr);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  }
  ssize_t n;
  do {
    n = sendmsg(sock, &hdr, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof(msg))) return Errno("sendmsg");
  return absl::OkStatus();
}

absl::StatusOr<ControlMessage> RecvControl(int sock, int* received_fd) {
  *received_fd = -1;
  ControlMessage msg;
  iovec iov{&msg, sizeof(msg)};
  msghdr hdr{};
  hdr.msg_iov = &iov;
  hdr.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  hdr.msg_control = control;
  hdr.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(sock, &hdr, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n == 0) return absl::UnavailableError("shm fabric control: peer closed the connection");
  if (n < 0) return Errno("recvmsg");
  for (cmsghdr* c = CMSG_FIRSTHDR(&hdr); c != nullptr; c = CMSG_NXTHDR(&hdr, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      std::memcpy(received_fd, CMSG_DATA(c), sizeof(int));
    }
  }
  if (n != static_cast<ssize_t>(sizeof(msg))) {
    if (*received_fd >= 0) close(*received_fd);
    *received_fd = -1;
    return absl::DataLossError(absl::StrCat("shm fabric control: short message of ", n, " bytes"));
  }
  return msg;
}

absl::StatusOr<int> ListenAbstract(absl::string_view prefix, std::string* name) {
  // Abstract names are per network namespace, shared by processes in other
  // PID namespaces (e.g. sandboxed tests), so the pid alone is not unique.
  static std::atomic<uint64_t> counter{0};
  for (int attempt = 0;; ++attempt) {
    *name = absl::StrCat(prefix, "-", getpid(), "-", absl::Hex(std::random_device{}()), "-",
                         counter.fetch_add(1));
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return Errno("socket");
    socklen_t len;
    sockaddr_un addr = AbstractAddress(*name, &len);
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0 && listen(fd, 64) == 0) return fd;
    absl::Status s = Errno(absl::StrCat("bind/listen @", *name));
    const bool in_use = errno == EADDRINUSE;
    close(fd);
    if (!in_use || attempt == 10) return s;
  }
}

absl::StatusOr<int> ConnectAbstract(absl::string_view name) {
  if (name.empty() || name.size() > sizeof(sockaddr_un::sun_path) - 2) {
    return absl::InvalidArgumentError(absl::StrCat("shm fabric: bad endpoint name '", name, "'"));
  }
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  socklen_t len;
  sockaddr_un addr = AbstractAddress(name, &len);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    absl::Status s = Errno(absl::StrCat("connect @", name));
    close(fd);
    return s;
  }
  return fd;
}

}  // namespace dctk::farm::fabric::internal
