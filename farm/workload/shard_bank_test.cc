#include "farm/workload/shard_bank.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "farm/client/ship_cluster.h"
#include "farm/fabric/shm_fabric.h"
#include "gtest/gtest.h"

namespace dctk::farm::workload {
namespace {

using fabric::ShmFabric;
using Cluster = client::ShipCluster<ShmFabric>;

// `timeout`: of a coordinator's messages and of a shipped call.
std::unique_ptr<Cluster> MakeCluster(int clients, absl::Duration timeout) {
  client::ShipClusterOptions o;
  o.cluster.machines = 3;
  o.cluster.replicas = 2;
  o.cluster.client.rpc_timeout = timeout;
  o.clients = clients;
  o.shipper.timeout = timeout;
  auto procedures = std::make_shared<client::ProcedureRegistry<ShmFabric>>();
  EXPECT_TRUE(RegisterShardBankProcedures(*procedures).ok());
  auto c = Cluster::Create(o, procedures, [](fabric::MachineId id) { return ShmFabric::Create({.machine_id = id}); });
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(*c) : nullptr;
}

std::vector<RegionId> Regions(Cluster& c) {
  std::vector<RegionId> out;
  for (const RegionInfo& r : c.cluster().table().All()) out.push_back(r.id);
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ShardBankTest, ArgsRoundTripAndBadArgsAreRefused) {
  const ShardTransferArgs a{GlobalAddress(3, 64), GlobalAddress(3, 128), GlobalAddress(3, 192), 7, 9};
  absl::StatusOr<ShardTransferArgs> b = DecodeShardTransferArgs(Encode(a));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->from, a.from);
  EXPECT_EQ(b->to, a.to);
  EXPECT_EQ(b->journal, a.journal);
  EXPECT_EQ(b->amount, 7u);
  EXPECT_EQ(b->journal_id, 9u);
  EXPECT_TRUE(absl::IsInvalidArgument(DecodeShardTransferArgs("short").status()));
}

TEST(ShardBankTest, ShippedAndClientCoordinatedTransfersKeepTheLedger) {
  // No machine fails here, so a timeout would only measure the host's load (a
  // LOCK past 300 ms at load 15+ ended a transfer DeadlineExceeded).
  auto c = MakeCluster(2, absl::Seconds(10));
  absl::StatusOr<ShardBank> bank = ShardBank::Create(c->client(0), Regions(*c), 4, 100);
  ASSERT_TRUE(bank.ok()) << bank.status();
  // Each shard's accounts are in one region, so at one primary.
  for (int s = 0; s < bank->shards(); ++s) {
    for (int i = 1; i < 4; ++i) EXPECT_EQ(bank->account(s, i).region(), bank->account(s, 0).region());
  }
  std::vector<ShardBank::Journal> journals;
  for (int i = 0; i < 2; ++i) journals.push_back(*bank->CreateJournal(c->client(i)));
  std::vector<Bank::Ledger> ledgers(2);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      std::mt19937_64 rng(i + 1);
      auto ship = [&](GlobalAddress w, client::ProcedureId p, absl::string_view a) {
        return c->shipper(i).Ship(w, p, a);
      };
      for (int n = 0; n < 200; ++n) {
        const ShardBank::Move m = bank->Pick(rng);
        absl::Status s = n % 2 == 0 ? bank->TransferShipped(c->client(i), ship, m, &ledgers[i], &journals[i])
                                    : bank->Transfer(c->client(i), m, &ledgers[i], &journals[i]);
        EXPECT_TRUE(s.ok() || absl::IsAborted(s) || absl::IsFailedPrecondition(s)) << s;
      }
    });
  }
  for (auto& t : threads) t.join();
  Bank::Ledger all;
  for (int i = 0; i < 2; ++i) {
    all.Merge(ledgers[i]);
    EXPECT_TRUE(bank->CheckJournal(c->client(i), journals[i]).ok());
  }
  EXPECT_GT(all.committed, 200u);
  EXPECT_GT(c->shipper(0).stats().committed + c->shipper(1).stats().committed, 50u);
  absl::Status ok = bank->AsBank().CheckLedger(c->client(0), all);
  EXPECT_TRUE(ok.ok()) << ok;
}

// Shipped transfers run while the primary of one shard is killed and the
// cluster recovers: every transfer reported committed is in the balances
// exactly once (transfers of unknown outcome settled from the journals), and
// transfers go on at the promoted primary.
TEST(ShardBankTest, KillingTheExecutingMachineLosesAndDuplicatesNothing) {
  // Short: calls to the killed machine give up soon (any timeout is accepted).
  auto c = MakeCluster(2, absl::Milliseconds(300));
  absl::StatusOr<ShardBank> bank = ShardBank::Create(c->client(0), Regions(*c), 4, 1000);
  ASSERT_TRUE(bank.ok()) << bank.status();
  std::vector<ShardBank::Journal> journals;
  for (int i = 0; i < 2; ++i) journals.push_back(*bank->CreateJournal(c->client(i)));
  std::vector<Bank::Ledger> ledgers(2);
  std::atomic<int> phase{0};  // 0: before the kill, 1: killed, 2: recovered
  std::atomic<int> committed_before{0}, committed_after{0};
  absl::Notification running;
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      std::mt19937_64 rng(i + 7);
      auto ship = [&](GlobalAddress w, client::ProcedureId p, absl::string_view a) {
        return c->shipper(i).Ship(w, p, a);
      };
      while (committed_after.load() < 100) {
        const ShardBank::Move m = bank->Pick(rng);
        const int seen = phase.load();
        absl::Status s = bank->TransferShipped(c->client(i), ship, m, &ledgers[i], &journals[i]);
        if (s.ok()) {
          if (committed_before.fetch_add(1) == 50) running.Notify();
          if (seen == 2) committed_after.fetch_add(1);
        }
        EXPECT_TRUE(s.ok() || absl::IsAborted(s) || absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) ||
                    absl::IsUnknown(s) || absl::IsFailedPrecondition(s))
            << s;
      }
    });
  }
  running.WaitForNotification();
  const fabric::MachineId victim = c->PrimaryOf(bank->account(0, 0));
  c->Kill(victim);
  phase = 1;
  ASSERT_TRUE(c->Recover({victim}).ok());
  phase = 2;
  for (auto& t : threads) t.join();
  EXPECT_NE(c->PrimaryOf(bank->account(0, 0)), victim);
  Bank::Ledger all;
  for (int i = 0; i < 2; ++i) {
    all.Merge(ledgers[i]);
    absl::Status s = bank->SettlePending(c->client(i), &journals[i], &all);
    EXPECT_TRUE(s.ok()) << s;
    s = bank->CheckJournal(c->client(i), journals[i]);
    EXPECT_TRUE(s.ok()) << s;
  }
  absl::Status ok = bank->AsBank().CheckLedger(c->client(0), all);
  EXPECT_TRUE(ok.ok()) << ok;
}

}  // namespace
}  // namespace dctk::farm::workload
