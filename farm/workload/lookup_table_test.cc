// The workload's lookup table on an in-process 3-machine cluster (shm, f = 1):
// shards spread over the machines, every key found lock-free from another
// machine, bank transfers updating their account's entry in their own
// transaction (an aborted one leaves no trace), lookups racing transfers see
// only records of committed transfers, forged values are told apart, and
// TransferHistory follows journal ids reused after failed attempts.
#include "farm/workload/lookup_table.h"

#include <atomic>
#include <memory>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "farm/kv/tx_hashtable_reader.h"
#include "farm/tx/test_util.h"
#include "gtest/gtest.h"

namespace dctk::farm::workload {
namespace {

using fabric::ShmFabric;
using Reader = kv::TxHashTableReader<ShmFabric>;

struct ReaderOn {
  std::unique_ptr<ShmFabric::Queue> queue;
  std::unique_ptr<Reader> reader;
};

// A lock-free reader on machine m's fabric.
ReaderOn MakeReader(tx::ShmCluster& c, fabric::MachineId m, const LookupTable& t) {
  ReaderOn r;
  auto q = c.fabric(m).CreateQueue();
  EXPECT_TRUE(q.ok()) << q.status();
  r.queue = std::move(*q);
  auto reader = Reader::Create(c.fabric(m), r.queue.get(), &c.table(), t.layout());
  EXPECT_TRUE(reader.ok()) << reader.status();
  r.reader = std::move(*reader);
  return r;
}

absl::StatusOr<LookupTable> MakeTable(tx::ShmCluster& c, int keys, uint64_t seed = 1) {
  absl::StatusOr<LookupTable> t = LookupTable::Create(c.client(1), c.table(), {.keys = keys, .seed = seed});
  if (!t.ok()) return t.status();
  absl::Status filled = t->Fill(c.client(1));
  if (!filled.ok()) return filled;
  return t;
}

TEST(LookupTableTest, ShardsOnEveryMachineAndEveryKeyFoundLockFree) {
  auto c = tx::MakeShmCluster();
  constexpr int kKeys = 300;
  absl::StatusOr<LookupTable> t = MakeTable(*c, kKeys);
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->layout().shards.size(), 3u);
  std::set<fabric::MachineId> primaries;
  for (const GlobalAddress& s : t->layout().shards) {
    absl::StatusOr<RegionInfo> r = c->table().Lookup(s.region());
    ASSERT_TRUE(r.ok()) << r.status();
    primaries.insert(r->primary().machine);
  }
  EXPECT_EQ(primaries.size(), 3u) << "the shards are not spread over the machines: " << t->ShardsString();

  ReaderOn r = MakeReader(*c, 2, *t);
  for (int i = 0; i < kKeys; ++i) {
    absl::StatusOr<absl::optional<std::string>> v = r.reader->Lookup(t->KeyOf(i));
    ASSERT_TRUE(v.ok()) << i << ": " << v.status();
    ASSERT_TRUE(v->has_value()) << "key " << i << " missing";
    EXPECT_EQ(t->Classify(i, **v).kind, LookupTable::Kind::kInitial) << "key " << i;
  }
  for (int i = kKeys; i < kKeys + 50; ++i) {
    absl::StatusOr<absl::optional<std::string>> v = r.reader->Lookup(t->KeyOf(i));
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_FALSE(v->has_value()) << "key " << i << " should miss";
  }
  EXPECT_LE(r.reader->reads(), r.reader->lookups() + r.reader->lookups() / 20) << "more than ~1 read per lookup";
  // Filling again changes nothing (setup retries it after a failure).
  ASSERT_TRUE(t->Fill(c->client(2)).ok());
  absl::StatusOr<absl::optional<std::string>> v = r.reader->Lookup(t->KeyOf(7));
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ(**v, t->InitialValue(7));
}

TEST(LookupTableTest, TransfersRecordThemselvesInTheirTransaction) {
  auto c = tx::MakeShmCluster();
  constexpr int kAccounts = 8;
  absl::StatusOr<LookupTable> t = MakeTable(*c, /*keys=*/kAccounts);
  ASSERT_TRUE(t.ok()) << t.status();
  auto& client = c->client(1);
  absl::StatusOr<Bank> bank = Bank::Create(client, kAccounts, 1000);
  ASSERT_TRUE(bank.ok()) << bank.status();
  absl::StatusOr<Bank::Journal> journal = Bank::CreateJournal(client);
  ASSERT_TRUE(journal.ok()) << journal.status();
  Bank::Ledger ledger;
  TransferHistory history(/*thread=*/0);
  std::mt19937_64 rng(3);
  std::vector<absl::optional<TransferRecord>> last(kAccounts);
  for (int i = 0; i < 40; ++i) {
    TransferRecord attempted;
    absl::Status s = bank->Transfer(client, rng, &ledger, &*journal, [&](auto& tx, const Bank::Move& m) {
      attempted = history.Attempt(m);
      return t->RecordTransfer(tx, attempted);
    });
    ASSERT_TRUE(s.ok()) << s;
    history.CommittedUpTo(journal->committed);
    last[attempted.from] = attempted;
  }
  EXPECT_EQ(history.committed(), 40u);

  // An attempt that aborts after writing its record leaves no trace.
  {
    auto tx = client.Begin();
    const TransferRecord ghost = history.Attempt({.from = 0, .to = 1, .amount = 5, .id = journal->committed + 1});
    ASSERT_TRUE(t->RecordTransfer(tx, ghost).ok());
    tx.Abort();
    history.CommittedUpTo(journal->committed);
    EXPECT_FALSE(history.Contains(ghost));
  }

  ReaderOn r = MakeReader(*c, 3, *t);
  for (int a = 0; a < kAccounts; ++a) {
    absl::StatusOr<absl::optional<std::string>> v = r.reader->Lookup(t->KeyOf(a));
    ASSERT_TRUE(v.ok() && v->has_value()) << "account " << a << ": " << v.status();
    const LookupTable::Answer got = t->Classify(a, **v);
    if (!last[a].has_value()) {
      EXPECT_EQ(got.kind, LookupTable::Kind::kInitial) << "account " << a << " never sent a transfer";
      continue;
    }
    ASSERT_EQ(got.kind, LookupTable::Kind::kTransfer) << "account " << a;
    EXPECT_EQ(got.record, *last[a]) << "account " << a << "'s entry is not its last transfer";
    EXPECT_TRUE(history.Contains(got.record));
  }
  ASSERT_TRUE(bank->CheckLedger(client, ledger).ok());
}

// 2 transfer threads (machines 1 and 2) update entries while a lookup thread
// on machine 3 reads them lock-free; every value it sees is an initial value
// or the record of a transfer that committed.
TEST(LookupTableTest, LookupsRacingTransfersSeeOnlyCommittedRecords) {
  auto c = tx::MakeShmCluster();
  constexpr int kAccounts = 16, kKeys = 32, kTransfers = 120;
  absl::StatusOr<LookupTable> t = MakeTable(*c, kKeys);
  ASSERT_TRUE(t.ok()) << t.status();
  absl::StatusOr<Bank> bank = Bank::Create(c->client(1), kAccounts, 1000);
  ASSERT_TRUE(bank.ok()) << bank.status();
  std::vector<TransferHistory> histories = {TransferHistory(0), TransferHistory(1)};
  std::vector<Bank::Ledger> ledgers(2);
  std::atomic<int> writers_left{2};
  std::atomic<uint64_t> aborts{0};
  std::vector<std::thread> threads;
  for (uint32_t w = 0; w < 2; ++w) {
    threads.emplace_back([&, w] {
      auto& client = c->client(1 + w);
      absl::StatusOr<Bank::Journal> journal = Bank::CreateJournal(client);
      EXPECT_TRUE(journal.ok()) << journal.status();
      std::mt19937_64 rng(10 + w);
      while (journal.ok() && journal->committed < kTransfers) {
        absl::Status s = bank->Transfer(client, rng, &ledgers[w], &*journal, [&](auto& tx, const Bank::Move& m) {
          return t->RecordTransfer(tx, histories[w].Attempt(m));
        });
        if (!s.ok() && !absl::IsAborted(s)) {
          ADD_FAILURE() << "transfer: " << s;
          break;
        }
        aborts += absl::IsAborted(s);
        histories[w].CommittedUpTo(journal->committed);
      }
      --writers_left;
    });
  }
  ReaderOn r = MakeReader(*c, 3, *t);
  absl::flat_hash_set<TransferRecord> seen;
  uint64_t initial = 0, wrong = 0, missing = 0, lookups = 0;
  std::mt19937_64 rng(99);
  while (writers_left.load() > 0 || lookups < 200) {
    const uint64_t k = rng() % kKeys;
    absl::StatusOr<absl::optional<std::string>> v = r.reader->Lookup(t->KeyOf(k));
    if (!v.ok()) {
      ADD_FAILURE() << "lookup: " << v.status();
      break;
    }
    ++lookups;
    if (!v->has_value()) {
      ++missing;
      continue;
    }
    const LookupTable::Answer a = t->Classify(k, **v);
    initial += a.kind == LookupTable::Kind::kInitial;
    wrong += a.kind == LookupTable::Kind::kWrong;
    if (a.kind == LookupTable::Kind::kTransfer) seen.insert(a.record);
    if (lookups % 16 == 0) std::this_thread::yield();  // leave the cores to the writers too
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(wrong, 0u);
  EXPECT_GT(seen.size(), 0u) << "no lookup saw a transfer's record (" << lookups << " lookups)";
  for (const TransferRecord& rec : seen) {
    ASSERT_LT(rec.thread, histories.size());
    EXPECT_TRUE(histories[rec.thread].Contains(rec))
        << "a lookup saw transfer " << rec.id << " of thread " << rec.thread << ", which did not commit";
  }
  Bank::Ledger all;
  for (const auto& l : ledgers) all.Merge(l);
  EXPECT_TRUE(bank->CheckLedger(c->client(3), all).ok());
  printf("lookups=%lu initial=%lu transfer_records_seen=%zu aborts=%lu\n", lookups, initial, seen.size(),
         aborts.load());
}

TEST(LookupTableTest, ForgedValuesAreWrong) {
  auto c = tx::MakeShmCluster();
  absl::StatusOr<LookupTable> t = MakeTable(*c, 10, /*seed=*/5);
  absl::StatusOr<LookupTable> other = MakeTable(*c, 10, /*seed=*/6);
  ASSERT_TRUE(t.ok() && other.ok());
  EXPECT_NE(t->InitialValue(3), other->InitialValue(3));
  EXPECT_EQ(t->Classify(3, other->InitialValue(3)).kind, LookupTable::Kind::kWrong);
  EXPECT_EQ(t->Classify(3, t->InitialValue(4)).kind, LookupTable::Kind::kWrong);
  EXPECT_EQ(t->Classify(3, "short").kind, LookupTable::Kind::kWrong);

  // A record read back through a transaction, then altered.
  const TransferRecord rec{.thread = 1, .id = 9, .from = 13, .to = 2, .amount = 40};
  auto tx = c->client(1).Begin();
  ASSERT_TRUE(t->RecordTransfer(tx, rec).ok());
  ASSERT_TRUE(tx.Commit().ok());
  auto read = c->client(2).Begin();
  absl::StatusOr<absl::optional<std::string>> v = t->table().Get(read, t->KeyOf(3));  // 13 % 10
  ASSERT_TRUE(v.ok() && v->has_value()) << v.status();
  const LookupTable::Answer ok = t->Classify(3, **v);
  ASSERT_EQ(ok.kind, LookupTable::Kind::kTransfer);
  EXPECT_EQ(ok.record, rec);
  EXPECT_EQ(t->Classify(4, **v).kind, LookupTable::Kind::kWrong) << "a record of another key";
  EXPECT_EQ(other->Classify(3, **v).kind, LookupTable::Kind::kWrong) << "a record of another seed";
  std::string flipped = **v;
  flipped[12] ^= 1;  // the amount
  EXPECT_EQ(t->Classify(3, flipped).kind, LookupTable::Kind::kWrong);
}

TEST(LookupTableTest, HistoryFollowsReusedJournalIds) {
  TransferHistory h(/*thread=*/2);
  const TransferRecord first = h.Attempt({.from = 1, .to = 2, .amount = 3, .id = 1});
  h.CommittedUpTo(0);  // the attempt aborted: id 1 is used again
  const TransferRecord second = h.Attempt({.from = 4, .to = 5, .amount = 6, .id = 1});
  h.CommittedUpTo(1);
  EXPECT_FALSE(h.Contains(first));
  EXPECT_TRUE(h.Contains(second));
  // An Unknown outcome (id 2), settled committed while the next attempt (id 3) failed.
  const TransferRecord unknown = h.Attempt({.from = 7, .to = 8, .amount = 9, .id = 2});
  const TransferRecord failed = h.Attempt({.from = 7, .to = 1, .amount = 1, .id = 3});
  h.CommittedUpTo(2);
  EXPECT_TRUE(h.Contains(unknown));
  EXPECT_FALSE(h.Contains(failed));
  EXPECT_EQ(h.committed(), 2u);
  EXPECT_FALSE(h.Contains(TransferRecord{.thread = 1, .id = 1, .from = 4, .to = 5, .amount = 6})) << "other thread";
}

TEST(LookupTableTest, RejectsBadOptions) {
  auto c = tx::MakeShmCluster();
  EXPECT_EQ(LookupTable::Create(c->client(1), c->table(), {.keys = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LookupTable::Create(c->client(1), c->table(), {.keys = 4, .shards = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  RegionTable empty;
  EXPECT_EQ(LookupTable::Create(c->client(1), empty, {.keys = 4}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace dctk::farm::workload
