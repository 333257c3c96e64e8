#include "mom/group.h"

#include <memory>
#include <utility>
#include <vector>

#include "common/transport/sim_transport.h"
#include "gtest/gtest.h"
#include "mom/mom.pb.h"
#include "mom/test_message.pb.h"

namespace dctk::mom {
namespace {

using transport::Address;
using transport::Envelope;
using transport::SimTransport;
using transport::TransportReceiver;

const Address kGroupAddr(0xef010107, 7000);  // 239.1.1.7:7000

Address Host(int i) { return Address(0x0a000000 + i, 7000); }

// A group member: a protocol object that routes MOM packets to its MomReceiver.
class Member : public TransportReceiver {
 public:
  struct Got {
    uint32_t sender_id;
    uint64_t sender_seq;
    Arrival arrival;
    uint64_t n;  // TestOp payload
  };

  Member(SimTransport* net, Address addr, const GroupConfig& g,
         MomReceiver::Options options = {})
      : mom_(net, this, g, [this](const MomDelivery& d) { OnDeliver(d); }, options) {
    EXPECT_TRUE(net->Register(this, addr).ok());
    EXPECT_TRUE(mom_.Join().ok());
  }
  void ReceiveMessage(const Address& from, const Envelope& msg) override {
    EXPECT_TRUE(mom_.Handle(from, msg)) << "unexpected non-MOM message";
  }
  void OnDeliver(const MomDelivery& d) {
    TestOp op;
    ASSERT_TRUE(d.message.Parse(&op));
    EXPECT_EQ(op.sender(), d.sender_id);
    got.push_back({d.sender_id, d.sender_seq, d.arrival, op.n()});
  }
  const MomReceiver::Stats& stats() const { return mom_.stats(); }
  MomReceiver& mom() { return mom_; }

  std::vector<Got> got;

 private:
  MomReceiver mom_;
};

class Client : public TransportReceiver {
 public:
  Client(SimTransport* net, Address addr, const GroupConfig& g, uint32_t id,
         uint64_t incarnation = 1) {
    EXPECT_TRUE(net->Register(this, addr, SenderEndpointOptions(g)).ok());
    auto s = MomSender::Create(net, this, g, id, incarnation);
    EXPECT_TRUE(s.ok()) << s.status();
    sender = std::move(*s);
  }
  void ReceiveMessage(const Address&, const Envelope&) override {}
  absl::Status Send(uint64_t n) {
    TestOp op;
    op.set_sender(sender->sender_id());
    op.set_n(n);
    return sender->Multicast(op);
  }
  std::unique_ptr<MomSender> sender;
};

// Sender seq of a MOM copy, for filters that pick particular copies.
uint64_t SeqOf(const Envelope& msg) {
  MomPacket p;
  return msg.Parse(&p) ? p.sender_seq() : 0;
}

GroupConfig Config(Delivery delivery, int members) {
  GroupConfig g;
  g.group_id = 7;
  g.group_address = kGroupAddr;
  g.delivery = delivery;
  for (int i = 0; i < members; ++i) g.members.push_back(Host(i + 1));
  return g;
}

class GroupTest : public ::testing::TestWithParam<Delivery> {
 protected:
  // Three members (hosts 1-3) and two senders (hosts 101, 102).
  void SetUp() override {
    config_ = Config(GetParam(), 3);
    for (int i = 0; i < 3; ++i) {
      members_.push_back(std::make_unique<Member>(&net_, Host(i + 1), config_));
    }
    clients_.push_back(std::make_unique<Client>(&net_, Host(101), config_, 1));
    clients_.push_back(std::make_unique<Client>(&net_, Host(102), config_, 2));
  }
  // Each client multicasts n messages, interleaved, 10 us apart.
  void SendInterleaved(int n) {
    for (int i = 1; i <= n; ++i) {
      for (auto& c : clients_) ASSERT_TRUE(c->Send(i).ok());
      net_.RunFor(absl::Microseconds(10));
    }
    net_.RunUntilIdle();
  }

  SimTransport net_{/*seed=*/1};
  GroupConfig config_;
  std::vector<std::unique_ptr<Member>> members_;
  std::vector<std::unique_ptr<Client>> clients_;
};

// Over the MOM switch each sender may have its own channel address: senders
// send to theirs, members join all of them. A member that joined only the
// group address misses the sender that has its own channel.
TEST(GroupChannelsTest, SendersUseTheirOwnChannelAddressesAndMembersJoinAll) {
  SimTransport net(/*seed=*/1);
  GroupConfig g = Config(Delivery::kIpMulticast, 2);
  const Address channel1(0xef000701, 7000);  // 239.0.7.1
  g.sender_addresses[1] = channel1;
  GroupConfig group_address_only = g;
  group_address_only.sender_addresses.clear();
  Member both(&net, Host(1), g);
  Member partial(&net, Host(2), group_address_only);
  Client own(&net, Host(101), g, 1);       // sends to channel1
  Client shared(&net, Host(102), g, 2);    // no entry: sends to group_address
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(own.Send(i).ok());
    ASSERT_TRUE(shared.Send(i).ok());
  }
  net.RunUntilIdle();
  EXPECT_EQ(both.got.size(), 10u);
  ASSERT_EQ(partial.got.size(), 5u);
  for (const Member::Got& got : partial.got) EXPECT_EQ(got.sender_id, 2u);

  GroupConfig bad = g;
  bad.sender_addresses[3] = Host(5);
  EXPECT_FALSE(MomSender::Create(&net, &own, bad, 3, 1).ok());
}

TEST_P(GroupTest, EveryMemberReceivesEveryMessageInPerSenderOrder) {
  SendInterleaved(50);
  for (const auto& m : members_) {
    ASSERT_EQ(m->got.size(), 100u);
    uint64_t last[3] = {0, 0, 0};
    for (const Member::Got& g : m->got) {
      EXPECT_EQ(g.sender_seq, last[g.sender_id] + 1);
      EXPECT_EQ(g.n, g.sender_seq);
      EXPECT_EQ(g.arrival, Arrival::kInOrder);
      last[g.sender_id] = g.sender_seq;
    }
    EXPECT_EQ(m->stats().delivered, 100u);
    EXPECT_EQ(m->stats().count(Arrival::kInOrder), 100u);
    EXPECT_EQ(m->stats().missing, 0u);
    EXPECT_EQ(m->stats().count(Arrival::kDuplicate), 0u);
  }
  // With equal latency everywhere, all members see the identical order.
  for (size_t i = 0; i < 100; ++i) {
    EXPECT_EQ(members_[0]->got[i].sender_id, members_[2]->got[i].sender_id);
    EXPECT_EQ(members_[0]->got[i].sender_seq, members_[2]->got[i].sender_seq);
  }
  const uint64_t copies = GetParam() == Delivery::kIpMulticast ? 50 : 150;
  EXPECT_EQ(clients_[0]->sender->stats().copies_sent, copies);
  EXPECT_EQ(clients_[0]->sender->stats().multicasts, 50u);
}

TEST_P(GroupTest, DroppedCopyIsReportedAsGap) {
  // Drop sender 1's message 5 on its way to member 1 only.
  net_.AddFilter(1, [](const Address& from, const Address& to, const Envelope& msg,
                       absl::Duration*) {
    return !(from == Host(101) && to == Host(1) && SeqOf(msg) == 5);
  });
  SendInterleaved(10);
  const Member& m = *members_[0];
  EXPECT_EQ(m.got.size(), 19u);
  EXPECT_EQ(m.stats().missing, 1u);
  EXPECT_EQ(m.stats().count(Arrival::kAfterGap), 1u);
  for (const Member::Got& g : m.got) {
    if (g.sender_id == 1 && g.sender_seq == 6) {
      EXPECT_EQ(g.arrival, Arrival::kAfterGap);
    }
  }
  EXPECT_EQ(members_[1]->stats().missing, 0u);
  EXPECT_EQ(members_[1]->got.size(), 20u);
}

TEST_P(GroupTest, DelayedCopyIsDeliveredLateAndFillsTheGap) {
  net_.AddFilter(1, [](const Address& from, const Address& to, const Envelope& msg,
                       absl::Duration* extra) {
    if (from == Host(101) && to == Host(2) && SeqOf(msg) == 3) *extra = absl::Milliseconds(1);
    return true;
  });
  SendInterleaved(10);
  const Member& m = *members_[1];
  ASSERT_EQ(m.got.size(), 20u);
  EXPECT_EQ(m.got.back().sender_seq, 3u);  // arrived after everything else
  EXPECT_EQ(m.got.back().arrival, Arrival::kLate);
  EXPECT_EQ(m.stats().count(Arrival::kLate), 1u);
  EXPECT_EQ(m.stats().count(Arrival::kAfterGap), 1u);
  EXPECT_EQ(m.stats().missing, 0u);
}

TEST_P(GroupTest, DuplicatesAreCountedAndNotDelivered) {
  net_.AddFilter(1, net_.Duplicate(1.0, absl::Microseconds(1)));
  SendInterleaved(10);
  for (const auto& m : members_) {
    EXPECT_EQ(m->got.size(), 20u);
    EXPECT_EQ(m->stats().count(Arrival::kDuplicate), 20u);
    EXPECT_EQ(m->stats().missing, 0u);
  }
}

TEST_P(GroupTest, DuplicatesAreDeliveredWhenAskedFor) {
  Member extra(&net_, Host(4), config_, {.deliver_duplicates = true});
  if (GetParam() == Delivery::kReplicatedUnicast) {
    // Only configured members get copies; this one is not in the list.
    GTEST_SKIP() << "replicated unicast sends only to configured members";
  }
  net_.AddFilter(1, net_.Duplicate(1.0, absl::Microseconds(1)));
  SendInterleaved(5);
  EXPECT_EQ(extra.got.size(), 20u);
  EXPECT_EQ(extra.stats().count(Arrival::kDuplicate), 10u);
}

TEST_P(GroupTest, RestartedSenderStartsANewSequence) {
  SendInterleaved(3);
  net_.Unregister(clients_[0].get());
  clients_[0] = std::make_unique<Client>(&net_, Host(101), config_, 1, /*incarnation=*/2);
  ASSERT_TRUE(clients_[0]->Send(100).ok());
  net_.RunUntilIdle();
  for (const auto& m : members_) {
    EXPECT_EQ(m->got.back().sender_seq, 1u);
    EXPECT_EQ(m->got.back().arrival, Arrival::kInOrder);
    EXPECT_EQ(m->stats().sender_restarts, 1u);
  }
}

INSTANTIATE_TEST_SUITE_P(Deliveries, GroupTest,
                         ::testing::Values(Delivery::kIpMulticast,
                                           Delivery::kReplicatedUnicast),
                         [](const auto& info) {
                           return info.param == Delivery::kIpMulticast ? "IpMulticast"
                                                                       : "ReplicatedUnicast";
                         });

TEST(GroupConfigTest, Validation) {
  GroupConfig g = Config(Delivery::kIpMulticast, 0);
  EXPECT_TRUE(ValidateGroupConfig(g).ok());
  g.group_address = Host(1);
  EXPECT_FALSE(ValidateGroupConfig(g).ok());
  g = Config(Delivery::kReplicatedUnicast, 0);
  absl::Status s = ValidateGroupConfig(g);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("members"), absl::string_view::npos);
}

TEST(GroupConfigTest, HighPriorityDesignsMarkDscp46) {
  GroupConfig g = Config(Delivery::kIpMulticast, 1);
  for (Design d : kAllDesigns) {
    g.design = d;
    EXPECT_EQ(SenderEndpointOptions(g).dscp, HighPriority(d) ? 46 : 0) << DesignName(d);
  }
}

// A stand-in for the serialization switch: stamps group sequence numbers in
// place, at the fixed offset mom.proto promises.
std::string Stamp(std::string wire, uint64_t group_seq) {
  EXPECT_EQ(static_cast<uint8_t>(wire[0]), 0x09);
  for (int i = 0; i < 8; ++i) wire[1 + i] = static_cast<char>(group_seq >> (8 * i));
  return wire;
}

TEST(SerializedGroupTest, StampedGroupSequenceRevealsDrops) {
  SimTransport net(3);
  GroupConfig g = Config(Delivery::kIpMulticast, 1);
  g.design = Design::kSerialized;
  // Capture what a serialized sender puts on the wire.
  std::vector<std::string> wire;
  class Capture : public TransportReceiver {
   public:
    explicit Capture(std::vector<std::string>* out) : out_(out) {}
    void ReceiveMessage(const Address&, const Envelope& msg) override {
      out_->emplace_back(msg.payload());
    }
    std::vector<std::string>* out_;
  } capture(&wire);
  ASSERT_TRUE(net.Register(&capture, Host(50)).ok());
  ASSERT_TRUE(net.JoinGroup(&capture, kGroupAddr).ok());
  Client c(&net, Host(101), g, 1);
  for (int i = 1; i <= 4; ++i) ASSERT_TRUE(c.Send(i).ok());
  net.RunUntilIdle();
  ASSERT_EQ(wire.size(), 4u);

  // The switch stamps 1..4; stamped copy 3 is lost in the network.
  const uint32_t type = transport::TypeId<MomPacket>();
  std::vector<uint64_t> delivered_stamps;
  MomReceiver receiver(&net, &capture, g, [&](const MomDelivery& d) {
    delivered_stamps.push_back(d.group_seq);
  });
  for (uint64_t s : {1, 2, 4}) {
    const std::string stamped = Stamp(wire[s - 1], s);
    MomPacket p;
    ASSERT_TRUE(p.ParseFromString(stamped));
    EXPECT_EQ(p.group_seq(), s);
    EXPECT_TRUE(receiver.Handle(Host(101), Envelope(type, stamped)));
  }
  EXPECT_EQ(delivered_stamps, (std::vector<uint64_t>{1, 2, 4}));
  EXPECT_EQ(receiver.stats().group_seq_missing, 1u);
  EXPECT_EQ(receiver.stats().missing, 1u);  // per-sender view agrees: seq 3 missing
}

TEST(MomReceiverTest, IgnoresOtherTypesAndCountsForeignGroups) {
  SimTransport net(4);
  GroupConfig g = Config(Delivery::kIpMulticast, 1);
  Member m(&net, Host(1), g);
  TestOp op;
  const std::string payload = op.SerializeAsString();
  EXPECT_FALSE(m.mom().Handle(Host(2), Envelope(transport::TypeId<TestOp>(), payload)));
  MomPacket p;
  p.set_group_id(8);
  p.set_sender_seq(1);
  EXPECT_TRUE(m.mom().Handle(Host(2), Envelope(transport::TypeId<MomPacket>(),
                                                p.SerializeAsString())));
  EXPECT_EQ(m.stats().other_group, 1u);
  EXPECT_TRUE(m.mom().Handle(Host(2), Envelope(transport::TypeId<MomPacket>(), "\xff")));
  EXPECT_EQ(m.stats().malformed, 1u);
  EXPECT_EQ(m.stats().delivered, 0u);
  EXPECT_NE(m.mom().StatsText().find("mom_receiver_dropped_total{group=\"7\",reason=\"other_group\"} 1"),
            std::string::npos);
}

}  // namespace
}  // namespace dctk::mom
