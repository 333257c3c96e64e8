// MultiLookup against single lookups: tables on 1..4 machines, present and
// missing keys, keys needing the slow path (overflow chains, out-of-line
// values), per-machine batching, and answers under concurrent updates.
#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "farm/kv/hashtable_test_util.h"
#include "glog/logging.h"
#include "gtest/gtest.h"

namespace dctk::farm::kv {
namespace {

using testing::KeyIndex;
using testing::MakeBytes;
using testing::MakeKey;
using testing::MakeValue;
using testing::ShardedTables;
using testing::ValueIsWhole;

constexpr TableConfig kConfig{.buckets = 64, .overflow_blocks = 64, .value_heap_bytes = 1 << 20};

class MultiGetTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(MultiGetTest, SameAnswersAsSingleLookups) {
  const uint32_t machines = GetParam();
  ShardedTables t(machines, kConfig);
  auto client = t.Client();
  // ~85% of each shard's slots, so some keys sit in overflow chains; some
  // values are out of line (Lookup says FailedPrecondition for those).
  const uint64_t keys_present = 440 * machines;
  for (uint64_t i = 0; i < keys_present; ++i) {
    const Key k = MakeKey(i);
    if (i % 50 == 7) {
      const std::string v = MakeBytes(i, 0, 12);
      ASSERT_TRUE(t.writer_for(k).PutBytes(k, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(v.data()), v.size())).ok());
    } else {
      ASSERT_TRUE(t.writer_for(k).Put(k, MakeValue(i, 0)).ok()) << i;
    }
  }
  uint64_t overflow = 0;
  for (uint32_t s = 0; s < machines; ++s) overflow += t.writer(s).overflow_used();
  EXPECT_GT(overflow, 0u) << "no key in an overflow chain: the slow path is not exercised";
  std::mt19937_64 rng(machines);
  for (size_t batch : {1, 7, 64, 300}) {
    std::vector<Key> keys;
    for (size_t j = 0; j < batch; ++j) keys.push_back(MakeKey(rng() % (keys_present + keys_present / 4)));
    if (batch > 1) keys[1] = keys[0];  // duplicates are answered twice
    const uint64_t machine_batches_before = client->stats().machine_batches;
    auto got = client->MultiLookup(keys);
    ASSERT_EQ(got.size(), keys.size());
    for (size_t j = 0; j < batch; ++j) {
      auto single = client->Lookup(keys[j]);
      ASSERT_EQ(got[j].status().code(), single.status().code()) << "key " << KeyIndex(keys[j]);
      if (!single.ok()) continue;
      ASSERT_EQ(*got[j], *single) << "key " << KeyIndex(keys[j]);
      ASSERT_EQ(got[j]->has_value(), KeyIndex(keys[j]) < keys_present);
    }
    // One batch per machine per round of up to kMaxInFlight keys.
    const uint64_t rounds = (batch + HashTableClient<fabric::ShmFabric>::kMaxInFlight - 1) /
                            HashTableClient<fabric::ShmFabric>::kMaxInFlight;
    EXPECT_LE(client->stats().machine_batches - machine_batches_before, rounds * machines);
  }
  LOG(INFO) << machines << " machines: " << client->stats().keys << " keys, "
            << client->stats().machine_batches << " machine batches, " << client->stats().fallbacks
            << " fallbacks";
  EXPECT_GT(client->stats().fallbacks, 0u);
}

TEST_P(MultiGetTest, AnswersStayWholeUnderConcurrentUpdates) {
  const uint32_t machines = GetParam();
  ShardedTables t(machines, kConfig);
  constexpr uint64_t kKeys = 300;
  for (uint64_t i = 0; i < kKeys; ++i) ASSERT_TRUE(t.writer_for(MakeKey(i)).Put(MakeKey(i), MakeValue(i, 0)).ok());
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> rounds{0};
  std::thread writer([&] {
    std::mt19937_64 rng(5);
    for (uint64_t round = 1; !stop.load(std::memory_order_relaxed); ++round) {
      rounds.store(round, std::memory_order_relaxed);
      const uint64_t i = rng() % kKeys;
      const Key k = MakeKey(i);
      if (round % 5 == 0) ASSERT_TRUE(*t.writer_for(k).Erase(k));  // moves keys between buckets
      ASSERT_TRUE(t.writer_for(k).Put(k, MakeValue(i, round)).ok());
      std::this_thread::yield();
    }
  });
  auto client = t.Client();
  fabric::FaultOptions faults;
  faults.adversarial = true;
  faults.max_spin = 50;
  t.last_queue().SetFaultOptions(faults);
  while (rounds.load() < 50) {
  }
  std::mt19937_64 rng(9);
  uint64_t absent = 0, answered = 0;
  for (int n = 0; n < 100; ++n) {
    std::vector<Key> keys;
    for (int j = 0; j < 32; ++j) keys.push_back(MakeKey(rng() % (kKeys + 20)));
    auto got = client->MultiLookup(keys);
    for (size_t j = 0; j < keys.size(); ++j) {
      ASSERT_TRUE(got[j].ok()) << got[j].status();
      const uint64_t i = KeyIndex(keys[j]);
      if (i >= kKeys) {
        ASSERT_FALSE(got[j]->has_value()) << "missing key " << i << " found";
        continue;
      }
      if (!got[j]->has_value()) {
        ++absent;  // erased and not yet re-inserted: allowed
        continue;
      }
      ASSERT_TRUE(ValueIsWhole((*got[j])->data(), kMaxInlineValue, i)) << "torn or foreign value, key " << i;
      ++answered;
    }
  }
  stop = true;
  writer.join();
  LOG(INFO) << machines << " machines, racing writer: " << answered << " answers, " << absent << " absent, "
            << client->stats().fallbacks << " fallbacks, " << rounds.load() << " writer rounds";
}

TEST_P(MultiGetTest, RpcMultiGetSameAnswersAsLookupsWithOneMessagePerMachine) {
  const uint32_t machines = GetParam();
  ShardedTables t(machines, kConfig);
  const uint64_t keys_present = 400 * machines;
  for (uint64_t i = 0; i < keys_present; ++i) {
    ASSERT_TRUE(t.writer_for(MakeKey(i)).Put(MakeKey(i), MakeValue(i, 0)).ok());
  }
  const std::string long_value(100, 'v');  // not 32 bytes: Lookup's FailedPrecondition travels back
  ASSERT_TRUE(t.writer_for(MakeKey(1)).PutBytes(MakeKey(1), absl::MakeConstSpan(
      reinterpret_cast<const uint8_t*>(long_value.data()), long_value.size())).ok());
  auto client = t.Client();
  {
    testing::RpcShards rpc(t, kConfig);
    std::atomic<bool> stop{false};
    std::thread server([&] { rpc.ServeUntil(stop); });
    auto rpc_client = rpc.Client();
    std::mt19937_64 rng(machines);
    uint64_t expected_messages = 0;
    for (size_t batch : {1, 9, 100}) {
      std::vector<Key> keys;
      for (size_t j = 0; j < batch; ++j) keys.push_back(MakeKey(rng() % (keys_present + keys_present / 4)));
      keys[0] = MakeKey(1);
      std::vector<bool> touched(machines);
      for (const Key& k : keys) touched[ShardOf(k, machines)] = true;
      for (bool b : touched) expected_messages += b;
      auto got = rpc_client->MultiLookup(keys);
      for (size_t j = 0; j < batch; ++j) {
        auto single = client->Lookup(keys[j]);
        ASSERT_EQ(got[j].status().code(), single.status().code()) << "key " << KeyIndex(keys[j]);
        if (single.ok()) ASSERT_EQ(*got[j], *single) << "key " << KeyIndex(keys[j]);
      }
    }
    EXPECT_EQ(rpc_client->messages(), expected_messages);
    stop = true;
    server.join();
  }
}

INSTANTIATE_TEST_SUITE_P(Machines, MultiGetTest, ::testing::Values(1u, 2u, 4u));

// Keys 0..99 with their values, for the tests where one of two machines fails.
std::vector<Key> PutKeysOnTwoMachines(ShardedTables& t) {
  std::vector<Key> keys;
  for (uint64_t i = 0; i < 100; ++i) {
    keys.push_back(MakeKey(i));
    CHECK(t.writer_for(keys.back()).Put(keys.back(), MakeValue(i, 0)).ok());
  }
  return keys;
}

// got[j] answers keys[j] (MakeKey(j)): NotFound where the key is on shard
// `failed`, the key's value elsewhere.
void ExpectOnlyShardFailed(absl::Span<const Key> keys,
                           absl::Span<const absl::StatusOr<absl::optional<Value>>> got,
                           uint32_t failed) {
  int bad = 0;
  for (size_t j = 0; j < keys.size(); ++j) {
    if (ShardOf(keys[j], 2) == failed) {
      EXPECT_EQ(got[j].status().code(), absl::StatusCode::kNotFound) << got[j].status();
      ++bad;
    } else {
      ASSERT_TRUE(got[j].ok() && got[j]->has_value()) << "key " << j << ": " << got[j].status();
      EXPECT_EQ(**got[j], MakeValue(j, 0));
    }
  }
  EXPECT_GT(bad, 0);
}

TEST(MultiGetErrorsTest, UnreachableMachineFailsOnlyItsKeys) {
  ShardedTables t(2, kConfig);
  const std::vector<Key> keys = PutKeysOnTwoMachines(t);
  // A client whose second shard names a region key that does not exist.
  std::vector<fabric::RemoteAddress> tables = t.tables();
  tables[1].key += 100;
  auto queue = std::move(*t.client_machine().CreateQueue());
  auto client = std::move(*HashTableClient<fabric::ShmFabric>::Create(t.client_machine(), queue.get(), tables, kConfig));
  ExpectOnlyShardFailed(keys, client->MultiLookup(keys), 1);
}

TEST(MultiGetErrorsTest, RpcMachineWithoutARingFailsOnlyItsKeys) {
  ShardedTables t(2, kConfig);
  const std::vector<Key> keys = PutKeysOnTwoMachines(t);
  testing::RpcShards rpc(t, kConfig);
  std::atomic<bool> stop{false};
  std::thread server([&] { rpc.ServeUntil(stop); });
  std::vector<fabric::MachineId> machines = rpc.machines();
  machines[0] = 200;  // no ring: its request is NotFound and the other machine's still goes
  auto client = rpc.Client(machines);
  const auto got = client->MultiLookup(keys);
  stop = true;
  server.join();
  ExpectOnlyShardFailed(keys, got, 0);
  EXPECT_EQ(client->messages(), 2u);
}

}  // namespace
}  // namespace dctk::farm::kv
