// Values of any length: inline up to 32 bytes, out of line beyond, against a
// model; heap space is reused; limits give clear errors; lookups racing a
// writer that keeps replacing large values never see a torn or foreign value.
#include <atomic>
#include <map>
#include <random>
#include <string>
#include <thread>

#include "farm/kv/hashtable_test_util.h"
#include "glog/logging.h"
#include "gtest/gtest.h"

namespace dctk::farm::kv {
namespace {

using testing::MakeBytes;
using testing::MakeKey;
using testing::ShardedTables;

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

constexpr TableConfig kConfig{.buckets = 128, .overflow_blocks = 64, .value_heap_bytes = 4 << 20,
                              .max_value_bytes = 2048};

TEST(HashTableValuesTest, AnyLengthMatchesModel) {
  ShardedTables t(1, kConfig);
  auto client = t.Client();
  HashTableWriter& w = t.writer(0);
  std::map<uint64_t, std::string> model;
  std::mt19937_64 rng(3);
  for (int step = 0; step < 4000; ++step) {
    const uint64_t i = rng() % 600;
    const int op = static_cast<int>(rng() % 10);
    if (op < 6) {
      // Lengths 0..2048, often crossing the 32-byte inline limit both ways.
      const size_t len = rng() % 3 == 0 ? rng() % 33 : rng() % 2049;
      std::string v(len, '\0');
      for (char& c : v) c = static_cast<char>(rng());
      ASSERT_TRUE(w.PutBytes(MakeKey(i), Bytes(v)).ok());
      model[i] = v;
    } else if (op < 7) {
      EXPECT_EQ(*w.Erase(MakeKey(i)), model.erase(i) == 1);
    } else {
      auto got = client->LookupBytes(MakeKey(i));
      ASSERT_TRUE(got.ok()) << got.status();
      auto it = model.find(i);
      ASSERT_EQ(got->has_value(), it != model.end()) << "key " << i;
      if (it != model.end()) ASSERT_EQ(**got, it->second) << "key " << i;
    }
  }
  uint64_t large = 0;
  const uint64_t reads_before = client->shard(0).reads();
  for (const auto& [i, v] : model) {
    large += v.size() > kMaxInlineValue;
    auto got = client->LookupBytes(MakeKey(i));
    ASSERT_TRUE(got.ok() && got->has_value());
    ASSERT_EQ(**got, v);
  }
  const double reads = static_cast<double>(client->shard(0).reads() - reads_before) / model.size();
  LOG(INFO) << model.size() << " keys, " << large << " out of line: " << reads << " reads per lookup, "
            << w.heap_bytes_in_use() << " heap bytes in use";
  EXPECT_GT(reads, 1.0);  // out-of-line values cost a second read
  // Everything erased: every heap byte is back.
  for (const auto& [i, v] : model) ASSERT_TRUE(*w.Erase(MakeKey(i)));
  EXPECT_EQ(w.heap_bytes_in_use(), 0u);
  EXPECT_EQ(w.size(), 0u);
}

TEST(HashTableValuesTest, LookupOfValueNot32BytesAsksForLookupBytes) {
  ShardedTables t(1, kConfig);
  auto client = t.Client();
  ASSERT_TRUE(t.writer(0).PutBytes(MakeKey(1), Bytes(std::string(100, 'x'))).ok());
  ASSERT_TRUE(t.writer(0).PutBytes(MakeKey(2), Bytes(std::string(5, 'y'))).ok());
  EXPECT_EQ(client->Lookup(MakeKey(1)).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(client->Lookup(MakeKey(2)).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(**client->LookupBytes(MakeKey(2)), "yyyyy");
}

TEST(HashTableValuesTest, LimitsGiveClearErrors) {
  TableConfig small = kConfig;
  small.value_heap_bytes = 8 * 1024;
  ShardedTables t(1, small);
  auto client = t.Client();
  HashTableWriter& w = t.writer(0);
  absl::Status s = w.PutBytes(MakeKey(1), Bytes(std::string(4096, 'a')));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  // 1 KB values: 24 + 1024 payload bytes -> 19 lines = 1216 bytes; 6 fit in 8 KB.
  int stored = 0;
  while ((s = w.PutBytes(MakeKey(100 + stored), Bytes(MakeBytes(stored, 0, 128)))).ok()) ++stored;
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_EQ(stored, static_cast<int>(small.value_heap_bytes / HeapObjectBytes(1024)));
  EXPECT_FALSE(client->LookupBytes(MakeKey(100 + stored))->has_value());  // failed put left nothing
  // Overwriting with an inline value frees heap space for another key.
  ASSERT_TRUE(w.PutBytes(MakeKey(100), Bytes("short")).ok());
  EXPECT_TRUE(w.PutBytes(MakeKey(100 + stored), Bytes(MakeBytes(stored, 0, 128))).ok());
}

TEST(HashTableValuesTest, LookupsRacingLargeValueReplacementsSeeWholeValues) {
  ShardedTables t(1, kConfig);
  auto client = t.Client();
  HashTableWriter& w = t.writer(0);
  constexpr uint64_t kKeys = 16;  // few keys: heap objects are freed and reused constantly
  for (uint64_t i = 0; i < kKeys; ++i) ASSERT_TRUE(w.PutBytes(MakeKey(i), Bytes(MakeBytes(i, 0, 8))).ok());
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> rounds{0};
  std::thread writer([&] {
    std::mt19937_64 rng(5);
    for (uint64_t round = 1; !stop.load(std::memory_order_relaxed); ++round) {
      rounds.store(round, std::memory_order_relaxed);
      const uint64_t i = rng() % kKeys;
      // 8..64 words: sizes change, so freed objects are reused by other keys.
      ASSERT_TRUE(w.PutBytes(MakeKey(i), Bytes(MakeBytes(i, round, 8 + rng() % 57))).ok());
      std::this_thread::yield();
    }
  });
  fabric::FaultOptions faults;
  faults.adversarial = true;
  faults.max_spin = 50;
  t.last_queue().SetFaultOptions(faults);
  while (rounds.load() < 50) {
  }
  std::mt19937_64 rng(9);
  for (int n = 0; n < 2000; ++n) {
    const uint64_t i = rng() % kKeys;
    auto got = client->LookupBytes(MakeKey(i));
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(got->has_value());
    ASSERT_TRUE(testing::ValueIsWhole(reinterpret_cast<const uint8_t*>((*got)->data()), (*got)->size(), i))
        << "torn or foreign value for key " << i;
  }
  stop = true;
  writer.join();
  LOG(INFO) << "2000 racing lookups of large values: " << client->shard(0).reads() << " reads, "
            << rounds.load() << " writer rounds";
}

}  // namespace
}  // namespace dctk::farm::kv
