// Test helper: a receiver that records what it gets (on a SimTransport, or on
// a decorator over one).
#ifndef DCTK_COMMON_TRANSPORT_SIM_TEST_NODE_H_
#define DCTK_COMMON_TRANSPORT_SIM_TEST_NODE_H_

#include <vector>

#include "common/transport/sim_transport.h"
#include "common/transport/test_message.pb.h"
#include "glog/logging.h"

namespace dctk::transport::testing {

struct Received {
  absl::Time at;
  Address from;
  uint64_t seq;
};

class Node : public TransportReceiver {
 public:
  Node(Transport* net, Address addr) : net_(net) {
    absl::StatusOr<Address> a = net->Register(this, addr);
    CHECK(a.ok()) << a.status();
    addr_ = *a;
  }
  ~Node() override { net_->Unregister(this); }

  void ReceiveMessage(const Address& from, const Envelope& msg) override {
    if (msg.Is<Pong>()) {
      ++pongs_;
      return;
    }
    Ping ping;
    if (!msg.Parse(&ping)) {
      ++unparsed_;
      return;
    }
    got_.push_back({net_->Now(), from, ping.seq()});
    if (echo_) {
      Pong pong;
      pong.set_seq(ping.seq());
      absl::Status s = net_->Send(this, from, pong);
      CHECK(s.ok()) << s;
    }
  }

  void SendPing(const Address& to, uint64_t seq) {
    Ping ping;
    ping.set_seq(seq);
    absl::Status s = net_->Send(this, to, ping);
    CHECK(s.ok()) << s;
  }

  const Address& addr() const { return addr_; }
  const std::vector<Received>& got() const { return got_; }
  std::vector<uint64_t> seqs() const {
    std::vector<uint64_t> s;
    for (const Received& r : got_) s.push_back(r.seq);
    return s;
  }
  int unparsed() const { return unparsed_; }
  int pongs() const { return pongs_; }
  void set_echo(bool echo) { echo_ = echo; }

 private:
  Transport* net_;
  Address addr_;
  std::vector<Received> got_;
  int unparsed_ = 0;
  int pongs_ = 0;
  bool echo_ = false;
};

inline Address Host(int i, uint16_t port = 7000) {
  return Address(0x0a000000 + static_cast<uint32_t>(i), port);
}

}  // namespace dctk::transport::testing

#endif  // DCTK_COMMON_TRANSPORT_SIM_TEST_NODE_H_
