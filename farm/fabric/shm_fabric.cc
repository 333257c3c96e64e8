#include "farm/fabric/shm_fabric.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"

namespace dctk::farm::fabric {
namespace {

using internal::ControlMessage;
using internal::ControlType;

absl::Status Errno(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat("shm fabric: ", what, ": ", strerror(errno)));
}

// Register() blocks on peers' acks; a peer that is stopped (SIGSTOP) or hung
// for this long is dropped rather than blocking registration forever.
constexpr int kAckTimeoutSeconds = 5;

}  // namespace

ShmFabric::ShmFabric(const Options& options)
    : options_(options),
      peers_(new std::atomic<Peer*>[options.max_machines]) {
  for (uint32_t i = 0; i < options.max_machines; ++i) peers_[i].store(nullptr);
}

absl::StatusOr<std::unique_ptr<ShmFabric>> ShmFabric::Create(const Options& options) {
  if (options.machine_id >= options.max_machines) {
    return absl::InvalidArgumentError(absl::StrCat("shm fabric: machine_id ", options.machine_id,
                                                   " >= max_machines ", options.max_machines));
  }
  if (options.max_regions < 2 || options.max_regions > kSlots) {
    return absl::InvalidArgumentError(absl::StrCat("shm fabric: max_regions ", options.max_regions,
                                                   " is not within [2, ", kSlots, "]"));
  }
  std::unique_ptr<ShmFabric> f(new ShmFabric(options));
  absl::Status s = f->Start();
  if (!s.ok()) return s;
  return f;
}

absl::Status ShmFabric::Start() {
  auto self = std::make_unique<Peer>();
  self->id = options_.machine_id;
  self->regions.reset(new std::atomic<Mapping*>[kSlots]);
  for (uint32_t i = 0; i < kSlots; ++i) self->regions[i].store(nullptr);
  peers_[options_.machine_id].store(self.get(), std::memory_order_release);
  {
    absl::MutexLock l(&map_mu_);
    owned_peers_.push_back(std::move(self));
  }
  absl::StatusOr<int> listen = internal::ListenAbstract("dctk-farm-shm", &endpoint_);
  if (!listen.ok()) return listen.status();
  listen_fd_ = *listen;
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return Errno("eventfd");
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return Errno("epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) return Errno("epoll_ctl");
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  follow_thread_ = std::thread([this] { FollowLoop(); });
  return absl::OkStatus();
}

ShmFabric::~ShmFabric() {
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  if (follow_thread_.joinable()) follow_thread_.join();
  {
    absl::MutexLock l(&reg_mu_);
    for (int fd : accepted_) close(fd);
    for (const LocalRegion& r : local_) close(r.memfd);
  }
  absl::MutexLock l(&map_mu_);
  for (auto& peer : owned_peers_) {
    if (peer->fd >= 0) close(peer->fd);
    for (auto& m : peer->owned) munmap(m->base, m->size);
  }
  for (int fd : {listen_fd_, wake_fd_, epoll_fd_}) {
    if (fd >= 0) close(fd);
  }
}

absl::StatusOr<MemoryRegion> ShmFabric::Register(uint64_t size) {
  if (size == 0) return absl::InvalidArgumentError("shm fabric: Register of 0 bytes");
  absl::MutexLock l(&reg_mu_);
  if (free_slots_.empty() && next_slot_ >= options_.max_regions) {
    return absl::ResourceExhaustedError(
        absl::StrCat("shm fabric: machine ", options_.machine_id, " has ", local_.size(),
                     " regions registered, the most ", options_.max_regions, " slots allow"));
  }
  absl::StatusOr<internal::RegionMemory> mem = internal::AllocateShared(
      size, options_.huge_pages,
      options_.page_system != nullptr ? *options_.page_system : internal::PageSystem::Real());
  if (!mem.ok()) {
    return absl::Status(mem.status().code(), absl::StrCat("shm fabric: ", mem.status().message()));
  }
  RegionKey key;
  if (free_slots_.empty()) {
    key = next_slot_++;
  } else {
    key = free_slots_.back() + kSlots;  // the slot's next generation (class comment)
    free_slots_.pop_back();
  }
  Peer* self = peers_[options_.machine_id].load();
  {
    absl::MutexLock ml(&map_mu_);
    auto m = std::make_unique<Mapping>();
    m->key = key;
    m->base = mem->base;
    m->size = mem->size;
    self->regions[key % kSlots].store(m.get(), std::memory_order_release);
    self->owned.push_back(std::move(m));
  }
  local_.push_back({key, mem->fd, mem->size, mem->pages});
  ControlMessage msg;
  msg.type = ControlType::kRegion;
  msg.machine = options_.machine_id;
  msg.key = key;
  msg.page_kind = static_cast<uint32_t>(mem->pages);
  msg.size = mem->size;
  Announce(msg, mem->fd);
  return MemoryRegion{key, mem->base, mem->size, mem->pages};
}

absl::Status ShmFabric::Deregister(RegionKey key) {
  absl::MutexLock l(&reg_mu_);
  for (auto it = local_.begin(); it != local_.end(); ++it) {
    if (it->key != key) continue;
    Mapping* m = peers_[options_.machine_id].load()->regions[key % kSlots].load();
    m->live.store(false, std::memory_order_release);
    close(it->memfd);
    local_.erase(it);
    ControlMessage msg;
    msg.type = ControlType::kDeregister;
    msg.machine = options_.machine_id;
    msg.key = key;
    Announce(msg, -1);
    // Every peer still connected marked it dead: the slot may take another
    // key (class comment), unless its next generation would not fit.
    if (key <= std::numeric_limits<RegionKey>::max() - kSlots) free_slots_.push_back(key);
    return absl::OkStatus();
  }
  return absl::NotFoundError(absl::StrCat("shm fabric: machine ", options_.machine_id,
                                          " has no registered region with key ", key));
}

void ShmFabric::Announce(const ControlMessage& msg, int memfd) {
  for (auto it = accepted_.begin(); it != accepted_.end();) {
    absl::Status s = internal::SendControl(*it, msg, memfd);
    int unexpected_fd = -1;
    if (s.ok()) {
      absl::StatusOr<ControlMessage> ack = internal::RecvControl(*it, &unexpected_fd);
      if (unexpected_fd >= 0) close(unexpected_fd);
      if (!ack.ok()) {
        s = ack.status();
      } else if (ack->type != ControlType::kAck || ack->key != msg.key) {
        s = absl::DataLossError("expected an ack");
      }
    }
    if (s.ok()) {
      ++it;
    } else {
      LOG(WARNING) << "shm fabric machine " << options_.machine_id
                   << ": dropping a peer connection that did not ack region " << msg.key << ": "
                   << s;
      close(*it);
      it = accepted_.erase(it);
    }
  }
}

absl::StatusOr<std::unique_ptr<ShmFabric::Queue>> ShmFabric::CreateQueue() {
  return std::unique_ptr<Queue>(new Queue(this));
}

void ShmFabric::AcceptLoop() {
  pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  while (true) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      PLOG(ERROR) << "shm fabric: poll in accept loop";
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents & POLLIN) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) ServeNewPeer(fd);
    }
  }
}

void ShmFabric::ServeNewPeer(int fd) {
  timeval tv{kAckTimeoutSeconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  int stray = -1;
  absl::StatusOr<ControlMessage> hello = internal::RecvControl(fd, &stray);
  if (stray >= 0) close(stray);
  if (!hello.ok() || hello->type != ControlType::kHello) {
    LOG(WARNING) << "shm fabric machine " << options_.machine_id << ": bad hello from a peer";
    close(fd);
    return;
  }
  absl::MutexLock l(&reg_mu_);
  ControlMessage msg;
  msg.type = ControlType::kHello;
  msg.machine = options_.machine_id;
  absl::Status s = internal::SendControl(fd, msg, -1);
  for (const LocalRegion& r : local_) {
    if (!s.ok()) break;
    msg.type = ControlType::kRegion;
    msg.key = r.key;
    msg.size = r.size;
    msg.page_kind = static_cast<uint32_t>(r.pages);
    s = internal::SendControl(fd, msg, r.memfd);
  }
  if (s.ok()) {
    msg.type = ControlType::kSnapshotEnd;
    s = internal::SendControl(fd, msg, -1);
  }
  if (!s.ok()) {
    LOG(WARNING) << "shm fabric machine " << options_.machine_id << ": snapshot to peer "
                 << hello->machine << " failed: " << s;
    close(fd);
    return;
  }
  accepted_.push_back(fd);
}

absl::Status ShmFabric::MapAnnounced(Peer* peer, const ControlMessage& msg, int memfd) {
  if (msg.key % kSlots == 0) {
    return absl::OutOfRangeError(absl::StrCat("shm fabric: machine ", peer->id, " announced key ",
                                              msg.key, ", of slot 0 (never used)"));
  }
  std::atomic<Mapping*>& slot = peer->regions[msg.key % kSlots];
  if (msg.type == ControlType::kDeregister) {
    Mapping* m = slot.load();
    if (m != nullptr && m->key == msg.key) m->live.store(false, std::memory_order_release);
    return absl::OkStatus();
  }
  if (memfd < 0) return absl::DataLossError("shm fabric: region announcement without a memfd");
  void* base = mmap(nullptr, msg.size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  close(memfd);
  if (base == MAP_FAILED) return Errno(absl::StrCat("mmap of peer region ", msg.key));
  if (msg.page_kind == static_cast<uint32_t>(PageKind::kTransparentHuge) &&
      madvise(base, msg.size, MADV_HUGEPAGE) != 0) {
    PLOG(WARNING) << "shm fabric: madvise(MADV_HUGEPAGE) on machine " << peer->id << "'s region "
                  << msg.key << " (reads of it use 4k page-table entries here)";
  }
  auto m = std::make_unique<Mapping>();
  m->key = msg.key;
  m->base = static_cast<uint8_t*>(base);
  m->size = msg.size;
  absl::MutexLock l(&map_mu_);
  slot.store(m.get(), std::memory_order_release);
  peer->owned.push_back(std::move(m));
  return absl::OkStatus();
}

absl::Status ShmFabric::Connect(MachineId machine, absl::string_view endpoint) {
  if (machine >= options_.max_machines || machine == options_.machine_id) {
    return absl::InvalidArgumentError(absl::StrCat("shm fabric: cannot connect machine ",
                                                   options_.machine_id, " to machine ", machine));
  }
  if (Peer* old = peers_[machine].load(); old != nullptr && !Lost(old)) {
    return absl::AlreadyExistsError(
        absl::StrCat("shm fabric: already connected to machine ", machine, " (still reachable)"));
  }
  absl::StatusOr<int> fd = internal::ConnectAbstract(endpoint);
  if (!fd.ok()) return fd.status();
  auto peer = std::make_unique<Peer>();
  peer->id = machine;
  peer->fd = *fd;
  peer->regions.reset(new std::atomic<Mapping*>[kSlots]);
  for (uint32_t i = 0; i < kSlots; ++i) peer->regions[i].store(nullptr);
  auto fail = [&](absl::Status s) {
    absl::MutexLock l(&map_mu_);
    for (auto& m : peer->owned) munmap(m->base, m->size);
    close(peer->fd);
    return s;
  };
  ControlMessage hello;
  hello.type = ControlType::kHello;
  hello.machine = options_.machine_id;
  absl::Status s = internal::SendControl(peer->fd, hello, -1);
  if (!s.ok()) return fail(s);
  int memfd = -1;
  absl::StatusOr<ControlMessage> reply = internal::RecvControl(peer->fd, &memfd);
  if (!reply.ok()) return fail(reply.status());
  if (reply->type != ControlType::kHello || reply->machine != machine) {
    return fail(absl::FailedPreconditionError(absl::StrCat(
        "shm fabric: endpoint @", endpoint, " is machine ", reply->machine, ", expected ", machine)));
  }
  while (true) {
    absl::StatusOr<ControlMessage> m = internal::RecvControl(peer->fd, &memfd);
    if (!m.ok()) return fail(m.status());
    if (m->type == ControlType::kSnapshotEnd) break;
    s = MapAnnounced(peer.get(), *m, memfd);
    if (!s.ok()) return fail(s);
  }
  Peer* raw = peer.get();
  {
    absl::MutexLock l(&map_mu_);
    owned_peers_.push_back(std::move(peer));
  }
  peers_[machine].store(raw, std::memory_order_release);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.ptr = raw;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, raw->fd, &ev) != 0) return Errno("epoll_ctl");
  return absl::OkStatus();
}

bool ShmFabric::Lost(Peer* peer) {
  if (!peer->reachable.load(std::memory_order_acquire)) return true;
  pollfd p{peer->fd, POLLRDHUP, 0};
  if (poll(&p, 1, 0) != 1 || (p.revents & (POLLHUP | POLLRDHUP | POLLERR)) == 0) return false;
  // Hung up: the follow thread is about to mark it lost (EPOLLRDHUP).
  const absl::Time deadline = absl::Now() + absl::Seconds(kAckTimeoutSeconds);
  while (peer->reachable.load(std::memory_order_acquire) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  return !peer->reachable.load(std::memory_order_acquire);
}

void ShmFabric::FollowLoop() {
  epoll_event events[16];
  while (true) {
    int n = epoll_wait(epoll_fd_, events, 16, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      PLOG(ERROR) << "shm fabric: epoll_wait";
      return;
    }
    for (int i = 0; i < n; ++i) {
      Peer* peer = static_cast<Peer*>(events[i].data.ptr);
      if (peer == nullptr) return;  // wake_fd_: shutting down
      int memfd = -1;
      absl::StatusOr<ControlMessage> m = internal::RecvControl(peer->fd, &memfd);
      absl::Status s = m.ok() ? MapAnnounced(peer, *m, memfd) : m.status();
      if (s.ok()) {
        ControlMessage ack;
        ack.type = ControlType::kAck;
        ack.machine = options_.machine_id;
        ack.key = m->key;
        s = internal::SendControl(peer->fd, ack, -1);
      }
      if (!s.ok()) {
        // The peer is gone (or broke the protocol): operations to it now fail
        // with kRemoteError, as on RDMA once the QP errors out.
        LOG(WARNING) << "shm fabric machine " << options_.machine_id << ": lost machine "
                     << peer->id << ": " << s;
        peer->reachable.store(false, std::memory_order_release);
        epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, peer->fd, nullptr);
      }
    }
  }
}

}  // namespace dctk::farm::fabric
