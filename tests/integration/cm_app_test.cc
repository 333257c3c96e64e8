// CmApp through the spaxos::App interface: speculative execution, rollback to
// a slot, commit, and re-execution in another order giving the same state as
// a replica that saw that order first.
#include "tests/integration/cm_app.h"

#include "farm/cm/config_state.h"
#include "gtest/gtest.h"

namespace dctk::integration {
namespace {

namespace cm = farm::cm;

std::string Op(const cm::Command& c) { return c.SerializeAsString(); }

cm::Result Parse(const std::string& s) {
  cm::Result r;
  EXPECT_TRUE(r.ParseFromString(s));
  return r;
}

TEST(CmAppTest, ExecutesCommandsAndReturnsResults) {
  CmApp app;
  spaxos::App& a = app;
  EXPECT_EQ(Parse(a.Execute(1, Op(cm::InitCommand(2, 1 << 20, 100)))).code(), 0);
  cm::Result joined = Parse(a.Execute(2, Op(cm::JoinCommand(1, "e1", "c1", 0))));
  EXPECT_EQ(joined.code(), 0);
  ASSERT_EQ(joined.config().machines_size(), 1);
  EXPECT_EQ(joined.config().machines(0).lease_expiry_ms(), 100);
  EXPECT_EQ(Parse(a.Execute(3, "not a command")).code(),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(app.config().machines_size(), 1);
}

TEST(CmAppTest, RollbackUndoesSpeculativeSlotsAndCommitKeepsThem) {
  CmApp app;
  app.Execute(1, Op(cm::InitCommand(2, 1 << 20, 100)));
  app.Execute(2, Op(cm::JoinCommand(1, "e1", "", 0)));
  app.Commit(2);
  EXPECT_EQ(app.committed(), 2u);
  app.Execute(3, Op(cm::JoinCommand(2, "e2", "", 0)));
  app.Execute(4, Op(cm::CreateRegionCommand()));
  EXPECT_EQ(app.config().machines_size(), 2);
  EXPECT_EQ(app.config().regions_size(), 1);

  app.Rollback(2);  // undoes slots 3 and 4
  EXPECT_EQ(app.config().machines_size(), 1);
  EXPECT_EQ(app.config().regions_size(), 0);

  // The agreed order: region first, then the second machine. The result is
  // the state a replica that saw this order first holds.
  app.Execute(3, Op(cm::CreateRegionCommand()));
  app.Execute(4, Op(cm::JoinCommand(2, "e2", "", 0)));
  CmApp direct;
  direct.Execute(1, Op(cm::InitCommand(2, 1 << 20, 100)));
  direct.Execute(2, Op(cm::JoinCommand(1, "e1", "", 0)));
  direct.Execute(3, Op(cm::CreateRegionCommand()));
  direct.Execute(4, Op(cm::JoinCommand(2, "e2", "", 0)));
  EXPECT_EQ(app.config().SerializeAsString(), direct.config().SerializeAsString());
  // The region was placed while machine 1 was alone: one replica.
  ASSERT_EQ(app.config().regions_size(), 1);
  EXPECT_EQ(app.config().regions(0).replicas_size(), 1);
}

TEST(CmAppTest, SnapshotAtACommittedSlotRestoresAnEqualReplica) {
  CmApp app;
  app.Execute(1, Op(cm::InitCommand(2, 1 << 20, 100)));
  app.Execute(2, Op(cm::JoinCommand(1, "e1", "", 0)));
  app.Commit(2);
  app.Execute(3, Op(cm::JoinCommand(2, "e2", "", 0)));  // speculative
  absl::StatusOr<std::string> snap = app.Snapshot(2);
  ASSERT_TRUE(snap.ok()) << snap.status();

  CmApp restored;
  ASSERT_TRUE(restored.Restore(2, *snap).ok());
  EXPECT_EQ(restored.committed(), 2u);
  EXPECT_EQ(restored.config().machines_size(), 1);  // slot 3 is not in it
  restored.Execute(3, Op(cm::JoinCommand(2, "e2", "", 0)));
  EXPECT_EQ(restored.config().SerializeAsString(), app.config().SerializeAsString());
  EXPECT_FALSE(restored.Restore(3, "\xff garbage").ok());
  EXPECT_EQ(restored.committed(), 2u);
}

}  // namespace
}  // namespace dctk::integration
