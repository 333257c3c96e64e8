#include "farm/server/control.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace dctk::farm::server {
namespace {

constexpr uint32_t kMaxFrame = 64 << 20;

absl::Status Errno(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat("control: ", what, ": ", strerror(errno)));
}

// Reads exactly n bytes, waiting at most until `deadline` (InfiniteFuture: no limit).
absl::Status ReadFull(int fd, void* buf, size_t n, absl::Time deadline) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    if (deadline != absl::InfiniteFuture()) {
      const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
      if (ms <= 0) return absl::DeadlineExceededError("control: no reply in time");
      pollfd pfd{fd, POLLIN, 0};
      const int r = poll(&pfd, 1, static_cast<int>(ms));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Errno("poll");
      if (r == 0) return absl::DeadlineExceededError("control: no reply in time");
    }
    const ssize_t got = read(fd, p, n);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return Errno("read");
    if (got == 0) return absl::UnavailableError("control: connection closed");
    p += got;
    n -= got;
  }
  return absl::OkStatus();
}

absl::Status WriteFull(int fd, const void* buf, size_t n) {
  const auto* p = static_cast<const char*>(buf);
  while (n > 0) {
    const ssize_t put = send(fd, p, n, MSG_NOSIGNAL);
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) return Errno("write");
    p += put;
    n -= put;
  }
  return absl::OkStatus();
}

absl::StatusOr<sockaddr_in> Parse(const std::string& address) {
  std::vector<std::string> parts = absl::StrSplit(address, ':');
  uint32_t port = 0;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &port) || port > 65535 ||
      inet_pton(AF_INET, parts[0].c_str(), &sa.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("control address '", address, "': want a.b.c.d:port"));
  }
  sa.sin_port = htons(static_cast<uint16_t>(port));
  return sa;
}

}  // namespace

ControlServer::~ControlServer() {
  stop_.store(true);
  if (listen_fd_ >= 0) shutdown(listen_fd_, SHUT_RDWR);
  if (accept_thread_.joinable()) accept_thread_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  std::vector<std::thread> threads;
  {
    absl::MutexLock l(&mu_);
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
    threads.swap(connections_);
  }
  for (auto& t : threads) t.join();
}

absl::Status ControlServer::Start(const std::string& host) {
  // "a.b.c.d": any free port; "a.b.c.d:port": that port, at once again after a restart.
  const size_t colon = host.find(':');
  absl::StatusOr<sockaddr_in> sa = Parse(colon == std::string::npos ? host + ":0" : host);
  if (!sa.ok()) return sa.status();
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return Errno("socket");
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&*sa), sizeof(*sa)) != 0) return Errno("bind");
  if (listen(listen_fd_, 64) != 0) return Errno("listen");
  socklen_t len = sizeof(*sa);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&*sa), &len);
  address_ = absl::StrCat(host.substr(0, colon), ":", ntohs(sa->sin_port));
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  return absl::OkStatus();
}

void ControlServer::AcceptLoop() {
  while (!stop_.load()) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    absl::MutexLock l(&mu_);
    fds_.push_back(fd);
    connections_.emplace_back([this, fd] { Serve(fd); });
  }
}

void ControlServer::Serve(int fd) {
  while (!stop_.load()) {
    uint32_t len;
    uint16_t method;
    if (!ReadFull(fd, &len, 4, absl::InfiniteFuture()).ok() || len < 2 || len > kMaxFrame) break;
    std::string req(len - 2, '\0');
    if (!ReadFull(fd, &method, 2, absl::InfiniteFuture()).ok() ||
        !ReadFull(fd, req.data(), req.size(), absl::InfiniteFuture()).ok()) {
      break;
    }
    absl::StatusOr<std::string> reply = handler_(method, req);
    const uint8_t code = static_cast<uint8_t>(reply.status().code());
    const std::string body = reply.ok() ? *reply : std::string(reply.status().message());
    const uint32_t out_len = static_cast<uint32_t>(1 + body.size());
    std::string frame(reinterpret_cast<const char*>(&out_len), 4);
    frame.push_back(static_cast<char>(code));
    frame += body;
    if (!WriteFull(fd, frame.data(), frame.size()).ok()) break;
  }
  absl::MutexLock l(&mu_);
  shutdown(fd, SHUT_RDWR);
  close(fd);
  fds_.erase(std::remove(fds_.begin(), fds_.end(), fd), fds_.end());
}

absl::StatusOr<std::unique_ptr<ControlChannel>> ControlChannel::Connect(const std::string& address) {
  absl::StatusOr<sockaddr_in> sa = Parse(address);
  if (!sa.ok()) return sa.status();
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  if (connect(fd, reinterpret_cast<sockaddr*>(&*sa), sizeof(*sa)) != 0) {
    absl::Status s = Errno(absl::StrCat("connect to ", address));
    close(fd);
    return s;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return std::unique_ptr<ControlChannel>(new ControlChannel(address, fd));
}

ControlChannel::~ControlChannel() { close(fd_); }

absl::StatusOr<std::string> ControlChannel::Call(uint16_t method, absl::string_view request,
                                                 absl::Duration timeout) {
  absl::MutexLock l(&mu_);
  if (!broken_.ok()) {
    return absl::UnavailableError(
        absl::StrCat("control channel to ", address_, " is broken: ", broken_.ToString()));
  }
  return CallLocked(method, request, absl::Now() + timeout);
}

absl::StatusOr<std::string> ControlChannel::CallLocked(uint16_t method, absl::string_view request,
                                                       absl::Time deadline) {
  const uint32_t len = static_cast<uint32_t>(2 + request.size());
  std::string frame(reinterpret_cast<const char*>(&len), 4);
  frame.append(reinterpret_cast<const char*>(&method), 2);
  frame.append(request.data(), request.size());
  // A transport error leaves the stream mid-frame: it is never reused.
  auto broken = [&](absl::Status s) {
    broken_ = s;
    return s;
  };
  absl::Status s = WriteFull(fd_, frame.data(), frame.size());
  if (!s.ok()) return broken(s);
  uint32_t out_len;
  s = ReadFull(fd_, &out_len, 4, deadline);
  if (!s.ok()) return broken(s);
  if (out_len < 1 || out_len > kMaxFrame) {
    return broken(absl::UnavailableError(absl::StrCat("control: bad reply frame from ", address_)));
  }
  std::string body(out_len, '\0');
  s = ReadFull(fd_, body.data(), body.size(), deadline);
  if (!s.ok()) return broken(s);
  const auto code = static_cast<absl::StatusCode>(static_cast<uint8_t>(body[0]));
  if (code != absl::StatusCode::kOk) {
    return absl::Status(code, absl::StrCat(address_, ": ", absl::string_view(body).substr(1)));
  }
  return body.substr(1);
}

}  // namespace dctk::farm::server
