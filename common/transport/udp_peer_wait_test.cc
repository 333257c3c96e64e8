// UdpTransport with EndpointOptions.peers: every datagram still arrives (from
// peers on their own sockets, from others on the unicast one), AwaitPeers
// never holds back what it must not (posts from other threads, datagrams from
// non-peers, Stop), and peer endpoints come and go mid-run without leaks.
#include <memory>
#include <thread>
#include <vector>

#include "common/transport/udp_test_peer.h"
#include "common/transport/udp_transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::transport {
namespace {

using ::testing::ElementsAre;

// Three echoing replicas on their own transport and loop.
struct Replicas {
  Replicas() : t(NewTransport()) {
    for (auto& r : peers) {
      r = std::make_unique<Peer>(t.get());
      r->echo = true;
      addrs.push_back(r->addr());
    }
    loop = std::make_unique<LoopThread>(t.get());
  }
  ~Replicas() { loop->StopAndJoin(); }
  // Options of an endpoint that names the three as its peers.
  EndpointOptions PeerOptions() const {
    EndpointOptions opts;
    opts.peers = addrs;
    return opts;
  }
  std::unique_ptr<UdpTransport> t;
  std::unique_ptr<Peer> peers[3];
  std::vector<Address> addrs;
  std::unique_ptr<LoopThread> loop;
};

TEST(UdpPeerWaitTest, RoundsAwaitingEveryPeerCompleteAndRepliesComeFromThePeers) {
  Replicas replicas;
  auto t = NewTransport();
  Peer client(t.get(), replicas.PeerOptions());
  constexpr int kRounds = 200;
  int round = 0, replies = 0;
  std::vector<Address> from;
  auto send_round = [&] {
    ++round;
    for (const Address& a : replicas.addrs) client.SendPing(a, round);
    t->AwaitPeers(&client, 3);
  };
  client.on_message = [&] {
    from.push_back(client.last_from);
    if (++replies < 3) {
      t->AwaitPeers(&client, 3 - replies);
      return;
    }
    replies = 0;
    if (round == kRounds) {
      t->Stop();
    } else {
      send_round();
    }
  };
  t->Post(send_round);
  t->Run();
  EXPECT_EQ(client.pongs.size(), 3u * kRounds);
  EXPECT_EQ(t->stats().received, 3u * kRounds);
  EXPECT_GT(t->stats().ring_waits, 0u);  // io_uring, not the epoll fallback
  for (const Address& a : from) EXPECT_THAT(replicas.addrs, ::testing::Contains(a));
  // Each replica saw the client at its one address (sends use the unicast socket).
  for (auto& r : replicas.peers) EXPECT_EQ(r->last_from, client.addr());
}

TEST(UdpPeerWaitTest, DatagramsFromNonPeersArriveWhileAwaitingPeers) {
  Replicas replicas;
  auto other_t = NewTransport();
  Peer other(other_t.get());
  other.echo = true;
  LoopThread other_loop(other_t.get());
  auto t = NewTransport();
  Peer client(t.get(), replicas.PeerOptions());
  // The peers never send; no timer is armed: only the non-peer's answers
  // can end the waits.
  client.on_message = [&] {
    if (client.pongs.size() == 20) {
      t->Stop();
      return;
    }
    client.SendPing(other.addr(), client.pongs.size() + 1);
    t->AwaitPeers(&client, 3);
  };
  t->Post([&] {
    client.SendPing(other.addr(), 1);
    t->AwaitPeers(&client, 3);
  });
  t->Run();
  other_loop.StopAndJoin();
  EXPECT_EQ(client.pongs.size(), 20u);
  EXPECT_EQ(client.last_from, other.addr());
}

TEST(UdpPeerWaitTest, PostsFromOtherThreadsAndStopEndAWaitForPeers) {
  Replicas replicas;
  auto t = NewTransport();
  Peer client(t.get(), replicas.PeerOptions());
  t->AwaitPeers(&client, 3);  // nothing will come from the peers
  int posts = 0;              // loop thread only
  LoopThread loop(t.get());
  for (int i = 0; i < 50; ++i) {
    std::atomic<bool> ran{false};
    t->Post([&] {
      ++posts;
      ran = true;
    });
    while (!ran) std::this_thread::yield();
  }
  loop.StopAndJoin();
  EXPECT_EQ(posts, 50);
}

TEST(UdpPeerWaitTest, PeerEndpointsUnregisterAndRegisterMidRunWithoutLeaks) {
  Replicas replicas;
  const size_t before = OpenFds();
  {
    auto t = NewTransport();
    const EndpointOptions opts = replicas.PeerOptions();
    auto client = std::make_unique<Peer>(t.get(), opts);
    int generation = 0;
    std::function<void()> start = [&] {
      for (const Address& a : replicas.addrs) client->SendPing(a, generation);
      t->AwaitPeers(client.get(), 3);
    };
    std::function<void()> on_pong = [&] {
      // At the first reply, while the other peers' polls are armed: drop
      // the endpoint (after this delivery) and open a new one.
      if (client->pongs.size() != 1) return;
      t->Post([&] {
        client.reset();
        if (++generation == 5) {
          t->Stop();
          return;
        }
        client = std::make_unique<Peer>(t.get(), opts);
        client->on_message = on_pong;
        start();
      });
    };
    client->on_message = on_pong;
    t->Post(start);
    t->Run();
    EXPECT_EQ(generation, 5);
    t->Timer(absl::Milliseconds(1), [&] { t->Stop(); });
    t->Run();  // a second run (new ring) with no peer endpoint left
  }
  EXPECT_EQ(OpenFds(), before);
}

TEST(UdpPeerWaitTest, RejectsMulticastOrPortlessPeers) {
  auto t = NewTransport();
  struct Sink : TransportReceiver {
    void ReceiveMessage(const Address&, const Envelope&) override {}
  } sink;
  EndpointOptions opts;
  opts.peers = {Address(0xe0000001, 7000)};
  absl::StatusOr<Address> a = t->Register(&sink, Address::Loopback(0), opts);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << a.status();
  opts.peers = {Address::Loopback(0)};
  a = t->Register(&sink, Address::Loopback(0), opts);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << a.status();
  EXPECT_THAT(a.status().message(), ::testing::HasSubstr("peer 127.0.0.1:0"));
}

}  // namespace
}  // namespace dctk::transport
