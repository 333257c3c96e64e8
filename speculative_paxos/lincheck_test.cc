#include "speculative_paxos/lincheck.h"

#include "gtest/gtest.h"
#include "speculative_paxos/kv_app.h"

namespace dctk::spaxos {
namespace {

absl::Time T(int ms) { return absl::UnixEpoch() + absl::Milliseconds(ms); }

KvEvent Ev(int client, const std::string& op, int from, int to, bool ok, bool found,
           const std::string& value) {
  KvEvent e;
  e.client = client;
  e.op.ParseFromString(op);
  e.invoke = T(from);
  e.response = to < 0 ? absl::InfiniteFuture() : T(to);
  e.result.set_ok(ok);
  e.result.set_found(found);
  e.result.set_value(value);
  return e;
}

TEST(LincheckTest, SequentialHistoryPasses) {
  KvHistory h = {Ev(0, KvApp::Put("k", "a"), 0, 1, true, false, ""),
                 Ev(0, KvApp::Get("k"), 2, 3, true, true, "a"),
                 Ev(0, KvApp::Cas("k", "a", "b"), 4, 5, true, true, "a")};
  EXPECT_TRUE(CheckLinearizable(h).ok());
}

TEST(LincheckTest, StaleReadFails) {
  KvHistory h = {Ev(0, KvApp::Put("k", "a"), 0, 1, true, false, ""),
                 Ev(1, KvApp::Put("k", "b"), 2, 3, true, true, "a"),
                 Ev(2, KvApp::Get("k"), 4, 5, true, true, "a")};
  absl::Status s = CheckLinearizable(h);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("'k'"), std::string::npos);
}

TEST(LincheckTest, ConcurrentOpsMayReorder) {
  // The read overlaps both writes: it may see either.
  KvHistory h = {Ev(0, KvApp::Put("k", "a"), 0, 10, true, false, ""),
                 Ev(1, KvApp::Put("k", "b"), 1, 9, true, true, "a"),
                 Ev(2, KvApp::Get("k"), 2, 8, true, true, "a")};
  EXPECT_TRUE(CheckLinearizable(h).ok());
}

TEST(LincheckTest, PendingOpMayOrMayNotTakeEffect) {
  KvHistory took = {Ev(0, KvApp::Put("k", "a"), 0, -1, false, false, ""),
                    Ev(1, KvApp::Get("k"), 5, 6, true, true, "a")};
  EXPECT_TRUE(CheckLinearizable(took).ok());
  KvHistory skipped = {Ev(0, KvApp::Put("k", "a"), 0, -1, false, false, ""),
                       Ev(1, KvApp::Get("k"), 5, 6, false, false, "")};
  EXPECT_TRUE(CheckLinearizable(skipped).ok());
}

TEST(LincheckTest, DoubleCasSuccessFails) {
  KvHistory h = {Ev(0, KvApp::Cas("k", absl::nullopt, "a"), 0, 10, true, false, ""),
                 Ev(1, KvApp::Cas("k", absl::nullopt, "b"), 0, 10, true, false, "")};
  EXPECT_FALSE(CheckLinearizable(h).ok());
}

}  // namespace
}  // namespace dctk::spaxos
