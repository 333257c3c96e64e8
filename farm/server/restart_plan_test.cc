#include "farm/server/restart_plan.h"

#include "gtest/gtest.h"

namespace dctk::farm::server {
namespace {

cm::Configuration Base(uint64_t id) {
  cm::Configuration c;
  c.set_id(id);
  c.set_replicas(2);
  c.set_region_size(1 << 20);
  c.set_lease_ms(1000);
  return c;
}

void AddMachine(cm::Configuration* c, uint32_t id, bool client = false) {
  cm::Machine* m = c->add_machines();
  m->set_id(id);
  m->set_endpoint("endpoint-" + std::to_string(id));
  m->set_client(client);
}

cm::Region* AddRegion(cm::Configuration* c, uint32_t id, std::vector<std::pair<uint32_t, bool>> replicas) {
  cm::Region* r = c->add_regions();
  r->set_id(id);
  r->set_size(1 << 20);
  for (auto [machine, copying] : replicas) {
    cm::Replica* rep = r->add_replicas();
    rep->set_machine(machine);
    rep->set_key(77);
    rep->set_copying(copying);
  }
  return r;
}

// Saved: machines 2, 3, 1001 (1 was removed), region 1 on 2+3, region 2 on
// 3 + 1001 (copying). Back with files: 2, 3, 1001.
cm::Configuration Saved() {
  cm::Configuration c = Base(9);
  c.add_failed(1);
  AddMachine(&c, 2);
  AddMachine(&c, 3);
  AddMachine(&c, 1001);
  AddRegion(&c, 1, {{2, false}, {3, false}});
  AddRegion(&c, 2, {{3, false}, {1001, true}});
  return c;
}

TEST(RestartPlanTest, KeepsThePlacementOfTheMachinesThatCameBack) {
  cm::Configuration joined = Base(4);
  for (uint32_t id : {2u, 3u, 1001u}) AddMachine(&joined, id);
  absl::StatusOr<cm::Configuration> plan = PlanRestart(Saved(), joined, {2, 3, 1001});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->id(), 10u);
  ASSERT_EQ(plan->machines_size(), 3);
  EXPECT_EQ(plan->machines(0).endpoint(), "endpoint-2");
  ASSERT_EQ(plan->regions_size(), 2);
  EXPECT_EQ(plan->regions(0).replicas(0).machine(), 2u);
  EXPECT_EQ(plan->regions(0).replicas(0).key(), 0u) << "keys are registered again";
  EXPECT_EQ(plan->regions(1).replicas(1).machine(), 1001u);
  EXPECT_TRUE(plan->regions(1).replicas(1).copying()) << "a copy in progress starts over";
  ASSERT_EQ(plan->failed_size(), 1);
  EXPECT_EQ(plan->failed(0), 1u);
}

TEST(RestartPlanTest, AMachineBackWithoutItsFilesHoldsNothing) {
  cm::Configuration joined = Base(4);
  for (uint32_t id : {2u, 3u, 1001u}) AddMachine(&joined, id);
  absl::StatusOr<cm::Configuration> plan = PlanRestart(Saved(), joined, {3, 1001});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->regions(0).replicas_size(), 1);
  EXPECT_EQ(plan->regions(0).replicas(0).machine(), 3u);
  EXPECT_EQ(plan->machines_size(), 3) << "still a member, as a new machine";
}

TEST(RestartPlanTest, AMissingMachineIsFailedAndItsCopiesDropped) {
  cm::Configuration joined = Base(4);
  for (uint32_t id : {3u, 1001u, 4u}) AddMachine(&joined, id);
  absl::StatusOr<cm::Configuration> plan = PlanRestart(Saved(), joined, {3, 1001});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->regions(0).replicas_size(), 1);
  EXPECT_EQ(plan->failed_size(), 2);
  EXPECT_EQ(plan->failed(1), 2u);
}

TEST(RestartPlanTest, ARegionWithoutACompleteCopyIsRefusedByName) {
  cm::Configuration joined = Base(4);
  for (uint32_t id : {2u, 1001u}) AddMachine(&joined, id);
  absl::StatusOr<cm::Configuration> plan = PlanRestart(Saved(), joined, {2, 1001});
  ASSERT_FALSE(plan.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(plan.status()));
  EXPECT_NE(plan.status().message().find("region 2"), std::string::npos) << plan.status();
  EXPECT_NE(plan.status().message().find("1001 (copying)"), std::string::npos) << plan.status();
}

TEST(RestartPlanTest, GivingUpOnMissingMachinesKeepsTheirRegionsLostByName) {
  cm::Configuration joined = Base(4);
  for (uint32_t id : {2u, 1001u}) AddMachine(&joined, id);
  std::vector<LostRegion> lost;
  absl::StatusOr<cm::Configuration> plan = PlanRestart(Saved(), joined, {2, 1001}, &lost);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].region, 2u);
  EXPECT_NE(lost[0].why.find("machines [3, 1001 (copying)]"), std::string::npos) << lost[0].why;
  ASSERT_EQ(plan->regions_size(), 2);
  EXPECT_FALSE(plan->regions(0).lost());
  ASSERT_EQ(plan->regions(0).replicas_size(), 1);
  EXPECT_EQ(plan->regions(0).replicas(0).machine(), 2u);
  EXPECT_TRUE(plan->regions(1).lost());
  EXPECT_EQ(plan->regions(1).replicas_size(), 0);
}

TEST(RestartPlanTest, AMachineRemovedBeforeTheCrashComesBackAsNew) {
  cm::Configuration joined = Base(4);
  for (uint32_t id : {1u, 2u, 3u, 1001u}) AddMachine(&joined, id);
  absl::StatusOr<cm::Configuration> plan = PlanRestart(Saved(), joined, {1, 2, 3, 1001});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->failed_size(), 0);
  for (const cm::Region& r : plan->regions()) {
    for (const cm::Replica& rep : r.replicas()) EXPECT_NE(rep.machine(), 1u);
  }
}

TEST(RestartPlanTest, OtherSettingsAreRefused) {
  cm::Configuration joined = Base(4);
  joined.set_replicas(3);
  EXPECT_TRUE(absl::IsFailedPrecondition(PlanRestart(Saved(), joined, {}).status()));
}

}  // namespace
}  // namespace dctk::farm::server
