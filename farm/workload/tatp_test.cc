#include "farm/workload/tatp.h"

#include "farm/tx/test_util.h"
#include "gtest/gtest.h"

namespace dctk::farm::workload {
namespace {

TEST(TatpTest, LoadsAndRunsTheMix) {
  auto c = tx::MakeShmCluster();
  std::vector<tx::TxClient<fabric::ShmFabric>*> loaders = {&c->client(1), &c->client(2), &c->client(3)};
  absl::StatusOr<Tatp> tatp = Tatp::Load(loaders, 300, 7);
  ASSERT_TRUE(tatp.ok()) << tatp.status();
  // Rows sit near their subscriber: same region (so the same primary).
  for (int s = 0; s < 300; ++s) {
    const Tatp::Directory& d = tatp->directory(s);
    int rows = 0;
    for (GlobalAddress a : d.access_info) {
      if (!a.is_null()) {
        EXPECT_EQ(a.region(), d.subscriber.region());
        ++rows;
      }
    }
    EXPECT_GE(rows, 1);
  }
  std::mt19937_64 rng(3);
  std::array<int, kTatpTxKinds> ok{};
  int aborted = 0;
  for (int i = 0; i < 600; ++i) {
    TatpTx kind;
    absl::Status s = tatp->RunOne(c->client(1 + i % 3), rng, &kind);
    if (s.ok()) {
      ++ok[static_cast<int>(kind)];
    } else {
      ASSERT_TRUE(absl::IsAborted(s)) << s;
      ++aborted;
    }
  }
  EXPECT_EQ(aborted, 0);  // one coordinator at a time: no conflicts
  for (int k = 0; k < kTatpTxKinds; ++k) EXPECT_GT(ok[k], 0) << TatpTxName(static_cast<TatpTx>(k));
  // The read-only share is about 80%.
  EXPECT_GT(ok[0] + ok[1] + ok[2], 400);
}

}  // namespace
}  // namespace dctk::farm::workload
