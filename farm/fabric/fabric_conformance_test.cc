// The fabric conformance suite: every backend available on this machine must
// pass it. Backends without hardware (verbs here) skip with the reason.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "farm/fabric/fabric.h"
#include "farm/fabric/fabric_test_backends.h"
#include "farm/fabric/sync.h"
#include "gtest/gtest.h"

namespace dctk::farm::fabric {
namespace {

template <typename F>
class FabricConformanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string skip = TestBackend<F>::SkipReason();
    if (!skip.empty()) GTEST_SKIP() << skip;
    auto a = TestBackend<F>::Make(1);
    auto b = TestBackend<F>::Make(2);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(b.ok()) << b.status();
    a_ = std::move(*a);
    b_ = std::move(*b);
    auto region = b_->Register(kRegionSize);
    ASSERT_TRUE(region.ok()) << region.status();
    region_ = *region;
    ASSERT_TRUE(a_->Connect(2, b_->endpoint()).ok());
    auto q = a_->CreateQueue();
    ASSERT_TRUE(q.ok()) << q.status();
    queue_ = std::move(*q);
    local_.assign(kRegionSize, 0);
    ASSERT_TRUE(a_->RegisterLocal(local_.data(), local_.size()).ok());
  }
  void TearDown() override {
    queue_.reset();
    a_.reset();
    b_.reset();
  }

  RemoteAddress At(uint64_t offset) const { return {2, region_.key, offset}; }
  uint8_t* Remote() const { return static_cast<uint8_t*>(region_.base); }

  static constexpr uint64_t kRegionSize = 64 * 1024;
  std::unique_ptr<F> a_, b_;
  MemoryRegion region_;
  std::unique_ptr<typename F::Queue> queue_;
  std::vector<uint8_t> local_;
};

TYPED_TEST_SUITE(FabricConformanceTest, AllBackends);

TYPED_TEST(FabricConformanceTest, WriteThenReadRoundTripsAtAnyOffsetAndLength) {
  const std::pair<uint64_t, uint32_t> cases[] = {
      {0, 1}, {1, 7}, {8, 8}, {13, 64}, {64, 64}, {100, 65}, {4093, 4096}, {65536 - 3, 3}};
  uint8_t seed = 1;
  for (auto [offset, length] : cases) {
    for (uint32_t i = 0; i < length; ++i) this->local_[i] = static_cast<uint8_t>(seed + i * 7);
    ASSERT_TRUE(SyncWrite(*this->queue_, this->At(offset), this->local_.data(), length).ok());
    EXPECT_EQ(std::memcmp(this->Remote() + offset, this->local_.data(), length), 0)
        << "write at " << offset << " len " << length;
    uint8_t* back = this->local_.data() + 8192;
    std::memset(back, 0, length);
    ASSERT_TRUE(SyncRead(*this->queue_, this->At(offset), back, length).ok());
    EXPECT_EQ(std::memcmp(back, this->local_.data(), length), 0)
        << "read at " << offset << " len " << length;
    ++seed;
  }
}

TYPED_TEST(FabricConformanceTest, CompareAndSwapSwapsOnlyOnMatchAndReturnsOldValue) {
  uint64_t* scratch = reinterpret_cast<uint64_t*>(this->local_.data());
  std::memcpy(this->Remote() + 64, "\x05\0\0\0\0\0\0\0", 8);
  auto old = SyncCompareAndSwap(*this->queue_, this->At(64), 5, 9, scratch);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(*old, 5u);
  old = SyncCompareAndSwap(*this->queue_, this->At(64), 5, 11, scratch);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(*old, 9u);
  uint64_t now;
  std::memcpy(&now, this->Remote() + 64, 8);
  EXPECT_EQ(now, 9u);
}

TYPED_TEST(FabricConformanceTest, InvalidKeyFailsAndTouchesNoMemory) {
  std::memset(this->local_.data(), 0xAB, 64);
  absl::Status s = SyncRead(*this->queue_, {2, this->region_.key + 100, 0}, this->local_.data(), 64);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_NE(s.message().find("INVALID_KEY"), std::string::npos) << s;
  for (int i = 0; i < 64; ++i) ASSERT_EQ(this->local_[i], 0xAB);
  s = SyncWrite(*this->queue_, {2, 0, 0}, this->local_.data(), 64);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  for (int i = 0; i < 64; ++i) ASSERT_EQ(this->Remote()[i], 0);
  EXPECT_EQ(this->queue_->stats().count(CompletionCode::kInvalidKey), 2u);
  EXPECT_EQ(this->queue_->stats().posted, 2u);
}

TYPED_TEST(FabricConformanceTest, OutOfBoundsFailsAndTouchesNoMemory) {
  const uint64_t size = this->region_.size;
  std::memset(this->local_.data(), 0xCD, 64);
  absl::Status s = SyncWrite(*this->queue_, this->At(size - 4), this->local_.data(), 8);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
  EXPECT_NE(s.message().find("OUT_OF_BOUNDS"), std::string::npos) << s;
  for (uint64_t i = size - 8; i < size; ++i) ASSERT_EQ(this->Remote()[i], 0);
  s = SyncRead(*this->queue_, this->At(~uint64_t{0} - 2), this->local_.data(), 8);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
  for (int i = 0; i < 64; ++i) ASSERT_EQ(this->local_[i], 0xCD);
  uint64_t scratch = 77;
  auto cas = SyncCompareAndSwap(*this->queue_, this->At(size), 0, 1, &scratch);
  EXPECT_EQ(cas.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(scratch, 77u);
}

TYPED_TEST(FabricConformanceTest, MisalignedCompareAndSwapFails) {
  uint64_t scratch = 0;
  auto cas = SyncCompareAndSwap(*this->queue_, this->At(12), 0, 1, &scratch);
  EXPECT_EQ(cas.status().code(), absl::StatusCode::kInvalidArgument) << cas.status();
  for (int i = 0; i < 24; ++i) ASSERT_EQ(this->Remote()[i], 0);
}

TYPED_TEST(FabricConformanceTest, UnknownMachineFails) {
  absl::Status s = SyncRead(*this->queue_, {42, this->region_.key, 0}, this->local_.data(), 8);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_NE(s.message().find("machine 42"), std::string::npos) << s;
}

TYPED_TEST(FabricConformanceTest, RegionRegisteredAfterConnectIsUsableAtOnce) {
  auto later = this->b_->Register(4096);
  ASSERT_TRUE(later.ok()) << later.status();
  static_cast<uint8_t*>(later->base)[10] = 42;
  ASSERT_TRUE(SyncRead(*this->queue_, {2, later->key, 10}, this->local_.data(), 1).ok());
  EXPECT_EQ(this->local_[0], 42);
}

TYPED_TEST(FabricConformanceTest, DeregisteredRegionRejectsOperations) {
  auto r = this->b_->Register(4096);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(SyncRead(*this->queue_, {2, r->key, 0}, this->local_.data(), 8).ok());
  ASSERT_TRUE(this->b_->Deregister(r->key).ok());
  EXPECT_EQ(SyncRead(*this->queue_, {2, r->key, 0}, this->local_.data(), 8).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(this->b_->Deregister(r->key).code(), absl::StatusCode::kNotFound);
}

TYPED_TEST(FabricConformanceTest, ManyOutstandingOperationsCompleteInPostOrder) {
  constexpr int kOps = 100;
  for (int i = 0; i < kOps; ++i) {
    this->Remote()[i * 8] = static_cast<uint8_t>(i);
    ASSERT_TRUE(this->queue_->PostRead(this->At(i * 8), this->local_.data() + i * 8, 8, 1000 + i).ok());
  }
  std::vector<Completion> done(kOps);
  int n = 0;
  while (n < kOps) n += this->queue_->PollCompletions(absl::MakeSpan(done).subspan(n));
  for (int i = 0; i < kOps; ++i) {
    EXPECT_EQ(done[i].wr_id, 1000u + i);
    EXPECT_TRUE(done[i].ok());
    EXPECT_EQ(this->local_[i * 8], static_cast<uint8_t>(i));
  }
}

TYPED_TEST(FabricConformanceTest, MachineReachesItsOwnRegions) {
  auto own = this->a_->Register(4096);
  ASSERT_TRUE(own.ok());
  static_cast<uint8_t*>(own->base)[5] = 9;
  ASSERT_TRUE(SyncRead(*this->queue_, {1, own->key, 5}, this->local_.data(), 1).ok());
  EXPECT_EQ(this->local_[0], 9);
}

}  // namespace
}  // namespace dctk::farm::fabric
