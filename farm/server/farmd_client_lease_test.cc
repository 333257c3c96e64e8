// A FarmClient between refreshes, with farmd processes (shm fabric, 3
// machines, 1 s leases): each lease renewal's reply carries the CM's
// configuration, so the client follows a removal without calling Refresh.
//
// A primary paused (SIGSTOP) past its lease is removed by the CM while its
// memory stays readable (shm reads need no CPU at the target). The client's
// coordinator, waiting with an RPC timeout of an hour for the paused primary
// to answer a LOCK, gives up as soon as the renewal brings the new
// configuration (TxClientOptions::give_up_on_new_config, on by default in
// FarmClient): not committed. Its region table then lists the promoted backup,
// so the next increments commit there and reads see them, never the paused
// machine's stale copy. No Refresh is called: the rings are the ones wired at
// Connect.
//
// A client whose lease runs out while it lives (its renewals skipped through
// FarmClientOptions::renew_lease) is removed by the CM for good: its
// transactions, Ship and Refresh fail with FailedPrecondition naming the
// removal, a LOCK it sends directly under the current configuration never
// reaches the primary (the machines dropped its rings when they installed its
// removal: its ring write fails with INVALID_KEY; a primary refuses a removed
// coordinator's LOCK anyway: recovery_test, recovery_regions_test), and
// another client's transactions on the same object commit (no lock is left
// behind).
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "farm/client/farm_client.h"
#include "farm/core/object.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/server/copy_reader.h"
#include "farm/server/counters.h"
#include "farm/server/farmd_process.h"
#include "farm/tx/wire.h"
#include "gtest/gtest.h"

namespace dctk::farm {
namespace {

using server::FarmdCluster;
using ShmClient = client::FarmClient<fabric::ShmFabric>;

TEST(FarmdClientLeaseTest, ShmClientFollowsARemovalFromItsLeaseRenewalsWithoutRefresh) {
  const std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/lease");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  FarmdCluster cluster(server::WriteFarmConfig(dir, 3, /*lease_ms=*/1000), dir, "shm");
  ASSERT_TRUE(cluster.Start().ok());
  client::FarmClientOptions o;
  o.machine = 100;
  o.cm_address = cluster.cm_address();
  o.tx.rpc_timeout = absl::Hours(1);  // only a new configuration ends a wait for the paused machine
  o.tx.outcome_timeout = absl::Seconds(60);
  auto client = ShmClient::Connect(o, *fabric::ShmFabric::Create({.machine_id = 100}));
  ASSERT_TRUE(client.ok()) << client.status();
  auto& c = **client;
  ASSERT_TRUE(c.tx().options().give_up_on_new_config);
  const cm::Region region = c.configuration().regions(0);
  const uint32_t paused = region.replicas(0).machine();  // machine id = slot at first start
  absl::StatusOr<GlobalAddress> created = server::NewCounter(c.tx(), region.id());
  ASSERT_TRUE(created.ok()) << created.status();
  const GlobalAddress counter = *created;
  // A reader that follows no configuration reads the paused machine's copy.
  absl::StatusOr<std::unique_ptr<server::CopyReader<fabric::ShmFabric>>> reader =
      server::CopyReader<fabric::ShmFabric>::Connect(60, c.configuration(), region, 0);
  ASSERT_TRUE(reader.ok()) << reader.status();
  uint8_t stale[64];
  const uint64_t first_config = c.config_id();
  const ShmClient::WiringStats wiring = c.wiring_stats();

  ASSERT_TRUE(cluster.machine(paused).Pause());
  const absl::Status s = server::IncrementCounter(c.tx(), counter);
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s << " (the LOCK was not answered: not committed)";
  EXPECT_GE(c.tx().stats().gave_up, 1u);
  EXPECT_GE(c.learned_from_lease(), 1u);
  EXPECT_GT(c.config_id(), first_config);
  absl::StatusOr<RegionInfo> info = c.regions().Lookup(region.id());
  ASSERT_TRUE(info.ok()) << info.status();
  for (const Replica& r : info->replicas)
    EXPECT_NE(r.machine, paused) << "the removed machine is still listed";

  // Transactions go on at the promoted backup (recovery may still refuse
  // them for a moment: retried, never refreshed).
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  int committed = 0;
  while (committed < 3) {
    ASSERT_LT(absl::Now(), deadline) << "no commit without Refresh";
    const absl::Status again = server::IncrementCounter(c.tx(), counter);
    if (again.ok()) {
      ++committed;
      continue;
    }
    ASSERT_TRUE(absl::IsUnavailable(again) || absl::IsDeadlineExceeded(again) ||
                absl::IsAborted(again))
        << again;
    absl::SleepFor(absl::Milliseconds(10));
  }
  absl::StatusOr<uint64_t> n = server::ReadCounter(c.tx(), counter);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 3u);
  ASSERT_TRUE((*reader)->Read(counter.offset(), stale, sizeof(stale)).ok())
      << "(paused: cannot fence itself)";
  uint64_t at_paused = 0;
  ExtractPayload(stale, &at_paused, 8);
  EXPECT_EQ(at_paused, 0u) << "the paused machine's copy is stale";
  EXPECT_EQ(c.wiring_stats().wired, wiring.wired);
  EXPECT_EQ(c.wiring_stats().rewired, wiring.rewired);
  EXPECT_EQ(c.wiring_stats().dropped, wiring.dropped);
  cluster.machine(paused).Signal(SIGCONT);
  printf(
      "configuration %lu -> %lu without Refresh (%lu learned from lease renewals); %lu calls given "
      "up\n",
      first_config, c.config_id(), c.learned_from_lease(), c.tx().stats().gave_up);
}

// Commits one increment by `c` (retrying conflicts and recovery's refusals,
// refreshing after them), within a minute.
absl::Status IncrementWithRetries(ShmClient& c, GlobalAddress counter) {
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  absl::Status s;
  while (absl::Now() < deadline) {
    s = server::IncrementCounter(c.tx(), counter);
    if (s.ok() || !(absl::IsAborted(s) || absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)))
      return s;
    if (!absl::IsAborted(s)) (void)c.Refresh();
    absl::SleepFor(absl::Milliseconds(10));
  }
  return s;
}

// A LOCK of the counter in a transaction of removed client `a`, sent by `a`
// straight to the counter's primary under the configuration `b` follows (set
// in *config), writing over the version b reads now: the primary's answer,
// or why b could not read the counter.
absl::Status LockAsRemovedClient(ShmClient& a, ShmClient& b, RegionId region, GlobalAddress counter,
                                 uint64_t* config) {
  auto t = b.tx().Begin();
  if (absl::StatusOr<std::string> v = t.Read(counter, 8); !v.ok()) return v.status();
  const uint64_t version = t.VersionRead(counter);
  if (absl::Status s = t.Commit(); !s.ok()) return s;
  absl::StatusOr<RegionInfo> info = b.regions().Lookup(region);
  if (!info.ok()) return info.status();
  *config = b.config_id();
  const tx::LockRequest lock{
      *config,
      tx::MakeTxId(100, 0, uint64_t{1} << 30),
      {region},
      {tx::WriteEntry{counter, version, tx::EntryKind::kWrite, 0, std::string(8, '\7')}}};
  const std::string bytes = tx::Encode(lock);
  absl::StatusOr<std::string> reply = a.tx().endpoint().Call(
      info->primary().machine, tx::kLock,
      absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
      absl::Seconds(10));
  if (!reply.ok()) return reply.status();
  absl::StatusOr<tx::Reply> r = tx::DecodeReply(*reply);
  if (!r.ok()) return r.status();
  return tx::StatusOf(*r);
}

TEST(FarmdClientLeaseTest, AClientTheCmRemovedCoordinatesNothingMore) {
  const std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/removed");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  FarmdCluster cluster(server::WriteFarmConfig(dir, 3, /*lease_ms=*/1000), dir, "shm");
  ASSERT_TRUE(cluster.Start().ok());
  std::atomic<bool> renew{true};
  client::FarmClientOptions o;
  o.cm_address = cluster.cm_address();
  o.machine = 100;
  o.renew_lease = [&renew] { return renew.load(); };
  auto stalled = ShmClient::Connect(o, *fabric::ShmFabric::Create({.machine_id = 100}));
  ASSERT_TRUE(stalled.ok()) << stalled.status();
  o.machine = 101;
  o.renew_lease = nullptr;
  auto other = ShmClient::Connect(o, *fabric::ShmFabric::Create({.machine_id = 101}));
  ASSERT_TRUE(other.ok()) << other.status();
  ShmClient& a = **stalled;
  ShmClient& b = **other;
  const cm::Region region = b.configuration().regions(0);
  absl::StatusOr<GlobalAddress> counter = server::NewCounter(b.tx(), region.id());
  ASSERT_TRUE(counter.ok()) << counter.status();
  ASSERT_TRUE(IncrementWithRetries(a, *counter).ok()) << "a leased client coordinates";
  EXPECT_FALSE(a.removed());

  // Client 100 stalls past its lease; once the CM removed it, it renews
  // again and learns it was removed.
  renew = false;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  auto lists_removed = [&b] {
    const auto& failed = b.configuration().failed();
    return std::find(failed.begin(), failed.end(), 100u) != failed.end();
  };
  while (!lists_removed()) {
    ASSERT_LT(absl::Now(), deadline) << "the CM did not remove a client that stopped renewing";
    absl::SleepFor(absl::Milliseconds(20));
    (void)b.Refresh();
  }
  EXPECT_FALSE(a.removed());
  renew = true;
  while (!a.removed()) {
    ASSERT_LT(absl::Now(), deadline) << "the removed client's renewal was not refused";
    absl::SleepFor(absl::Milliseconds(20));
  }
  const absl::Status inc = server::IncrementCounter(a.tx(), *counter);
  EXPECT_TRUE(absl::IsFailedPrecondition(inc)) << inc;
  EXPECT_NE(inc.message().find("client 100 was removed by the CM at configuration"),
            std::string::npos)
      << inc;
  const absl::Status refresh = a.Refresh();
  EXPECT_TRUE(absl::IsFailedPrecondition(refresh)) << refresh;
  absl::StatusOr<std::string> shipped = a.Ship(*counter, 1, "");
  EXPECT_TRUE(absl::IsFailedPrecondition(shipped.status())) << shipped.status();
  EXPECT_NE(shipped.status().message().find("was removed by the CM"), std::string::npos)
      << shipped.status();

  // The other client commits once the removal is installed; the removed
  // one's LOCK under that configuration (as if it had learned it) finds its
  // ring at the primary gone.
  ASSERT_TRUE(IncrementWithRetries(b, *counter).ok());
  absl::Status refused;
  uint64_t config = 0;
  for (const absl::Time lock_deadline = absl::Now() + absl::Seconds(60);;) {
    ASSERT_LT(absl::Now(), lock_deadline) << "the removed client's LOCK: " << refused;
    refused = LockAsRemovedClient(a, b, region.id(), *counter, &config);
    // Machines that missed their 1 s leases under CPU load moved the
    // configuration on since b learned it (the machine answered "configuration
    // 22 is not the current one (28)"), or recovery runs: with b's newest.
    if (!absl::IsUnavailable(refused) && !absl::IsDeadlineExceeded(refused) &&
        !absl::IsAborted(refused))
      break;
    (void)b.Refresh();
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(absl::IsNotFound(refused)) << refused;
  EXPECT_NE(refused.message().find("INVALID_KEY"), std::string::npos)
      << "its LOCK in configuration " << config << ": " << refused;

  for (int i = 0; i < 3; ++i) {
    const absl::Status s = IncrementWithRetries(b, *counter);
    ASSERT_TRUE(s.ok()) << "increment " << i << " after the refused LOCK: " << s;
  }
  absl::StatusOr<uint64_t> n = server::ReadCounter(b.tx(), *counter);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 5u);
  printf("client 100 removed: %s\nits LOCK: %s\n", std::string(inc.message()).c_str(),
         std::string(refused.message()).c_str());
}

// A machine that joined after the client wired its rings (its configuration
// learned from a lease renewal, no Refresh) holds the new backup of the
// counter's region. A commit would lock at the primary and then find no ring
// for its COMMIT-BACKUP: an outcome it could never learn, the lock held until
// some recovery (farmd_restart_test phase 2 saw reads fail on such a lock for
// 60 s). It is refused before it locks, naming the machine; once Refresh
// wired the machine, increments commit.
TEST(FarmdClientLeaseTest, ShmCommitToAMachineWithoutARingLocksNothingUntilRefresh) {
  const std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/newbackup");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  FarmdCluster cluster(server::WriteFarmConfig(dir, 2, /*lease_ms=*/1000), dir, "shm");
  ASSERT_TRUE(cluster.Start(2).ok());
  client::FarmClientOptions o;
  o.machine = 100;
  o.cm_address = cluster.cm_address();
  o.tx.outcome_timeout = absl::Seconds(3);
  auto client = ShmClient::Connect(o, *fabric::ShmFabric::Create({.machine_id = 100}));
  ASSERT_TRUE(client.ok()) << client.status();
  auto& c = **client;
  const cm::Region region = c.configuration().regions(0);
  const uint32_t backup = region.replicas(1).machine();  // machine id = slot at first start
  absl::StatusOr<GlobalAddress> created = server::NewCounter(c.tx(), region.id());
  ASSERT_TRUE(created.ok()) << created.status();
  const GlobalAddress counter = *created;

  cluster.machine(backup).Kill(SIGKILL);
  absl::StatusOr<uint32_t> fresh = cluster.RestartMachine(backup);  // removed: joins under a new id
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  // The copy is made (the region serves again) and the client learned that
  // configuration from its lease renewals only.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  for (;;) {
    ASSERT_LT(absl::Now(), deadline) << "machine " << *fresh << " never got a full copy";
    absl::StatusOr<std::pair<bool, cm::Configuration>> cm = cluster.CmState();
    if (cm.ok() && cm->first && server::FullyReplicated(cm->second, 2) &&
        c.config_id() >= cm->second.id()) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  absl::StatusOr<RegionInfo> info = c.regions().Lookup(region.id());
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_TRUE(std::any_of(info->replicas.begin(), info->replicas.end(),
                          [&](const Replica& r) { return r.machine == *fresh; }));
  absl::Status s = server::IncrementCounter(c.tx(), counter);
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_NE(s.message().find(absl::StrCat("no ring to machine ", *fresh)), std::string::npos) << s;
  absl::StatusOr<uint64_t> n = server::ReadCounter(c.tx(), counter);
  ASSERT_TRUE(n.ok()) << n.status() << " (a lock was left behind)";
  EXPECT_EQ(*n, 0u);

  ASSERT_TRUE(c.Refresh().ok());
  for (int i = 0; i < 3; ++i) {
    s = server::IncrementCounter(c.tx(), counter);
    // A region whose copy is still being made refuses for a moment.
    while (absl::IsUnavailable(s) || absl::IsAborted(s)) {
      ASSERT_LT(absl::Now(), deadline) << s;
      absl::SleepFor(absl::Milliseconds(10));
      s = server::IncrementCounter(c.tx(), counter);
    }
    ASSERT_TRUE(s.ok()) << s;
  }
  n = server::ReadCounter(c.tx(), counter);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 3u);
  EXPECT_EQ(c.tx().stats().unknown, 0u);
}

}  // namespace
}  // namespace dctk::farm
