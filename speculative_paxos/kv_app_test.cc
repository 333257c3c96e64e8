#include "speculative_paxos/kv_app.h"

#include "gtest/gtest.h"

namespace dctk::spaxos {
namespace {

TEST(KvAppTest, GetPutCas) {
  KvApp kv;
  KvResult r = KvApp::ParseResult(kv.Execute(1, KvApp::Get("k")));
  EXPECT_FALSE(r.found());
  EXPECT_TRUE(KvApp::ParseResult(kv.Execute(2, KvApp::Put("k", "v1"))).ok());
  r = KvApp::ParseResult(kv.Execute(3, KvApp::Get("k")));
  EXPECT_TRUE(r.found());
  EXPECT_EQ(r.value(), "v1");
  EXPECT_FALSE(KvApp::ParseResult(kv.Execute(4, KvApp::Cas("k", "nope", "v2"))).ok());
  EXPECT_FALSE(KvApp::ParseResult(kv.Execute(5, KvApp::Cas("k", absl::nullopt, "v2"))).ok());
  EXPECT_TRUE(KvApp::ParseResult(kv.Execute(6, KvApp::Cas("k", "v1", "v2"))).ok());
  EXPECT_EQ(kv.Lookup("k"), "v2");
  EXPECT_TRUE(KvApp::ParseResult(kv.Execute(7, KvApp::Cas("j", absl::nullopt, "x"))).ok());
  EXPECT_EQ(kv.Lookup("j"), "x");
}

TEST(KvAppTest, RollbackRestoresExactly) {
  KvApp kv;
  kv.Execute(1, KvApp::Put("a", "1"));
  kv.Execute(2, KvApp::Put("a", "2"));
  kv.Execute(3, KvApp::Put("b", "1"));
  kv.Execute(4, KvApp::Cas("a", "2", "3"));
  kv.Rollback(2);
  EXPECT_EQ(kv.Lookup("a"), "2");
  EXPECT_EQ(kv.Lookup("b"), absl::nullopt);
  kv.Rollback(0);
  EXPECT_EQ(kv.Lookup("a"), absl::nullopt);
  // Re-execution after rollback continues from the rolled-back slot.
  kv.Execute(1, KvApp::Put("a", "x"));
  EXPECT_EQ(kv.Lookup("a"), "x");
}

TEST(KvAppTest, CommitDropsUndoRecords) {
  KvApp kv;
  for (uint64_t s = 1; s <= 5; ++s) kv.Execute(s, KvApp::Put("k", std::to_string(s)));
  EXPECT_EQ(kv.undo_depth(), 5u);
  kv.Commit(3);
  EXPECT_EQ(kv.undo_depth(), 2u);
  kv.Rollback(3);
  EXPECT_EQ(kv.Lookup("k"), "3");
}

TEST(KvAppTest, MalformedOpIsANoOp) {
  KvApp kv;
  kv.Execute(1, KvApp::Put("k", "v"));
  kv.Execute(2, std::string("\xff\xff\xff", 3));
  kv.Rollback(1);
  EXPECT_EQ(kv.Lookup("k"), "v");
}

TEST(KvAppTest, SnapshotHoldsOnlyCommittedSlots) {
  KvApp kv;
  kv.Execute(1, KvApp::Put("a", "1"));
  kv.Execute(2, KvApp::Put("b", "2"));
  kv.Commit(2);
  kv.Execute(3, KvApp::Put("a", "3"));   // speculative
  kv.Execute(4, KvApp::Put("c", "4"));   // speculative
  absl::StatusOr<std::string> snap = kv.Snapshot(2);
  ASSERT_TRUE(snap.ok()) << snap.status();
  KvApp copy;
  ASSERT_TRUE(copy.Restore(2, *snap).ok());
  EXPECT_EQ(copy.Lookup("a"), "1");
  EXPECT_EQ(copy.Lookup("b"), "2");
  EXPECT_EQ(copy.Lookup("c"), absl::nullopt);
  EXPECT_EQ(copy.undo_depth(), 0u);
  // The snapshotted app is unchanged, and equal states give equal bytes.
  EXPECT_EQ(kv.Lookup("a"), "3");
  kv.Rollback(2);
  EXPECT_EQ(*kv.Snapshot(2), *snap);
  EXPECT_EQ(*copy.Snapshot(2), *snap);
  // Execution goes on after a restore.
  EXPECT_TRUE(KvApp::ParseResult(copy.Execute(3, KvApp::Cas("a", "1", "5"))).ok());
  EXPECT_EQ(copy.Lookup("a"), "5");
}

TEST(KvAppTest, RestoreRejectsGarbage) {
  KvApp kv;
  kv.Execute(1, KvApp::Put("a", "1"));
  absl::Status s = kv.Restore(1, "\xff\xff garbage");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(kv.Lookup("a"), "1");  // untouched
}

}  // namespace
}  // namespace dctk::spaxos
