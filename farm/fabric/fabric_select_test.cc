#include "farm/fabric/fabric_select.h"

#include "farm/fabric/verbs_fabric.h"
#include "gtest/gtest.h"

namespace dctk::farm::fabric {
namespace {

TEST(FabricSelectTest, AutoPicksVerbsExactlyWhenADeviceExists) {
  EXPECT_EQ(ChooseFabricKind(), VerbsDeviceCount() > 0 ? FabricKind::kVerbs : FabricKind::kShm);
  EXPECT_EQ(*ParseFabricKind("auto"), ChooseFabricKind());
}

TEST(FabricSelectTest, ParsesNamesAndRejectsUnknownOnes) {
  EXPECT_EQ(*ParseFabricKind("shm"), FabricKind::kShm);
  EXPECT_EQ(ParseFabricKind("tcp").status().code(), absl::StatusCode::kInvalidArgument);
  if (VerbsDeviceCount() == 0) {
    EXPECT_EQ(ParseFabricKind("verbs").status().code(), absl::StatusCode::kFailedPrecondition);
  }
}

TEST(FabricSelectTest, VerbsCreateFailsCleanlyWithoutADevice) {
  if (VerbsDeviceCount() > 0) GTEST_SKIP() << "an RDMA device exists here";
  VerbsFabric::Options o;
  o.machine_id = 1;
  auto f = VerbsFabric::Create(o);
  EXPECT_EQ(f.status().code(), absl::StatusCode::kFailedPrecondition) << f.status();
}

}  // namespace
}  // namespace dctk::farm::fabric
