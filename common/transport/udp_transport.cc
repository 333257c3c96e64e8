// UdpTransport: sockets, registration, multicast membership and sending.
// The event loop (receive, timers, posts, batched flush) is in udp_event_loop.cc.
#include "common/transport/udp_transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace dctk::transport {
namespace {

constexpr size_t kRecvBufSize = 65536;  // > largest IPv4 UDP payload
constexpr int kSocketBufferBytes = 1 << 20;

sockaddr_in ToSockaddr(const Address& a) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(a.ip());
  sa.sin_port = htons(a.port());
  return sa;
}

absl::Status Errno(absl::string_view what, const Address& addr) {
  int err = errno;
  return absl::Status(absl::ErrnoToStatusCode(err),
                      absl::StrCat("UdpTransport: ", what, " for ", addr.ToString(), ": ",
                                   strerror(err)));
}

template <typename T>
bool SetOpt(int fd, int level, int name, T value) {
  return setsockopt(fd, level, name, &value, sizeof(value)) == 0;
}

}  // namespace

UdpTransport::Socket::~Socket() {
  if (fd >= 0) close(fd);
}

absl::StatusOr<std::unique_ptr<UdpTransport>> UdpTransport::Create() {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return Errno("epoll_create1", Address());
  auto wake = std::make_unique<Socket>(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC),
                                       Socket::Kind::kWake, nullptr);
  if (wake->fd < 0) {
    absl::Status s = Errno("eventfd", Address());
    close(ep);
    return s;
  }
  std::unique_ptr<UdpTransport> t(new UdpTransport(ep, std::move(wake)));
  if (absl::Status s = t->AddToEpoll(t->wake_.get()); !s.ok()) return s;
  return t;
}

UdpTransport::UdpTransport(int epoll_fd, std::unique_ptr<Socket> wake)
    : epoll_fd_(epoll_fd),
      wake_(std::move(wake)),
      recv_buf_(new char[kRecvBatch * kRecvBufSize]),
      pending_(kSendBatch) {
  for (int i = 0; i < kRecvBatch; ++i) {
    recv_iov_[i] = {recv_buf_.get() + i * kRecvBufSize, kRecvBufSize};
    recv_msgs_[i] = {};
    recv_msgs_[i].msg_hdr.msg_iov = &recv_iov_[i];
    recv_msgs_[i].msg_hdr.msg_iovlen = 1;
  }
}

UdpTransport::~UdpTransport() {
  endpoints_.clear();  // closes every socket (closing also leaves groups)
  retired_.clear();
  wake_.reset();
  close(epoll_fd_);
}

absl::Status UdpTransport::AddToEpoll(Socket* s) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = s;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, s->fd, &ev) != 0) {
    return Errno("epoll_ctl(ADD)", Address());
  }
  return absl::OkStatus();
}

void UdpTransport::Retire(std::unique_ptr<Socket> s) {
  if (s->kind == Socket::Kind::kPeer) ForgetPeerSocket(s.get());
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, s->fd, nullptr);
  s->closed = true;
  // A batch being dispatched may still point at it: free after the iteration.
  if (in_loop_) retired_.push_back(std::move(s));
}

absl::StatusOr<Address> UdpTransport::Register(TransportReceiver* receiver,
                                               const Address& addr,
                                               const EndpointOptions& options) {
  if (endpoints_.contains(receiver)) {
    return absl::AlreadyExistsError(
        absl::StrCat("UdpTransport::Register: receiver already registered at ",
                     endpoints_[receiver].addr.ToString()));
  }
  if (addr.is_multicast()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "UdpTransport::Register: ", addr.ToString(), " is multicast; use JoinGroup"));
  }
  for (const Address& peer : options.peers) {
    if (peer.is_multicast() || peer.port() == 0) {
      return absl::InvalidArgumentError(absl::StrCat("UdpTransport::Register: peer ",
                                                     peer.ToString(), " of ", addr.ToString(),
                                                     " is not a unicast address with a port"));
    }
  }
  if (options.dscp > 63) {
    return absl::InvalidArgumentError(absl::StrCat(
        "UdpTransport::Register: dscp ", options.dscp, " for ", addr.ToString(),
        " is not in 0-63"));
  }
  auto sock = std::make_unique<Socket>(
      socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), Socket::Kind::kUnicast,
      receiver);
  if (sock->fd < 0) return Errno("socket", addr);
  int fd = sock->fd;
  in_addr mcast_if{htonl(options.multicast_interface_ip)};
  if (!SetOpt(fd, IPPROTO_IP, IP_TOS, int{options.dscp} << 2)) return Errno("IP_TOS", addr);
  if (!SetOpt(fd, IPPROTO_IP, IP_MULTICAST_TTL, int{options.multicast_ttl}) ||
      !SetOpt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, int{options.multicast_loopback}) ||
      !SetOpt(fd, IPPROTO_IP, IP_MULTICAST_IF, mcast_if)) {
    return Errno("multicast socket options", addr);
  }
  // Bigger buffers absorb bursts; the kernel caps them at rmem_max/wmem_max.
  SetOpt(fd, SOL_SOCKET, SO_RCVBUF, kSocketBufferBytes);
  SetOpt(fd, SOL_SOCKET, SO_SNDBUF, kSocketBufferBytes);
  sockaddr_in sa = ToSockaddr(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) return Errno("bind", addr);
  socklen_t len = sizeof(sa);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    return Errno("getsockname", addr);
  }
  Address bound(ntohl(sa.sin_addr.s_addr), ntohs(sa.sin_port));
  // Set after bind, so the port the kernel picked is ours alone; the peer
  // sockets then join it (udp_peer_wait.cc).
  if (!options.peers.empty() && !SetOpt(fd, SOL_SOCKET, SO_REUSEPORT, 1)) {
    return Errno("SO_REUSEPORT", addr);
  }
  if (absl::Status s = AddToEpoll(sock.get()); !s.ok()) return s;
  Endpoint ep;
  ep.addr = bound;
  ep.options = options;
  ep.unicast = std::move(sock);
  if (absl::Status s = OpenPeerSockets(&ep); !s.ok()) {
    for (auto& peer : ep.peers) ForgetPeerSocket(peer.get());
    return s;
  }
  endpoints_.emplace(receiver, std::move(ep));
  return bound;
}

void UdpTransport::Unregister(TransportReceiver* receiver) {
  auto it = endpoints_.find(receiver);
  if (it == endpoints_.end()) return;
  FlushSends();  // queued sends may use its socket
  for (auto& [group, sock] : it->second.groups) Retire(std::move(sock));
  for (auto& peer : it->second.peers) Retire(std::move(peer));
  Retire(std::move(it->second.unicast));
  endpoints_.erase(it);
}

absl::Status UdpTransport::JoinGroup(TransportReceiver* receiver, const Address& group) {
  auto it = endpoints_.find(receiver);
  if (it == endpoints_.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "UdpTransport::JoinGroup: receiver not registered (group ", group.ToString(), ")"));
  }
  if (!group.is_multicast() || group.port() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "UdpTransport::JoinGroup: ", group.ToString(),
        " is not a multicast address with a port"));
  }
  Endpoint& ep = it->second;
  if (ep.groups.contains(group)) {
    return absl::AlreadyExistsError(
        absl::StrCat("UdpTransport::JoinGroup: already in ", group.ToString()));
  }
  auto sock = std::make_unique<Socket>(
      socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), Socket::Kind::kGroup,
      receiver);
  if (sock->fd < 0) return Errno("socket", group);
  int fd = sock->fd;
  if (!SetOpt(fd, SOL_SOCKET, SO_REUSEADDR, 1) || !SetOpt(fd, SOL_SOCKET, SO_REUSEPORT, 1)) {
    return Errno("SO_REUSEADDR/SO_REUSEPORT", group);
  }
  SetOpt(fd, SOL_SOCKET, SO_RCVBUF, kSocketBufferBytes);
  // Bound to the group address itself, so only this group's datagrams arrive.
  sockaddr_in sa = ToSockaddr(group);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) return Errno("bind", group);
  ip_mreq mreq{};
  mreq.imr_multiaddr.s_addr = htonl(group.ip());
  mreq.imr_interface.s_addr = htonl(ep.options.multicast_interface_ip);
  if (!SetOpt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, mreq)) {
    return Errno("IP_ADD_MEMBERSHIP", group);
  }
  if (absl::Status s = AddToEpoll(sock.get()); !s.ok()) return s;
  ep.groups[group] = std::move(sock);
  return absl::OkStatus();
}

absl::Status UdpTransport::LeaveGroup(TransportReceiver* receiver, const Address& group) {
  auto it = endpoints_.find(receiver);
  if (it == endpoints_.end() || !it->second.groups.contains(group)) {
    return absl::NotFoundError(
        absl::StrCat("UdpTransport::LeaveGroup: receiver is not in ", group.ToString()));
  }
  auto g = it->second.groups.find(group);
  ip_mreq mreq{};
  mreq.imr_multiaddr.s_addr = htonl(group.ip());
  mreq.imr_interface.s_addr = htonl(it->second.options.multicast_interface_ip);
  SetOpt(g->second->fd, IPPROTO_IP, IP_DROP_MEMBERSHIP, mreq);  // close() would too
  Retire(std::move(g->second));
  it->second.groups.erase(g);
  return absl::OkStatus();
}

absl::Status UdpTransport::SendRaw(TransportReceiver* sender, const Address& to,
                                   uint32_t type_id, absl::string_view payload) {
  auto it = endpoints_.find(sender);
  if (it == endpoints_.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "UdpTransport::SendRaw: sender not registered (to ", to.ToString(), ")"));
  }
  if (payload.size() > kMaxPayloadSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "UdpTransport::SendRaw: payload of ", payload.size(), " bytes to ", to.ToString(),
        " exceeds the maximum of ", kMaxPayloadSize));
  }
  int fd = it->second.unicast->fd;
  if (!in_loop_) {
    char header[kFrameHeaderSize];
    EncodeFrameHeader(type_id, payload.size(), header);
    return SendNow(fd, ToSockaddr(to), header, payload);
  }
  PendingSend& p = pending_[num_pending_++];
  p.fd = fd;
  p.to = ToSockaddr(to);
  EncodeFrameHeader(type_id, payload.size(), p.header);
  p.payload.assign(payload.data(), payload.size());
  if (num_pending_ == kSendBatch) FlushSends();
  return absl::OkStatus();
}

absl::Status UdpTransport::SendNow(int fd, const sockaddr_in& to, const char* header,
                                   absl::string_view payload) {
  iovec iov[2] = {{const_cast<char*>(header), kFrameHeaderSize},
                  {const_cast<char*>(payload.data()), payload.size()}};
  msghdr msg{};
  msg.msg_name = const_cast<sockaddr_in*>(&to);
  msg.msg_namelen = sizeof(to);
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  ++stats_.send_syscalls;
  if (sendmsg(fd, &msg, 0) < 0) {
    ++stats_.send_errors;  // datagram semantics: lost, not a caller error
    return absl::OkStatus();
  }
  ++stats_.sent;
  return absl::OkStatus();
}

void UdpTransport::FlushSends() {
  mmsghdr msgs[kSendBatch];
  iovec iov[kSendBatch][2];
  int start = 0;
  while (start < num_pending_) {
    // One sendmmsg per run of queued datagrams from the same socket.
    int fd = pending_[start].fd, n = 0;
    while (start + n < num_pending_ && pending_[start + n].fd == fd) {
      PendingSend& p = pending_[start + n];
      iov[n][0] = {p.header, kFrameHeaderSize};
      iov[n][1] = {p.payload.data(), p.payload.size()};
      msgs[n] = {};
      msgs[n].msg_hdr.msg_name = &p.to;
      msgs[n].msg_hdr.msg_namelen = sizeof(p.to);
      msgs[n].msg_hdr.msg_iov = iov[n];
      msgs[n].msg_hdr.msg_iovlen = 2;
      ++n;
    }
    int done = 0;
    while (done < n) {
      ++stats_.send_syscalls;
      int r = sendmmsg(fd, msgs + done, n - done, 0);
      if (r < 0) {  // the first remaining datagram failed: count it lost, go on
        ++stats_.send_errors;
        ++done;
        continue;
      }
      stats_.sent += r;
      done += r;
    }
    start += n;
  }
  num_pending_ = 0;
}

}  // namespace dctk::transport
