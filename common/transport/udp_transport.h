// UdpTransport: the Transport on real UDP sockets, driven by one epoll loop.
//
// Each registered receiver gets a non-blocking UDP socket bound to its address
// (DSCP, multicast TTL / loopback / interface from its EndpointOptions). Each
// JoinGroup opens one more socket bound to the group address and port with
// SO_REUSEADDR/SO_REUSEPORT and joins the group on the endpoint's multicast
// interface, so several receivers (in one or several processes) on a host all
// get a copy of every group datagram. Replies go out of the unicast socket, so
// the `from` a receiver sees is always the sender's unicast address.
//
// Threading: Run() runs the loop on the calling thread; every callback runs
// there. Post() and Stop() may be called from any thread (they wake the loop
// through an eventfd). Everything else - Register, Send, Timer, stats() - must
// be called on the loop thread, or while Run() is not running.
//
// Datapath: the loop reads up to kRecvBatch datagrams per recvmmsg into
// preallocated buffers and dispatches them without allocating. Sends made
// inside a callback are queued (header + payload copied into reused slots) and
// flushed with one sendmmsg per socket when the loop iteration ends or the
// queue is full; sends made outside Run() go out at once with sendmsg. Timers
// are a heap; the loop sleeps in epoll_pwait2 until the earliest live deadline
// (no timerfd: arming or cancelling a timer costs no system call, and a
// cancelled timer never wakes the loop). Post from the loop thread itself
// queues the callback for the end of the current iteration, before the sends
// are flushed (no eventfd write: an end-of-turn hook); from other threads it
// wakes the loop through an eventfd. Malformed datagrams are dropped and
// counted by MalformedReason.
//
// Peers (EndpointOptions.peers, udp_peer_wait.cc): an endpoint that names its
// peers gets, beside its unicast socket, one socket per peer bound to the same
// port (SO_REUSEPORT) and connect()ed to that peer, so the kernel puts each
// peer's datagrams on their own socket. While such sockets exist the loop
// sleeps in io_uring (IORING_SETUP_DEFER_TASKRUN) instead of epoll_pwait2: one
// single-shot poll per peer socket and one on the epoll instance (every other
// socket, the eventfd), and io_uring_enter waits for as many completions as
// the endpoints' AwaitPeers asked for. The kernel wakes such a waiter only
// once that many poll wake-ups are queued, so a client waiting for three
// replicas' replies is woken once per round instead of once per reply. The
// epoll poll carries linked no-ops enough to end any such wait at once:
// datagrams from non-peers, posts from other threads and Stop are not
// delayed; timers bound every wait. If io_uring cannot be set up, peer
// sockets join the epoll set instead (same delivery, a wake-up per datagram).
//
// Example:
//   absl::StatusOr<std::unique_ptr<UdpTransport>> t = UdpTransport::Create();
//   Echo echo(t->get());                  // registers at 127.0.0.1:0
//   std::thread loop([&] { (*t)->Run(); });
//   ...
//   (*t)->Stop();
//   loop.join();
#ifndef DCTK_COMMON_TRANSPORT_UDP_TRANSPORT_H_
#define DCTK_COMMON_TRANSPORT_UDP_TRANSPORT_H_

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/transport/framing.h"
#include "common/transport/transport.h"

namespace dctk::transport {

class UdpTransport : public Transport {
 public:
  static constexpr int kRecvBatch = 16;
  static constexpr int kSendBatch = 32;

  struct Stats {
    uint64_t sent = 0;            // datagrams handed to the kernel
    uint64_t received = 0;        // well-formed datagrams delivered to a receiver
    uint64_t send_errors = 0;     // sendmsg/sendmmsg failures (datagram lost)
    uint64_t receive_errors = 0;  // recvmmsg failures other than EAGAIN
    uint64_t send_syscalls = 0;   // sendmsg + sendmmsg calls
    uint64_t recv_syscalls = 0;   // recvmmsg calls that returned datagrams
    uint64_t waits = 0;           // sleeps of the loop (epoll_pwait2 or io_uring_enter)
    uint64_t ring_waits = 0;      // of which in io_uring (peer sockets)
    MalformedCounts malformed{};  // dropped datagrams, by reason
  };

  // Creates the epoll instance and the wake-up eventfd.
  static absl::StatusOr<std::unique_ptr<UdpTransport>> Create();
  ~UdpTransport() override;

  UdpTransport(const UdpTransport&) = delete;
  UdpTransport& operator=(const UdpTransport&) = delete;

  // Transport.
  absl::StatusOr<Address> Register(TransportReceiver* receiver, const Address& addr,
                                   const EndpointOptions& options = {}) override;
  void Unregister(TransportReceiver* receiver) override;
  absl::Status JoinGroup(TransportReceiver* receiver, const Address& group) override;
  absl::Status LeaveGroup(TransportReceiver* receiver, const Address& group) override;
  absl::Status SendRaw(TransportReceiver* sender, const Address& to, uint32_t type_id,
                       absl::string_view payload) override;
  void AwaitPeers(TransportReceiver* receiver, int n) override;
  TimerId Timer(absl::Duration delay, std::function<void()> cb) override;
  bool CancelTimer(TimerId id) override;
  absl::Time Now() const override { return absl::Now(); }
  void Post(std::function<void()> cb) override;
  void Run() override;
  void Stop() override;

  // Loop thread only, or while Run() is not running.
  const Stats& stats() const { return stats_; }

 private:
  // One epoll-registered file descriptor; epoll's data.ptr points at it.
  struct Socket {
    enum class Kind { kUnicast, kGroup, kWake, kPeer };
    Socket(int fd, Kind kind, TransportReceiver* receiver)
        : fd(fd), kind(kind), receiver(receiver) {}
    ~Socket();
    int fd;
    Kind kind;
    TransportReceiver* receiver;  // kUnicast, kGroup, kPeer
    bool closed = false;          // retired during dispatch; skip its datagrams
    uint64_t poll_id = 0;         // kPeer: its armed io_uring poll, 0 if none
  };
  struct PeerRing;  // the io_uring instance (udp_peer_wait.cc)
  struct PeerRingDeleter {
    void operator()(PeerRing* ring) const;
  };
  struct Endpoint {
    Address addr;
    EndpointOptions options;
    std::unique_ptr<Socket> unicast;
    absl::flat_hash_map<Address, std::unique_ptr<Socket>> groups;
    std::vector<std::unique_ptr<Socket>> peers;  // one per EndpointOptions.peers
    int await = 1;                               // AwaitPeers
  };
  struct PendingSend {
    int fd;
    sockaddr_in to;
    char header[kFrameHeaderSize];
    std::string payload;  // capacity reused across sends
  };
  struct TimerEntry {
    int64_t deadline_ns;  // CLOCK_MONOTONIC
    TimerId id;
    bool operator>(const TimerEntry& o) const {
      return deadline_ns != o.deadline_ns ? deadline_ns > o.deadline_ns : id > o.id;
    }
  };

  UdpTransport(int epoll_fd, std::unique_ptr<Socket> wake);

  absl::Status AddToEpoll(Socket* s);
  // Removes `s` from epoll and closes it now, or after the current dispatch.
  void Retire(std::unique_ptr<Socket> s);

  // Peer sockets (udp_peer_wait.cc).
  absl::Status OpenPeerSockets(Endpoint* ep);
  // Sleeps like epoll_pwait2 (`wait` null: no timeout), first waiting in
  // io_uring for as many peer datagrams as the endpoints await; fills
  // ready_peers_ and returns the epoll events collected.
  int WaitWithPeers(const timespec* wait, epoll_event* events, int max_events);
  bool StartPeerRing();
  void ArmPeerPolls();
  unsigned PeerWaitCount() const;
  void ForgetPeerSocket(Socket* s);
  void StopPeerRing();

  void HandleReadable(Socket* s);
  void HandleWake();
  // The earliest live timer deadline (CLOCK_MONOTONIC ns; cancelled
  // entries at the heap's top are dropped), -1 if none.
  int64_t NextDeadline();
  void RunDueTimers();
  void RunLocalPosts();
  void FlushSends();
  absl::Status SendNow(int fd, const sockaddr_in& to, const char* header,
                       absl::string_view payload);

  const int epoll_fd_;
  std::unique_ptr<Socket> wake_;  // eventfd: Post from other threads / Stop

  absl::flat_hash_map<TransportReceiver*, Endpoint> endpoints_;
  std::vector<std::unique_ptr<Socket>> retired_;
  bool in_loop_ = false;

  // Peer sockets of every endpoint; the ring exists while Run() runs on the
  // thread that made it (DEFER_TASKRUN rings have one issuer).
  std::vector<Socket*> peer_sockets_;
  std::unique_ptr<PeerRing, PeerRingDeleter> ring_;
  bool ring_failed_ = false;  // io_uring unavailable: peer sockets are in epoll
  std::vector<Socket*> ready_peers_;

  // Receive buffers: kRecvBatch datagrams of up to 64 KiB, allocated once.
  std::unique_ptr<char[]> recv_buf_;
  mmsghdr recv_msgs_[kRecvBatch];
  iovec recv_iov_[kRecvBatch];
  sockaddr_in recv_from_[kRecvBatch];

  std::vector<PendingSend> pending_;  // kSendBatch slots
  int num_pending_ = 0;

  absl::flat_hash_map<TimerId, std::function<void()>> timers_;
  std::vector<TimerEntry> timer_heap_;  // min-heap via std::greater
  TimerId next_timer_ = 1;

  // std::mutex, not absl::Mutex: Debian's absl is not TSAN-instrumented, so
  // --config=tsan would not see absl::Mutex's synchronization.
  std::mutex posts_mu_;
  std::vector<std::function<void()>> posts_;  // guarded by posts_mu_
  std::vector<std::function<void()>> running_posts_;
  // Posts made on the loop thread during an iteration, run at its end.
  std::vector<std::function<void()>> local_posts_;
  std::vector<std::function<void()>> running_local_posts_;
  // The thread in Run() (default-constructed when none).
  std::atomic<std::thread::id> loop_thread_{};
  std::atomic<bool> stop_{false};

  Stats stats_;
};

}  // namespace dctk::transport

#endif  // DCTK_COMMON_TRANSPORT_UDP_TRANSPORT_H_
