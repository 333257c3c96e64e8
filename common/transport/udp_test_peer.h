// Test helpers for UdpTransport tests: a transport, a loop thread, and a
// receiver that records (and optionally echoes) Pings and Pongs.
#ifndef DCTK_COMMON_TRANSPORT_UDP_TEST_PEER_H_
#define DCTK_COMMON_TRANSPORT_UDP_TEST_PEER_H_

#include <dirent.h>

#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "common/transport/test_message.pb.h"
#include "common/transport/udp_transport.h"
#include "gtest/gtest.h"

namespace dctk::transport {

using ::dctk::transport::testing::Ping;
using ::dctk::transport::testing::Pong;

inline std::unique_ptr<UdpTransport> NewTransport() {
  absl::StatusOr<std::unique_ptr<UdpTransport>> t = UdpTransport::Create();
  EXPECT_TRUE(t.ok()) << t.status();
  return std::move(*t);
}

// Runs the transport's loop on its own thread until Stop().
class LoopThread {
 public:
  explicit LoopThread(UdpTransport* t) : t_(t), thread_([t] { t->Run(); }) {}
  ~LoopThread() { Join(); }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  void StopAndJoin() {
    t_->Stop();
    Join();
  }

 private:
  UdpTransport* t_;
  std::thread thread_;
};

// Records Pings (optionally answering with Pong) and Pongs; calls on_message.
class Peer : public TransportReceiver {
 public:
  Peer(UdpTransport* t, EndpointOptions opts = {}) : t_(t) {
    absl::StatusOr<Address> a = t->Register(this, Address::Loopback(0), opts);
    EXPECT_TRUE(a.ok()) << a.status();
    addr_ = a.value_or(Address());
  }
  ~Peer() override { t_->Unregister(this); }

  void ReceiveMessage(const Address& from, const Envelope& msg) override {
    Ping ping;
    Pong pong;
    last_from = from;
    if (msg.Parse(&ping)) {
      pings.push_back(ping.seq());
      if (echo) {
        pong.set_seq(ping.seq());
        EXPECT_TRUE(t_->Send(this, from, pong).ok());
      }
    } else if (msg.Parse(&pong)) {
      pongs.push_back(pong.seq());
    }
    if (on_message) on_message();
  }

  void SendPing(const Address& to, uint64_t seq) {
    Ping p;
    p.set_seq(seq);
    EXPECT_TRUE(t_->Send(this, to, p).ok());
  }

  const Address& addr() const { return addr_; }

  std::vector<uint64_t> pings, pongs;
  Address last_from;  // sender of the last message
  bool echo = false;
  std::function<void()> on_message;

 private:
  UdpTransport* t_;
  Address addr_;
};

// Descriptors this process holds (to check that nothing leaks).
inline size_t OpenFds() {
  size_t n = 0;
  DIR* d = opendir("/proc/self/fd");
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n;
}

}  // namespace dctk::transport

#endif  // DCTK_COMMON_TRANSPORT_UDP_TEST_PEER_H_
