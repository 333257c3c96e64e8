// The transactional hashtable on an in-process FaRM cluster (3 machines,
// f = 1, shm fabric): operations inside transactions, bad input, a model
// check through displacement and overflow, shards over several machines
// and a lost machine, and lock-free readers only ever seeing whole,
// committed values while transfers update objects and the table atomically.
#include "farm/kv/tx_hashtable.h"

#include <atomic>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
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
  std::memcpy(k.data(), "txkv", 4);
  std::memcpy(k.data() + 8, &i, 8);
  return k;
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

absl::StatusOr<TxHashTable> MakeTable(ShmCluster& c, int shards, uint32_t buckets) {
  return TxHashTable::Create(c.client(1), TxHashTable::SpreadShards(c.table(), shards), {.buckets = buckets});
}

TEST(TxHashTableTest, OperationsInsideTransactions) {
  auto c = tx::MakeShmCluster();
  absl::StatusOr<TxHashTable> t = MakeTable(*c, 3, 64);
  ASSERT_TRUE(t.ok()) << t.status();
  auto& client = c->client(2);
  {
    auto tx = client.Begin();
    ASSERT_TRUE(t->Put(tx, K(1), "one").ok());
    ASSERT_TRUE(t->Put(tx, K(2), "").ok());  // an empty value is a value
    ASSERT_TRUE(tx.Commit().ok());
  }
  {
    auto tx = client.Begin();
    absl::StatusOr<absl::optional<std::string>> v = t->Get(tx, K(1));
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->value_or("<absent>"), "one");
    EXPECT_EQ(t->Get(tx, K(2))->value_or("<absent>"), "");
    EXPECT_FALSE(t->Get(tx, K(3))->has_value());  // unknown key: absent, not an error
    EXPECT_EQ(t->Insert(tx, K(1), "x").code(), absl::StatusCode::kAlreadyExists);
    absl::Status s = t->Update(tx, K(3), "x");
    EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
    EXPECT_NE(s.message().find("not found"), absl::string_view::npos) << s;
    s = t->Put(tx, K(4), std::string(4097, 'v'));  // over max_value_bytes (tx_hashtable_values_test: more)
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("4097 bytes"), absl::string_view::npos) << s;
    ASSERT_TRUE(t->Update(tx, K(1), "uno").ok());
    EXPECT_EQ(t->Get(tx, K(1))->value_or(""), "uno");  // the transaction sees its own write
    EXPECT_TRUE(*t->Erase(tx, K(2)));
    EXPECT_FALSE(*t->Erase(tx, K(2)));
    ASSERT_TRUE(tx.Commit().ok());
  }
  {
    auto tx = client.Begin();  // aborted: nothing of it is visible
    ASSERT_TRUE(t->Put(tx, K(1), "never").ok());
    ASSERT_TRUE(t->Put(tx, K(5), "never").ok());
    tx.Abort();
  }
  std::unique_ptr<ShmFabric::Queue> q;
  auto reader = MakeReader(*c, 3, *t, &q);
  EXPECT_EQ(reader->Lookup(K(1))->value_or("<absent>"), "uno");
  EXPECT_FALSE(reader->Lookup(K(2))->has_value());
  EXPECT_FALSE(reader->Lookup(K(5))->has_value());
  EXPECT_EQ(reader->reads(), 3u);  // one read per lookup
}

TEST(TxHashTableTest, BadConfigurations) {
  auto c = tx::MakeShmCluster();
  const std::vector<RegionId> one = TxHashTable::SpreadShards(c->table(), 1);
  EXPECT_EQ(TxHashTable::Create(c->client(1), one, {.buckets = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TxHashTable::Create(c->client(1), one, {.buckets = 8, .value_heap_bytes = 4096}).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::Status s = TxHashTable::Create(c->client(1), one, {.buckets = kMaxShardObjects}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("heap block"), absl::string_view::npos) << s;
  EXPECT_EQ(TxHashTable::Create(c->client(1), {}, {.buckets = 8}).status().code(), absl::StatusCode::kInvalidArgument);
}

// Random puts, inserts and erases, several per transaction, in a one-shard
// table small enough that displacement and overflow blocks are needed.
TEST(TxHashTableTest, MatchesAModelThroughDisplacementAndOverflow) {
  auto c = tx::MakeShmCluster();
  absl::StatusOr<TxHashTable> t = MakeTable(*c, 1, 16);  // 17 buckets: 136 slots
  ASSERT_TRUE(t.ok()) << t.status();
  std::map<uint64_t, std::string> model;
  std::mt19937_64 rng(5);
  auto& client = c->client(1);
  for (int round = 0; round < 200; ++round) {
    auto tx = client.Begin();
    std::map<uint64_t, std::string> next = model;
    const int ops = 1 + static_cast<int>(rng() % 4);
    for (int o = 0; o < ops; ++o) {
      const uint64_t k = rng() % 240;
      const std::string v = absl::StrCat("v", k, "-", round, "-", o);
      if (rng() % 6 == 0) {
        absl::StatusOr<bool> erased = t->Erase(tx, K(k));
        ASSERT_TRUE(erased.ok()) << erased.status();
        EXPECT_EQ(*erased, next.erase(k) == 1);
      } else {
        ASSERT_TRUE(t->Put(tx, K(k), v).ok());
        next[k] = v;
      }
    }
    ASSERT_TRUE(tx.Commit().ok());
    model = std::move(next);
  }
  ASSERT_GT(model.size(), 140u);  // more keys than bucket slots
  std::unique_ptr<ShmFabric::Queue> q;
  auto reader = MakeReader(*c, 2, *t, &q);
  auto tx = client.Begin();
  for (uint64_t k = 0; k < 240; ++k) {
    absl::StatusOr<absl::optional<std::string>> got = t->Get(tx, K(k));
    ASSERT_TRUE(got.ok()) << got.status();
    absl::StatusOr<absl::optional<std::string>> seen = reader->Lookup(K(k));
    ASSERT_TRUE(seen.ok()) << seen.status();
    auto it = model.find(k);
    if (it == model.end()) {
      EXPECT_FALSE(got->has_value()) << k;
      EXPECT_FALSE(seen->has_value()) << k;
    } else {
      EXPECT_EQ(got->value_or("<absent>"), it->second) << k;
      EXPECT_EQ(seen->value_or("<absent>"), it->second) << k;
    }
  }
  absl::StatusOr<uint64_t> overflow = t->OverflowBlocksUsed(tx, 0);
  ASSERT_TRUE(overflow.ok()) << overflow.status();
  EXPECT_GT(*overflow, 0u);
  EXPECT_GT(reader->reads(), reader->lookups());  // chains cost extra reads
}

TEST(TxHashTableTest, ShardsSpanMachinesAndALostMachineMovesOnlyItsShards) {
  auto c = tx::MakeShmCluster();  // 3 machines, 6 regions, 2 copies each
  absl::StatusOr<TxHashTable> t = MakeTable(*c, 6, 128);
  ASSERT_TRUE(t.ok()) << t.status();
  std::unique_ptr<ShmFabric::Queue> q;
  auto reader = MakeReader(*c, 1, *t, &q);
  std::vector<fabric::RemoteAddress> before;
  std::set<fabric::MachineId> primaries;
  for (uint32_t s = 0; s < 6; ++s) {
    absl::StatusOr<fabric::RemoteAddress> at = reader->ShardAt(s);
    ASSERT_TRUE(at.ok()) << at.status();
    before.push_back(*at);
    primaries.insert(at->machine);
  }
  EXPECT_EQ(primaries.size(), 3u);  // the table spans all machines
  constexpr uint64_t kKeys = 600;
  for (uint64_t base = 0; base < kKeys; base += 20) {
    auto tx = c->client(1 + base % 3).Begin();
    for (uint64_t k = base; k < base + 20; ++k) ASSERT_TRUE(t->Put(tx, K(k), absl::StrCat("a", k)).ok());
    ASSERT_TRUE(tx.Commit().ok());
  }
  std::vector<int> per_shard(6);
  for (uint64_t k = 0; k < kKeys; ++k) {
    ++per_shard[t->layout().ShardOfKey(K(k))];
    ASSERT_EQ(reader->Lookup(K(k))->value_or(""), absl::StrCat("a", k));
  }
  for (int n : per_shard) EXPECT_GT(n, 50);  // keys spread over every shard
  const uint64_t aims = reader->aims();

  c->Kill(3);
  ASSERT_TRUE(c->Recover({3}).ok());
  int moved = 0;
  for (uint32_t s = 0; s < 6; ++s) {
    absl::StatusOr<fabric::RemoteAddress> at = reader->ShardAt(s);
    ASSERT_TRUE(at.ok()) << at.status();
    const bool same = at->machine == before[s].machine && at->key == before[s].key && at->offset == before[s].offset;
    EXPECT_EQ(same, before[s].machine != 3) << "shard " << s;
    EXPECT_NE(at->machine, 3u);
    moved += !same;
  }
  EXPECT_EQ(moved, 2);
  for (uint64_t k = 0; k < kKeys; ++k) {
    absl::StatusOr<absl::optional<std::string>> v = reader->Lookup(K(k));
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->value_or(""), absl::StrCat("a", k));
  }
  EXPECT_EQ(reader->aims(), aims + 2);  // only the moved shards were re-aimed
  // The moved shards take transactional updates at their new primaries.
  for (uint64_t base = 0; base < kKeys; base += 50) {
    auto tx = c->client(1).Begin();
    for (uint64_t k = base; k < base + 50; ++k) ASSERT_TRUE(t->Put(tx, K(k), absl::StrCat("b", k)).ok());
    ASSERT_TRUE(tx.Commit().ok());
  }
  for (uint64_t k = 0; k < kKeys; ++k) EXPECT_EQ(reader->Lookup(K(k))->value_or(""), absl::StrCat("b", k));
}

// A hashtable value: [balance | seq | check], check a hash of both, so a
// torn copy (parts of two values) fails the check.
struct Entry {
  uint64_t balance = 0, seq = 0, check = 0;
};
uint64_t Check(uint64_t balance, uint64_t seq) { return (balance * 0x9E3779B97F4A7C15ull) ^ (seq * 0xBF58476D1CE4E5B9ull) ^ 0x5a5a; }
std::string Encode(uint64_t balance, uint64_t seq) {
  Entry e{balance, seq, Check(balance, seq)};
  return std::string(reinterpret_cast<const char*>(&e), sizeof(e));
}
absl::optional<Entry> Decode(const std::string& s) {
  Entry e;
  if (s.size() != sizeof(e)) return absl::nullopt;
  std::memcpy(&e, s.data(), sizeof(e));
  if (e.check != Check(e.balance, e.seq)) return absl::nullopt;
  return e;
}

// Transfers move money between account objects AND update each account's
// hashtable entry in the same transaction (some are aborted on purpose after
// writing). Lock-free readers on an adversarial queue (yielding between
// cache lines, so copies tear) must see only whole values written by
// committed transactions; audits (read-only transactions) must find every
// entry equal to its account and the total intact.
TEST(TxHashTableTest, LockFreeReadersSeeOnlyCommittedValuesOfAtomicTransfers) {
  auto c = tx::MakeShmCluster({.clients_per_machine = 2});
  absl::StatusOr<TxHashTable> t = MakeTable(*c, 3, 8);  // 9 buckets per shard: entries share buckets
  ASSERT_TRUE(t.ok()) << t.status();
  constexpr int kAccounts = 12;
  constexpr uint64_t kInitial = 1000;
  std::vector<GlobalAddress> accounts(kAccounts);
  {
    auto tx = c->client(1).Begin();
    for (int i = 0; i < kAccounts; ++i) {
      accounts[i] = *tx.Alloc(8);
      ASSERT_TRUE(tx.Write(accounts[i], tx::U64(kInitial)).ok());
      ASSERT_TRUE(t->Insert(tx, K(i), Encode(kInitial, 0)).ok());
    }
    ASSERT_TRUE(tx.Commit().ok());
  }
  absl::Mutex mu;
  std::set<uint64_t> committed = {0}, not_committed;
  std::atomic<uint64_t> next_seq{1};
  std::atomic<int> writers_left{3};
  std::atomic<uint64_t> aborted_on_purpose{0}, conflicts{0};
  std::vector<std::thread> threads;
  for (int m = 1; m <= 3; ++m) {
    threads.emplace_back([&, m] {
      auto& client = c->client(m);
      std::mt19937_64 rng(m);
      for (int round = 0; round < 150; ++round) {
        const int from = static_cast<int>(rng() % kAccounts);
        const int to = (from + 1 + static_cast<int>(rng() % (kAccounts - 1))) % kAccounts;
        const uint64_t seq = next_seq.fetch_add(1);
        auto tx = client.Begin();
        absl::StatusOr<std::string> a = tx.Read(accounts[from], 8), b = tx.Read(accounts[to], 8);
        if (!a.ok() || !b.ok()) {
          ++conflicts;
          absl::MutexLock l(&mu);
          not_committed.insert(seq);
          continue;
        }
        const uint64_t amount = std::min<uint64_t>(tx::AsU64(*a), rng() % 50);
        const uint64_t na = tx::AsU64(*a) - amount, nb = tx::AsU64(*b) + amount;
        absl::Status s = tx.Write(accounts[from], tx::U64(na));
        if (s.ok()) s = tx.Write(accounts[to], tx::U64(nb));
        if (s.ok()) s = t->Update(tx, K(from), Encode(na, seq));
        if (s.ok()) s = t->Update(tx, K(to), Encode(nb, seq));
        if (s.ok() && rng() % 8 == 0) {
          tx.Abort();
          ++aborted_on_purpose;
          s = absl::CancelledError("aborted by the test");
        } else if (s.ok()) {
          s = tx.Commit();
        } else {
          tx.Abort();
        }
        EXPECT_TRUE(s.ok() || absl::IsAborted(s) || absl::IsCancelled(s)) << s;
        if (absl::IsAborted(s)) ++conflicts;
        absl::MutexLock l(&mu);
        (s.ok() ? committed : not_committed).insert(seq);
      }
      --writers_left;
    });
  }
  std::vector<std::vector<uint64_t>> seen(2);
  std::atomic<uint64_t> torn_values{0}, lookups{0};
  std::vector<std::unique_ptr<ShmFabric::Queue>> queues(2);
  std::vector<std::unique_ptr<TxHashTableReader<ShmFabric>>> readers;
  for (int r = 0; r < 2; ++r) {
    readers.push_back(MakeReader(*c, 1 + r, *t, &queues[r]));
    queues[r]->SetFaultOptions({.adversarial = true, .max_spin = 200, .seed = uint64_t(r + 1)});
  }
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937_64 rng(100 + r);
      while (writers_left.load() > 0) {
        const int i = static_cast<int>(rng() % kAccounts);
        absl::StatusOr<absl::optional<std::string>> v = readers[r]->Lookup(K(i));
        ASSERT_TRUE(v.ok()) << v.status();
        ASSERT_TRUE(v->has_value()) << "account " << i << "'s entry missing";
        absl::optional<Entry> e = Decode(**v);
        if (!e) {
          ++torn_values;
          continue;
        }
        seen[r].push_back(e->seq);
        ++lookups;
      }
    });
  }
  // Audits from the second coordinator of machine 3 while all this runs; what
  // a transaction read is checked once it committed (validated).
  int audits = 0;
  while (writers_left.load() > 0) {
    auto tx = c->client(3, 1).Begin();
    std::vector<std::pair<uint64_t, absl::optional<Entry>>> read;
    for (int i = 0; i < kAccounts; ++i) {
      absl::StatusOr<std::string> a = tx.Read(accounts[i], 8);
      if (!a.ok()) break;
      absl::StatusOr<absl::optional<std::string>> e = t->Get(tx, K(i));
      if (!e.ok()) break;
      read.emplace_back(tx::AsU64(*a), e->has_value() ? Decode(**e) : absl::nullopt);
    }
    std::this_thread::yield();  // leave the cores to writers and readers too
    if (read.size() < kAccounts || !tx.Commit().ok()) continue;
    ++audits;
    uint64_t total = 0;
    for (int i = 0; i < kAccounts; ++i) {
      total += read[i].first;
      EXPECT_TRUE(read[i].second.has_value()) << "account " << i << "'s entry missing or not whole";
      if (read[i].second.has_value()) {
        EXPECT_EQ(read[i].second->balance, read[i].first) << "account " << i << " and its entry disagree";
      }
    }
    EXPECT_EQ(total, kAccounts * kInitial);
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(torn_values.load(), 0u);
  EXPECT_GT(aborted_on_purpose.load(), 0u);
  EXPECT_GT(lookups.load(), 0u);
  EXPECT_GT(audits, 0);
  for (const auto& s : seen) {
    for (uint64_t seq : s) EXPECT_TRUE(committed.contains(seq)) << "a reader saw seq " << seq << ", never committed";
  }
  std::unique_ptr<ShmFabric::Queue> q;
  auto final_reader = MakeReader(*c, 2, *t, &q);
  auto tx = c->client(2).Begin();
  uint64_t total = 0;
  for (int i = 0; i < kAccounts; ++i) {
    const uint64_t balance = tx::AsU64(*tx.Read(accounts[i], 8));
    total += balance;
    absl::optional<Entry> e = Decode(final_reader->Lookup(K(i))->value_or(""));
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->balance, balance);
  }
  EXPECT_EQ(total, kAccounts * kInitial);
  LOG(INFO) << "committed " << committed.size() - 1 << ", not committed " << not_committed.size() << " (on purpose "
            << aborted_on_purpose.load() << ", conflicts " << conflicts.load() << "), lock-free lookups "
            << lookups.load() << " in " << readers[0]->reads() + readers[1]->reads()
            << " reads (the rest: torn or locked copies read again), audits " << audits;
}

}  // namespace
}  // namespace dctk::farm::kv
