// Message rings over every fabric without special hardware (shm, net): order,
// wrap-around, back-pressure without overwriting unprocessed messages, lazy
// head updates, and partially written messages never delivered.
#include <cstring>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "farm/fabric/net_fabric.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/msg/ring_receiver.h"
#include "farm/msg/ring_sender.h"
#include "gtest/gtest.h"

namespace dctk::farm::msg {
namespace {

using fabric::NetFabric;
using fabric::ShmFabric;

template <typename F>
std::unique_ptr<F> Make(fabric::MachineId id) {
  typename F::Options o;
  o.machine_id = id;
  auto f = F::Create(o);
  EXPECT_TRUE(f.ok()) << f.status();
  return std::move(*f);
}

// Machine 1 sends to machine 2: the ring is in 2's memory, the head word in 1's.
template <typename F>
class RingTest : public ::testing::Test {
 protected:
  void Build(uint64_t ring_size) {
    receiver_machine_ = Make<F>(2);
    sender_machine_ = Make<F>(1);
    auto ring = receiver_machine_->Register(ring_size);
    auto head = sender_machine_->Register(4096);
    ASSERT_TRUE(ring.ok() && head.ok());
    ring_ = *ring;
    ASSERT_TRUE(sender_machine_->Connect(2, receiver_machine_->endpoint()).ok());
    ASSERT_TRUE(receiver_machine_->Connect(1, sender_machine_->endpoint()).ok());
    send_queue_ = std::move(*sender_machine_->CreateQueue());
    recv_queue_ = std::move(*receiver_machine_->CreateQueue());
    auto tx = RingSender<F>::Create(*sender_machine_, send_queue_.get(), {2, ring->key, 0}, ring_size,
                                    static_cast<const uint64_t*>(head->base));
    auto rx = RingReceiver<F>::Create(*receiver_machine_, recv_queue_.get(),
                                      static_cast<uint8_t*>(ring->base), ring_size, {1, head->key, 0});
    ASSERT_TRUE(tx.ok() && rx.ok());
    tx_ = std::move(*tx);
    rx_ = std::move(*rx);
  }

  int Drain(std::vector<std::string>* out, int max = 1 << 30) {
    auto n = rx_->Poll([&](absl::Span<const uint8_t> m) { out->emplace_back(m.begin(), m.end()); }, max);
    EXPECT_TRUE(n.ok()) << n.status();
    return n.ok() ? *n : 0;
  }

  static absl::Span<const uint8_t> Bytes(const std::string& s) {
    return absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }

  std::unique_ptr<F> receiver_machine_, sender_machine_;
  fabric::MemoryRegion ring_;
  std::unique_ptr<typename F::Queue> send_queue_, recv_queue_;
  std::unique_ptr<RingSender<F>> tx_;
  std::unique_ptr<RingReceiver<F>> rx_;
};

using Backends = ::testing::Types<ShmFabric, NetFabric>;
TYPED_TEST_SUITE(RingTest, Backends);

TYPED_TEST(RingTest, DeliversInOrderAcrossManyWrapArounds) {
  this->Build(4096);
  std::mt19937 rng(3);
  std::deque<std::string> expected;
  std::vector<std::string> got;
  for (int i = 0; i < 3000; ++i) {
    std::string m(rng() % (this->tx_->max_message() + 1), '\0');
    for (auto& c : m) c = static_cast<char>(rng());
    absl::Status s = this->tx_->Send(this->Bytes(m));
    if (absl::IsResourceExhausted(s)) {
      this->Drain(&got);
      s = this->tx_->Send(this->Bytes(m));
    }
    ASSERT_TRUE(s.ok()) << s;
    expected.push_back(m);
    if (rng() % 4 == 0) this->Drain(&got, 1 + rng() % 4);
  }
  while (got.size() < expected.size()) ASSERT_GT(this->Drain(&got), 0);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], expected[i]) << "message " << i;
  EXPECT_GT(this->rx_->head_updates(), 10u);  // many laps
}

TYPED_TEST(RingTest, FullRingPushesBackAndNeverOverwritesUnprocessedMessages) {
  this->Build(1024);
  int sent = 0;
  absl::Status s;
  while ((s = this->tx_->Send(this->Bytes(std::string(100, 'a' + sent % 26)))).ok()) ++sent;
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_GT(sent, 0);
  std::vector<std::string> got;
  EXPECT_EQ(this->Drain(&got), sent);
  for (int i = 0; i < sent; ++i) ASSERT_EQ(got[i], std::string(100, 'a' + i % 26));
  EXPECT_TRUE(this->tx_->Send(this->Bytes("after")).ok());  // the head report made room
}

TYPED_TEST(RingTest, HeadIsReturnedLazilyAfterHalfTheRing) {
  this->Build(4096);
  const std::string m(100, 'x');  // 128-byte records
  for (int i = 0; i < 15; ++i) ASSERT_TRUE(this->tx_->Send(this->Bytes(m)).ok());  // 1920 B
  std::vector<std::string> got;
  this->Drain(&got);
  EXPECT_EQ(this->rx_->head_updates(), 0u) << "reported before half the ring was consumed";
  ASSERT_TRUE(this->tx_->Send(this->Bytes(m)).ok());  // 2048 B: half
  this->Drain(&got);
  EXPECT_EQ(this->rx_->head_updates(), 1u);
  EXPECT_EQ(got.size(), 16u);
}

TYPED_TEST(RingTest, RejectsMessagesLargerThanTheRingAllows) {
  this->Build(1024);
  EXPECT_EQ(this->tx_->Send(this->Bytes(std::string(this->tx_->max_message() + 1, 'z'))).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(this->tx_->Send(this->Bytes(std::string(this->tx_->max_message(), 'z'))).ok());
}

// Only the shm fabric can pause a WRITE between cache lines.
class ShmRingTest : public RingTest<ShmFabric> {};

TEST_F(ShmRingTest, PartiallyWrittenMessageIsNotDelivered) {
  Build(4096);
  const std::string m(300, 'p');
  int boundaries = 0, seen_mid_write = -1;
  std::vector<std::string> got;
  fabric::FaultOptions faults;
  faults.adversarial = true;
  faults.max_spin = 1;
  faults.on_line_boundary = [&] {
    if (++boundaries == 3) seen_mid_write = Drain(&got);  // header written, trailer not
  };
  send_queue_->SetFaultOptions(faults);
  ASSERT_TRUE(tx_->Send(Bytes(m)).ok());
  EXPECT_EQ(seen_mid_write, 0);
  EXPECT_EQ(Drain(&got), 1);
  EXPECT_EQ(got[0], m);
}

}  // namespace
}  // namespace dctk::farm::msg
