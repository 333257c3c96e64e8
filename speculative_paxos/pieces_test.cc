#include "speculative_paxos/pieces.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "speculative_paxos/log.h"

namespace dctk::spaxos {
namespace {

// A StartLog after `base` (hash "" at base 0) with `n` entries of `op_bytes`.
StartLog MakeStartLog(int n, size_t op_bytes) {
  Log log;
  for (int i = 1; i <= n; ++i) {
    log.Append(/*client_id=*/100 + i % 3, /*request_id=*/i, std::string(op_bytes, 'a' + i % 26),
               transport::Address(0x7f000001, 9000));
  }
  StartLog m;
  m.mutable_stamp()->set_view(3);
  m.mutable_stamp()->set_epoch(2);
  m.set_base(0);
  m.set_end(n);
  log.Export(1, n, m.mutable_entries());
  return m;
}

TEST(PiecesTest, PiecesFitTheBudgetAndKeepOrder) {
  const StartLog whole = MakeStartLog(200, 40);
  const size_t budget = PayloadBudget(300);
  EXPECT_EQ(budget, 300u - 12u);
  std::vector<StartLog> pieces = SplitEntries(whole, budget);
  ASSERT_GT(pieces.size(), 50u);
  uint64_t next = 1;
  for (const StartLog& p : pieces) {
    EXPECT_LE(p.ByteSizeLong(), budget);
    EXPECT_EQ(p.end(), 200u);
    EXPECT_EQ(p.stamp().view(), 3u);
    ASSERT_GT(p.entries_size(), 0);
    for (const Entry& e : p.entries()) EXPECT_EQ(e.slot(), next++);
  }
  EXPECT_EQ(next, 201u);
  // A large budget: one piece, the message unchanged.
  pieces = SplitEntries(whole, PayloadBudget(65507));
  ASSERT_EQ(pieces.size(), 1u);
  EXPECT_EQ(pieces[0].SerializeAsString(), whole.SerializeAsString());
}

TEST(PiecesTest, OversizedEntryGoesAlone) {
  const StartLog whole = MakeStartLog(3, 500);
  std::vector<StartLog> pieces = SplitEntries(whole, PayloadBudget(300));
  ASSERT_EQ(pieces.size(), 3u);
  for (const StartLog& p : pieces) EXPECT_EQ(p.entries_size(), 1);
}

TEST(PiecesTest, NoEntriesIsOnePiece) {
  StartLog m;
  m.set_base(7);
  m.set_end(7);
  std::vector<StartLog> pieces = SplitEntries(m, PayloadBudget(300));
  ASSERT_EQ(pieces.size(), 1u);
  PieceAssembler a;
  ASSERT_TRUE(a.Add(&pieces[0]));
  EXPECT_TRUE(a.Take("any", pieces[0].mutable_entries()));
  EXPECT_EQ(pieces[0].entries_size(), 0);
}

TEST(PiecesTest, AssemblesInAnyOrderWithDuplicates) {
  const StartLog whole = MakeStartLog(120, 30);
  std::vector<StartLog> pieces = SplitEntries(whole, PayloadBudget(400));
  ASSERT_GT(pieces.size(), 4u);
  std::vector<StartLog> shuffled = pieces;
  std::reverse(shuffled.begin(), shuffled.end());
  shuffled.push_back(pieces[1]);  // duplicate
  PieceAssembler a;
  for (size_t i = 0; i < shuffled.size(); ++i) {
    StartLog p = shuffled[i];
    const bool complete = a.Add(&p);
    EXPECT_EQ(p.entries_size(), 0);  // moved in
    if (i + 2 < pieces.size()) {
      EXPECT_FALSE(complete);
      EXPECT_EQ(a.FirstMissing(), 1u);  // the first piece comes last
    }
  }
  EXPECT_EQ(a.FirstMissing(), 121u);
  StartLog got = pieces[0];
  ASSERT_TRUE(a.Take(whole.base_hash(), got.mutable_entries()));
  EXPECT_EQ(got.SerializeAsString(), whole.SerializeAsString());
  EXPECT_TRUE(a.empty());
}

TEST(PiecesTest, FirstMissingNamesTheGap) {
  std::vector<StartLog> pieces = SplitEntries(MakeStartLog(60, 30), PayloadBudget(400));
  ASSERT_GE(pieces.size(), 3u);
  PieceAssembler a;
  EXPECT_EQ(a.FirstMissing(), 0u);
  StartLog p0 = pieces[0], p2 = pieces[2];
  const uint64_t gap = pieces[1].entries(0).slot();
  EXPECT_FALSE(a.Add(&p0));
  EXPECT_FALSE(a.Add(&p2));
  EXPECT_EQ(a.FirstMissing(), gap);
  StartLog none;
  EXPECT_FALSE(a.Take("", none.mutable_entries()));  // incomplete: nothing taken
}

TEST(PiecesTest, PieceOfAnotherMessageStartsOver) {
  std::vector<StartLog> a_pieces = SplitEntries(MakeStartLog(60, 30), PayloadBudget(400));
  StartLog other = MakeStartLog(60, 30);
  other.mutable_stamp()->set_epoch(3);
  std::vector<StartLog> b_pieces = SplitEntries(other, PayloadBudget(400));
  PieceAssembler a;
  for (size_t i = 0; i + 1 < a_pieces.size(); ++i) a.Add(&a_pieces[i]);
  bool complete = false;
  for (StartLog& p : b_pieces) complete = a.Add(&p);
  ASSERT_TRUE(complete);
  StartLog got;
  ASSERT_TRUE(a.Take("", got.mutable_entries()));
  EXPECT_EQ(got.entries_size(), 60);
}

TEST(PiecesTest, BrokenChainIsRefused) {
  StartLog whole = MakeStartLog(30, 30);
  whole.mutable_entries(10)->set_op("changed");
  std::vector<StartLog> pieces = SplitEntries(whole, PayloadBudget(400));
  PieceAssembler a;
  bool complete = false;
  for (StartLog& p : pieces) complete = a.Add(&p);
  ASSERT_TRUE(complete);
  StartLog got;
  EXPECT_FALSE(a.Take("", got.mutable_entries()));
  EXPECT_TRUE(a.empty());
  // A wrong base hash is refused as well.
  pieces = SplitEntries(MakeStartLog(30, 30), PayloadBudget(400));
  for (StartLog& p : pieces) a.Add(&p);
  EXPECT_FALSE(a.Take("not the base", got.mutable_entries()));
}

TEST(PiecesTest, LogReportPieces) {
  LogReport r;
  r.mutable_stamp()->set_view(1);
  r.set_replica(2);
  r.set_base(0);
  r.set_covers_base(true);
  r.set_end(80);
  *r.mutable_entries() = MakeStartLog(80, 20).entries();
  std::vector<LogReport> pieces = SplitEntries(r, PayloadBudget(256));
  ASSERT_GT(pieces.size(), 10u);
  PieceAssembler a;
  bool complete = false;
  for (LogReport& p : pieces) {
    EXPECT_LE(p.ByteSizeLong(), PayloadBudget(256));
    complete = a.Add(&p);
  }
  ASSERT_TRUE(complete);
  LogReport got = pieces[0];
  ASSERT_TRUE(a.Take(r.base_hash(), got.mutable_entries()));
  EXPECT_EQ(got.SerializeAsString(), r.SerializeAsString());
}

}  // namespace
}  // namespace dctk::spaxos
