#include "speculative_paxos/over_mom/recording_transport.h"

#include <memory>
#include <vector>

#include "common/transport/sim_transport.h"
#include "gtest/gtest.h"
#include "mom/group.h"
#include "speculative_paxos/spaxos.pb.h"

namespace dctk::spaxos {
namespace {

using transport::Address;
using transport::Envelope;
using transport::SimTransport;

const Address kGroup(0xef000101, 7200);  // 239.0.1.1
const Address kMember(0x0a000001, 7100), kSender(0x0a000065, 7000), kPeer(0x0a000066, 7000);

// A receiver that counts MOM deliveries and other messages; it registers and
// joins through whatever transport it is given, as a replica does.
class Member : public transport::TransportReceiver {
 public:
  Member(transport::Transport* net, const mom::GroupConfig& g)
      : mom_(net, this, g, [this](const mom::MomDelivery&) { ++delivered; }) {
    EXPECT_TRUE(net->Register(this, kMember).ok());
    EXPECT_TRUE(mom_.Join().ok());
  }
  void ReceiveMessage(const Address& from, const Envelope& msg) override {
    if (!mom_.Handle(from, msg)) ++other;
  }
  int delivered = 0, other = 0;

 private:
  mom::MomReceiver mom_;
};

class Sink : public transport::TransportReceiver {
 public:
  void ReceiveMessage(const Address&, const Envelope&) override { ++got; }
  int got = 0;
};

TEST(RecordingTransportTest, RecordsMomArrivalsInOrderAndPassesEverythingOn) {
  SimTransport sim(/*seed=*/1);
  RecordingTransport net(&sim);
  const mom::GroupConfig g{.group_id = 3, .group_address = kGroup};
  Member member(&net, g);
  Sink sender_endpoint, peer;
  ASSERT_TRUE(sim.Register(&sender_endpoint, kSender).ok());
  ASSERT_TRUE(sim.Register(&peer, kPeer).ok());
  auto sender = mom::MomSender::Create(&sim, &sender_endpoint, g, /*sender_id=*/9, 1);
  ASSERT_TRUE(sender.ok());
  Request req;
  for (int i = 0; i < 3; ++i) {
    req.set_request_id(i + 1);
    ASSERT_TRUE((*sender)->Multicast(req).ok());
    sim.RunUntilIdle();
  }
  // A non-MOM message reaches the member and is not recorded; the member's
  // own sends leave from its address.
  ASSERT_TRUE(sim.Send(&peer, kMember, req).ok());
  ASSERT_TRUE(net.Send(&member, kPeer, req).ok());
  sim.RunUntilIdle();

  EXPECT_EQ(member.delivered, 3);
  EXPECT_EQ(member.other, 1);
  EXPECT_EQ(peer.got, 1);
  ASSERT_EQ(net.arrivals().size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(net.arrivals()[i], (mom::MessageId{9, static_cast<uint64_t>(i + 1)}));
  }
  EXPECT_FALSE(net.Send(&peer, kMember, req).ok()) << "peer was not registered through it";
}

}  // namespace
}  // namespace dctk::spaxos
