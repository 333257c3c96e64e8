// Values beyond the 32-byte inline limit in the transactional hashtable
// (tx_hashtable.h), on an in-process FaRM cluster (3 machines, f = 1, shm):
// sizes at and beyond the limit through Get and the lock-free reader,
// overwrites crossing the limit both ways, objects freed and reused (no
// leak over many rounds in a small region, whose heap blocks empty and pass
// from one size class to another), bad input, and concurrent
// read-modify-write transactions on shared keys while lock-free readers only
// ever see whole committed values.
#include <atomic>
#include <bit>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "farm/kv/tx_hashtable.h"
#include "farm/kv/tx_hashtable_reader.h"
#include "farm/tx/test_util.h"
#include "glog/logging.h"
#include "gtest/gtest.h"

namespace dctk::farm::kv {
namespace {

using fabric::ShmFabric;
using tx::ShmCluster;

Key K(uint64_t i) {
  Key k{};
  std::memcpy(k.data(), "bigv", 4);
  std::memcpy(k.data() + 8, &i, 8);
  return k;
}

// A value of `len` bytes that names its key and a tag, so a torn or foreign
// value is recognised.
std::string V(uint64_t key, uint64_t tag, size_t len) {
  std::string v = absl::StrCat(key, ":", tag, ":");
  v.resize(std::max(len, v.size()), static_cast<char>('a' + (key + tag) % 26));
  v.resize(len);
  return v;
}

// Regions with room for the shard's heap block and blocks of several value size classes.
std::unique_ptr<ShmCluster> MakeCluster(uint64_t region_size = 16 << 20) {
  tx::LocalClusterOptions o;
  o.region_size = region_size;
  return tx::MakeShmCluster(o);
}

// Bytes of the value object a value of `len` bytes gets (0: inline).
uint64_t ObjectFor(size_t len) {
  return len <= kMaxTxInlineValue ? 0 : std::bit_ceil(ObjectLines(kHeapValueHeader + len)) * kLineSize;
}

std::unique_ptr<TxHashTableReader<ShmFabric>> MakeReader(ShmCluster& c, fabric::MachineId m, const TxHashTable& t,
                                                         std::unique_ptr<ShmFabric::Queue>* queue) {
  auto q = c.fabric(m).CreateQueue();
  CHECK(q.ok()) << q.status();
  *queue = std::move(*q);
  auto r = TxHashTableReader<ShmFabric>::Create(c.fabric(m), queue->get(), &c.table(), t.layout());
  CHECK(r.ok()) << r.status();
  return std::move(*r);
}

absl::Status Commit(tx::TxClient<ShmFabric>& client, const std::function<absl::Status(tx::Transaction<ShmFabric>&)>& body) {
  auto t = client.Begin();
  absl::Status s = body(t);
  if (!s.ok()) {
    t.Abort();
    return s;
  }
  return t.Commit();
}

TEST(TxHashTableValuesTest, SizesAtAndBeyondTheInlineLimitThroughGetAndTheReader) {
  auto c = MakeCluster();
  absl::StatusOr<TxHashTable> t =
      TxHashTable::Create(c->client(1), TxHashTable::SpreadShards(c->table(), 3), {.buckets = 64});
  ASSERT_TRUE(t.ok()) << t.status();
  const std::vector<size_t> sizes = {0, 1, 31, 32, 33, 40, 100, 1000, 4095, 4096};
  auto& client = c->client(2);
  for (size_t i = 0; i < sizes.size(); ++i) {
    ASSERT_TRUE(Commit(client, [&](auto& tx) { return t->Put(tx, K(i), V(i, 1, sizes[i])); }).ok()) << sizes[i];
  }
  std::unique_ptr<ShmFabric::Queue> q;
  auto reader = MakeReader(*c, 3, *t, &q);
  for (size_t i = 0; i < sizes.size(); ++i) {
    auto tx = c->client(3).Begin();
    absl::StatusOr<absl::optional<std::string>> v = t->Get(tx, K(i));
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->value_or("<absent>"), V(i, 1, sizes[i])) << sizes[i] << " bytes through Get";
    tx.Abort();
    const uint64_t reads = reader->reads();
    v = reader->Lookup(K(i));
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->value_or("<absent>"), V(i, 1, sizes[i])) << sizes[i] << " bytes through the reader";
    EXPECT_EQ(reader->reads() - reads, sizes[i] <= kMaxTxInlineValue ? 1u : 2u) << sizes[i] << " bytes";
  }

  // Overwrites crossing the limit both ways, growing past the value object,
  // shrinking in place; the transaction sees its own out-of-line writes.
  const std::vector<std::pair<size_t, size_t>> changes = {{0, 500}, {4096, 10}, {33, 32}, {32, 33},
                                                          {40, 3000}, {1000, 900}, {100, 0}};
  for (const auto& [from, to] : changes) {
    const size_t i = std::find(sizes.begin(), sizes.end(), from) - sizes.begin();
    absl::Status s = Commit(client, [&](auto& tx) {
      if (absl::Status u = t->Update(tx, K(i), V(i, 2, to)); !u.ok()) return u;
      absl::StatusOr<absl::optional<std::string>> own = t->Get(tx, K(i));
      if (!own.ok()) return own.status();
      EXPECT_EQ(own->value_or("<absent>"), V(i, 2, to)) << from << " -> " << to << " inside the transaction";
      return absl::OkStatus();
    });
    ASSERT_TRUE(s.ok()) << from << " -> " << to << ": " << s;
    absl::StatusOr<absl::optional<std::string>> v = reader->Lookup(K(i));
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->value_or("<absent>"), V(i, 2, to)) << from << " -> " << to;
  }
  // An aborted overwrite and an aborted insert of big values leave nothing.
  {
    auto tx = client.Begin();
    ASSERT_TRUE(t->Put(tx, K(1), V(1, 9, 2000)).ok());
    ASSERT_TRUE(t->Put(tx, K(99), V(99, 9, 2000)).ok());
    tx.Abort();
  }
  EXPECT_EQ(reader->Lookup(K(1))->value_or("<absent>"), V(1, 1, 1));
  EXPECT_FALSE(reader->Lookup(K(99))->has_value());
  // Erase frees the value object; the key is gone for Get and the reader.
  ASSERT_TRUE(Commit(client, [&](auto& tx) { return t->Erase(tx, K(8)).status(); }).ok());
  EXPECT_FALSE(reader->Lookup(K(8))->has_value());
  auto tx = client.Begin();
  EXPECT_FALSE(t->Get(tx, K(8))->has_value());
  tx.Abort();
}

// Many rounds of inserts, overwrites of changing sizes and erases of big
// values in one small region, by three coordinators in turn: freed value
// objects are reused, and blocks emptied of one size class serve another,
// so the region never fills, although the objects the rounds allocate add
// up to more than the region (a leak of the replaced or erased ones would
// exhaust it).
TEST(TxHashTableValuesTest, OverwritesAndErasesFreeTheirValueObjects) {
  constexpr uint64_t kRegion = 6 << 20;  // the shard's block and one for each of 4 value size classes, 1 spare
  auto c = MakeCluster(kRegion);
  const std::vector<RegionId> one = TxHashTable::SpreadShards(c->table(), 1);
  absl::StatusOr<TxHashTable> t = TxHashTable::Create(c->client(1), one, {.buckets = 64});
  ASSERT_TRUE(t.ok()) << t.status();
  std::mt19937_64 rng(3);
  std::map<uint64_t, std::string> model;
  const std::vector<size_t> sizes = {20, 200, 1500, 3000, 4096};
  uint64_t allocated = 0;  // bytes of value objects the rounds allocated
  for (int round = 0; round < 5000; ++round) {
    // Coordinators take turns, so frees that empty a block and allocations
    // that reuse it for another size class come from different ones.
    auto& client = c->client(1 + round % 3);
    const uint64_t k = rng() % 16;
    const std::string v = V(k, round, sizes[rng() % sizes.size()]);
    absl::Status s;
    if (rng() % 4 == 0) {
      s = Commit(client, [&](auto& tx) { return t->Erase(tx, K(k)).status(); });
      if (s.ok()) model.erase(k);
    } else {
      s = Commit(client, [&](auto& tx) { return t->Put(tx, K(k), v); });
      if (s.ok()) {
        const uint64_t before = model.count(k) ? ObjectFor(model[k].size()) : 0;
        if (ObjectFor(v.size()) > before) allocated += ObjectFor(v.size());  // else rewritten in place
        model[k] = v;
      }
    }
    ASSERT_TRUE(s.ok()) << "round " << round << ": " << s;
  }
  EXPECT_GT(allocated, kRegion) << "the test allocates more than the region holds";
  std::unique_ptr<ShmFabric::Queue> q;
  auto reader = MakeReader(*c, 2, *t, &q);
  for (uint64_t k = 0; k < 16; ++k) {
    absl::StatusOr<absl::optional<std::string>> v = reader->Lookup(K(k));
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->value_or("<absent>"), model.count(k) ? model[k] : "<absent>") << "key " << k;
  }
}

TEST(TxHashTableValuesTest, BadInputGivesClearErrorsAndChangesNothing) {
  auto c = MakeCluster();
  const std::vector<RegionId> one = TxHashTable::SpreadShards(c->table(), 1);
  absl::Status s = TxHashTable::Create(c->client(1), one, {.buckets = 8, .max_value_bytes = kMaxTxValueBytes + 1})
                       .status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("max_value_bytes"), absl::string_view::npos) << s;
  absl::StatusOr<TxHashTable> t = TxHashTable::Create(c->client(1), one, {.buckets = 8, .max_value_bytes = 100});
  ASSERT_TRUE(t.ok()) << t.status();
  auto& client = c->client(1);
  ASSERT_TRUE(Commit(client, [&](auto& tx) { return t->Put(tx, K(1), V(1, 1, 100)); }).ok());  // at the max
  {
    auto tx = client.Begin();
    s = t->Put(tx, K(1), V(1, 2, 101));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("101 bytes"), absl::string_view::npos) << s;
    EXPECT_NE(s.message().find("max_value_bytes of 100"), absl::string_view::npos) << s;
    EXPECT_NE(s.message().find(absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(K(1).data()), 16))),
              absl::string_view::npos)
        << "names the key: " << s;
    EXPECT_EQ(t->Insert(tx, K(2), std::string(1 << 20, 'x')).code(), absl::StatusCode::kInvalidArgument);
    ASSERT_TRUE(tx.Commit().ok());  // nothing was written
  }
  // A value object this transaction allocated cannot be freed by it.
  {
    auto tx = client.Begin();
    ASSERT_TRUE(t->Put(tx, K(3), V(3, 1, 80)).ok());
    s = t->Erase(tx, K(3)).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(s.message().find("allocated by this transaction"), absl::string_view::npos) << s;
    EXPECT_EQ(t->Put(tx, K(3), "short").code(), absl::StatusCode::kFailedPrecondition);
    ASSERT_TRUE(t->Put(tx, K(3), V(3, 2, 70)).ok()) << "fits its object: rewritten in place";
    ASSERT_TRUE(tx.Commit().ok());
  }
  std::unique_ptr<ShmFabric::Queue> q;
  auto reader = MakeReader(*c, 2, *t, &q);
  EXPECT_EQ(reader->Lookup(K(1))->value_or("<absent>"), V(1, 1, 100));
  EXPECT_FALSE(reader->Lookup(K(2))->has_value());
  EXPECT_EQ(reader->Lookup(K(3))->value_or("<absent>"), V(3, 2, 70));
  ASSERT_TRUE(Commit(client, [&](auto& tx) { return t->Erase(tx, K(3)).status(); }).ok()) << "a later one can";
}

// Value of a counter key: "<key>:<count>:" padded to a length that changes
// with the count (crossing the inline limit), so every update reallocates or
// rewrites the object.
size_t CounterLength(uint64_t count) { return std::vector<size_t>{24, 60, 300, 1200}[count % 4]; }

bool ParseCounter(uint64_t key, const std::string& v, uint64_t* count) {
  std::vector<std::string> parts = absl::StrSplit(v, absl::MaxSplits(':', 2));
  return parts.size() == 3 && parts[0] == absl::StrCat(key) && absl::SimpleAtoi(parts[1], count) &&
         v == V(key, *count, CounterLength(*count));
}

TEST(TxHashTableValuesTest, ConcurrentUpdatesOfBigValuesWhileReadersSeeOnlyWholeCommittedOnes) {
  auto c = MakeCluster();
  absl::StatusOr<TxHashTable> t =
      TxHashTable::Create(c->client(1), TxHashTable::SpreadShards(c->table(), 2), {.buckets = 16});
  ASSERT_TRUE(t.ok()) << t.status();
  constexpr uint64_t kKeys = 6;
  for (uint64_t k = 0; k < kKeys; ++k) {
    ASSERT_TRUE(Commit(c->client(1), [&](auto& tx) { return t->Put(tx, K(k), V(k, 0, CounterLength(0))); }).ok());
  }
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> committed{0}, aborted{0}, lookups{0};
  std::vector<std::string> bad;
  absl::Mutex mu;
  // Three writers (one coordinator per machine): increment one or two keys.
  std::vector<std::thread> threads;
  for (fabric::MachineId m = 1; m <= 3; ++m) {
    threads.emplace_back([&, m] {
      std::mt19937_64 rng(m);
      for (int i = 0; i < 150; ++i) {
        const uint64_t a = rng() % kKeys, b = rng() % kKeys;
        absl::Status s = Commit(c->client(m), [&](auto& tx) {
          for (uint64_t k : a == b ? std::vector<uint64_t>{a} : std::vector<uint64_t>{a, b}) {
            absl::StatusOr<absl::optional<std::string>> v = t->Get(tx, K(k));
            if (!v.ok()) return v.status();
            uint64_t n;
            if (!v->has_value() || !ParseCounter(k, **v, &n)) {
              return absl::DataLossError(absl::StrCat("key ", k, " holds ", v->value_or("<absent>").substr(0, 40)));
            }
            if (absl::Status u = t->Update(tx, K(k), V(k, n + 1, CounterLength(n + 1))); !u.ok()) return u;
          }
          return absl::OkStatus();
        });
        if (s.ok()) {
          committed.fetch_add(a == b ? 1 : 2);
        } else if (absl::IsAborted(s)) {
          aborted.fetch_add(1);
        } else {
          absl::MutexLock l(&mu);
          bad.push_back(s.ToString());
        }
      }
    });
  }
  // Two lock-free readers on machines 2 and 3.
  std::vector<std::thread> readers;
  for (fabric::MachineId m : {2u, 3u}) {
    readers.emplace_back([&, m] {
      std::unique_ptr<ShmFabric::Queue> q;
      auto reader = MakeReader(*c, m, *t, &q);
      std::mt19937_64 rng(m + 10);
      while (!stop.load()) {
        const uint64_t k = rng() % kKeys;
        absl::StatusOr<absl::optional<std::string>> v = reader->Lookup(K(k));
        uint64_t n;
        if (!v.ok() || !v->has_value() || !ParseCounter(k, **v, &n)) {
          absl::MutexLock l(&mu);
          bad.push_back(v.ok() ? absl::StrCat("reader saw key ", k, " = ", v->value_or("<absent>").substr(0, 40))
                               : v.status().ToString());
        }
        lookups.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  stop.store(true);
  for (auto& th : readers) th.join();
  EXPECT_TRUE(bad.empty()) << bad.size() << " bad results, first: " << bad.front();
  uint64_t total = 0;
  auto tx = c->client(1).Begin();
  for (uint64_t k = 0; k < kKeys; ++k) {
    absl::StatusOr<absl::optional<std::string>> v = t->Get(tx, K(k));
    ASSERT_TRUE(v.ok()) << v.status();
    uint64_t n = 0;
    ASSERT_TRUE(v->has_value() && ParseCounter(k, **v, &n)) << v->value_or("<absent>");
    total += n;
  }
  tx.Abort();
  EXPECT_EQ(total, committed.load()) << "every committed increment exactly once";
  EXPECT_GT(committed.load(), 0u);
  printf("%llu increments committed, %llu transactions aborted, %llu lock-free lookups\n",
         static_cast<unsigned long long>(committed.load()), static_cast<unsigned long long>(aborted.load()),
         static_cast<unsigned long long>(lookups.load()));
}

}  // namespace
}  // namespace dctk::farm::kv
