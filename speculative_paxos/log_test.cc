#include "speculative_paxos/log.h"

#include "gtest/gtest.h"

namespace dctk::spaxos {
namespace {

const transport::Address kClient(0x0a000001, 9);

TEST(LogTest, HashChainSummarisesPrefix) {
  Log a, b;
  a.Append(1, 1, "x", kClient);
  a.Append(2, 1, "y", kClient);
  b.Append(2, 1, "y", kClient);
  b.Append(1, 1, "x", kClient);
  EXPECT_EQ(a.HashAt(0), "");
  EXPECT_EQ(a.HashAt(1).size(), 32u);
  EXPECT_NE(a.HashAt(2), b.HashAt(2));  // same requests, different order
  EXPECT_EQ(a.HashAt(1), ChainHash("", 1, 1, "x"));
  EXPECT_EQ(a.HashAt(2), ChainHash(a.HashAt(1), 2, 1, "y"));
}

std::string Hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : bytes) {
    hex += digits[c >> 4];
    hex += digits[c & 15];
  }
  return hex;
}

TEST(LogTest, HashIsStableAcrossProcesses) {
  // SHA-256 of 32 zero bytes (the empty log) || le64(client id) ||
  // le64(request id) || "op": fixed values, so replicas in different
  // processes (and builds, and hosts of either byte order) agree.
  EXPECT_EQ(Hex(ChainHash("", 1, 1, "op")),
            "e7f409aaa497831b394918fd4e601ffe057dc7e8ce371b43bf05aab603b19e96");
  // Every byte of the ids distinct: their byte order is pinned.
  EXPECT_EQ(Hex(ChainHash("", 0x0102030405060708, 0x1112131415161718, "op")),
            "26d5b94dbe8ae41da5e6fc5777713f7386b6f7e99a74207ef71cc7b58fe57612");
}

TEST(LogTest, ChainStepTakesAnyPrevAndSeparatesOps) {
  const std::string h1 = ChainHash("", 1, 1, "x");
  // prev is always 32 bytes in the step: the empty log's "" stands for 32
  // zero bytes, and a prev of another size (bad input) for its SHA-256, so
  // neither shifts the ids into op.
  EXPECT_EQ(ChainHash(std::string(32, '\0'), 1, 1, "x"), h1);
  EXPECT_EQ(ChainHash("abc", 1, 1, "x").size(), 32u);
  EXPECT_NE(ChainHash("abc", 1, 1, "x"), ChainHash("ab", 1, 1, "x"));
  // op has no length field: the message length tells op's apart.
  EXPECT_NE(ChainHash(h1, 2, 1, ""), ChainHash(h1, 2, 1, std::string(1, '\0')));
  EXPECT_NE(ChainHash(h1, 2, 1, "1234567"), ChainHash(h1, 2, 1, "12345678"));
}

TEST(LogTest, TruncateAndFind) {
  Log log;
  log.Append(1, 1, "a", kClient);
  log.Append(1, 2, "b", kClient);
  log.Append(2, 5, "c", kClient);
  log.Commit(1);
  EXPECT_EQ(log.committed(), 1u);
  EXPECT_EQ(log.At(1)->state, EntryState::kCommitted);
  EXPECT_EQ(log.At(2)->state, EntryState::kSpeculative);
  ASSERT_NE(log.Find(1, 2), nullptr);
  EXPECT_EQ(log.Find(1, 2)->slot, 2u);
  EXPECT_EQ(log.LatestRequest(1), 2u);
  EXPECT_EQ(log.LatestRequest(1, 1), 1u);
  log.TruncateAfter(1);
  EXPECT_EQ(log.end(), 1u);
  EXPECT_EQ(log.Find(1, 2), nullptr);
  EXPECT_EQ(log.Find(2, 5), nullptr);
  EXPECT_EQ(log.LatestRequest(2), 0u);
  log.Append(1, 3, "d", kClient);
  EXPECT_EQ(log.HashAt(2), ChainHash(log.HashAt(1), 1, 3, "d"));
}

TEST(LogDeathTest, TruncatingCommittedEntriesIsABug) {
  Log log;
  log.Append(1, 1, "a", kClient);
  log.Commit(1);
  EXPECT_DEATH(log.TruncateAfter(0), "committed");
}

TEST(LogTest, ExportCarriesWireFields) {
  Log log;
  log.Append(4, 7, "op", kClient);
  google::protobuf::RepeatedPtrField<Entry> out;
  log.Export(1, 5, &out);
  ASSERT_EQ(out.size(), 1);
  EXPECT_EQ(out[0].slot(), 1u);
  EXPECT_EQ(out[0].client_id(), 4u);
  EXPECT_EQ(out[0].request_id(), 7u);
  EXPECT_EQ(out[0].hash(), log.HashAt(1));
  EXPECT_EQ(out[0].client_port(), 9u);
}

TEST(LogTest, CompactionKeepsHashAndClientRecords) {
  Log log;
  log.Append(1, 1, "a", kClient).result = "ra";
  log.Append(2, 4, "b", kClient).result = "rb";
  log.Append(1, 2, "c", kClient).result = "rc";
  log.Append(2, 5, "d", kClient).result = "rd";
  const std::string h3 = log.HashAt(3);
  log.Commit(3);
  log.CompactTo(3);
  EXPECT_EQ(log.base(), 3u);
  EXPECT_EQ(log.end(), 4u);
  EXPECT_EQ(log.size(), 1u);
  EXPECT_EQ(log.At(3), nullptr);
  ASSERT_NE(log.At(4), nullptr);
  EXPECT_EQ(log.HashAt(3), h3);
  EXPECT_TRUE(log.Holds(3, h3));
  EXPECT_FALSE(log.Holds(2, h3));  // compacted: not known
  // Each client's newest compacted request is its record; older ones are gone.
  ASSERT_NE(log.Find(1, 2), nullptr);
  EXPECT_EQ(log.Find(1, 2)->slot, 3u);
  EXPECT_EQ(log.Find(1, 2)->result, "rc");
  EXPECT_TRUE(log.Find(1, 2)->op.empty());
  EXPECT_EQ(log.Find(1, 1), nullptr);
  EXPECT_EQ(log.Find(2, 4)->slot, 2u);
  EXPECT_EQ(log.Find(2, 5)->slot, 4u);  // still in the log
  EXPECT_EQ(log.LatestRequest(1), 2u);
  EXPECT_EQ(log.LatestRequest(2, 3), 4u);
  EXPECT_EQ(log.LatestRequest(2), 5u);
  EXPECT_EQ(log.num_client_records(), 2u);
  // Truncating speculative entries and appending still chain from the base.
  log.TruncateAfter(3);
  EXPECT_EQ(log.Find(2, 5), nullptr);
  EXPECT_EQ(log.LatestRequest(2), 4u);
  log.Append(2, 6, "e", kClient);
  EXPECT_EQ(log.HashAt(4), ChainHash(h3, 2, 6, "e"));
}

TEST(LogTest, ExportClientsAndReset) {
  Log log;
  log.Append(1, 1, "a", kClient).result = "ra";
  log.Append(2, 1, "b", kClient).result = "rb";
  log.Append(1, 2, "c", kClient).result = "rc";
  log.Commit(3);
  log.CompactTo(1);
  google::protobuf::RepeatedPtrField<ClientRecord> records;
  log.ExportClients(3, &records);  // record of client 1 updated by slot 3
  ASSERT_EQ(records.size(), 2);
  EXPECT_EQ(records[0].client_id(), 1u);
  EXPECT_EQ(records[0].request_id(), 2u);
  EXPECT_EQ(records[0].slot(), 3u);
  EXPECT_EQ(records[0].result(), "rc");
  EXPECT_EQ(records[1].client_id(), 2u);

  Log copy;
  copy.Reset(3, log.HashAt(3), records);
  EXPECT_EQ(copy.base(), 3u);
  EXPECT_EQ(copy.committed(), 3u);
  EXPECT_EQ(copy.end(), 3u);
  EXPECT_EQ(copy.HashAt(3), log.HashAt(3));
  EXPECT_EQ(copy.Find(1, 2)->result, "rc");
  EXPECT_EQ(copy.LatestRequest(2), 1u);
  copy.Append(1, 3, "d", kClient);
  log.Append(1, 3, "d", kClient);
  EXPECT_EQ(copy.HashAt(4), log.HashAt(4));
}

TEST(LogDeathTest, CompactingUncommittedEntriesIsABug) {
  Log log;
  log.Append(1, 1, "a", kClient);
  EXPECT_DEATH(log.CompactTo(1), "uncommitted");
}

}  // namespace
}  // namespace dctk::spaxos
