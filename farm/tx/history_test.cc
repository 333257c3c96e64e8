#include "farm/tx/history.h"

#include <chrono>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::farm::tx {
namespace {

using ::testing::HasSubstr;

// Objects 1 and 2, both at version 1 initially.
const absl::flat_hash_map<uint64_t, uint64_t> kInitial = {{1, 1}, {2, 1}};

CommittedTx Tx(uint64_t id, absl::flat_hash_map<uint64_t, uint64_t> reads,
               std::vector<uint64_t> writes, uint64_t begin, uint64_t end) {
  return {id, std::move(reads), std::move(writes), begin, end};
}

TEST(HistoryTest, SerialHistoryIsClean) {
  std::vector<CommittedTx> h = {Tx(1, {{1, 1}}, {1}, 1, 2), Tx(2, {{1, 2}, {2, 1}}, {2}, 3, 4)};
  EXPECT_TRUE(CheckStrictlySerializable(h, kInitial).empty());
}

TEST(HistoryTest, FindsLostUpdate) {
  std::vector<CommittedTx> h = {Tx(1, {{1, 1}}, {1}, 1, 3), Tx(2, {{1, 1}}, {1}, 2, 4)};
  auto p = CheckStrictlySerializable(h, kInitial);
  ASSERT_FALSE(p.empty());
  EXPECT_THAT(p[0], HasSubstr("lost update"));
}

TEST(HistoryTest, FindsWriteSkew) {
  // Both read x and y at version 1; one writes x, the other y.
  std::vector<CommittedTx> h = {Tx(1, {{1, 1}, {2, 1}}, {1}, 1, 3),
                                Tx(2, {{1, 1}, {2, 1}}, {2}, 2, 4)};
  auto p = CheckStrictlySerializable(h, kInitial);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_THAT(p[0], HasSubstr("not serializable"));
  EXPECT_THAT(p[0], HasSubstr("tx 1 read object 2 at version 1, which tx 2 overwrote"));
  EXPECT_THAT(p[0], HasSubstr("tx 2 read object 1 at version 1, which tx 1 overwrote"));
}

TEST(HistoryTest, FindsDirtyRead) {
  std::vector<CommittedTx> h = {Tx(1, {{1, 5}}, {}, 1, 2)};
  auto p = CheckStrictlySerializable(h, kInitial);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_THAT(p[0], HasSubstr("dirty read"));
}

// T1 writes x (version 1 -> 2) and returns at tick 2; T2 begins at tick 3 and
// still reads version 1. Serializable (T2 before T1), not strictly.
TEST(HistoryTest, FindsStaleReadAfterACommitReturned) {
  std::vector<CommittedTx> h = {Tx(1, {{1, 1}}, {1}, 1, 2), Tx(2, {{1, 1}}, {}, 3, 4)};
  auto p = CheckStrictlySerializable(h, kInitial);
  ASSERT_EQ(p.size(), 1u) << p[0];
  EXPECT_THAT(p[0], HasSubstr("not strictly serializable"));
  EXPECT_THAT(p[0], HasSubstr("tx 2 read object 1 at version 1, which tx 1 overwrote"));
  EXPECT_THAT(p[0], HasSubstr("tx 1's commit returned (tick 2) before tx 2 began (tick 3)"));
  // Overlapping in time, the same reads are fine.
  h[1].begin = 1;
  EXPECT_TRUE(CheckStrictlySerializable(h, kInitial).empty());
}

// T2 reads x at the version T1 writes, but T2 returned before T1 began.
TEST(HistoryTest, FindsReadFromTheFuture) {
  std::vector<CommittedTx> h = {Tx(1, {{1, 1}}, {1}, 3, 4), Tx(2, {{1, 2}}, {}, 1, 2)};
  auto p = CheckStrictlySerializable(h, kInitial);
  ASSERT_EQ(p.size(), 1u) << p[0];
  EXPECT_THAT(p[0], HasSubstr("tx 2 read object 1 at version 2, written by tx 1"));
  EXPECT_THAT(p[0], HasSubstr("tx 2's commit returned (tick 2) before tx 1 began (tick 3)"));
}

// The order may come from real time and a conflict: T1 writes x; T2, begun
// after T1 returned, writes y; T3 overlaps both, reads y's new version and x's
// old one. T3 must follow T2 (it read T2's write), so T1, yet misses T1's write.
TEST(HistoryTest, FindsAStaleReadBehindARealTimeAndAConflictEdge) {
  std::vector<CommittedTx> h = {Tx(1, {{1, 1}}, {1}, 1, 3), Tx(2, {{2, 1}}, {2}, 4, 6),
                                Tx(3, {{1, 1}, {2, 2}}, {}, 2, 7)};
  auto p = CheckStrictlySerializable(h, kInitial);
  ASSERT_EQ(p.size(), 1u) << p[0];
  EXPECT_THAT(p[0], HasSubstr("cycle of 3 transactions"));
  EXPECT_THAT(p[0], HasSubstr("tx 1's commit returned (tick 3) before tx 2 began (tick 4)"));
  EXPECT_THAT(p[0], HasSubstr("tx 3 read object 2 at version 2, written by tx 2"));
}

TEST(HistoryTest, FindsBoundsOutOfOrder) {
  std::vector<CommittedTx> h = {Tx(1, {{1, 1}}, {}, 2, 2)};
  auto p = CheckStrictlySerializable(h, kInitial);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_THAT(p[0], HasSubstr("tx 1 began at tick 2, not before its commit returned (tick 2)"));
}

// A strictly serializable history of `n` transactions over `objects` hot
// objects (initially at version 1): transaction i runs alone at serialization
// point 10 i, reading 1-4 objects and writing some of them, within a
// real-time interval around that point that overlaps many others.
std::vector<CommittedTx> RandomStrictlySerialHistory(int n, uint64_t objects) {
  std::mt19937_64 rng(7);
  std::vector<uint64_t> version(objects + 1, 1);
  std::vector<CommittedTx> h(n);
  for (int i = 0; i < n; ++i) {
    CommittedTx& t = h[i];
    t.id = i + 1;
    const uint64_t point = 1000 + 10 * static_cast<uint64_t>(i);
    t.begin = point - rng() % 300;
    t.end = point + 1 + rng() % 300;
    for (int r = 1 + rng() % 4; r > 0; --r) {
      const uint64_t obj = 1 + rng() % objects;
      if (!t.reads.emplace(obj, version[obj]).second) continue;
      if (rng() % 2 == 0) t.writes.push_back(obj);
    }
    for (uint64_t obj : t.writes) ++version[obj];
  }
  return h;
}

TEST(HistoryTest, LargeRandomStrictlySerialHistoryIsAcceptedAndAStaleReadInItFound) {
  constexpr int kTransactions = 30000;
  constexpr uint64_t kObjects = 64;
  absl::flat_hash_map<uint64_t, uint64_t> initial;
  for (uint64_t obj = 1; obj <= kObjects; ++obj) initial[obj] = 1;
  std::vector<CommittedTx> h = RandomStrictlySerialHistory(kTransactions, kObjects);
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::string> p = CheckStrictlySerializable(h, initial);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  for (const std::string& s : p) ADD_FAILURE() << s;
  printf("checked %d transactions in %.1f ms\n", kTransactions, ms);

  std::optional<std::string> stale = InjectStaleRead(&h);
  ASSERT_TRUE(stale.has_value());
  p = CheckStrictlySerializable(h, initial);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_THAT(p[0], HasSubstr(*stale));
}

}  // namespace
}  // namespace dctk::farm::tx
