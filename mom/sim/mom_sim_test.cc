// A small fat tree (k=4) in ns-3: the designs order as the MOM design predicts.
// The simulation is deterministic per seed, so this test is too.
#include "mom/sim/mom_sim.h"

#include <map>

#include "gtest/gtest.h"

namespace dctk::mom {
namespace {

constexpr int kSeeds = 3;

MomSimConfig SmallRun(Design design, uint64_t seed) {
  MomSimConfig c;
  c.k = 4;
  c.design = design;
  c.senders = 4;
  c.receivers = 5;
  c.messages_per_second = 2000;
  c.load = 0.6;
  c.warmup = absl::Milliseconds(5);
  c.duration = absl::Milliseconds(60);
  c.seed = seed;
  return c;
}

TEST(MomSimTest, DesignsOrderAsExpectedOnASmallFatTree) {
  std::map<Design, double> mean_rate;
  std::map<Design, std::map<uint64_t, MomSimResult>> runs;
  for (Design d : kAllDesigns) {
    for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
      absl::StatusOr<MomSimResult> r = RunMomSimulation(SmallRun(d, seed));
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_GT(r->reorder.messages, 300u);  // about 4 x 2000/s x 60 ms
      EXPECT_GT(r->background_flows, 10u);
      EXPECT_GT(r->background_bytes_received, 0u);
      mean_rate[d] += r->reorder.reorder_rate() / kSeeds;
      runs[d][seed] = *r;
      std::cout << DesignName(d) << " seed " << seed << ": " << r->reorder.ToString()
                << " p99 latency " << r->latency_p99_us << " us\n";
    }
  }
  // In-network serialization: all receivers see the sequencer's order.
  for (const auto& [seed, r] : runs[Design::kSerialized]) {
    EXPECT_EQ(r.reorder.reordered, 0u) << "seed " << seed;
  }
  EXPECT_LE(mean_rate[Design::kSerialized], mean_rate[Design::kTopologyAwareQos]);
  EXPECT_LE(mean_rate[Design::kTopologyAwareQos], mean_rate[Design::kTopologyAware]);
  EXPECT_LT(mean_rate[Design::kTopologyAware], mean_rate[Design::kNaive]);
  // Priority queueing works: MOM copies no longer wait behind background queues.
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    EXPECT_LT(runs[Design::kTopologyAwareQos][seed].latency_p99_us,
              runs[Design::kTopologyAware][seed].latency_p99_us / 2)
        << "seed " << seed;
  }
}

TEST(MomSimTest, ZeroLoadTopologyAwareHasNoReordering) {
  // Equal path lengths and no queueing: every receiver sees send order.
  MomSimConfig c = SmallRun(Design::kTopologyAware, 1);
  c.load = 0;
  c.duration = absl::Milliseconds(20);
  absl::StatusOr<MomSimResult> r = RunMomSimulation(c);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->reorder.messages, 100u);
  EXPECT_EQ(r->reorder.reordered, 0u);
  c.design = Design::kNaive;
  r = RunMomSimulation(c);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->reorder.reordered, 0u);  // unequal path lengths alone reorder
}

TEST(MomSimTest, FailedCoreLinksBlacklistRootsAndEveryCopyStillArrives) {
  int seeds_with_blacklisted_roots = 0;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    for (Design d : {Design::kTopologyAware, Design::kSerialized}) {
      MomSimConfig c = SmallRun(d, seed);
      c.duration = absl::Milliseconds(20);
      c.load = 0.2;
      c.failed_core_links = 2;  // of 16: at most 2 of the 4 cores lose a pod
      absl::StatusOr<MomSimResult> r = RunMomSimulation(c);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_GT(r->reorder.messages, 100u);
      EXPECT_EQ(r->reorder.incomplete, 0u) << DesignName(d) << " seed " << seed;
      EXPECT_GE(r->eligible_roots, 1);
      if (d == Design::kSerialized) {
        EXPECT_EQ(r->reorder.reordered, 0u);
        if (r->eligible_roots < 4) ++seeds_with_blacklisted_roots;  // (k/2)^2 cores
      }
    }
  }
  EXPECT_GT(seeds_with_blacklisted_roots, 0) << "no failure took a root out of service";
}

TEST(MomSimTest, RejectsBadConfigs) {
  MomSimConfig c;
  c.k = 3;
  EXPECT_FALSE(RunMomSimulation(c).ok());
  c.k = 4;
  c.senders = 10;
  c.receivers = 10;  // 20 hosts > 16
  EXPECT_FALSE(RunMomSimulation(c).ok());
  c.senders = 2;
  c.receivers = 3;
  c.load = 1.5;
  EXPECT_FALSE(RunMomSimulation(c).ok());
  c = SmallRun(Design::kNaive, 1);
  c.failed_core_links = 17;  // a k=4 fat tree has 16 core links
  EXPECT_FALSE(RunMomSimulation(c).ok());
}

}  // namespace
}  // namespace dctk::mom
