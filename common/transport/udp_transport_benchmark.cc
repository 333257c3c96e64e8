// UdpTransport on loopback against plain blocking UDP sockets, in one binary.
//
//   bazel run -c opt //common/transport:udp_transport_benchmark -- --benchmark_min_time=1
//
// RoundTrip: one ping-pong between two endpoints, each on its own thread (for
// UdpTransport each transport runs its event loop on its own thread; for the
// baseline the benchmark thread does sendto/recvfrom and an echo thread does
// recvfrom/sendto). OneWay: a stream of messages with the same window flow
// control in both (the receiver acks every kAckEvery messages, the sender keeps
// at most kWindow unacknowledged), so neither overruns the socket buffer.
// Payload sizes are equal on the wire: the baseline sends header-sized padding.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "benchmark/benchmark.h"
#include "common/transport/framing.h"
#include "common/transport/test_message.pb.h"
#include "common/transport/udp_transport.h"
#include "glog/logging.h"

namespace dctk::transport {
namespace {

using testing::Ping;
using testing::Pong;

constexpr uint64_t kWindow = 256;
constexpr uint64_t kAckEvery = 64;
constexpr int kRoundTripBatch = 1000;
constexpr int kOneWayBatch = 320 * kAckEvery;  // whole acks: the last one ends the batch

std::unique_ptr<UdpTransport> MustCreate() {
  auto t = UdpTransport::Create();
  CHECK(t.ok()) << t.status();
  return std::move(*t);
}

// A flag the benchmark thread waits on and a loop thread sets.
class Done {
 public:
  void Reset() {
    absl::MutexLock l(&mu_);
    done_ = false;
  }
  void Set() {
    absl::MutexLock l(&mu_);
    done_ = true;
  }
  bool WaitFor(absl::Duration d) {
    absl::MutexLock l(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&done_), d);
  }

 private:
  absl::Mutex mu_;
  bool done_ = false;
};

// Answers every Ping with a Pong (round trip) or acks every kAckEvery (one way).
class Responder : public TransportReceiver {
 public:
  Responder(UdpTransport* t, bool ack_stream) : t_(t), ack_stream_(ack_stream) {
    addr_ = *t->Register(this, Address::Loopback(0));
  }
  ~Responder() override { t_->Unregister(this); }
  void ReceiveMessage(const Address& from, const Envelope& msg) override {
    if (!msg.Parse(&ping_)) return;
    ++received_;
    if (ack_stream_ && received_ % kAckEvery != 0) return;
    pong_.set_seq(ack_stream_ ? received_ : ping_.seq());
    CHECK(t_->Send(this, from, pong_).ok());
  }
  const Address& addr() const { return addr_; }
  uint64_t received_ = 0;

 private:
  UdpTransport* t_;
  bool ack_stream_;
  Address addr_;
  Ping ping_;
  Pong pong_;
};

// Sends `count` Pings: one at a time (round trip) or windowed (one way).
class Driver : public TransportReceiver {
 public:
  Driver(UdpTransport* t, Address peer, size_t payload, bool windowed)
      : t_(t), peer_(peer), windowed_(windowed) {
    CHECK(t->Register(this, Address::Loopback(0)).ok());
    ping_.set_body(std::string(payload, 'x'));
  }
  ~Driver() override { t_->Unregister(this); }

  // Runs on the loop thread.
  void Start(uint64_t count, Done* done) {
    target_ = sent_ + count;
    done_ = done;
    SendMore();
  }
  void ReceiveMessage(const Address&, const Envelope& msg) override {
    if (!msg.Parse(&pong_)) return;
    acked_ = windowed_ ? pong_.seq() : acked_ + 1;
    if (acked_ >= target_) {
      done_->Set();
      return;
    }
    SendMore();
  }

 private:
  void SendMore() {
    uint64_t limit = std::min(target_, windowed_ ? acked_ + kWindow : acked_ + 1);
    while (sent_ < limit) {
      ping_.set_seq(++sent_);
      CHECK(t_->Send(this, peer_, ping_).ok());
    }
  }

  UdpTransport* t_;
  Address peer_;
  bool windowed_;
  Ping ping_;
  Pong pong_;
  uint64_t sent_ = 0, acked_ = 0, target_ = 0;
  Done* done_ = nullptr;
};

void RunUdpTransport(benchmark::State& state, bool one_way) {
  auto ta = MustCreate(), tb = MustCreate();
  Responder responder(tb.get(), one_way);
  Driver driver(ta.get(), responder.addr(), state.range(0), one_way);
  std::thread la([&] { ta->Run(); }), lb([&] { tb->Run(); });
  Done done;
  const int batch = one_way ? kOneWayBatch : kRoundTripBatch;
  while (state.KeepRunningBatch(batch)) {
    done.Reset();
    ta->Post([&] { driver.Start(batch, &done); });
    if (!done.WaitFor(absl::Seconds(10))) {
      state.SkipWithError("stalled: a datagram was lost on loopback");
      break;
    }
  }
  ta->Stop();
  tb->Stop();
  la.join();
  lb.join();
  state.SetItemsProcessed(state.iterations());
  state.counters["send_syscalls/msg"] = benchmark::Counter(
      static_cast<double>(ta->stats().send_syscalls) / ta->stats().sent);
}

void BM_UdpTransportRoundTrip(benchmark::State& state) { RunUdpTransport(state, false); }
void BM_UdpTransportOneWay(benchmark::State& state) { RunUdpTransport(state, true); }

// --- Baseline: blocking sockets, recvfrom/sendto threads. ---

int BoundSocket(sockaddr_in* addr) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int buf = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
  *addr = {};
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  PCHECK(bind(fd, reinterpret_cast<sockaddr*>(addr), sizeof(*addr)) == 0);
  socklen_t len = sizeof(*addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(addr), &len);
  return fd;
}

void RunBlocking(benchmark::State& state, bool one_way) {
  sockaddr_in client_addr, server_addr;
  int client = BoundSocket(&client_addr), server = BoundSocket(&server_addr);
  // Ping size on the wire: header + body + protobuf field overhead (~4 bytes).
  std::string msg(kFrameHeaderSize + state.range(0) + 4, 'x');
  std::thread echo([&] {
    char buf[65536];
    uint64_t received = 0;
    for (;;) {
      sockaddr_in from;
      socklen_t len = sizeof(from);
      ssize_t n = recvfrom(server, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n == 1) return;  // quit
      ++received;
      if (one_way && received % kAckEvery != 0) continue;
      sendto(server, &received, sizeof(received), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  });
  char buf[64];
  uint64_t sent = 0, acked = 0;
  auto wait_ack = [&] {
    recv(client, buf, sizeof(buf), 0);
    acked = one_way ? *reinterpret_cast<uint64_t*>(buf) : acked + 1;
  };
  for (auto _ : state) {
    if (one_way) {
      while (sent >= acked + kWindow) wait_ack();
    }
    sendto(client, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&server_addr),
           sizeof(server_addr));
    ++sent;
    if (!one_way) wait_ack();
  }
  char quit = 'q';
  sendto(client, &quit, 1, 0, reinterpret_cast<sockaddr*>(&server_addr), sizeof(server_addr));
  echo.join();
  close(client);
  close(server);
  state.SetItemsProcessed(state.iterations());
}

void BM_BlockingSocketRoundTrip(benchmark::State& state) { RunBlocking(state, false); }
void BM_BlockingSocketOneWay(benchmark::State& state) { RunBlocking(state, true); }

BENCHMARK(BM_BlockingSocketRoundTrip)->Arg(64)->Arg(1024)->UseRealTime();
BENCHMARK(BM_UdpTransportRoundTrip)->Arg(64)->Arg(1024)->UseRealTime();
BENCHMARK(BM_BlockingSocketOneWay)->Arg(64)->Arg(1024)->UseRealTime();
BENCHMARK(BM_UdpTransportOneWay)->Arg(64)->Arg(1024)->UseRealTime();

}  // namespace
}  // namespace dctk::transport
