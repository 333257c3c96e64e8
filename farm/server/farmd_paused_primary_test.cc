// Precise membership with farmd processes (shm fabric, 3 machines, 1 s
// leases): no client reads a removed primary's stale copy after a write
// committed at the promoted one.
//
// The primary P of a counter is paused (SIGSTOP): the CM removes it at lease
// expiry, promotes a backup P', recovers and resumes the region; P's memory
// stays readable over shm (a one-sided read needs no CPU at P). Client B
// follows the CM and commits an increment at P'. Client A stopped renewing
// its lease (FarmClientOptions::renew_lease) a little before P's lease ran
// out, so it still held a lease when P was removed and never learned the
// new configuration: its region table still names P. A's reads of the
// counter after B's commit must return the new value or fail (Unavailable:
// its lease ran out and it fenced itself; FailedPrecondition: the CM
// removed it), never the old one. That needs both halves: the CM resumes
// the region only once A acknowledged the configuration or its lease ran
// out (cm_service.h), and A reads nothing once its lease ran out
// (lease_fence.h). Without either, A reads 0 from P.
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "farm/client/farm_client.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/server/counters.h"
#include "farm/server/farmd_process.h"
#include "gtest/gtest.h"

namespace dctk::farm {
namespace {

using server::FarmdCluster;
using ShmClient = client::FarmClient<fabric::ShmFabric>;

// P's lease expiry on the CM's clock (Unix ms), from the CM's state.
absl::StatusOr<int64_t> LeaseExpiry(const FarmdCluster& cluster, uint32_t machine) {
  absl::StatusOr<std::pair<bool, cm::Configuration>> state = cluster.CmState();
  if (!state.ok()) return state.status();
  for (const cm::Machine& m : state->second.machines()) {
    if (m.id() == machine) return m.lease_expiry_ms();
  }
  return absl::NotFoundError(absl::StrCat("machine ", machine, " is not a member"));
}

// What a read by the client behind may return: the committed value, or an
// error saying it cannot read now. Never an older value.
void ExpectNotStale(const absl::StatusOr<uint64_t>& n, uint64_t committed, const char* what) {
  if (n.ok()) {
    EXPECT_EQ(*n, committed) << what << " returned a value older than a committed write";
    return;
  }
  EXPECT_TRUE(absl::IsUnavailable(n.status()) || absl::IsFailedPrecondition(n.status()) ||
              absl::IsAborted(n.status()) || absl::IsDeadlineExceeded(n.status()))
      << what << ": " << n.status();
}

// A single read in a transaction left open: the value a one-sided read returned.
absl::StatusOr<uint64_t> ReadOnce(ShmClient& c, GlobalAddress a) {
  auto t = c.tx().Begin();
  absl::StatusOr<std::string> bytes = t.Read(a, 8);
  if (!bytes.ok()) return bytes.status();
  uint64_t n = 0;
  std::memcpy(&n, bytes->data(), 8);
  return n;
}

TEST(FarmdPausedPrimaryTest, AClientBehindNeverReadsTheRemovedPrimarysStaleCopy) {
  const std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/paused");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  constexpr int kLeaseMs = 1000;
  FarmdCluster cluster(server::WriteFarmConfig(dir, 3, kLeaseMs), dir, "shm");
  ASSERT_TRUE(cluster.Start().ok());
  // A renews while the wall clock (the CM's, same host) is before this.
  std::atomic<int64_t> a_renews_until{std::numeric_limits<int64_t>::max()};
  client::FarmClientOptions o;
  o.cm_address = cluster.cm_address();
  o.machine = 100;
  o.renew_lease = [&a_renews_until] {
    return absl::ToUnixMillis(absl::Now()) < a_renews_until.load();
  };
  auto behind = ShmClient::Connect(o, *fabric::ShmFabric::Create({.machine_id = 100}));
  ASSERT_TRUE(behind.ok()) << behind.status();
  o.machine = 101;
  o.renew_lease = nullptr;
  o.tx.rpc_timeout = absl::Milliseconds(200);
  auto follows = ShmClient::Connect(o, *fabric::ShmFabric::Create({.machine_id = 101}));
  ASSERT_TRUE(follows.ok()) << follows.status();
  ShmClient& a = **behind;
  ShmClient& b = **follows;
  const cm::Region region = b.configuration().regions(0);
  const uint32_t paused = region.replicas(0).machine();  // machine id = slot at first start
  absl::StatusOr<GlobalAddress> counter = server::NewCounter(b.tx(), region.id());
  ASSERT_TRUE(counter.ok()) << counter.status();
  absl::StatusOr<uint64_t> first = server::ReadCounter(a.tx(), *counter);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(*first, 0u);

  const uint64_t config_before = a.config_id();
  ASSERT_TRUE(cluster.machine(paused).Pause());
  // Resumed before the cluster's destructor stops it, also when an
  // assertion below fails.
  absl::Cleanup resume = [&cluster, paused] { cluster.machine(paused).Signal(SIGCONT); };
  absl::StatusOr<int64_t> expiry = LeaseExpiry(cluster, paused);
  ASSERT_TRUE(expiry.ok()) << expiry.status();
  // A's last renewal falls within a third of a lease before P's lease runs
  // out: it still holds a lease when the CM removes P.
  a_renews_until = *expiry - kLeaseMs / 3;

  // B commits 1 at the promoted backup (its attempts fail while P is paused
  // and the region recovers; it learns the new configuration from its lease
  // renewals: a Refresh would drop P's rings, and the shm fabric waits 5 s
  // for the paused P to acknowledge that).
  const absl::Time paused_at = absl::Now();
  const absl::Time deadline = paused_at + absl::Seconds(60);
  absl::Status inc;
  std::string attempts;  // printed: what B went through
  do {
    ASSERT_LT(absl::Now(), deadline) << "no commit at the promoted backup: " << inc;
    inc = server::IncrementCounter(b.tx(), *counter);
    absl::StrAppend(&attempts, "  ", absl::ToInt64Milliseconds(absl::Now() - paused_at),
                    " ms: ", inc.ToString().substr(0, 160), "\n");
    if (!inc.ok()) absl::SleepFor(absl::Milliseconds(10));
  } while (!inc.ok());
  const absl::Time committed = absl::Now();
  EXPECT_GT(b.config_id(), config_before);
  // 1, unless an attempt that ended Unknown committed too.
  absl::StatusOr<uint64_t> value = server::ReadCounter(b.tx(), *counter);
  while (!value.ok() && absl::Now() < deadline) value = server::ReadCounter(b.tx(), *counter);
  ASSERT_TRUE(value.ok()) << value.status();
  ASSERT_GE(*value, 1u);

  // A, behind, reads after that commit: a read-only transaction and a single
  // one-sided read, then again once it renews (refused: the CM removed it,
  // or answered with the new configuration).
  // (A renewal in flight when the hold began may have brought it the new
  // configuration on a loaded machine: then A reads at P', as it should.)
  const bool a_behind = a.config_id() == config_before;
  ExpectNotStale(server::ReadCounter(a.tx(), *counter), *value, "read-only transaction");
  ExpectNotStale(ReadOnce(a, *counter), *value, "one-sided read");
  a_renews_until = std::numeric_limits<int64_t>::max();
  int reads = 2;
  while (!a.removed() && a.config_id() == config_before && absl::Now() < deadline) {
    ExpectNotStale(ReadOnce(a, *counter), *value, "one-sided read after renewals resumed");
    ++reads;
    absl::SleepFor(absl::Milliseconds(5));
  }
  ExpectNotStale(server::ReadCounter(a.tx(), *counter), *value,
                 "read-only transaction after renewals resumed");
  printf("B's increments after the pause:\n%s", attempts.c_str());
  printf("A %s the new configuration when it read\n", a_behind ? "did not know" : "had learned");
  printf(
      "B committed %ld ms after the pause's removal window; A (configuration %lu): %d reads, "
      "removed=%d, "
      "%s\n",
      static_cast<long>(absl::ToInt64Milliseconds(committed - absl::FromUnixMillis(*expiry))),
      static_cast<unsigned long>(a.config_id()), reads, a.removed(),
      std::string(a.LeaseStatus().message()).c_str());
}

}  // namespace
}  // namespace dctk::farm
