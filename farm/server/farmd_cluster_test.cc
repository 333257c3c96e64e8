// A FaRM cluster of farmd processes: the CM service and three machines (shm
// or net fabric, f = 1: every region on two of the three), and a client in this
// process running bank transfers through the client library. Machine 3 is
// killed (SIGKILL) mid-run: the client sees clean errors (Unavailable), never
// a hang or a crash; the CM detects the missed lease, promotes backups and
// recovers in-flight transactions; the client refreshes its configuration
// and carries on; every transfer reported committed is in the final balances.
// Also: per-region recovery across processes, a slow machine suspected by a
// coordinator, re-replication, a paused machine, a client dead at each step
// of its commit.
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "farm/client/farm_client.h"
#include "farm/client/retry.h"
#include "farm/cm/config_state.h"
#include "farm/fabric/net_fabric.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/server/control.h"
#include "farm/server/control.pb.h"
#include "farm/server/copy_reader.h"
#include "farm/server/counters.h"
#include "farm/server/farmd_process.h"
#include "farm/tx/recovery.h"
#include "farm/tx/test_util.h"
#include "farm/workload/bank.h"
#include "gtest/gtest.h"

namespace dctk::farm {
namespace {

using server::FarmdCluster;
using server::FullyReplicated;
using server::WriteFarmConfig;

// Setup steps are made again whole after a failed try (a LOCK or ALLOC timing
// out on a loaded machine), for up to 30 s.
absl::Time SetupDeadline() { return absl::Now() + absl::Seconds(30); }

template <typename F>
void ClientSurvivesAKilledMachine(const std::string& fabric_kind, absl::StatusOr<std::unique_ptr<F>> fabric) {
  const std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/", fabric_kind);
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  FarmdCluster cluster(WriteFarmConfig(dir), dir, fabric_kind);
  ASSERT_TRUE(cluster.Start().ok());
  const std::string cm_address = cluster.cm_address();
  client::FarmClientOptions o;
  o.machine = 100;
  o.cm_address = cm_address;
  o.tx.rpc_timeout = absl::Milliseconds(300);
  o.tx.outcome_timeout = absl::Seconds(20);
  ASSERT_TRUE(fabric.ok());
  auto client = client::FarmClient<F>::Connect(o, std::move(*fabric));
  ASSERT_TRUE(client.ok()) << client.status();
  auto& c = **client;
  absl::StatusOr<workload::Bank> bank = client::RetryWithRefresh(
      c, SetupDeadline(), [&] { return workload::Bank::Create(c.tx(), 16, 1000); });
  ASSERT_TRUE(bank.ok()) << bank.status();

  std::mt19937_64 rng(1);
  workload::Bank::Ledger ledger;
  int aborted = 0, unavailable = 0, after_recovery = 0;
  const uint64_t first_config = c.config_id();
  bool killed = false;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (after_recovery < 100) {
    ASSERT_LT(absl::Now(), deadline) << "no progress: " << ledger.committed << " committed";
    absl::Status s = bank->Transfer(c.tx(), rng, &ledger);
    if (s.ok()) {
      if (c.config_id() != first_config) ++after_recovery;
    } else if (absl::IsAborted(s)) {
      ++aborted;
    } else {
      ASSERT_TRUE(absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) << s;  // clean errors only
      ++unavailable;
      (void)c.Refresh();  // learn the new configuration once the CM has one
    }
    if (!killed && ledger.committed == 100) {
      cluster.machine(3).Kill(SIGKILL);
      killed = true;
    }
  }
  ASSERT_TRUE(c.Refresh().ok());
  int storage = 0;
  for (const cm::Machine& m : c.configuration().machines()) storage += !m.client();
  EXPECT_EQ(storage, 2);
  EXPECT_EQ(c.tx().endpoint().peer_count(), 2u) << "machine 3's rings left the client's endpoint";
  absl::Status s = bank->CheckLedger(c.tx(), ledger);
  EXPECT_TRUE(s.ok()) << s;
  printf("committed %lu, aborted %d, unavailable %d, configuration %lu -> %lu\n", ledger.committed, aborted,
         unavailable, first_config, c.config_id());
}

using ShmClient = client::FarmClient<fabric::ShmFabric>;

// A cluster of 4 shm machines in TEST_TMPDIR/`name`, and a client (machine 100)
// that gives up on a dead machine's messages after 300 ms.
absl::StatusOr<std::unique_ptr<ShmClient>> StartShmClusterOf4(std::unique_ptr<FarmdCluster>& cluster,
                                                              const std::string& name) {
  const std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/", name);
  if (mkdir(dir.c_str(), 0755) != 0) return absl::InternalError(absl::StrCat("mkdir ", dir));
  cluster = std::make_unique<FarmdCluster>(WriteFarmConfig(dir, 4), dir, "shm");
  if (absl::Status s = cluster->Start(4); !s.ok()) return s;
  client::FarmClientOptions o;
  o.machine = 100;
  o.cm_address = cluster->cm_address();
  o.tx.rpc_timeout = absl::Milliseconds(300);
  o.tx.outcome_timeout = absl::Seconds(20);
  return ShmClient::Connect(o, *fabric::ShmFabric::Create({.machine_id = 100}));
}

// A client that dies mid-commit, at each step of the protocol, leaves what it
// did there: locks at the primaries from LOCK on, records at the backups from
// COMMIT-BACKUP on, applied values from COMMIT-PRIMARY on. Its lease expires,
// the CM removes it and recovery decides its transfer (committed iff every
// backup logged it, i.e. from COMMIT-PRIMARY on); another client's transfers
// over the same accounts commit, before and after the removal (no lock left
// behind), and the balances hold the dead client's transfer exactly once or
// not at all, the total intact. The transfer also reads an account it does not write, so
// VALIDATE has a one-sided read to make.
struct DeadClientCase {
  tx::CommitStep step;
  bool committed;  // what recovery must decide
};

class DeadClientTest : public ::testing::TestWithParam<DeadClientCase> {};

TEST_P(DeadClientTest, ItsTransactionIsRecovered) {
  const std::string dir =
      absl::StrCat(getenv("TEST_TMPDIR"), "/deadclient_", tx::StepTestName(GetParam().step));
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  FarmdCluster cluster(WriteFarmConfig(dir), dir, "shm");
  ASSERT_TRUE(cluster.Start().ok());
  client::FarmClientOptions o;
  o.cm_address = cluster.cm_address();
  o.tx.rpc_timeout = absl::Milliseconds(300);
  o.machine = 101;
  auto b = ShmClient::Connect(o, *fabric::ShmFabric::Create({.machine_id = 101}));
  ASSERT_TRUE(b.ok()) << b.status();
  // from + to = 100 throughout; audit (7) is only read.
  GlobalAddress from, to, audit;
  {
    o.machine = 100;
    o.leave_when_destroyed = false;  // it dies: removed at its lease expiry
    auto a = ShmClient::Connect(o, *fabric::ShmFabric::Create({.machine_id = 100}));
    ASSERT_TRUE(a.ok()) << a.status();
    auto t = (*a)->tx().Begin();
    from = *t.Alloc(8);
    to = *t.Alloc(8);
    audit = *t.Alloc(8);
    ASSERT_TRUE(t.Write(from, tx::U64(100)).ok());
    ASSERT_TRUE(t.Write(to, tx::U64(0)).ok());
    ASSERT_TRUE(t.Write(audit, tx::U64(7)).ok());
    ASSERT_TRUE(t.Commit().ok());
    (*a)->tx().options().crash_before = [dead_at = GetParam().step](tx::CommitStep step,
                                                                    fabric::MachineId) {
      return step == dead_at;
    };
    const absl::Status s = tx::Transfer((*a)->tx(), from, to, audit);
    ASSERT_TRUE(absl::IsCancelled(s)) << s;
  }  // client A is gone without a Leave: no more lease renewals, its rings and fabric closed
  // Retried until the dead client's locks are released (at its removal).
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  auto transfer = [&] { return tx::Transfer((*b)->tx(), from, to, audit); };
  absl::Status s = client::RetryWithRefresh(**b, deadline, transfer);
  ASSERT_TRUE(s.ok()) << s;
  // Once the CM removed the dead client (its transaction decided), transfers
  // still commit.
  while (true) {
    ASSERT_LT(absl::Now(), deadline) << "the dead client was never removed";
    ASSERT_TRUE((*b)->Refresh().ok());
    const auto& members = (*b)->configuration().machines();
    auto is_dead_client = [](const cm::Machine& m) { return m.id() == 100; };
    if (std::none_of(members.begin(), members.end(), is_dead_client)) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  s = client::RetryWithRefresh(**b, deadline, transfer);
  ASSERT_TRUE(s.ok()) << s;
  const uint64_t moved = GetParam().committed ? 3 : 2;
  absl::StatusOr<tx::Balances> after = tx::ReadBalances((*b)->tx(), from, to, audit);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->to, moved) << "the dead client's transfer applied " << after->to - 2 << " times";
  EXPECT_EQ(after->from + after->to, 100u);
  EXPECT_EQ(after->audit, 7u);
}

INSTANTIATE_TEST_SUITE_P(EachStep, DeadClientTest,
                         ::testing::Values(DeadClientCase{tx::CommitStep::kLock, false},
                                           DeadClientCase{tx::CommitStep::kValidate, false},
                                           DeadClientCase{tx::CommitStep::kCommitBackup, false},
                                           DeadClientCase{tx::CommitStep::kCommitPrimary, true},
                                           DeadClientCase{tx::CommitStep::kTruncate, true}),
                         [](const auto& info) { return tx::StepTestName(info.param.step); });

// Re-replication across processes: 4 machines, 2 copies of every region,
// bank transfers from a client. A region's primary is killed: the CM
// promotes its backup, gives every region that lost a copy a new backup,
// copies the region to it while transfers go on, and marks it caught up.
// Then that promoted backup (now the primary) is killed too: the region
// survives on the copy made by re-replication, regions are re-replicated
// again, and every transfer reported committed is in the balances.
TEST(FarmdClusterTest, ShmRegionsAreReReplicatedAfterEachFailure) {
  std::unique_ptr<FarmdCluster> cluster;
  absl::StatusOr<std::unique_ptr<ShmClient>> client = StartShmClusterOf4(cluster, "rereplication");
  ASSERT_TRUE(client.ok()) << client.status();
  auto& c = **client;
  absl::StatusOr<workload::Bank> bank = client::RetryWithRefresh(
      c, SetupDeadline(), [&] { return workload::Bank::Create(c.tx(), 16, 1000); });
  ASSERT_TRUE(bank.ok()) << bank.status();
  ASSERT_TRUE(FullyReplicated(c.configuration(), 4));
  uint32_t first = 0, second = 0;
  for (const cm::Region& r : c.configuration().regions()) {
    first = r.replicas(0).machine();
    second = r.replicas(1).machine();
    break;
  }
  ASSERT_NE(first, 0u);

  std::mt19937_64 rng(2);
  workload::Bank::Ledger ledger;
  // Transfers until `done(configuration)` holds and `more` more committed.
  auto run = [&](const std::function<bool(const cm::Configuration&)>& done, uint64_t more,
                 const std::string& what) {
    const uint64_t target = ledger.committed + more;
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    int n = 0;
    while (!(ledger.committed >= target && done(c.configuration()))) {
      ASSERT_LT(absl::Now(), deadline) << what << "; configuration: " << c.configuration().ShortDebugString();
      absl::Status s = bank->Transfer(c.tx(), rng, &ledger);
      if (!s.ok() && !absl::IsAborted(s)) {
        ASSERT_TRUE(absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) << s;
        (void)c.Refresh();
      } else if (++n % 16 == 0) {
        (void)c.Refresh();  // CaughtUp changes the configuration without failing anything
      }
    }
  };
  run([](const cm::Configuration&) { return true; }, 50, "transfers before the first kill");
  cluster->machine(first).Kill(SIGKILL);
  run([](const cm::Configuration& conf) { return FullyReplicated(conf, 3); }, 50,
      "two complete copies of every region after the first kill");
  bool promoted = false;  // `second` took over the region `first` was primary of
  for (const cm::Region& r : c.configuration().regions()) promoted |= r.replicas(0).machine() == second;
  EXPECT_TRUE(promoted);
  cluster->machine(second).Kill(SIGKILL);
  run([](const cm::Configuration& conf) { return FullyReplicated(conf, 2); }, 50,
      "two complete copies of every region after the second kill");
  absl::Status s = bank->CheckLedger(c.tx(), ledger);
  EXPECT_TRUE(s.ok()) << s;
  printf("committed %lu; killed machines %u and %u; configuration %lu\n", ledger.committed, first, second,
         c.config_id());
}

// A machine paused (SIGSTOP) past its lease, as a slow or stalled machine
// would be, is removed by the CM while it cannot notice; its regions are
// promoted and re-replicated and transfers go on. Resumed, it finds its lease
// gone and fences itself: a one-sided read of its old copy, which worked even
// while it was paused (shm reads need no CPU at the target), now fails. No
// transfer reported committed is lost or duplicated.
TEST(FarmdClusterTest, ShmPausedMachineIsRemovedAndFencesItselfWhenResumed) {
  std::unique_ptr<FarmdCluster> cluster;
  absl::StatusOr<std::unique_ptr<ShmClient>> client = StartShmClusterOf4(cluster, "paused");
  ASSERT_TRUE(client.ok()) << client.status();
  auto& c = **client;
  absl::StatusOr<workload::Bank> bank = client::RetryWithRefresh(
      c, SetupDeadline(), [&] { return workload::Bank::Create(c.tx(), 16, 1000); });
  ASSERT_TRUE(bank.ok()) << bank.status();
  const cm::Region region = c.configuration().regions(0);
  const uint32_t paused = region.replicas(0).machine();
  // A reader that follows no configuration: it reads the paused machine's copy directly.
  absl::StatusOr<std::unique_ptr<server::CopyReader<fabric::ShmFabric>>> reader =
      server::CopyReader<fabric::ShmFabric>::Connect(60, c.configuration(), region, 0);
  ASSERT_TRUE(reader.ok()) << reader.status();
  uint64_t word = 0;
  ASSERT_TRUE((*reader)->Read(0, &word, 8).ok());

  std::mt19937_64 rng(3);
  workload::Bank::Ledger ledger;
  auto run = [&](const std::function<bool(const cm::Configuration&)>& done, uint64_t more,
                 const std::string& what) {
    const uint64_t target = ledger.committed + more;
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    int n = 0;
    while (!(ledger.committed >= target && done(c.configuration()))) {
      ASSERT_LT(absl::Now(), deadline) << what << "; configuration: " << c.configuration().ShortDebugString();
      absl::Status s = bank->Transfer(c.tx(), rng, &ledger);
      if (!s.ok() && !absl::IsAborted(s)) {
        ASSERT_TRUE(absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) << s;
        (void)c.Refresh();
      } else if (++n % 16 == 0) {
        (void)c.Refresh();
      }
    }
  };
  run([](const cm::Configuration&) { return true; }, 50, "transfers before the pause");
  cluster->machine(paused).Signal(SIGSTOP);
  run([](const cm::Configuration& conf) { return FullyReplicated(conf, 3); }, 50,
      "the paused machine removed and its regions re-replicated");
  EXPECT_TRUE((*reader)->Read(0, &word, 8).ok()) << "(a paused machine cannot fence itself)";
  cluster->machine(paused).Signal(SIGCONT);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while ((*reader)->Read(0, &word, 8).ok()) {
    ASSERT_LT(absl::Now(), deadline) << "the resumed machine never fenced itself";
    absl::SleepFor(absl::Milliseconds(10));
  }
  run([](const cm::Configuration& conf) { return FullyReplicated(conf, 3); }, 50, "transfers after the resume");
  absl::Status s = bank->CheckLedger(c.tx(), ledger);
  EXPECT_TRUE(s.ok()) << s;
  printf("committed %lu; machine %u paused, removed, resumed and fenced\n", ledger.committed, paused);
}

// Per-region recovery across processes: machine 3 is killed and the CM
// (held open by --recovery_hold_file once every machine follows the new
// configuration) stops only the regions whose replicas changed. While it
// holds them, a transaction on each region held by machines 1 and 2 only
// commits in the new configuration and a write to a recovering region is
// refused (Unavailable, "recovering"); once released, every region commits
// again and each counter holds exactly the increments reported committed.
TEST(FarmdClusterTest, ShmUntouchedRegionsCommitWhileTheOthersRecover) {
  const std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/perregion");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  const std::string release = dir + "/release";
  FarmdCluster cluster(WriteFarmConfig(dir, 3, /*lease_ms=*/1000), dir, "shm");
  cluster.set_cm_flags({"--recovery_hold_file=" + release});
  ASSERT_TRUE(cluster.Start().ok());
  client::FarmClientOptions o;
  o.machine = 100;
  o.cm_address = cluster.cm_address();
  o.tx.rpc_timeout = absl::Milliseconds(300);
  o.tx.outcome_timeout = absl::Seconds(20);
  auto client = ShmClient::Connect(o, *fabric::ShmFabric::Create({.machine_id = 100}));
  ASSERT_TRUE(client.ok()) << client.status();
  auto& c = **client;
  const cm::Configuration before = c.configuration();
  std::map<RegionId, GlobalAddress> counters;
  for (const cm::Region& r : before.regions()) {
    absl::StatusOr<GlobalAddress> a = client::RetryWithRefresh(
        c, SetupDeadline(), [&] { return server::NewCounter(c.tx(), r.id()); });
    ASSERT_TRUE(a.ok()) << a.status();
    counters[r.id()] = *a;
  }

  cluster.machine(3).Kill(SIGKILL);
  // "recovering <configuration> regions=<ids>": every machine follows it.
  const std::string line = cluster.cm().ReadLine().value_or("");
  std::vector<std::string> words = absl::StrSplit(line, ' ');
  ASSERT_EQ(words.size(), 3u) << line;
  ASSERT_EQ(words[0], "recovering") << line;
  ASSERT_TRUE(c.Refresh().ok());
  EXPECT_EQ(absl::StrCat(c.config_id()), words[1]);
  const std::vector<RegionId> changed = tx::ChangedRegions(before, c.configuration());
  EXPECT_EQ(words[2], absl::StrCat("regions=", absl::StrJoin(changed, ",")));
  ASSERT_FALSE(changed.empty());
  ASSERT_LT(changed.size(), counters.size()) << "placement left no region on machines 1 and 2 only";
  std::map<RegionId, uint64_t> committed;
  for (const auto& [region, a] : counters) {
    const absl::Status s = server::IncrementCounter(c.tx(), a);
    if (std::find(changed.begin(), changed.end(), region) == changed.end()) {
      EXPECT_TRUE(s.ok()) << "region " << region << " (replicas unchanged) while the others recover: " << s;
      committed[region] += s.ok();
    } else {
      EXPECT_TRUE(absl::IsUnavailable(s)) << "region " << region << " (recovering): " << s;
      EXPECT_TRUE(absl::StrContains(s.message(), "recovering")) << s;
    }
  }

  std::ofstream(release) << "go\n";
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  for (RegionId region : changed) {
    while (true) {
      ASSERT_LT(absl::Now(), deadline) << "region " << region << " never served again";
      const absl::Status s = server::IncrementCounter(c.tx(), counters[region]);
      if (s.ok()) {
        ++committed[region];
        break;
      }
      ASSERT_TRUE(absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsAborted(s)) << s;
      (void)c.Refresh();
    }
  }
  for (const auto& [region, a] : counters) {
    auto t = c.tx().Begin();
    absl::StatusOr<std::string> v = t.Read(a, 8);
    ASSERT_TRUE(v.ok()) << v.status();
    uint64_t n = 0;
    memcpy(&n, v->data(), 8);
    EXPECT_EQ(n, committed[region]) << "region " << region;
  }
  printf("regions recovering while held: %s; the other %zu committed meanwhile\n", absl::StrJoin(changed, ",").c_str(),
         counters.size() - changed.size());
}

// A slow machine (its participant stalled by SIGUSR1, its lease still
// renewed) would leave a commit whose COMMIT-BACKUP it never answers
// Unknown after outcome_timeout. The coordinator reports it to the CM
// (Suspect, through the FarmClient's CM channel) once it has resent for
// suspect_after; the CM stops renewing its
// lease, the machine fences itself, the CM removes it when the lease it held
// runs out, and recovery decides the commit (no backup logged it: aborted),
// which the coordinator learns well within outcome_timeout.
TEST(FarmdClusterTest, ShmSlowBackupIsSuspectedAndTheCommitDecided) {
  const std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/slow");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  FarmdCluster cluster(WriteFarmConfig(dir, 3, /*lease_ms=*/1000), dir, "shm", {"--fault_signals"});
  ASSERT_TRUE(cluster.Start().ok());
  client::FarmClientOptions o;
  o.machine = 100;
  o.cm_address = cluster.cm_address();
  o.tx.rpc_timeout = absl::Milliseconds(200);
  o.tx.outcome_timeout = absl::Seconds(30);
  o.tx.suspect_after = absl::Milliseconds(500);  // o.tx.suspect unset: the client reports to its CM
  auto client = ShmClient::Connect(o, *fabric::ShmFabric::Create({.machine_id = 100}));
  ASSERT_TRUE(client.ok()) << client.status();
  auto& c = **client;
  const cm::Region region = c.configuration().regions(0);
  const uint32_t backup = region.replicas(1).machine();  // machine id = slot at first start
  absl::StatusOr<GlobalAddress> created = client::RetryWithRefresh(
      c, SetupDeadline(), [&] { return server::NewCounter(c.tx(), region.id()); });
  ASSERT_TRUE(created.ok()) << created.status();
  const GlobalAddress counter = *created;
  cluster.machine(backup).Signal(SIGUSR1);
  ASSERT_EQ(cluster.machine(backup).ReadLine().value_or(""), absl::StrCat("fault ", backup, " stalled"));

  const absl::Status s = server::IncrementCounter(c.tx(), counter);
  EXPECT_TRUE(absl::IsAborted(s)) << s << " (the stalled backup never logged it: recovery aborts it)";
  EXPECT_EQ(c.tx().stats().suspected, 1u);
  EXPECT_EQ(c.tx().stats().unknown, 0u);
  ASSERT_TRUE(c.Refresh().ok());
  for (const cm::Machine& m : c.configuration().machines()) EXPECT_NE(m.id(), backup) << "still a member";
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (true) {
    ASSERT_LT(absl::Now(), deadline) << "the region never served again";
    const absl::Status again = server::IncrementCounter(c.tx(), counter);
    if (again.ok()) break;
    ASSERT_TRUE(absl::IsUnavailable(again) || absl::IsDeadlineExceeded(again) || absl::IsAborted(again)) << again;
    (void)c.Refresh();
  }
  absl::StatusOr<uint64_t> n = server::ReadCounter(c.tx(), counter);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 1u) << "the suspected commit was aborted, the next one committed";
}

TEST(FarmdClusterTest, ShmClientSurvivesAKilledMachine) {
  ClientSurvivesAKilledMachine<fabric::ShmFabric>("shm", fabric::ShmFabric::Create({.machine_id = 100}));
}

TEST(FarmdClusterTest, NetClientSurvivesAKilledMachine) {
  ClientSurvivesAKilledMachine<fabric::NetFabric>("net", fabric::NetFabric::Create({.machine_id = 100}));
}

}  // namespace
}  // namespace dctk::farm
