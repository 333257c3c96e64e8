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
#include <signal.h>
#include <sys/stat.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "farm/client/farm_client.h"
#include "farm/core/object.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/server/copy_reader.h"
#include "farm/server/counters.h"
#include "farm/server/farmd_process.h"
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
  absl::StatusOr<std::unique_ptr<server::CopyReader>> reader =
      server::CopyReader::Connect(60, c.configuration(), region, 0);
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

}  // namespace
}  // namespace dctk::farm
