// Many concurrent transactions on a small hot set, from 6 coordinators on 3
// machines, on the shm and the net fabric: 8 accounts of 4 customers (accounts
// 2c and 2c + 1), balances that may go negative as long as each customer's
// two accounts together do not. Two kinds of transaction:
//   - guarded transfers: read the source, its sibling (the customer's other
//     account) and the destination, and move the amount only if the source's
//     customer stays >= 0. Two transfers from a customer's two accounts are the
//     classic write-skew pair: each reads an account it does not write, which
//     only VALIDATE re-checks. (A transfer to the sibling writes all it reads.)
//   - read-only audits of all 8 accounts.
// The total holds, no customer goes below 0, every committed audit sees both,
// and the history of committed transactions with their real-time bounds is
// strictly serializable (history.h); the same history with one read made
// stale is not.
#include <optional>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "farm/fabric/net_fabric.h"
#include "farm/tx/history.h"
#include "farm/tx/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::farm::tx {
namespace {

constexpr int kAccounts = 8;
constexpr int64_t kInitialBalance = 1000;

int64_t Balance(const std::string& bytes) { return static_cast<int64_t>(AsU64(bytes)); }
std::string Bytes(int64_t balance) { return U64(static_cast<uint64_t>(balance)); }

// What an audit must see: the bank's total, and every customer >= 0.
std::optional<std::string> AuditProblem(const std::vector<int64_t>& balances) {
  int64_t total = 0;
  for (int i = 0; i < kAccounts; i += 2) {
    if (balances[i] + balances[i + 1] < 0) {
      return absl::StrCat("customer ", i / 2, " at ", balances[i] + balances[i + 1]);
    }
    total += balances[i] + balances[i + 1];
  }
  if (total != kAccounts * kInitialBalance) return absl::StrCat("total ", total);
  return std::nullopt;
}

template <typename F>
absl::Status ReadAll(Transaction<F>& tx, const std::vector<GlobalAddress>& accounts,
                     std::vector<int64_t>* balances) {
  balances->clear();
  for (GlobalAddress a : accounts) {
    absl::StatusOr<std::string> v = tx.Read(a, 8);
    if (!v.ok()) return v.status();
    balances->push_back(Balance(*v));
  }
  return absl::OkStatus();
}

// Moves `amount` from account `from` to `to` if from's customer stays >= 0;
// `writes` gets the accounts written (none when refused).
template <typename F>
absl::Status GuardedTransfer(Transaction<F>& tx, const std::vector<GlobalAddress>& accounts,
                             int from, int to, int64_t amount, std::vector<uint64_t>* writes) {
  const int sibling = from ^ 1;
  absl::StatusOr<std::string> f = tx.Read(accounts[from], 8);
  if (!f.ok()) return f.status();
  absl::StatusOr<std::string> s = tx.Read(accounts[sibling], 8);
  if (!s.ok()) return s.status();
  absl::StatusOr<std::string> t = to == sibling ? s : tx.Read(accounts[to], 8);
  if (!t.ok()) return t.status();
  if (to != sibling && Balance(*f) + Balance(*s) - amount < 0) return absl::OkStatus();
  absl::Status w = tx.Write(accounts[from], Bytes(Balance(*f) - amount));
  if (w.ok()) w = tx.Write(accounts[to], Bytes(Balance(*t) + amount));
  *writes = {accounts[from].raw(), accounts[to].raw()};
  return w;
}

struct HotSetRun {
  std::vector<CommittedTx> history;
  int transfers = 0, refused = 0, audits = 0, aborts = 0, validate_aborts = 0;
  std::vector<std::string> bad_audits;
};

template <typename F>
HotSetRun RunHotSet(LocalCluster<F>& c, const std::vector<GlobalAddress>& accounts,
                    int per_coordinator) {
  HistoryClock clock;
  absl::Mutex mu;
  HotSetRun run;
  std::vector<std::thread> threads;
  for (fabric::MachineId m = 1; m <= 3; ++m) {
    for (int slot = 0; slot < 2; ++slot) {
      threads.emplace_back([&, m, slot] {
        auto& client = c.client(m, slot);
        std::mt19937 rng(m * 10 + slot);
        for (int i = 0; i < per_coordinator; ++i) {
          CommittedTx rec;
          const bool audit = rng() % 4 == 0;
          const int from = rng() % kAccounts;
          const int to = (from + 1 + rng() % (kAccounts - 1)) % kAccounts;
          const int64_t amount = 1 + rng() % 1500;
          std::vector<int64_t> balances;
          rec.begin = clock.Tick();
          auto tx = client.Begin();
          absl::Status s = audit ? ReadAll(tx, accounts, &balances)
                                 : GuardedTransfer(tx, accounts, from, to, amount, &rec.writes);
          if (s.ok()) s = tx.Commit();
          rec.end = clock.Tick();
          absl::MutexLock l(&mu);
          if (!s.ok()) {
            EXPECT_TRUE(absl::IsAborted(s)) << s;
            ++run.aborts;
            run.validate_aborts += !rec.writes.empty() && absl::StartsWith(s.message(), "VALIDATE");
            continue;
          }
          for (GlobalAddress a : accounts) {
            if (tx.VersionRead(a) != 0) rec.reads[a.raw()] = tx.VersionRead(a);
          }
          rec.id = tx.id();
          run.history.push_back(std::move(rec));
          if (audit) {
            ++run.audits;
            if (auto p = AuditProblem(balances)) run.bad_audits.push_back(*p);
          } else {
            ++(run.history.back().writes.empty() ? run.refused : run.transfers);
          }
        }
      });
    }
  }
  for (auto& t : threads) t.join();
  return run;
}

template <typename F>
void BankOnAHotSet(LocalCluster<F>& c, int per_coordinator) {
  std::vector<GlobalAddress> accounts;
  absl::flat_hash_map<uint64_t, uint64_t> initial;
  for (int i = 0; i < kAccounts; ++i) {
    auto tx = c.client(1 + i % 3).Begin();
    absl::StatusOr<GlobalAddress> a = tx.Alloc(8);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(tx.Write(*a, Bytes(kInitialBalance)).ok());
    ASSERT_TRUE(tx.Commit().ok());
    accounts.push_back(*a);
  }
  {
    auto tx = c.client(1).Begin();
    for (GlobalAddress a : accounts) {
      ASSERT_TRUE(tx.Read(a, 8).ok());
      initial[a.raw()] = tx.VersionRead(a);
    }
  }

  const auto start = absl::Now();
  HotSetRun run = RunHotSet(c, accounts, per_coordinator);
  const absl::Duration ran = absl::Now() - start;

  std::vector<int64_t> balances;
  auto tx = c.client(2).Begin();
  ASSERT_TRUE(ReadAll(tx, accounts, &balances).ok());
  ASSERT_TRUE(tx.Commit().ok());
  if (auto p = AuditProblem(balances)) ADD_FAILURE() << "after the run: " << *p;
  for (const std::string& p : run.bad_audits) ADD_FAILURE() << "an audit saw " << p;
  EXPECT_GT(run.audits, 0);
  EXPECT_GT(run.transfers, 0);

  const auto check_start = absl::Now();
  std::vector<std::string> problems = CheckStrictlySerializable(run.history, initial);
  const absl::Duration checked = absl::Now() - check_start;
  for (const std::string& p : problems) ADD_FAILURE() << p;
  printf(
      "%d coordinators x %d: committed transfers %d, refused by the guard %d, audits %d, "
      "aborts %d (%d read-write at VALIDATE) in %s; history of %zu checked in %s\n",
      6, per_coordinator, run.transfers, run.refused, run.audits, run.aborts, run.validate_aborts,
      absl::FormatDuration(ran).c_str(), run.history.size(), absl::FormatDuration(checked).c_str());

  // The checker does fire on this history: one read made stale.
  std::optional<std::string> stale = InjectStaleRead(&run.history);
  ASSERT_TRUE(stale.has_value()) << "no read follows a returned commit of its version";
  problems = CheckStrictlySerializable(run.history, initial);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_THAT(problems[0], ::testing::HasSubstr(*stale));
}

TEST(SerializabilityTest, HotSetBankOnShm) {
  auto c = MakeShmCluster({.clients_per_machine = 2});
  BankOnAHotSet(*c, 700);
}

TEST(SerializabilityTest, HotSetBankOnNet) {
  auto c = LocalCluster<fabric::NetFabric>::Create(
      {.clients_per_machine = 2},
      [](fabric::MachineId id) { return fabric::NetFabric::Create({.machine_id = id}); });
  ASSERT_TRUE(c.ok()) << c.status();
  BankOnAHotSet(**c, 150);
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
