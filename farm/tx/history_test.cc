#include "farm/tx/history.h"

#include "gtest/gtest.h"

namespace dctk::farm::tx {
namespace {

// Objects 1 and 2, both at version 1 initially.
const absl::flat_hash_map<uint64_t, uint64_t> kInitial = {{1, 1}, {2, 1}};

TEST(HistoryTest, SerialHistoryIsClean) {
  std::vector<CommittedTx> h = {{1, {{1, 1}}, {1}}, {2, {{1, 2}, {2, 1}}, {2}}};
  EXPECT_TRUE(CheckSerializable(h, kInitial).empty());
}

TEST(HistoryTest, FindsLostUpdate) {
  std::vector<CommittedTx> h = {{1, {{1, 1}}, {1}}, {2, {{1, 1}}, {1}}};
  auto p = CheckSerializable(h, kInitial);
  ASSERT_FALSE(p.empty());
  EXPECT_NE(p[0].find("lost update"), std::string::npos);
}

TEST(HistoryTest, FindsWriteSkew) {
  // Both read x and y at version 1; one writes x, the other y.
  std::vector<CommittedTx> h = {{1, {{1, 1}, {2, 1}}, {1}}, {2, {{1, 1}, {2, 1}}, {2}}};
  auto p = CheckSerializable(h, kInitial);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("cycle"), std::string::npos);
}

TEST(HistoryTest, FindsDirtyRead) {
  std::vector<CommittedTx> h = {{1, {{1, 5}}, {}}};
  auto p = CheckSerializable(h, kInitial);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("dirty read"), std::string::npos);
}

}  // namespace
}  // namespace dctk::farm::tx
