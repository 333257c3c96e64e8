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

TEST(WireTest, WatermarksRideOnlyWhenTold) {
  const TxId tx = MakeTxId(3, 1, 99);
  LockRequest lock{7, tx, {4}, {{GlobalAddress(4, 128), 5, EntryKind::kWrite, 0, "hello"}}};
  const size_t without = Encode(lock).size();
  lock.watermark = MakeTxId(3, 1, 97);
  const std::string bytes = Encode(lock);
  EXPECT_EQ(bytes.size(), without + 8);
  absl::StatusOr<LockRequest> back = DecodeLockRequest(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->watermark, MakeTxId(3, 1, 97));
  EXPECT_EQ(back->entries[0].data, "hello");

  TxRequest truncate{7, tx, tx};  // the transaction itself: nothing before it open
  EXPECT_EQ(Encode(TxRequest{7, tx}).size(), 16u);
  absl::StatusOr<TxRequest> t = DecodeTxRequest(Encode(truncate));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->watermark, tx);
  EXPECT_EQ(DecodeTxRequest(Encode(TxRequest{7, tx}))->watermark, Watermark());

  // With the coordinator's incarnation: 8 bytes more.
  truncate.watermark.incarnation = 1700000000000000;
  EXPECT_EQ(Encode(truncate).size(), 32u);
  t = DecodeTxRequest(Encode(truncate));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->watermark, Watermark(tx, 1700000000000000));
  lock.watermark.incarnation = 7;
  back = DecodeLockRequest(Encode(lock));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->watermark, Watermark(MakeTxId(3, 1, 97), 7));
}

// A watermark names the lowest unfinished transaction of the request's own
// coordinator stream, and the request's transaction is unfinished.
TEST(WireTest, MalformedWatermarksAreDataLossNamingWhat) {
  const TxId tx = MakeTxId(3, 1, 99);
  struct Case {
    std::string tail;
    std::string says;
  };
  auto word = [](TxId w) { return std::string(reinterpret_cast<const char*>(&w), 8); };
  const std::vector<Case> cases = {
      {"abc",
       "3 bytes after the request (a watermark is 8, 16 with its coordinator's incarnation)"},
      {word(MakeTxId(3, 1, 5)) + word(0), "incarnation 0 after watermark"},
      {word(MakeTxId(4, 1, 5)),
       "is not of transaction " + std::to_string(tx) + "'s coordinator (machine 3, slot 1)"},
      {word(MakeTxId(3, 0, 5)), "(machine 3, slot 1)"},
      {word(0), "watermark 0 is not of transaction"},
      {word(MakeTxId(3, 1, 100)), "is above transaction " + std::to_string(tx) + " itself"},
  };
  const std::string lock = Encode(LockRequest{7, tx, {4}, {}});
  const std::string truncate = Encode(TxRequest{7, tx});
  for (const Case& c : cases) {
    absl::Status s = DecodeLockRequest(lock + c.tail).status();
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
    EXPECT_NE(s.message().find("malformed LOCK/COMMIT-BACKUP message"), std::string::npos) << s;
    EXPECT_NE(s.message().find(c.says), std::string::npos) << s;
    s = DecodeTxRequest(truncate + c.tail).status();
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
    EXPECT_NE(s.message().find("malformed transaction message"), std::string::npos) << s;
    EXPECT_NE(s.message().find(c.says), std::string::npos) << s;
  }
}

// Sequences compare on the 40-bit circle: a coordinator whose sequence
// wraps comes after what it sent before.
TEST(WireTest, TxBeforeFollowsTheSequenceAcrossItsWrap) {
  const uint64_t last = (uint64_t{1} << 40) - 1;
  EXPECT_TRUE(TxBefore(MakeTxId(3, 1, 5), MakeTxId(3, 1, 6)));
  EXPECT_FALSE(TxBefore(MakeTxId(3, 1, 6), MakeTxId(3, 1, 5)));
  EXPECT_FALSE(TxBefore(MakeTxId(3, 1, 6), MakeTxId(3, 1, 6)));
  EXPECT_TRUE(TxBefore(MakeTxId(3, 1, last), MakeTxId(3, 1, last + 2)));  // wrapped to 1
  EXPECT_FALSE(TxBefore(MakeTxId(3, 1, last + 2), MakeTxId(3, 1, last)));
}

}  // namespace
}  // namespace dctk::farm::tx
