// RpcEndpoint::CallAll and Start/Await: several calls in flight at once from
// one endpoint (machine 1) to two others (2 and 3), on shm and net fabrics.
#include <sched.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "farm/fabric/net_fabric.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/msg/rpc.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::farm::msg {
namespace {

using fabric::NetFabric;
using fabric::ShmFabric;

constexpr uint16_t kEcho = 1;
constexpr uint16_t kAskBack = 2;  // machine 2 calls machine 1 before answering

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

std::string Echo(fabric::MachineId, absl::Span<const uint8_t> req) {
  return std::string(req.begin(), req.end());
}

template <typename F>
class RpcCallAllTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (fabric::MachineId id : {1u, 2u, 3u}) {
      typename F::Options o;
      o.machine_id = id;
      auto f = F::Create(o);
      ASSERT_TRUE(f.ok()) << f.status();
      fabric_[id] = std::move(*f);
    }
    for (fabric::MachineId x : {1u, 2u, 3u}) {
      for (fabric::MachineId y : {1u, 2u, 3u}) {
        if (x != y) ASSERT_TRUE(fabric_[x]->Connect(y, fabric_[y]->endpoint()).ok());
      }
    }
    for (fabric::MachineId id : {1u, 2u, 3u}) {
      queue_[id] = std::move(*fabric_[id]->CreateQueue());
      ep_[id] = std::make_unique<RpcEndpoint<F>>(*fabric_[id], queue_[id].get(), id);
      ep_[id]->Register(kEcho, Echo);
    }
    ASSERT_TRUE(WireRpc(*ep_[1], *fabric_[1], *ep_[2], *fabric_[2], 8192).ok());
    ASSERT_TRUE(WireRpc(*ep_[1], *fabric_[1], *ep_[3], *fabric_[3], 8192).ok());
  }
  void TearDown() override {
    stop_ = true;
    for (std::thread& t : servers_) t.join();
  }

  // Machine `id`'s thread: serves until the test ends.
  void Serve(fabric::MachineId id) {
    servers_.emplace_back([this, id] {
      while (!stop_.load()) ASSERT_TRUE(ep_[id]->Poll().ok());
    });
  }

  std::unique_ptr<F> fabric_[4];
  std::unique_ptr<typename F::Queue> queue_[4];
  std::unique_ptr<RpcEndpoint<F>> ep_[4];
  std::atomic<bool> stop_{false};
  std::vector<std::thread> servers_;
};

using Backends = ::testing::Types<ShmFabric, NetFabric>;
TYPED_TEST_SUITE(RpcCallAllTest, Backends);

// Each reply answers its own call, whatever the order responses arrive in;
// a peer without a ring fails alone, the calls after it still go out.
TYPED_TEST(RpcCallAllTest, EachCallGetsItsOwnReplyAndAnUnknownPeerFailsAlone) {
  this->Serve(2);
  this->Serve(3);
  const std::string big(1500, 'b');  // several of them fill the 8 KiB ring
  using Outgoing = typename RpcEndpoint<TypeParam>::Outgoing;
  for (int round = 0; round < 50; ++round) {
    const std::string x = "x" + std::to_string(round), y = "y" + std::to_string(round);
    const Outgoing calls[] = {{2, kEcho, Bytes(x)},   {3, kEcho, Bytes(y)},   {7, kEcho, Bytes(x)},
                              {2, kEcho, Bytes(big)}, {3, kEcho, Bytes(big)}, {2, 99, Bytes(y)}};
    std::vector<absl::StatusOr<std::string>> r = this->ep_[1]->CallAll(calls, absl::Seconds(10));
    ASSERT_EQ(r.size(), 6u);
    ASSERT_TRUE(r[0].ok()) << r[0].status();
    EXPECT_EQ(*r[0], x);
    ASSERT_TRUE(r[1].ok()) << r[1].status();
    EXPECT_EQ(*r[1], y);
    EXPECT_EQ(r[2].status().code(), absl::StatusCode::kNotFound) << r[2].status();
    ASSERT_TRUE(r[3].ok()) << r[3].status();
    EXPECT_EQ(*r[3], big);
    ASSERT_TRUE(r[4].ok()) << r[4].status();
    EXPECT_EQ(*r[4], big);
    EXPECT_EQ(r[5].status().code(), absl::StatusCode::kUnimplemented) << r[5].status();
  }
  EXPECT_EQ(this->ep_[1]->late_responses(), 0u);
}

// A silent peer times out alone: the other's reply is kept, and the silent
// one's answer, once it comes, is dropped and counted as late.
TYPED_TEST(RpcCallAllTest, ASilentPeerTimesOutAloneAndItsLateAnswerIsCounted) {
  this->Serve(2);  // machine 3 serves nothing yet
  using Outgoing = typename RpcEndpoint<TypeParam>::Outgoing;
  const std::string late = "late", on_time = "on time", next_one = "next";
  const Outgoing calls[] = {{3, kEcho, Bytes(late)}, {2, kEcho, Bytes(on_time)}};
  std::vector<absl::StatusOr<std::string>> r =
      this->ep_[1]->CallAll(calls, absl::Milliseconds(100));
  EXPECT_EQ(r[0].status().code(), absl::StatusCode::kDeadlineExceeded) << r[0].status();
  EXPECT_THAT(std::string(r[0].status().message()), ::testing::HasSubstr("to machine 3"));
  ASSERT_TRUE(r[1].ok()) << r[1].status();
  EXPECT_EQ(*r[1], "on time");
  this->Serve(3);  // answers "late" first (same ring), then "next"
  const Outgoing next[] = {{3, kEcho, Bytes(next_one)}};
  r = this->ep_[1]->CallAll(next, absl::Seconds(10));
  ASSERT_TRUE(r[0].ok()) << r[0].status();
  EXPECT_EQ(*r[0], "next");
  EXPECT_EQ(this->ep_[1]->late_responses(), 1u);
  EXPECT_EQ(this->ep_[1]->given_up(), 0u);
}

// The give-up predicate ends every call still waited for, not the answered
// ones.
TYPED_TEST(RpcCallAllTest, GivingUpEndsEveryCallStillWaitedFor) {
  // Machine 2 answers (its Poll returns once the response is written);
  // machine 3 serves nothing.
  std::atomic<bool> answered{false};
  this->servers_.emplace_back([this, &answered] {
    while (!this->stop_.load()) {
      absl::StatusOr<int> n = this->ep_[2]->Poll();
      ASSERT_TRUE(n.ok()) << n.status();
      if (*n > 0) answered.store(true);
    }
  });
  using Outgoing = typename RpcEndpoint<TypeParam>::Outgoing;
  const std::string a = "a", b = "b", c = "c";
  const Outgoing calls[] = {{2, kEcho, Bytes(a)}, {3, kEcho, Bytes(b)}, {3, kEcho, Bytes(c)}};
  // Asked at polls that found nothing: the first poll after machine 2's
  // answer was written finds it, so giving up at the second ask after that
  // leaves only machine 3's calls (their timeout is an hour).
  int asked_after = 0;
  std::vector<absl::StatusOr<std::string>> r = this->ep_[1]->CallAll(
      calls, absl::Hours(1), [&] { return answered.load() && ++asked_after >= 2; });
  ASSERT_TRUE(r[0].ok()) << r[0].status();
  EXPECT_EQ(*r[0], "a");
  for (int i : {1, 2}) {
    EXPECT_EQ(r[i].status().code(), absl::StatusCode::kDeadlineExceeded) << r[i].status();
    EXPECT_THAT(std::string(r[i].status().message()), ::testing::HasSubstr("gave up"));
  }
  EXPECT_EQ(this->ep_[1]->given_up(), 2u);
}

// While it waits, the caller serves requests to it: machine 2 calls machine 1
// before it answers (as two endpoints calling each other do).
TYPED_TEST(RpcCallAllTest, TheCallerServesRequestsWhileItWaits) {
  std::atomic<int> served{0};
  this->ep_[1]->Register(kEcho, [&](fabric::MachineId from, absl::Span<const uint8_t> req) {
    EXPECT_EQ(from, 2u);
    served.fetch_add(1);
    return Echo(from, req);
  });
  this->ep_[2]->Register(kAskBack, [this](fabric::MachineId, absl::Span<const uint8_t> req) {
    absl::StatusOr<std::string> back = this->ep_[2]->Call(1, kEcho, req, absl::Seconds(10));
    return back.ok() ? "back:" + *back : std::string(back.status().message());
  });
  this->Serve(2);
  this->Serve(3);
  using PendingCall = typename RpcEndpoint<TypeParam>::PendingCall;
  const std::string q = "q", rr = "r";
  const PendingCall calls[] = {this->ep_[1]->Start(2, kAskBack, Bytes(q), absl::Seconds(10)),
                               this->ep_[1]->Start(3, kEcho, Bytes(rr), absl::Seconds(10))};
  absl::StatusOr<std::string> r[2];
  this->ep_[1]->Await(calls, absl::MakeSpan(r));
  ASSERT_TRUE(r[0].ok()) << r[0].status();
  EXPECT_EQ(*r[0], "back:q");
  ASSERT_TRUE(r[1].ok()) << r[1].status();
  EXPECT_EQ(*r[1], "r");
  EXPECT_EQ(served.load(), 1);
}

}  // namespace
}  // namespace dctk::farm::msg
