// The bank workload on an in-process 3-machine cluster: transfers from four
// coordinators on machines 1 and 2 while machine 3 is killed mid-run and
// recovered. Every transfer reported committed is in the final balances
// exactly once; the total holds; the workload continues after recovery.
// Also: a journal settles a transfer of Unknown outcome, and a transfer's
// `also` writes commit with it (or make it fail).
#include "farm/workload/bank.h"

#include <atomic>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "farm/tx/test_util.h"
#include "gtest/gtest.h"

namespace dctk::farm::workload {
namespace {

using tx::LocalClusterOptions;

TEST(BankTest, InvariantAndLedgerHoldAcrossAMachineFailure) {
  LocalClusterOptions o;
  o.clients_per_machine = 2;
  o.client.rpc_timeout = absl::Milliseconds(300);
  o.client.outcome_timeout = absl::Seconds(30);
  auto c = tx::MakeShmCluster(o);
  absl::StatusOr<Bank> bank = Bank::Create(c->client(1), 16, 1000);
  ASSERT_TRUE(bank.ok()) << bank.status();

  constexpr int kBeforeKill = 100, kAfterRecovery = 100;
  std::atomic<int> committed{0};
  std::atomic<bool> recovered{false};
  absl::Notification enough;
  absl::Mutex mu;
  Bank::Ledger total_ledger;
  int unavailable = 0, aborted = 0;
  std::vector<std::thread> workers;
  for (fabric::MachineId m : {1, 2}) {
    for (int slot = 0; slot < 2; ++slot) {
      workers.emplace_back([&, m, slot] {
        auto& client = c->client(m, slot);
        std::mt19937_64 rng(m * 100 + slot);
        Bank::Ledger ledger;
        int after = 0, local_unavailable = 0, local_aborted = 0;
        while (after < kAfterRecovery / 4) {
          absl::Status s = bank->Transfer(client, rng, &ledger);
          if (s.ok()) {
            if (++committed == kBeforeKill) enough.Notify();
            if (recovered.load()) ++after;
          } else if (absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) {
            ++local_unavailable;
          } else {
            EXPECT_TRUE(absl::IsAborted(s)) << s;  // never Unknown, never a crash
            ++local_aborted;
          }
        }
        absl::MutexLock l(&mu);
        total_ledger.Merge(ledger);
        unavailable += local_unavailable;
        aborted += local_aborted;
      });
    }
  }
  enough.WaitForNotification();
  c->Kill(3);
  absl::StatusOr<tx::RecoveryReport> r = c->Recover({3});
  ASSERT_TRUE(r.ok()) << r.status();
  recovered.store(true);
  for (auto& t : workers) t.join();

  absl::Status s = bank->CheckLedger(c->client(1), total_ledger);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_GE(total_ledger.committed, static_cast<uint64_t>(kBeforeKill + kAfterRecovery));
  printf("committed %lu, aborted %d, unavailable %d; recovery: %d in flight (%d committed) in %s\n",
         total_ledger.committed, aborted, unavailable, r->in_flight, r->committed,
         absl::FormatDuration(r->duration).c_str());
}

// The journal settles a transfer whose reply was lost: committed iff the
// counter holds its id; a counter that disagrees with the coordinator is data loss.
TEST(BankTest, JournalSettlesATransferOfUnknownOutcome) {
  auto c = tx::MakeShmCluster();
  auto& client = c->client(1);
  absl::StatusOr<Bank> bank = Bank::Create(client, 2, 1000);
  ASSERT_TRUE(bank.ok()) << bank.status();
  absl::StatusOr<Bank::Journal> journal = Bank::CreateJournal(client);
  ASSERT_TRUE(journal.ok()) << journal.status();
  std::mt19937_64 rng(7);
  Bank::Ledger ledger;
  absl::Status s = bank->Transfer(client, rng, &ledger, &*journal);
  while (absl::IsAborted(s)) s = bank->Transfer(client, rng, &ledger, &*journal);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(journal->committed, 1u);
  EXPECT_TRUE(bank->CheckJournal(client, *journal).ok());
  EXPECT_TRUE(bank->CheckLedger(client, ledger).ok());

  // The same transfer as if its Commit had returned Unknown: it committed.
  Bank::Journal lost = *journal;
  lost.committed = 0;
  lost.pending = true;
  lost.from = ledger.delta[0] < 0 ? 0 : 1;
  lost.to = 1 - lost.from;
  lost.amount = static_cast<uint64_t>(std::abs(ledger.delta[0]));
  Bank::Ledger settled;
  ASSERT_TRUE(bank->Settle(client, &lost, &settled).ok());
  EXPECT_FALSE(lost.pending);
  EXPECT_EQ(lost.settled_committed, 1u);
  EXPECT_TRUE(bank->CheckLedger(client, settled).ok());

  // A pending transfer the counter does not hold did not commit.
  Bank::Journal not_committed = *journal;
  not_committed.pending = true;
  Bank::Ledger unchanged = ledger;
  ASSERT_TRUE(bank->Settle(client, &not_committed, &unchanged).ok());
  EXPECT_EQ(not_committed.settled_aborted, 1u);
  EXPECT_EQ(unchanged.committed, ledger.committed);

  Bank::Journal wrong = *journal;
  wrong.committed = 5;
  EXPECT_TRUE(absl::IsDataLoss(bank->CheckJournal(client, wrong)));
  wrong.pending = true;
  EXPECT_TRUE(absl::IsDataLoss(bank->Settle(client, &wrong, &unchanged)));
}

TEST(BankTest, AlsoWritesInTheTransfersTransaction) {
  auto c = tx::MakeShmCluster();
  auto& client = c->client(1);
  absl::StatusOr<Bank> bank = Bank::Create(client, 4, 100);
  ASSERT_TRUE(bank.ok()) << bank.status();
  absl::StatusOr<Bank::Journal> journal = Bank::CreateJournal(client);
  ASSERT_TRUE(journal.ok()) << journal.status();
  absl::StatusOr<Bank::Journal> other = Bank::CreateJournal(client);  // an 8-byte object the transfers also write
  ASSERT_TRUE(other.ok()) << other.status();
  const GlobalAddress last = other->counter;
  Bank::Ledger ledger;
  std::mt19937_64 rng(1);
  Bank::Move seen;
  auto record = [&](auto& tx, const Bank::Move& m) {
    seen = m;
    return tx.Write(last, tx::U64(m.id * 1000 + m.from * 10 + m.to));
  };
  ASSERT_TRUE(bank->Transfer(client, rng, &ledger, &*journal, record).ok());
  ASSERT_TRUE(bank->Transfer(client, rng, &ledger, &*journal, record).ok());
  EXPECT_EQ(seen.id, 2u) << "the second transfer's journal id";
  EXPECT_NE(seen.from, seen.to);
  EXPECT_EQ(tx::Values(client, last, journal->counter),
            std::make_pair(uint64_t{2000} + seen.from * 10 + seen.to, uint64_t{2}));

  // An error of `also` ends the attempt: nothing committed, the id is free again.
  absl::Status s = bank->Transfer(client, rng, &ledger, &*journal, [](auto&, const Bank::Move&) {
    return absl::ResourceExhaustedError("no room");
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(journal->committed, 2u);
  EXPECT_EQ(ledger.committed, 2u);
  EXPECT_TRUE(bank->CheckJournal(client, *journal).ok());
  EXPECT_TRUE(bank->CheckLedger(client, ledger).ok());
}

}  // namespace
}  // namespace dctk::farm::workload
