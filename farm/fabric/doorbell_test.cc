#include "farm/fabric/doorbell.h"

#include <atomic>
#include <thread>

#include "gtest/gtest.h"

namespace dctk::farm::fabric {
namespace {

TEST(DoorbellTest, WaitReturnsAtOnceIfTheBellRangSinceTheEpochWasRead) {
  Doorbell bell;
  const uint32_t seen = bell.epoch();
  bell.Ring();
  EXPECT_NE(bell.epoch(), seen);
  bell.Wait(seen, absl::Hours(1));  // would hang if it slept
  EXPECT_EQ(bell.sleeps(), 0u);
  EXPECT_EQ(bell.rings(), 1u);
}

TEST(DoorbellTest, ZeroOrNegativeTimeoutNeverSleeps) {
  Doorbell bell;
  bell.Wait(bell.epoch(), absl::ZeroDuration());
  bell.Wait(bell.epoch(), -absl::Seconds(1));
  EXPECT_EQ(bell.sleeps(), 0u);
}

TEST(DoorbellTest, RingWakesEveryWaiter) {
  Doorbell bell;
  std::atomic<int> done{0};
  const uint32_t seen = bell.epoch();
  std::thread waiters[3];
  for (auto& t : waiters) {
    t = std::thread([&] {
      bell.Wait(seen, absl::Hours(1));  // only the ring ends this wait
      done.fetch_add(1);
    });
  }
  bell.Ring();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(done.load(), 3);
}

TEST(DoorbellTest, AWaitWithoutARingTimesOut) {
  Doorbell bell;
  bell.Wait(bell.epoch(), absl::Milliseconds(1));
  EXPECT_EQ(bell.sleeps(), 1u);
}

}  // namespace
}  // namespace dctk::farm::fabric
