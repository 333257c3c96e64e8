// RPC and function shipping over message rings, on shm and net fabrics.
#include "farm/msg/rpc.h"

#include <sched.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>

#include "farm/core/object.h"
#include "farm/fabric/net_fabric.h"
#include "farm/fabric/shm_fabric.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::farm::msg {
namespace {

using fabric::NetFabric;
using fabric::ShmFabric;

constexpr uint16_t kEcho = 1;
constexpr uint16_t kIncrement = 2;

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

template <typename F>
class RpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (fabric::MachineId id : {1u, 2u}) {
      typename F::Options o;
      o.machine_id = id;
      auto f = F::Create(o);
      ASSERT_TRUE(f.ok());
      (id == 1 ? fa_ : fb_) = std::move(*f);
    }
    ASSERT_TRUE(fa_->Connect(2, fb_->endpoint()).ok());
    ASSERT_TRUE(fb_->Connect(1, fa_->endpoint()).ok());
    qa_ = std::move(*fa_->CreateQueue());
    qb_ = std::move(*fb_->CreateQueue());
    a_ = std::make_unique<RpcEndpoint<F>>(*fa_, qa_.get(), 1);
    b_ = std::make_unique<RpcEndpoint<F>>(*fb_, qb_.get(), 2);
    ASSERT_TRUE(WireRpc(*a_, *fa_, *b_, *fb_, 8192).ok());
  }
  void TearDown() override { StopServer(); }

  // Machine 2's thread: serves until stopped (its Poll sleeps while idle
  // where the fabric has doorbells).
  void StartServer() {
    server_ = std::thread([this] {
      while (!stop_.load()) ASSERT_TRUE(b_->Poll().ok());
    });
  }
  void StopServer() {
    stop_ = true;
    if (server_.joinable()) server_.join();
  }

  std::unique_ptr<F> fa_, fb_;
  std::unique_ptr<typename F::Queue> qa_, qb_;
  std::unique_ptr<RpcEndpoint<F>> a_, b_;
  std::atomic<bool> stop_{false};
  std::thread server_;
};

using Backends = ::testing::Types<ShmFabric, NetFabric>;
TYPED_TEST_SUITE(RpcTest, Backends);

// Group commit's hook: it runs after the handlers of a poll and before any
// of their responses leaves, and not at all on a poll that served nothing.
TYPED_TEST(RpcTest, BeforeResponsesRunsBetweenHandlersAndResponses) {
  std::atomic<int> handled{0}, hooks{0};
  this->b_->Register(kEcho, [&](fabric::MachineId, absl::Span<const uint8_t> req) {
    handled.fetch_add(1);
    return std::string(req.begin(), req.end());
  });
  this->b_->set_before_responses([&] {
    EXPECT_EQ(handled.load(), hooks.load() + 1) << "the hook runs after its poll's handler";
    hooks.fetch_add(1);
  });
  ASSERT_TRUE(this->b_->Poll().ok());
  EXPECT_EQ(hooks.load(), 0);
  this->StartServer();
  for (int i = 1; i <= 3; ++i) {
    absl::StatusOr<std::string> r = this->a_->Call(2, kEcho, Bytes("x"), absl::Seconds(5));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(hooks.load(), i) << "a response left before the hook ran";
  }
}

TYPED_TEST(RpcTest, EchoManyCallsIncludingLargeOnesThatFillTheRing) {
  this->b_->Register(kEcho, [](fabric::MachineId from, absl::Span<const uint8_t> req) {
    EXPECT_EQ(from, 1u);
    return std::string(req.begin(), req.end());
  });
  this->StartServer();
  for (int i = 0; i < 500; ++i) {
    const std::string req(i % 7 == 0 ? 1500 : i % 50, static_cast<char>('a' + i % 26));
    auto reply = this->a_->Call(2, kEcho, Bytes(req), absl::Seconds(10));
    ASSERT_TRUE(reply.ok()) << reply.status();
    ASSERT_EQ(*reply, req) << "call " << i;
  }
}

TYPED_TEST(RpcTest, UnknownHandlerAndUnknownPeerAreErrors) {
  this->StartServer();
  auto reply = this->a_->Call(2, 99, Bytes("x"), absl::Seconds(10));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnimplemented) << reply.status();
  EXPECT_EQ(this->a_->Call(7, kEcho, Bytes("x"), absl::Seconds(1)).status().code(),
            absl::StatusCode::kNotFound);
}

TYPED_TEST(RpcTest, NoServerMeansDeadlineExceededNotAHang) {
  auto reply = this->a_->Call(2, kEcho, Bytes("x"), absl::Milliseconds(50));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kDeadlineExceeded) << reply.status();
}

TYPED_TEST(RpcTest, ACallStopsWaitingWhenItsGiveUpPredicateSaysSo) {
  // No server: the answer never comes, and the timeout is an hour. Another
  // thread flips the predicate once the call is waiting (here: at once); the
  // call must notice it without anything written to its rings.
  std::atomic<bool> give_up{false};
  std::atomic<int> asked{0};
  std::thread flip([&] {
    while (asked.load() == 0) sched_yield();
    give_up.store(true);
  });
  auto reply = this->a_->Call(2, kEcho, Bytes("x"), absl::Hours(1), [&] {
    asked.fetch_add(1);
    return give_up.load();
  });
  flip.join();
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kDeadlineExceeded) << reply.status();
  EXPECT_THAT(std::string(reply.status().message()), ::testing::HasSubstr("gave up"));
  EXPECT_EQ(this->a_->given_up(), 1u);
  // A predicate that never fires changes nothing for an answered call. The
  // server answers "x" first (same ring): that late answer is dropped.
  this->b_->Register(kEcho, [](fabric::MachineId, absl::Span<const uint8_t> req) {
    return std::string(req.begin(), req.end());
  });
  this->StartServer();
  reply = this->a_->Call(2, kEcho, Bytes("y"), absl::Seconds(10), [] { return false; });
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "y");
  EXPECT_EQ(this->a_->given_up(), 1u);
  EXPECT_EQ(this->a_->late_responses(), 1u);
}

TYPED_TEST(RpcTest, ARemovedPeerIsNotCalledUntilWiredAgain) {
  this->b_->Register(kEcho, [](fabric::MachineId, absl::Span<const uint8_t> req) {
    return std::string(req.begin(), req.end());
  });
  this->StartServer();
  ASSERT_TRUE(this->a_->Call(2, kEcho, Bytes("x"), absl::Seconds(10)).ok());
  ASSERT_TRUE(this->a_->RemovePeer(2).ok());
  EXPECT_EQ(this->a_->peer_count(), 0u);
  EXPECT_EQ(this->a_->Call(2, kEcho, Bytes("x"), absl::Seconds(1)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(this->a_->RemovePeer(2).code(), absl::StatusCode::kNotFound);
  this->StopServer();
  // Wired again (new rings each way, as for a restarted machine).
  this->b_ = std::make_unique<RpcEndpoint<TypeParam>>(*this->fb_, this->qb_.get(), 2);
  this->b_->Register(kEcho, [](fabric::MachineId, absl::Span<const uint8_t> req) {
    return std::string(req.begin(), req.end());
  });
  ASSERT_TRUE(WireRpc(*this->a_, *this->fa_, *this->b_, *this->fb_, 8192).ok());
  this->stop_ = false;
  this->StartServer();
  auto reply = this->a_->Call(2, kEcho, Bytes("again"), absl::Seconds(10));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "again");
}

TYPED_TEST(RpcTest, ADroppedResponseTimesOutAndTheNextCallIsAnswered) {
  int calls = 0;
  this->b_->Register(kEcho, [&](fabric::MachineId, absl::Span<const uint8_t> req) {
    if (++calls == 1) this->b_->DropResponse();  // fault injection: the first answer is lost
    return std::string(req.begin(), req.end());
  });
  this->StartServer();
  auto reply = this->a_->Call(2, kEcho, Bytes("lost"), absl::Milliseconds(200));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kDeadlineExceeded) << reply.status();
  reply = this->a_->Call(2, kEcho, Bytes("kept"), absl::Seconds(10));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "kept");
  EXPECT_EQ(this->a_->late_responses(), 0u);  // the lost answer never came
  this->StopServer();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(this->b_->dropped_responses(), 1u);
}

TYPED_TEST(RpcTest, FunctionShippingRunsAtTheObjectsPrimary) {
  // Region 7 lives on machine 2; an object there holds a counter.
  auto region = this->fb_->Register(1 << 16);
  ASSERT_TRUE(region.ok());
  RegionTable table;
  ASSERT_TRUE(table.Upsert({7, region->size, {{2, region->key}}}).ok());
  RegionTable::Cache cache(&table);
  auto* obj = static_cast<uint8_t*>(region->base) + 128;
  InitObject(obj, 1);
  // The shipped function: increment the object in place under its lock.
  this->b_->Register(kIncrement, [&](fabric::MachineId, absl::Span<const uint8_t>) {
    uint64_t header = __atomic_load_n(reinterpret_cast<uint64_t*>(obj), __ATOMIC_ACQUIRE);
    EXPECT_TRUE(ObjectWriter::TryLock(obj, VersionOf(header)));
    uint64_t value;
    std::memcpy(&value, obj + 8, 8);
    ++value;
    ObjectWriter::Write(obj, 1, &value, 8);
    ObjectWriter::Unlock(obj, true);
    return std::to_string(value);
  });
  this->StartServer();
  for (int i = 1; i <= 20; ++i) {
    auto reply = this->a_->CallAt(cache, GlobalAddress(7, 128), kIncrement, {}, absl::Seconds(10));
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(*reply, std::to_string(i));
  }
  EXPECT_EQ(this->a_->CallAt(cache, GlobalAddress(8, 0), kIncrement, {}, absl::Seconds(1)).status().code(),
            absl::StatusCode::kNotFound);
}

TYPED_TEST(RpcTest, EndpointsSleepOnDoorbellsWhereTheFabricHasThem) {
  const bool net = std::is_same_v<TypeParam, NetFabric>;
  EXPECT_EQ(this->a_->has_doorbell(), net);
  EXPECT_EQ(this->b_->has_doorbell(), net);
}

// The net fabric with blocking_waits off: endpoints have no doorbell and
// poll, as before doorbells (the benchmark baseline), and calls still work.
TEST(RpcSpinningTest, NetFabricWithoutBlockingWaitsPolls) {
  std::unique_ptr<NetFabric> f[2];
  for (fabric::MachineId id : {1u, 2u}) {
    auto made = NetFabric::Create({.machine_id = id, .blocking_waits = false});
    ASSERT_TRUE(made.ok());
    f[id - 1] = std::move(*made);
  }
  ASSERT_TRUE(f[0]->Connect(2, f[1]->endpoint()).ok());
  ASSERT_TRUE(f[1]->Connect(1, f[0]->endpoint()).ok());
  auto qa = std::move(*f[0]->CreateQueue());
  auto qb = std::move(*f[1]->CreateQueue());
  RpcEndpoint<NetFabric> a(*f[0], qa.get(), 1), b(*f[1], qb.get(), 2);
  ASSERT_TRUE(WireRpc(a, *f[0], b, *f[1], 8192).ok());
  EXPECT_FALSE(a.has_doorbell());
  b.Register(kEcho, [](fabric::MachineId, absl::Span<const uint8_t> req) {
    return std::string(req.begin(), req.end());
  });
  std::atomic<bool> stop{false};
  std::thread server([&] {
    while (!stop.load()) ASSERT_TRUE(b.Poll().ok());
  });
  for (int i = 0; i < 50; ++i) {
    auto reply = a.Call(2, kEcho, Bytes(std::string(i, 'x')), absl::Seconds(10));
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(reply->size(), static_cast<size_t>(i));
  }
  stop = true;
  server.join();
}

}  // namespace
}  // namespace dctk::farm::msg
