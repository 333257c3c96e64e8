// Concurrent writers at the owner: threads with their own keys (checked
// against per-thread models at the end) and threads fighting over shared keys
// (every final value is whole), in a small table so that displacements and
// overflow chains happen under contention, while a remote reader looks up
// shared keys and must never see a torn value.
#include <atomic>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "farm/kv/hashtable_test_util.h"
#include "glog/logging.h"
#include "gtest/gtest.h"

namespace dctk::farm::kv {
namespace {

using testing::MakeBytes;
using testing::MakeKey;
using testing::MakeValue;
using testing::ShardedTables;
using testing::ValueIsWhole;

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

TEST(HashTableConcurrencyTest, WritersOnOwnAndSharedKeysKeepTheTableConsistent) {
  constexpr TableConfig kConfig{.buckets = 160, .overflow_blocks = 256, .value_heap_bytes = 8 << 20};
  ShardedTables t(1, kConfig);
  HashTableWriter& w = t.writer(0);
  constexpr int kThreads = 4;
  constexpr uint64_t kOwnKeys = 400;  // ~75% present: ~1230 keys in 1288 slots, so chains grow
  constexpr uint64_t kShared = 32;
  constexpr uint64_t kSharedBase = 1000000;
  for (uint64_t s = 0; s < kShared; ++s) {
    ASSERT_TRUE(w.Put(MakeKey(kSharedBase + s), MakeValue(kSharedBase + s, 0)).ok());
  }
  std::vector<std::map<uint64_t, std::string>> models(kThreads);
  std::atomic<int> running{kThreads};
  std::vector<std::thread> writers;
  for (int th = 0; th < kThreads; ++th) {
    writers.emplace_back([&, th] {
      std::mt19937_64 rng(100 + th);
      auto& model = models[th];
      for (uint64_t round = 1; round <= 6000; ++round) {
        const int op = static_cast<int>(rng() % 10);
        if (op < 2) {  // shared key: inline or out of line, whole values only
          const uint64_t i = kSharedBase + rng() % kShared;
          const std::string v = MakeBytes(i, round * kThreads + th, rng() % 2 ? 4 : 4 + rng() % 20);
          ASSERT_TRUE(w.PutBytes(MakeKey(i), Bytes(v)).ok());
          continue;
        }
        const uint64_t i = th * kOwnKeys + rng() % kOwnKeys;
        if (op < 8) {
          const std::string v = MakeBytes(i, round, rng() % 3 == 0 ? 4 + rng() % 12 : 4);
          ASSERT_TRUE(w.PutBytes(MakeKey(i), Bytes(v)).ok()) << "key " << i;
          model[i] = v;
        } else {
          ASSERT_EQ(*w.Erase(MakeKey(i)), model.erase(i) == 1);
        }
      }
      running.fetch_sub(1);
    });
  }
  auto client = t.Client();
  std::mt19937_64 rng(7);
  int lookups = 0;
  while (running.load() > 0) {
    const uint64_t i = kSharedBase + rng() % kShared;
    auto got = client->LookupBytes(MakeKey(i));
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(got->has_value());
    ASSERT_TRUE(ValueIsWhole(reinterpret_cast<const uint8_t*>((*got)->data()), (*got)->size(), i));
    ++lookups;
  }
  for (auto& th : writers) th.join();
  uint64_t expected_size = kShared;
  for (int th = 0; th < kThreads; ++th) {
    expected_size += models[th].size();
    for (uint64_t i = th * kOwnKeys; i < (th + 1) * kOwnKeys; ++i) {
      auto got = client->LookupBytes(MakeKey(i));
      ASSERT_TRUE(got.ok()) << got.status();
      auto it = models[th].find(i);
      ASSERT_EQ(got->has_value(), it != models[th].end()) << "key " << i;
      if (it != models[th].end()) ASSERT_EQ(**got, it->second) << "key " << i;
    }
  }
  for (uint64_t s = 0; s < kShared; ++s) {
    auto got = client->LookupBytes(MakeKey(kSharedBase + s));
    ASSERT_TRUE(got.ok() && got->has_value());
    ASSERT_TRUE(ValueIsWhole(reinterpret_cast<const uint8_t*>((*got)->data()), (*got)->size(), kSharedBase + s));
  }
  EXPECT_EQ(w.size(), expected_size);
  LOG(INFO) << kThreads << " writers: " << w.size() << " keys, " << w.displacements() << " hopscotch moves, "
            << w.overflow_used() << " overflow blocks; " << lookups << " concurrent remote lookups";
}

}  // namespace
}  // namespace dctk::farm::kv
