// Transaction shipping over farmd processes: the CM and three machines with
// ship workers (shm fabric, f = 1), a client in this process shipping
// single-shard bank transfers (farm/workload/shard_bank.h) to the primaries
// of their shards. Then machine 1, executing the transfers of its shards,
// dies by SIGKILL in the middle of one (farmd --ship_crash_at: after every
// backup logged it, before COMMIT-PRIMARY): the client gets no reply, waits
// for the CM to remove the machine, learns from the participants that
// recovery committed it (Unknown: its result died with the machine) and
// settles it from its journal; other transfers see only clean errors,
// transfers go on at the promoted primaries, and every transfer reported
// committed is in the balances exactly once.
// Also: a backup alive but silent, reported to the CM by the ship worker's
// coordinator, so recovery decides the shipped transfer waiting for it.
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/types/optional.h"
#include "farm/client/farm_client.h"
#include "farm/client/retry.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/server/farmd_process.h"
#include "farm/workload/shard_bank.h"
#include "gtest/gtest.h"

namespace dctk::farm {
namespace {

using server::FarmdCluster;
using server::WriteFarmConfig;
using Client = client::FarmClient<fabric::ShmFabric>;

// A cluster with ship workers, a client (machine 100), a ShardBank of 4
// accounts in each region and the client's journal; a start that failed
// leaves `journal` empty (and says why).
struct ShipCluster {
  std::unique_ptr<FarmdCluster> cluster;
  std::unique_ptr<Client> client;
  absl::optional<workload::ShardBank> bank;
  absl::optional<workload::ShardBank::Journal> journal;
  // Ships over `client` (ShardBank::TransferShipped's `ship`).
  std::function<absl::StatusOr<std::string>(GlobalAddress, client::ProcedureId, absl::string_view)>
      ship;
};

absl::StatusOr<workload::ShardBank> MakeBank(Client& c) {
  std::vector<RegionId> regions;
  for (const RegionInfo& r : c.regions().All()) regions.push_back(r.id);
  std::sort(regions.begin(), regions.end());
  return workload::ShardBank::Create(c.tx(), regions, 4, 1000);
}

ShipCluster Start(const std::string& name, const std::vector<std::string>& extra_flags = {}) {
  ShipCluster out;
  const std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/", name);
  EXPECT_EQ(mkdir(dir.c_str(), 0755), 0);
  std::vector<std::string> flags = {"--ship_workers=1", "--ship_rpc_timeout_ms=300"};
  flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
  out.cluster = std::make_unique<FarmdCluster>(WriteFarmConfig(dir), dir, "shm", flags);
  absl::Status s = out.cluster->Start();
  EXPECT_TRUE(s.ok()) << s;
  if (!s.ok()) return out;
  client::FarmClientOptions o;
  o.machine = 100;
  o.cm_address = out.cluster->cm_address();
  o.tx.rpc_timeout = absl::Milliseconds(300);
  o.tx.outcome_timeout = absl::Seconds(20);
  o.ship.timeout = absl::Milliseconds(300);
  o.ship.outcome_timeout = absl::Seconds(20);
  auto connected = Client::Connect(o, *fabric::ShmFabric::Create({.machine_id = 100}));
  EXPECT_TRUE(connected.ok()) << connected.status();
  if (!connected.ok()) return out;
  out.client = std::move(*connected);
  Client& c = *out.client;
  out.ship = [&c](GlobalAddress w, client::ProcedureId p, absl::string_view a) {
    return c.Ship(w, p, a);
  };
  // Made again whole after a failed try (a LOCK or ALLOC timing out on a
  // loaded machine).
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  absl::StatusOr<workload::ShardBank> bank =
      client::RetryWithRefresh(c, deadline, [&] { return MakeBank(c); });
  EXPECT_TRUE(bank.ok()) << bank.status();
  if (!bank.ok()) return out;
  out.bank = std::move(*bank);
  absl::StatusOr<workload::ShardBank::Journal> journal =
      client::RetryWithRefresh(c, deadline, [&] { return out.bank->CreateJournal(c.tx()); });
  EXPECT_TRUE(journal.ok()) << journal.status();
  if (journal.ok()) out.journal = std::move(*journal);
  return out;
}

TEST(FarmdShipTest, ShippedTransfersRunAtTheirShardsPrimary) {
  ShipCluster s = Start("plain");
  ASSERT_TRUE(s.journal.has_value());
  Client& c = *s.client;
  auto& bank = s.bank;
  auto& journal = s.journal;
  std::mt19937_64 rng(3);
  workload::Bank::Ledger ledger;
  const uint64_t rpcs_before = c.tx().stats().rpc_calls;
  for (int i = 0; i < 300; ++i) {
    absl::Status st = bank->TransferShipped(c.tx(), s.ship, bank->Pick(rng), &ledger, &*journal);
    ASSERT_TRUE(st.ok()) << st;  // one client: no conflicts
  }
  EXPECT_EQ(c.ship_stats().committed, 300u);
  EXPECT_EQ(c.tx().stats().rpc_calls, rpcs_before);  // no protocol message from the client itself
  EXPECT_TRUE(bank->CheckJournal(c.tx(), *journal).ok());
  absl::Status ok = bank->AsBank().CheckLedger(c.tx(), ledger);
  EXPECT_TRUE(ok.ok()) << ok;
  // A machine started without ship workers would refuse; an unknown
  // procedure is refused by name.
  absl::StatusOr<std::string> r = c.Ship(bank->account(0, 0), 999, "");
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
}

TEST(FarmdShipTest, KillingTheExecutingMachineLosesAndDuplicatesNoTransfer) {
  ShipCluster s = Start("kill", {"--ship_crash_at=m1:60"});
  ASSERT_TRUE(s.journal.has_value());
  Client& c = *s.client;
  auto& bank = s.bank;
  auto& journal = s.journal;
  std::mt19937_64 rng(5);
  workload::Bank::Ledger ledger;
  const uint64_t first_config = c.config_id();
  // The shards machine 1 is primary of: it runs their transfers until it dies.
  std::vector<int> on_victim;
  for (int i = 0; i < bank->shards(); ++i) {
    if (c.regions().Lookup(bank->account(i, 0).region())->primary().machine == 1) on_victim.push_back(i);
  }
  ASSERT_FALSE(on_victim.empty());
  int errors = 0, unknown = 0, after = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(90);
  while (after < 200) {
    ASSERT_LT(absl::Now(), deadline) << "no progress: " << ledger.committed << " committed";
    workload::ShardBank::Move m = bank->Pick(rng);
    if (c.config_id() == first_config) m.shard = on_victim[rng() % on_victim.size()];
    absl::Status st = bank->TransferShipped(c.tx(), s.ship, m, &ledger, &*journal);
    if (st.ok()) {
      if (c.config_id() != first_config) ++after;
    } else {
      ASSERT_TRUE(absl::IsAborted(st) || absl::IsUnavailable(st) || absl::IsDeadlineExceeded(st) ||
                  absl::IsUnknown(st))
          << st;
      unknown += absl::IsUnknown(st);
      ++errors;
      (void)c.Refresh();
    }
  }
  EXPECT_EQ(s.cluster->machine(1).Wait(), 128 + SIGKILL);  // it crashed itself mid-commit
  ASSERT_TRUE(c.Refresh().ok());
  for (int i : on_victim) EXPECT_NE(c.regions().Lookup(bank->account(i, 0).region())->primary().machine, 1u);
  absl::Status st = bank->SettlePending(c.tx(), &*journal, &ledger);
  EXPECT_TRUE(st.ok()) << st;
  st = bank->CheckJournal(c.tx(), *journal);
  EXPECT_TRUE(st.ok()) << st;
  st = bank->AsBank().CheckLedger(c.tx(), ledger);
  EXPECT_TRUE(st.ok()) << st;
  const client::ShipperStats& ss = c.ship_stats();
  // The transfer in flight at the crash: committed by recovery, learned from
  // the participants, settled from the journal.
  EXPECT_EQ(unknown, 1);
  EXPECT_EQ(journal->settled_committed, 1u);
  EXPECT_GE(ss.outcome_asked, 1u);
  printf("committed %lu (settled from the journal: %lu committed, %lu not), errors %d (unknown %d); shipper: "
         "resent %lu, remembered %lu, outcome asked %lu; configuration %lu -> %lu\n",
         static_cast<unsigned long>(ledger.committed), static_cast<unsigned long>(journal->settled_committed),
         static_cast<unsigned long>(journal->settled_aborted), errors, unknown,
         static_cast<unsigned long>(ss.resent), static_cast<unsigned long>(ss.remembered),
         static_cast<unsigned long>(ss.outcome_asked), static_cast<unsigned long>(first_config),
         static_cast<unsigned long>(c.config_id()));
}

// A backup alive but silent (its participant stalled by SIGUSR1, its lease
// still renewed) never answers the COMMIT-BACKUP of a transfer shipped to
// its region's primary. The ship worker's coordinator resends it for
// suspect_after and reports the backup to the CM through the machine's CM
// channel; the CM stops renewing its lease, the backup fences itself and is
// removed when that lease runs out, and recovery aborts the transfer (the
// backup never logged it). The client gets Aborted, not Unknown (without the
// report the worker waits out its outcome_timeout: Unknown, the backup still
// a member), and transfers on that shard commit again.
TEST(FarmdShipTest, ASilentBackupIsReportedByTheShipWorkerAndTheTransferDecided) {
  ShipCluster s = Start("silent", {"--fault_signals"});
  ASSERT_TRUE(s.journal.has_value());
  Client& c = *s.client;
  auto& bank = s.bank;
  std::mt19937_64 rng(7);
  workload::Bank::Ledger ledger;
  const workload::ShardBank::Move m = bank->Pick(rng);
  absl::Status st = bank->TransferShipped(c.tx(), s.ship, m, &ledger, &*s.journal);
  ASSERT_TRUE(st.ok()) << st;  // the worker's rings to the backup are up
  absl::StatusOr<RegionInfo> region = c.regions().Lookup(bank->account(m.shard, 0).region());
  ASSERT_TRUE(region.ok()) << region.status();
  ASSERT_EQ(region->replicas.size(), 2u);
  const uint32_t backup = region->replicas[1].machine;  // machine id = slot at first start
  s.cluster->machine(backup).Signal(SIGUSR1);
  ASSERT_EQ(s.cluster->machine(backup).ReadLine().value_or(""),
            absl::StrCat("fault ", backup, " stalled"));

  st = bank->TransferShipped(c.tx(), s.ship, m, &ledger, &*s.journal);
  EXPECT_TRUE(absl::IsAborted(st))
      << st << " (the silent backup never logged it: recovery aborts it)";
  ASSERT_TRUE(c.Refresh().ok());
  for (const cm::Machine& mc : c.configuration().machines())
    EXPECT_NE(mc.id(), backup) << "still a member";
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (true) {
    ASSERT_LT(absl::Now(), deadline) << "the shard never committed again";
    st = bank->TransferShipped(c.tx(), s.ship, m, &ledger, &*s.journal);
    if (st.ok()) break;
    ASSERT_TRUE(absl::IsAborted(st) || absl::IsUnavailable(st) || absl::IsDeadlineExceeded(st))
        << st;
    (void)c.Refresh();
  }
  st = bank->CheckJournal(c.tx(), *s.journal);
  EXPECT_TRUE(st.ok()) << st;
  st = bank->AsBank().CheckLedger(c.tx(), ledger);
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_EQ(c.ship_stats().unknown, 0u);
}

}  // namespace
}  // namespace dctk::farm
