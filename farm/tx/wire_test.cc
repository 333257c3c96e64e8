#include "farm/tx/wire.h"

#include "gtest/gtest.h"

namespace dctk::farm::tx {
namespace {

TEST(WireTest, LockRequestRoundTrip) {
  LockRequest r{7, MakeTxId(3, 1, 99), {4, 9}, {}};
  r.entries.push_back({GlobalAddress(4, 128), 5, EntryKind::kWrite, 0, "hello"});
  r.entries.push_back({GlobalAddress(9, 64), 1, EntryKind::kAlloc, 128, std::string(100, 'x')});
  r.entries.push_back({GlobalAddress(9, 0), 2, EntryKind::kFree, 0, ""});
  absl::StatusOr<LockRequest> back = DecodeLockRequest(Encode(r));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->config, 7u);
  EXPECT_EQ(TxCoordinator(back->tx), 3u);
  EXPECT_EQ(back->regions, r.regions);
  ASSERT_EQ(back->entries.size(), 3u);
  EXPECT_EQ(back->entries[1].addr, GlobalAddress(9, 64));
  EXPECT_EQ(back->entries[1].kind, EntryKind::kAlloc);
  EXPECT_EQ(back->entries[1].slot_bytes, 128u);
  EXPECT_EQ(back->entries[1].data, std::string(100, 'x'));
  EXPECT_EQ(back->entries[2].kind, EntryKind::kFree);
}

TEST(WireTest, ReplyRoundTrip) {
  Reply r = ReplyFrom(absl::AbortedError("conflict at 1:0x40"), 5, 6);
  r.slot_bytes = {64, 128};
  absl::StatusOr<Reply> back = DecodeReply(Encode(r));
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(absl::IsAborted(StatusOf(*back)));
  EXPECT_EQ(StatusOf(*back).message(), "conflict at 1:0x40");
  EXPECT_EQ(back->value, 5u);
  EXPECT_EQ(back->aux, 6u);
  EXPECT_EQ(back->slot_bytes, (std::vector<uint32_t>{64, 128}));
}

TEST(WireTest, MalformedMessagesAreDataLoss) {
  LockRequest r{1, 2, {3}, {{GlobalAddress(3, 0), 1, EntryKind::kWrite, 0, "abc"}}};
  const std::string bytes = Encode(r);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_TRUE(absl::IsDataLoss(DecodeLockRequest(bytes.substr(0, cut)).status())) << cut;
  }
  EXPECT_TRUE(absl::IsDataLoss(DecodeLockRequest(bytes + "x").status()));
  EXPECT_TRUE(absl::IsDataLoss(DecodeTxRequest("short").status()));
  EXPECT_TRUE(absl::IsDataLoss(DecodeReply("").status()));
}

}  // namespace
}  // namespace dctk::farm::tx
