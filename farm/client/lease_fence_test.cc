#include "farm/client/lease_fence.h"

#include <thread>

#include "gtest/gtest.h"

namespace dctk::farm::client {
namespace {

constexpr int64_t kMs = 1'000'000;
constexpr absl::Duration kLease = absl::Milliseconds(80);

// Lease 80 ms: a renewal sent at t opens the fence until t + 70 ms.
TEST(LeaseFenceTest, ClosedUntilTheFirstRenewalThenOpenForTheLeaseLessAnEighthFromTheSend) {
  LeaseFence fence;
  EXPECT_FALSE(fence.Open(0));
  EXPECT_EQ(fence.valid_until(), LeaseFence::kNever);
  fence.Renewed(1000 * kMs, kLease);
  EXPECT_TRUE(fence.Open(1000 * kMs));
  EXPECT_TRUE(fence.Open(1070 * kMs - 1));
  EXPECT_FALSE(fence.Open(1070 * kMs))
      << "the CM may remove it at 1080 ms on its clock, running 1/8 fast";
  EXPECT_FALSE(fence.Open(5000 * kMs))
      << "a client paused past its lease reads nothing on resuming";
}

TEST(LeaseFenceTest, ALaterRenewalReopensItAndAnOvertakenOneDoesNotShortenIt) {
  LeaseFence fence;
  fence.Renewed(1000 * kMs, kLease);
  fence.Renewed(2000 * kMs, kLease);  // after a pause: open again
  EXPECT_TRUE(fence.Open(2069 * kMs));
  fence.Renewed(1500 * kMs, kLease);  // acknowledged late, sent earlier
  EXPECT_TRUE(fence.Open(2069 * kMs));
  EXPECT_EQ(fence.valid_until(), 2070 * kMs);
}

TEST(LeaseFenceTest, ARemovedMemberStaysClosed) {
  LeaseFence fence;
  fence.Renewed(1000 * kMs, kLease);
  fence.Remove();
  EXPECT_TRUE(fence.removed());
  EXPECT_FALSE(fence.Open(1000 * kMs));
  // A renewal acknowledged before the refusal, processed after it:
  fence.Renewed(3000 * kMs, kLease);
  EXPECT_FALSE(fence.Open(3000 * kMs));
  EXPECT_TRUE(fence.removed());
}

TEST(LeaseFenceTest, TheMonotonicClockAdvances) {
  const int64_t a = LeaseFence::Now();
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_GT(LeaseFence::Now(), a);
}

}  // namespace
}  // namespace dctk::farm::client
