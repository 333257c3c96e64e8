// NetFabric::Queue: sending one-sided requests and turning responses into
// completions.
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "farm/fabric/internal/tcp_exchange.h"
#include "farm/fabric/net_fabric.h"

namespace dctk::farm::fabric {

using internal::NetOp;
using internal::NetRequest;
using internal::NetResponse;

namespace {

// Sends the request and its payload in one system call (one TCP segment when
// small: with TCP_NODELAY, two sends would make two segments and could wake
// the target's progress thread twice).
bool SendRequest(int fd, const NetRequest& req, const void* payload, uint32_t length) {
  iovec iov[2] = {{const_cast<NetRequest*>(&req), sizeof(req)},
                  {const_cast<void*>(payload), payload == nullptr ? 0 : length}};
  int first = 0;
  while (first < 2) {
    msghdr msg{};
    msg.msg_iov = iov + first;
    msg.msg_iovlen = static_cast<size_t>(2 - first);
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    while (first < 2 && static_cast<size_t>(n) >= iov[first].iov_len) {
      n -= static_cast<ssize_t>(iov[first].iov_len);
      ++first;
    }
    if (first < 2) {
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + n;
      iov[first].iov_len -= static_cast<size_t>(n);
    }
  }
  return true;
}

}  // namespace

NetFabric::Queue::~Queue() {
  for (auto& [machine, c] : connections_) {
    if (c.fd >= 0) close(c.fd);
  }
}

NetFabric::Queue::Connection* NetFabric::Queue::ConnectionTo(MachineId machine) {
  Connection& c = connections_[machine];
  if (c.fd >= 0) return &c;
  absl::StatusOr<std::string> endpoint = fabric_->EndpointOf(machine);
  if (!endpoint.ok()) return nullptr;
  absl::StatusOr<int> fd = internal::TcpConnect(*endpoint);
  if (!fd.ok()) return &c;  // fd stays -1: the op fails with kRemoteError
  c.fd = *fd;
  return &c;
}

void NetFabric::Queue::Fail(Connection* c) {
  for (Pending& p : c->pending) {
    p.completion.code = CompletionCode::kRemoteError;
    local_done_.push_back(p.completion);
  }
  c->pending.clear();
  c->in.clear();
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
}

absl::Status NetFabric::Queue::Post(NetOp op, OpType type, const RemoteAddress& ra, void* local,
                                    const void* payload, uint32_t length, uint64_t wr_id,
                                    uint64_t compare, uint64_t swap) {
  if (outstanding_ >= fabric_->options_.queue_depth) {
    return absl::ResourceExhaustedError("net fabric: queue full; poll before posting");
  }
  if (length > internal::kNetMaxLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("net fabric: operation of ", length, " bytes exceeds 16 MB"));
  }
  ++outstanding_;
  ++stats_.posted;
  Completion done{wr_id, type, CompletionCode::kSuccess, length, ra};
  Connection* c = ConnectionTo(ra.machine);
  if (c == nullptr || c->fd < 0) {
    done.code = c == nullptr ? CompletionCode::kUnknownMachine : CompletionCode::kRemoteError;
    local_done_.push_back(done);
    return absl::OkStatus();
  }
  NetRequest req;
  req.op = op;
  req.key = ra.key;
  req.offset = ra.offset;
  req.length = length;
  req.compare = compare;
  req.swap = swap;
  if (!SendRequest(c->fd, req, op == NetOp::kWrite ? payload : nullptr, length)) {
    Fail(c);
    done.code = CompletionCode::kRemoteError;
    local_done_.push_back(done);
    return absl::OkStatus();
  }
  c->pending.push_back({done, local});
  return absl::OkStatus();
}

absl::Status NetFabric::Queue::PostRead(const RemoteAddress& from, void* local, uint32_t length,
                                        uint64_t wr_id) {
  return Post(NetOp::kRead, OpType::kRead, from, local, nullptr, length, wr_id, 0, 0);
}

absl::Status NetFabric::Queue::PostWrite(const RemoteAddress& to, const void* local,
                                         uint32_t length, uint64_t wr_id) {
  return Post(NetOp::kWrite, OpType::kWrite, to, nullptr, local, length, wr_id, 0, 0);
}

absl::Status NetFabric::Queue::PostCompareAndSwap(const RemoteAddress& at, uint64_t expected,
                                                  uint64_t desired, uint64_t* old_value,
                                                  uint64_t wr_id) {
  return Post(NetOp::kCompareAndSwap, OpType::kCompareAndSwap, at, old_value, nullptr, 8, wr_id,
              expected, desired);
}

bool NetFabric::Queue::WaitForCompletions(absl::Duration timeout) {
  if (!local_done_.empty()) return true;
  if (!fabric_->options_.blocking_waits) return false;
  absl::InlinedVector<pollfd, 8> fds;
  for (auto& [machine, c] : connections_) {
    if (c.pending.empty() || c.fd < 0) continue;
    // A whole response already buffered (PollCompletions had no room for it).
    if (c.in.size() >= sizeof(NetResponse)) {
      NetResponse resp;
      std::memcpy(&resp, c.in.data(), sizeof(resp));
      if (c.in.size() >= sizeof(resp) + resp.length) return true;
    }
    fds.push_back({c.fd, POLLIN, 0});
  }
  if (fds.empty()) return false;
  const timespec ts = absl::ToTimespec(timeout);
  ppoll(fds.data(), fds.size(), &ts, nullptr);
  return true;
}

int NetFabric::Queue::Drain(Connection* c, absl::Span<Completion> out) {
  int n = 0;
  size_t head = 0;
  while (n < static_cast<int>(out.size()) && !c->pending.empty() &&
         c->in.size() - head >= sizeof(NetResponse)) {
    NetResponse resp;
    std::memcpy(&resp, c->in.data() + head, sizeof(resp));
    if (c->in.size() - head < sizeof(resp) + resp.length) break;
    Pending& p = c->pending.front();
    p.completion.code = static_cast<CompletionCode>(resp.code);
    if (p.completion.ok()) {
      if (p.completion.op == OpType::kRead) {
        std::memcpy(p.local, c->in.data() + head + sizeof(resp), resp.length);
      } else if (p.completion.op == OpType::kCompareAndSwap) {
        std::memcpy(p.local, &resp.old_value, 8);
      }
    }
    out[n++] = p.completion;
    c->pending.pop_front();
    head += sizeof(resp) + resp.length;
  }
  c->in.erase(c->in.begin(), c->in.begin() + static_cast<ptrdiff_t>(head));
  return n;
}

int NetFabric::Queue::PollCompletions(absl::Span<Completion> out) {
  int n = PollOnce(out);
  const Options& o = fabric_->options_;
  if (n > 0 || outstanding_ == 0 || !o.blocking_waits || o.idle_polls_before_wait == 0) {
    empty_polls_ = 0;
    return n;
  }
  if (++empty_polls_ < o.idle_polls_before_wait) return 0;
  empty_polls_ = o.idle_polls_before_wait;  // stays idle until a completion
  if (WaitForCompletions(absl::Microseconds(o.poll_wait_us))) n = PollOnce(out);
  if (n > 0) empty_polls_ = 0;
  return n;
}

int NetFabric::Queue::PollOnce(absl::Span<Completion> out) {
  int n = 0;
  while (n < static_cast<int>(out.size()) && !local_done_.empty()) {
    out[n++] = local_done_.front();
    local_done_.pop_front();
  }
  for (auto& [machine, c] : connections_) {
    if (n == static_cast<int>(out.size())) break;
    if (c.pending.empty()) continue;
    uint8_t buf[65536];
    while (true) {
      const ssize_t got = recv(c.fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (got > 0) {
        c.in.insert(c.in.end(), buf, buf + got);
        if (static_cast<size_t>(got) < sizeof(buf)) break;
        continue;
      }
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) break;
      Fail(&c);  // the target went away: pending ops complete with kRemoteError
      break;
    }
    n += Drain(&c, out.subspan(n));
  }
  while (n < static_cast<int>(out.size()) && !local_done_.empty()) {
    out[n++] = local_done_.front();
    local_done_.pop_front();
  }
  outstanding_ -= static_cast<uint32_t>(n);
  for (int i = 0; i < n; ++i) ++stats_.completed[static_cast<int>(out[i].code)];
  return n;
}

}  // namespace dctk::farm::fabric
