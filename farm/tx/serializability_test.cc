// Many concurrent transactions on a small hot set (bank transfers over 8
// accounts, from 6 coordinators on 3 machines): the total balance holds, every
// read-only audit that commits sees it, and the history of committed
// transactions has no lost update, dirty read or serialization cycle.
#include <random>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "farm/tx/history.h"
#include "farm/tx/test_util.h"
#include "gtest/gtest.h"

namespace dctk::farm::tx {
namespace {

constexpr int kAccounts = 8;
constexpr uint64_t kInitialBalance = 1000;

TEST(SerializabilityTest, HotSetBankTransfersAndAudits) {
  LocalClusterOptions o;
  o.clients_per_machine = 2;
  auto c = MakeShmCluster(o);
  std::vector<GlobalAddress> accounts;
  absl::flat_hash_map<uint64_t, uint64_t> initial;
  for (int i = 0; i < kAccounts; ++i) {
    auto tx = c->client(1 + i % 3).Begin();
    absl::StatusOr<GlobalAddress> a = tx.Alloc(8);
    ASSERT_TRUE(a.ok());
    ASSERT_TRUE(tx.Write(*a, U64(kInitialBalance)).ok());
    ASSERT_TRUE(tx.Commit().ok());
    accounts.push_back(*a);
  }
  {
    auto tx = c->client(1).Begin();
    for (GlobalAddress a : accounts) {
      ASSERT_TRUE(tx.Read(a, 8).ok());
      initial[a.raw()] = tx.VersionRead(a);
    }
  }

  absl::Mutex mu;
  std::vector<CommittedTx> history;
  int audits_ok = 0, audits_bad = 0, transfers = 0, aborts = 0;
  std::vector<std::thread> threads;
  for (fabric::MachineId m = 1; m <= 3; ++m) {
    for (int slot = 0; slot < 2; ++slot) {
      threads.emplace_back([&, m, slot] {
        auto& client = c->client(m, slot);
        std::mt19937 rng(m * 10 + slot);
        for (int i = 0; i < 150; ++i) {
          auto tx = client.Begin();
          CommittedTx rec;
          const bool audit = rng() % 5 == 0;
          absl::Status s;
          uint64_t sum = 0;
          if (audit) {
            for (GlobalAddress a : accounts) {
              absl::StatusOr<std::string> v = tx.Read(a, 8);
              if (!v.ok()) {
                s = v.status();
                break;
              }
              sum += AsU64(*v);
            }
          } else {
            const int from = rng() % kAccounts;
            const int to = (from + 1 + rng() % (kAccounts - 1)) % kAccounts;
            absl::StatusOr<std::string> a = tx.Read(accounts[from], 8);
            absl::StatusOr<std::string> b = a.ok() ? tx.Read(accounts[to], 8) : a;
            if (a.ok() && b.ok()) {
              const uint64_t amount = std::min<uint64_t>(AsU64(*a), rng() % 50);
              s = tx.Write(accounts[from], U64(AsU64(*a) - amount));
              if (s.ok()) s = tx.Write(accounts[to], U64(AsU64(*b) + amount));
              rec.writes = {accounts[from].raw(), accounts[to].raw()};
            } else {
              s = b.status();
            }
          }
          if (s.ok()) s = tx.Commit();
          absl::MutexLock l(&mu);
          if (!s.ok()) {
            EXPECT_TRUE(absl::IsAborted(s)) << s;
            ++aborts;
            continue;
          }
          for (GlobalAddress a : accounts) {
            if (tx.VersionRead(a) != 0) rec.reads[a.raw()] = tx.VersionRead(a);
          }
          rec.id = tx.id();
          history.push_back(std::move(rec));
          if (audit) {
            ++(sum == kAccounts * kInitialBalance ? audits_ok : audits_bad);
          } else {
            ++transfers;
          }
        }
      });
    }
  }
  for (auto& t : threads) t.join();

  uint64_t total = 0;
  auto tx = c->client(2).Begin();
  for (GlobalAddress a : accounts) total += AsU64(*tx.Read(a, 8));
  ASSERT_TRUE(tx.Commit().ok());
  EXPECT_EQ(total, kAccounts * kInitialBalance);
  EXPECT_EQ(audits_bad, 0);
  EXPECT_GT(audits_ok, 0);
  EXPECT_GT(transfers, 0);
  std::vector<std::string> problems = CheckSerializable(history, initial);
  for (const std::string& p : problems) ADD_FAILURE() << p;
  printf("committed transfers %d, audits %d, aborts %d\n", transfers, audits_ok, aborts);
}

TEST(SerializabilityTest, WriteSkewIsPrevented) {
  auto c = MakeShmCluster();
  GlobalAddress x, y;
  {
    auto tx = c->client(1).Begin();
    x = *tx.Alloc(8);
    y = *tx.Alloc(8);
    ASSERT_TRUE(tx.Write(x, U64(1)).ok());
    ASSERT_TRUE(tx.Write(y, U64(1)).ok());
    ASSERT_TRUE(tx.Commit().ok());
  }
  // Invariant x + y >= 1; each transaction zeroes one if the sum allows it.
  auto t1 = c->client(2).Begin();
  auto t2 = c->client(3).Begin();
  ASSERT_TRUE(t1.Read(x, 8).ok() && t1.Read(y, 8).ok());
  ASSERT_TRUE(t2.Read(x, 8).ok() && t2.Read(y, 8).ok());
  ASSERT_TRUE(t1.Write(x, U64(0)).ok());
  ASSERT_TRUE(t2.Write(y, U64(0)).ok());
  ASSERT_TRUE(t1.Commit().ok());
  absl::Status s = t2.Commit();
  EXPECT_TRUE(absl::IsAborted(s)) << s;
  auto check = c->client(1).Begin();
  EXPECT_EQ(AsU64(*check.Read(x, 8)) + AsU64(*check.Read(y, 8)), 1u);
}

}  // namespace
}  // namespace dctk::farm::tx
