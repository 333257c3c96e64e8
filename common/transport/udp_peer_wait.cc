// UdpTransport's peer sockets and its io_uring wait for several peers'
// datagrams (see udp_transport.h, "Peers").
//
// Why io_uring: epoll, like a blocking receive, wakes its waiter for every
// datagram. A ring set up with IORING_SETUP_DEFER_TASKRUN queues each poll
// wake-up as task work on the waiting task and wakes it only once the queued
// items reach the number of completions it waits for, so a wait for the
// replies of three peers (on three sockets, one poll each) costs one wake-up.
// Everything else the loop watches stays in epoll; the poll on the epoll
// instance is linked to no-ops so that its completion alone satisfies any
// such wait.
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/transport/udp_transport.h"
#include "glog/logging.h"

namespace dctk::transport {
namespace {

constexpr unsigned kRingEntries = 256;
// user_data of ring completions: the epoll poll, its linked no-ops and poll
// removals (ignored); peer polls count up from kFirstPeerPoll.
constexpr uint64_t kEpollPoll = 1;
constexpr uint64_t kIgnored = 2;
constexpr uint64_t kFirstPeerPoll = 3;

}  // namespace

struct UdpTransport::PeerRing {
  io_uring ring;
  bool epoll_armed = false;
  unsigned epoll_completions = 1;  // CQEs the armed epoll poll and its no-ops post
  uint64_t next_poll = kFirstPeerPoll;
  absl::flat_hash_map<uint64_t, Socket*> polls;  // armed peer polls by user_data

  // An SQE, submitting queued ones first if the ring is full.
  io_uring_sqe* Sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (sqe == nullptr) {
      io_uring_submit(&ring);
      sqe = io_uring_get_sqe(&ring);
    }
    CHECK(sqe != nullptr) << "io_uring submission queue full after a submit";
    return sqe;
  }
};

void UdpTransport::PeerRingDeleter::operator()(PeerRing* r) const {
  io_uring_queue_exit(&r->ring);  // cancels every armed poll
  delete r;
}

absl::Status UdpTransport::OpenPeerSockets(Endpoint* ep) {
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = htonl(ep->addr.ip());
  local.sin_port = htons(ep->addr.port());
  for (const Address& peer : ep->options.peers) {
    auto sock =
        std::make_unique<Socket>(socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
                                 Socket::Kind::kPeer, ep->unicast->receiver);
    const int fd = sock->fd;
    auto fail = [&](absl::string_view what) {
      const int err = errno;
      return absl::Status(
          absl::ErrnoToStatusCode(err),
          absl::StrCat("UdpTransport: ", what, " for the socket of peer ", peer.ToString(), " at ",
                       ep->addr.ToString(), ": ", strerror(err)));
    };
    if (fd < 0) return fail("socket");
    const int one = 1, buffer = 1 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
      return fail("SO_REUSEPORT");
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer));
    if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) return fail("bind");
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(peer.ip());
    to.sin_port = htons(peer.port());
    if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) return fail("connect");
    if (ring_failed_) {
      if (absl::Status s = AddToEpoll(sock.get()); !s.ok()) return s;
    }
    peer_sockets_.push_back(sock.get());
    ep->peers.push_back(std::move(sock));
  }
  return absl::OkStatus();
}

void UdpTransport::ForgetPeerSocket(Socket* s) {
  peer_sockets_.erase(std::remove(peer_sockets_.begin(), peer_sockets_.end(), s),
                      peer_sockets_.end());
  // ready_peers_ may still hold it: Retire marks it closed and keeps it
  // until the iteration ends.
  if (s->poll_id == 0 || ring_ == nullptr) return;
  // The ring holds its own reference to the file, so closing the socket
  // does not end the poll: remove it (submitted with the next wait).
  ring_->polls.erase(s->poll_id);
  io_uring_sqe* sqe = ring_->Sqe();
  io_uring_prep_poll_remove(sqe, s->poll_id);
  io_uring_sqe_set_data64(sqe, kIgnored);
  s->poll_id = 0;
}

void UdpTransport::AwaitPeers(TransportReceiver* receiver, int n) {
  auto it = endpoints_.find(receiver);
  if (it != endpoints_.end()) it->second.await = n;
}

unsigned UdpTransport::PeerWaitCount() const {
  // Any endpoint that can make progress must wake the loop, so wait for the
  // smallest number an endpoint awaits (endpoints that await nothing do not
  // count; 1 if none awaits anything).
  unsigned count = 0;
  for (const auto& [receiver, ep] : endpoints_) {
    if (ep.peers.empty() || ep.await == 0) continue;
    const unsigned n =
        static_cast<unsigned>(std::clamp<int>(ep.await, 1, static_cast<int>(ep.peers.size())));
    count = count == 0 ? n : std::min(count, n);
  }
  return std::max(count, 1u);
}

bool UdpTransport::StartPeerRing() {
  auto ring = std::unique_ptr<PeerRing, PeerRingDeleter>(new PeerRing);
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  if (const int r = io_uring_queue_init_params(kRingEntries, &ring->ring, &params); r < 0) {
    delete ring.release();  // nothing to exit
    LOG(WARNING) << "UdpTransport: io_uring with DEFER_TASKRUN unavailable (" << strerror(-r)
                 << "); peer sockets wake the loop for every datagram";
    ring_failed_ = true;
    for (Socket* s : peer_sockets_) CHECK(AddToEpoll(s).ok()) << "epoll_ctl(ADD) of a peer socket";
    return false;
  }
  ring_ = std::move(ring);
  return true;
}

void UdpTransport::StopPeerRing() {
  ring_.reset();
  for (Socket* s : peer_sockets_) s->poll_id = 0;
  ready_peers_.clear();
}

void UdpTransport::ArmPeerPolls() {
  PeerRing& r = *ring_;
  if (!r.epoll_armed) {
    // The no-ops complete with the poll, so its completion alone reaches
    // any count an endpoint can await (at most its number of peers).
    size_t links = 0;
    for (const auto& [receiver, ep] : endpoints_) links = std::max(links, ep.peers.size());
    io_uring_sqe* sqe = r.Sqe();
    io_uring_prep_poll_add(sqe, epoll_fd_, POLLIN);
    io_uring_sqe_set_data64(sqe, kEpollPoll);
    for (size_t i = 0; i + 1 < links; ++i) {
      sqe->flags |= IOSQE_IO_LINK;
      sqe = r.Sqe();
      io_uring_prep_nop(sqe);
      io_uring_sqe_set_data64(sqe, kIgnored);
    }
    r.epoll_armed = true;
    r.epoll_completions = static_cast<unsigned>(std::max<size_t>(links, 1));
  }
  for (Socket* s : peer_sockets_) {
    if (s->poll_id != 0) continue;
    s->poll_id = r.next_poll++;
    r.polls.emplace(s->poll_id, s);
    io_uring_sqe* sqe = r.Sqe();
    io_uring_prep_poll_add(sqe, s->fd, POLLIN);
    io_uring_sqe_set_data64(sqe, s->poll_id);
  }
}

int UdpTransport::WaitWithPeers(const timespec* wait, epoll_event* events, int max_events) {
  if (ring_ == nullptr && !StartPeerRing()) {
    ++stats_.waits;
    return epoll_pwait2(epoll_fd_, events, max_events, wait, nullptr);
  }
  ArmPeerPolls();
  __kernel_timespec ts{};
  const bool poll_only = wait != nullptr && wait->tv_sec == 0 && wait->tv_nsec == 0;
  if (wait != nullptr) {
    ts.tv_sec = wait->tv_sec;
    ts.tv_nsec = wait->tv_nsec;
  }
  io_uring_cqe* cqe = nullptr;
  // Errors are -ETIME (a timer is due) or -EINTR; either way, look at what
  // completed.
  const unsigned count = poll_only ? 1 : std::min(PeerWaitCount(), ring_->epoll_completions);
  ++stats_.waits;
  ++stats_.ring_waits;
  (void)io_uring_submit_and_wait_timeout(&ring_->ring, &cqe, count, wait != nullptr ? &ts : nullptr,
                                         nullptr);
  bool epoll_ready = false;
  unsigned head, seen = 0;
  io_uring_for_each_cqe(&ring_->ring, head, cqe) {
    ++seen;
    const uint64_t id = io_uring_cqe_get_data64(cqe);
    if (id == kEpollPoll) {
      ring_->epoll_armed = false;
      epoll_ready = true;
    } else if (auto it = ring_->polls.find(id); it != ring_->polls.end()) {
      it->second->poll_id = 0;
      ready_peers_.push_back(it->second);
      ring_->polls.erase(it);
    }
  }
  io_uring_cq_advance(&ring_->ring, seen);
  if (!epoll_ready) return 0;
  timespec zero{};
  return epoll_pwait2(epoll_fd_, events, max_events, &zero, nullptr);
}

}  // namespace dctk::transport
