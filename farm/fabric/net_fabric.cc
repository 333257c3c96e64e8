// NetFabric: registration and the target-side progress thread ("the NIC").
#include "farm/fabric/net_fabric.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "farm/fabric/internal/atomic_copy.h"
#include "farm/fabric/internal/region_memory.h"
#include "farm/fabric/internal/tcp_exchange.h"
#include "glog/logging.h"

namespace dctk::farm::fabric {

using internal::NetOp;
using internal::NetRequest;
using internal::NetResponse;

namespace {
absl::Status Errno(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat("net fabric: ", what, ": ", strerror(errno)));
}
}  // namespace

struct NetFabric::Peer {
  int fd = -1;
  std::vector<uint8_t> in;
  std::vector<uint8_t> out;
  size_t out_head = 0;
  bool want_out = false;
};

NetFabric::NetFabric(const Options& options)
    : options_(options), regions_(new std::atomic<Mapping*>[options.max_regions]) {
  for (uint32_t i = 0; i < options.max_regions; ++i) regions_[i].store(nullptr);
}

absl::StatusOr<std::unique_ptr<NetFabric>> NetFabric::Create(const Options& options) {
  if (options.max_regions < 2) return absl::InvalidArgumentError("net fabric: max_regions must be >= 2");
  std::unique_ptr<NetFabric> f(new NetFabric(options));
  absl::Status s = f->Start();
  if (!s.ok()) return s;
  return f;
}

absl::Status NetFabric::Start() {
  absl::StatusOr<int> fd = internal::TcpListen(options_.listen_host, &endpoint_);
  if (!fd.ok()) return fd.status();
  listen_fd_ = *fd;
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (wake_fd_ < 0 || epoll_fd_ < 0) return Errno("eventfd/epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &wake_fd_;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) return Errno("epoll_ctl");
  ev.data.ptr = &listen_fd_;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev) != 0) return Errno("epoll_ctl");
  progress_thread_ = std::thread([this] { ProgressLoop(); });
  return absl::OkStatus();
}

NetFabric::~NetFabric() {
  if (progress_thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
    progress_thread_.join();
  }
  absl::MutexLock l(&mu_);
  for (auto& m : owned_) munmap(m->base, m->size);
  for (int fd : {listen_fd_, wake_fd_, epoll_fd_}) {
    if (fd >= 0) close(fd);
  }
}

absl::Status NetFabric::Connect(MachineId machine, absl::string_view endpoint) {
  absl::MutexLock l(&mu_);
  endpoints_[machine] = std::string(endpoint);
  return absl::OkStatus();
}

absl::StatusOr<std::string> NetFabric::EndpointOf(MachineId machine) {
  if (machine == options_.machine_id) return endpoint_;
  absl::MutexLock l(&mu_);
  auto it = endpoints_.find(machine);
  if (it == endpoints_.end()) {
    return absl::NotFoundError(absl::StrCat("net fabric: not connected to machine ", machine));
  }
  return it->second;
}

absl::StatusOr<MemoryRegion> NetFabric::Register(uint64_t size) {
  if (size == 0) return absl::InvalidArgumentError("net fabric: Register of 0 bytes");
  absl::MutexLock l(&mu_);
  if (next_key_ >= options_.max_regions) {
    return absl::ResourceExhaustedError(absl::StrCat("net fabric: machine ", options_.machine_id,
                                                     " used all region keys"));
  }
  absl::StatusOr<internal::RegionMemory> mem =
      internal::AllocateAnonymous(size, options_.huge_pages, internal::PageSystem::Real());
  if (!mem.ok()) return absl::Status(mem.status().code(), absl::StrCat("net fabric: ", mem.status().message()));
  auto m = std::make_unique<Mapping>();
  m->base = mem->base;
  m->size = mem->size;
  const RegionKey key = next_key_++;
  regions_[key].store(m.get(), std::memory_order_release);
  owned_.push_back(std::move(m));
  return MemoryRegion{key, mem->base, mem->size, mem->pages};
}

absl::Status NetFabric::Deregister(RegionKey key) {
  Mapping* m = key < options_.max_regions ? regions_[key].load() : nullptr;
  if (m == nullptr || !m->live.exchange(false)) {
    return absl::NotFoundError(absl::StrCat("net fabric: machine ", options_.machine_id,
                                            " has no registered region with key ", key));
  }
  return absl::OkStatus();
}

absl::StatusOr<Doorbell*> NetFabric::NewDoorbell() {
  if (!options_.blocking_waits) {
    return absl::FailedPreconditionError(absl::StrCat(
        "net fabric: machine ", options_.machine_id, " has blocking_waits off (waiters spin)"));
  }
  absl::MutexLock l(&mu_);
  bells_.push_back(std::make_unique<Doorbell>());
  return bells_.back().get();
}

absl::Status NetFabric::AttachDoorbell(const void* addr, Doorbell* bell) {
  const auto* p = static_cast<const uint8_t*>(addr);
  absl::MutexLock l(&mu_);
  for (const auto& m : owned_) {
    if (p >= m->base && p < m->base + m->size && m->live.load()) {
      m->bell.store(bell, std::memory_order_release);
      return absl::OkStatus();
    }
  }
  return absl::NotFoundError(absl::StrCat("net fabric: machine ", options_.machine_id,
                                          " has no registered region holding address ",
                                          absl::Hex(reinterpret_cast<uintptr_t>(addr))));
}

absl::StatusOr<std::unique_ptr<NetFabric::Queue>> NetFabric::CreateQueue() {
  return std::unique_ptr<Queue>(new Queue(this));
}

void NetFabric::ProgressLoop() {
  absl::flat_hash_map<Peer*, std::unique_ptr<Peer>> peers;
  auto drop = [&](Peer* p) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, p->fd, nullptr);
    close(p->fd);
    peers.erase(p);
  };
  epoll_event events[32];
  // Like a NIC, keep polling for a while after the last request (no wake-up
  // latency under load), then sleep in epoll_wait (no CPU burnt when idle).
  const absl::Duration spin = absl::Microseconds(options_.poll_spin_us);
  absl::Time last_activity = absl::InfinitePast();
  while (true) {
    const bool spinning = absl::Now() - last_activity < spin;
    const int n = epoll_wait(epoll_fd_, events, 32, spinning ? 0 : -1);
    if (n > 0) last_activity = absl::Now();
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      PLOG(ERROR) << "net fabric: epoll_wait";
      break;
    }
    for (int i = 0; i < n; ++i) {
      void* tag = events[i].data.ptr;
      if (tag == &wake_fd_) {
        for (auto& [p, owned] : peers) close(p->fd);
        return;
      }
      if (tag == &listen_fd_) {
        const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        auto p = std::make_unique<Peer>();
        p->fd = fd;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = p.get();
        epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
        peers[p.get()] = std::move(p);
        continue;
      }
      Peer* p = static_cast<Peer*>(tag);
      bool ok = true;
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        uint8_t buf[65536];
        while (true) {
          const ssize_t got = recv(p->fd, buf, sizeof(buf), 0);
          if (got > 0) {
            p->in.insert(p->in.end(), buf, buf + got);
            continue;
          }
          if (got < 0 && (errno == EAGAIN || errno == EINTR)) break;
          ok = false;  // closed or failed
          break;
        }
        if (ok) ok = ServeInput(p);
      }
      if (ok) ok = FlushOutput(p);
      if (!ok) {
        drop(p);
        continue;
      }
      const bool want_out = p->out_head < p->out.size();
      if (want_out != p->want_out) {
        epoll_event ev{};
        ev.events = EPOLLIN | (want_out ? EPOLLOUT : 0);
        ev.data.ptr = p;
        epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, p->fd, &ev);
        p->want_out = want_out;
      }
    }
  }
}

bool NetFabric::ServeInput(Peer* p) {
  // Doorbells of regions written in this pass, rung once each at the end.
  Doorbell* bells[8];
  int num_bells = 0;
  auto ring_later = [&](Doorbell* b) {
    for (int i = 0; i < num_bells; ++i) {
      if (bells[i] == b) return;
    }
    if (num_bells == 8) {
      b->Ring();
      return;
    }
    bells[num_bells++] = b;
  };
  size_t head = 0;
  bool ok = true;
  while (p->in.size() - head >= sizeof(NetRequest)) {
    NetRequest req;
    std::memcpy(&req, p->in.data() + head, sizeof(req));
    if (req.length > internal::kNetMaxLength) {
      ok = false;  // protocol violation
      break;
    }
    const size_t payload = req.op == NetOp::kWrite ? req.length : 0;
    if (p->in.size() - head < sizeof(req) + payload) break;
    const uint8_t* data = p->in.data() + head + sizeof(req);
    head += sizeof(req) + payload;

    const uint64_t len = req.op == NetOp::kCompareAndSwap ? 8 : req.length;
    NetResponse resp;
    CompletionCode code = CompletionCode::kSuccess;
    Mapping* m = req.key != 0 && req.key < options_.max_regions ? regions_[req.key].load() : nullptr;
    if (m == nullptr || !m->live.load(std::memory_order_relaxed)) {
      code = CompletionCode::kInvalidKey;
    } else if (len > m->size || req.offset > m->size - len) {
      code = CompletionCode::kOutOfBounds;
    } else if (req.op == NetOp::kCompareAndSwap && (req.offset & 7) != 0) {
      code = CompletionCode::kMisaligned;
    }
    resp.code = static_cast<uint8_t>(code);
    const size_t at = p->out.size();
    if (code == CompletionCode::kSuccess && req.op == NetOp::kRead) {
      resp.length = req.length;
      p->out.resize(at + sizeof(resp) + req.length);
      internal::AtomicRead(m->base + req.offset, p->out.data() + at + sizeof(resp), req.length,
                           internal::NoDelay{});
    } else {
      if (code == CompletionCode::kSuccess && req.op == NetOp::kWrite) {
        internal::AtomicWrite(m->base + req.offset, data, req.length, internal::NoDelay{});
      } else if (code == CompletionCode::kSuccess) {
        resp.old_value = internal::AtomicCompareAndSwap(m->base + req.offset, req.compare, req.swap);
      }
      if (code == CompletionCode::kSuccess) {
        if (Doorbell* b = m->bell.load(std::memory_order_acquire)) ring_later(b);
      }
      p->out.resize(at + sizeof(resp));
    }
    std::memcpy(p->out.data() + at, &resp, sizeof(resp));
  }
  p->in.erase(p->in.begin(), p->in.begin() + static_cast<ptrdiff_t>(head));
  for (int i = 0; i < num_bells; ++i) bells[i]->Ring();
  return ok;
}

bool NetFabric::FlushOutput(Peer* p) {
  while (p->out_head < p->out.size()) {
    const ssize_t sent = send(p->fd, p->out.data() + p->out_head, p->out.size() - p->out_head,
                              MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent > 0) {
      p->out_head += static_cast<size_t>(sent);
      continue;
    }
    if (sent < 0 && (errno == EAGAIN || errno == EINTR)) return true;
    return false;
  }
  p->out.clear();
  p->out_head = 0;
  return true;
}

}  // namespace dctk::farm::fabric
