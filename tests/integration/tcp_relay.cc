#include "tests/integration/tcp_relay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace dctk::integration {
namespace {

absl::StatusOr<sockaddr_in> Parse(const std::string& address) {
  std::vector<std::string> parts = absl::StrSplit(address, ':');
  uint32_t port = 0;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &port) || port > 65535 ||
      inet_pton(AF_INET, parts[0].c_str(), &sa.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("tcp relay: address '", address, "': want a.b.c.d:port"));
  }
  sa.sin_port = htons(static_cast<uint16_t>(port));
  return sa;
}

absl::Status Errno(absl::string_view what, const std::string& address) {
  return absl::UnavailableError(absl::StrCat("tcp relay: ", what, " ", address, ": ", strerror(errno)));
}

// Copies what is readable on `from` to `to`; false at end of stream or error.
bool Pump(int from, int to) {
  char buf[16384];
  const ssize_t n = read(from, buf, sizeof(buf));
  if (n <= 0) return n < 0 && errno == EINTR;
  for (ssize_t off = 0; off < n;) {
    const ssize_t put = send(to, buf + off, n - off, MSG_NOSIGNAL);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) return false;
    off += put;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TcpRelay>> TcpRelay::Start(const std::string& listen, const std::string& target) {
  absl::StatusOr<sockaddr_in> sa = Parse(listen);
  if (!sa.ok()) return sa.status();
  if (absl::StatusOr<sockaddr_in> t = Parse(target); !t.ok()) return t.status();
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket for", listen);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  socklen_t len = sizeof(*sa);
  if (bind(fd, reinterpret_cast<sockaddr*>(&*sa), len) != 0 || ::listen(fd, 64) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&*sa), &len) != 0) {
    absl::Status s = Errno("bind/listen on", listen);
    close(fd);
    return s;
  }
  std::vector<std::string> host = absl::StrSplit(listen, ':');
  std::unique_ptr<TcpRelay> r(new TcpRelay(target, fd, absl::StrCat(host[0], ":", ntohs(sa->sin_port))));
  r->accept_thread_ = std::thread([p = r.get()] { p->AcceptLoop(); });
  return r;
}

TcpRelay::TcpRelay(std::string target, int listen_fd, std::string address)
    : target_(std::move(target)), listen_fd_(listen_fd), address_(std::move(address)) {}

TcpRelay::~TcpRelay() {
  stop_.store(true);
  shutdown(listen_fd_, SHUT_RDWR);
  if (accept_thread_.joinable()) accept_thread_.join();
  close(listen_fd_);
  std::vector<std::thread> threads;
  {
    absl::MutexLock l(&mu_);
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
    threads.swap(connections_);
  }
  for (auto& t : threads) t.join();
}

void TcpRelay::AcceptLoop() {
  while (!stop_.load()) {
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;
    }
    const int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    absl::StatusOr<sockaddr_in> target = Parse(target_);
    if (server < 0 || connect(server, reinterpret_cast<const sockaddr*>(&*target), sizeof(*target)) != 0) {
      if (server >= 0) close(server);
      close(client);  // the target is down: the caller sees a closed connection and retries
      continue;
    }
    int one = 1;
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    absl::MutexLock l(&mu_);
    fds_.push_back(client);
    fds_.push_back(server);
    connections_.emplace_back([this, client, server] { Splice(client, server); });
  }
}

void TcpRelay::Splice(int client, int server) {
  pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
  while (!stop_.load()) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents != 0 && !Pump(client, server)) break;
    if (fds[1].revents != 0 && !Pump(server, client)) break;
  }
  absl::MutexLock l(&mu_);
  shutdown(client, SHUT_RDWR);
  shutdown(server, SHUT_RDWR);
  std::erase(fds_, client);
  std::erase(fds_, server);
  close(client);
  close(server);
}

}  // namespace dctk::integration
