#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "farm/client/ship.h"
#include "farm/client/ship_cluster.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/tx/test_util.h"
#include "gtest/gtest.h"

namespace dctk::farm::client {
namespace {

using fabric::ShmFabric;
using tx::AsU64;
using tx::U64;

constexpr ProcedureId kIncrement = 1;   // args: counter address; result: the value before
constexpr ProcedureId kInterfered = 2;  // the same, with `interfere` run between its read and its write

std::function<void()> interfere;  // set by the test that uses kInterfered

absl::StatusOr<std::string> IncrementIn(tx::Transaction<ShmFabric>& t, absl::string_view args, bool interfered) {
  const GlobalAddress a = GlobalAddress::FromRaw(DecodeU64(args));
  absl::StatusOr<std::string> v = t.Read(a, 8);
  if (!v.ok()) return v.status();
  if (interfered) interfere();
  absl::Status s = t.Write(a, U64(AsU64(*v) + 1));
  if (!s.ok()) return s;
  return *v;
}

std::shared_ptr<ProcedureRegistry<ShmFabric>> Procedures() {
  auto p = std::make_shared<ProcedureRegistry<ShmFabric>>();
  EXPECT_TRUE(p->Register(kIncrement, "increment", [](auto& t, absl::string_view a) { return IncrementIn(t, a, false); })
                  .ok());
  EXPECT_TRUE(
      p->Register(kInterfered, "interfered", [](auto& t, absl::string_view a) { return IncrementIn(t, a, true); }).ok());
  EXPECT_FALSE(p->Register(kIncrement, "again", nullptr).ok());
  return p;
}

std::unique_ptr<ShipCluster<ShmFabric>> MakeCluster(ShipClusterOptions o = {}) {
  o.cluster.machines = 3;
  o.cluster.replicas = 2;
  o.cluster.client.rpc_timeout = absl::Milliseconds(500);
  if (o.clients < 2) o.clients = 2;
  auto c = ShipCluster<ShmFabric>::Create(o, Procedures(),
                                          [](fabric::MachineId id) { return ShmFabric::Create({.machine_id = id}); });
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(*c) : nullptr;
}

// A counter whose primary is machine `m` (allocated by m's own coordinator).
GlobalAddress CounterOn(ShipCluster<ShmFabric>& c, fabric::MachineId m) {
  auto t = c.cluster().client(m).Begin();
  absl::StatusOr<GlobalAddress> a = t.Alloc(8);
  EXPECT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(t.Write(*a, U64(0)).ok());
  EXPECT_TRUE(t.Commit().ok());
  EXPECT_EQ(c.PrimaryOf(*a), m);
  return *a;
}

uint64_t ValueOf(ShipCluster<ShmFabric>& c, GlobalAddress a) {
  auto t = c.client(1).Begin();
  absl::StatusOr<std::string> v = t.Read(a, 8);
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? AsU64(*v) : ~uint64_t{0};
}

TEST(ShipTest, ShippedTransactionCommitsAtThePrimaryWithMessagesOnlyToItsBackup) {
  auto c = MakeCluster();
  const GlobalAddress a = CounterOn(*c, 2);
  absl::StatusOr<std::string> r = c->shipper(0).Ship(a, kIncrement, EncodeU64(a.raw()));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(AsU64(*r), 0u);
  r = c->shipper(0).Ship(a, kIncrement, EncodeU64(a.raw()));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(AsU64(*r), 1u);
  EXPECT_EQ(ValueOf(*c, a), 2u);
  const ShipServerStats s = c->server(2).stats();
  EXPECT_EQ(s.committed, 2u);
  // Per transaction: COMMIT-BACKUP and TRUNCATE to the backup; LOCK,
  // COMMIT-PRIMARY and TRUNCATE at the local participant by function call.
  EXPECT_EQ(s.coordinator_rpcs, 4u);
  EXPECT_EQ(s.coordinator_local_calls, 6u);
  EXPECT_EQ(c->client(0).stats().rpc_calls, 0u);  // the client sent only the two shipped calls
  // Unknown procedure: refused by name, nothing runs.
  r = c->shipper(0).Ship(a, 99, "");
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("no procedure 99"), std::string::npos) << r.status();
}

TEST(ShipTest, AConflictAbortsTheShippedTransactionWithItsReason) {
  auto c = MakeCluster();
  const GlobalAddress a = CounterOn(*c, 3);
  // Between the shipped transaction's read and its commit, another
  // coordinator commits a write to the same counter.
  interfere = [&] { EXPECT_TRUE(tx::Increment(c->cluster().client(1), a, CounterOn(*c, 1)).ok()); };
  absl::StatusOr<std::string> r = c->shipper(0).Ship(a, kInterfered, EncodeU64(a.raw()));
  interfere = nullptr;
  ASSERT_TRUE(absl::IsAborted(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("changed"), std::string::npos) << r.status();
  EXPECT_EQ(ValueOf(*c, a), 1u);  // only the interfering increment
  EXPECT_EQ(c->server(3).stats().aborted, 1u);
  EXPECT_EQ(c->shipper(0).stats().aborted, 1u);
  // A retry is a new request and commits.
  r = c->shipper(0).Ship(a, kIncrement, EncodeU64(a.raw()));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ValueOf(*c, a), 2u);
}

TEST(ShipTest, ConcurrentShippedIncrementsAreEachVisibleExactlyOnce) {
  ShipClusterOptions o;
  o.clients = 3;
  o.ship.workers = 2;
  auto c = MakeCluster(o);
  std::vector<GlobalAddress> counters = {CounterOn(*c, 1), CounterOn(*c, 2), CounterOn(*c, 3), CounterOn(*c, 1)};
  std::vector<uint64_t> committed(counters.size() * 3, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      for (int n = 0; n < 150; ++n) {
        const size_t k = (n + i) % counters.size();
        absl::StatusOr<std::string> r = c->shipper(i).Ship(counters[k], kIncrement, EncodeU64(counters[k].raw()));
        if (r.ok()) ++committed[i * counters.size() + k];
        EXPECT_TRUE(r.ok() || absl::IsAborted(r.status())) << r.status();
      }
    });
  }
  for (auto& t : threads) t.join();
  uint64_t total = 0;
  for (size_t k = 0; k < counters.size(); ++k) {
    const uint64_t want = committed[k] + committed[counters.size() + k] + committed[2 * counters.size() + k];
    EXPECT_EQ(ValueOf(*c, counters[k]), want) << "counter " << k;
    total += want;
  }
  EXPECT_GT(total, 300u);
}

TEST(ShipTest, ARetryAfterALostReplyGetsTheFirstReplyAndDoesNotCommitTwice) {
  ShipClusterOptions o;
  std::atomic<int> lose{1};
  o.ship.lose_reply = [&](const ShipRequest&) { return lose.fetch_sub(1) > 0; };
  o.shipper.timeout = absl::Milliseconds(300);
  auto c = MakeCluster(o);
  const GlobalAddress a = CounterOn(*c, 1);
  absl::StatusOr<std::string> r = c->shipper(0).Ship(a, kIncrement, EncodeU64(a.raw()));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(AsU64(*r), 0u);
  EXPECT_EQ(ValueOf(*c, a), 1u);
  EXPECT_EQ(c->shipper(0).stats().resent, 1u);
  EXPECT_EQ(c->shipper(0).stats().remembered, 1u);
  const ShipServerStats s = c->server(1).stats();
  EXPECT_EQ(s.ran, 1u);
  EXPECT_EQ(s.lost_replies, 1u);
  EXPECT_EQ(s.retries_answered, 1u);
}

// The machine commits the request and forgets it (its process restarted
// right after the commit: remembered replies are in memory), and the
// configuration moves on meanwhile. The resend is refused for its
// configuration, which does not prove the first copy never ran: the client
// asks the participants, learns that it committed, and never ships it again.
TEST(ShipTest, AResendThatTheMachineForgotIsSettledFromTheParticipantsNeverRunTwice) {
  ShipClusterOptions o;
  absl::Notification ran, go;
  std::atomic<bool> armed{true};
  o.ship.forget_reply = [&](const ShipRequest&) {
    if (!armed.exchange(false)) return false;
    ran.Notify();
    go.WaitForNotification();  // the worker answers nothing until the configuration changed
    return true;
  };
  o.shipper.timeout = absl::Milliseconds(200);
  o.shipper.outcome_timeout = absl::Seconds(60);
  auto c = MakeCluster(o);
  const GlobalAddress a = CounterOn(*c, 1);
  absl::StatusOr<std::string> r;
  std::thread client([&] { r = c->shipper(0).Ship(a, kIncrement, EncodeU64(a.raw())); });
  ran.WaitForNotification();
  c->Kill(3);  // the configuration changes; machine 1 stays a member
  ASSERT_TRUE(c->Recover({3}).ok());
  go.Notify();
  client.join();
  EXPECT_TRUE(absl::IsUnknown(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("committed"), std::string::npos) << r.status();
  EXPECT_EQ(ValueOf(*c, a), 1u) << "committed exactly once";
  EXPECT_GE(c->shipper(0).stats().resent, 1u);
  EXPECT_EQ(c->shipper(0).stats().forgotten, 1u);
  EXPECT_EQ(c->shipper(0).stats().outcome_asked, 1u);
  const ShipServerStats s = c->server(1).stats();
  EXPECT_EQ(s.ran, 1u);
  EXPECT_EQ(s.retries_answered, 0u);
  EXPECT_GE(s.refused_config, 1u);
}

// The client gives up on a request as Unknown while its ship worker still
// commits it (its COMMIT-BACKUP held up), and ships the next one. The next
// request's watermark stays at the one not settled, so the backup still
// takes the late COMMIT-BACKUP and the worker commits fully; the client
// learns the outcome later (Outcome: the first reply, with its result) and
// only then passes it. At c6bfc75 the next request's watermark passed it:
// the backup refused the COMMIT-BACKUP as below the truncation point, the
// worker ended Unknown and the counter stayed locked at its primary.
TEST(ShipTest, ARequestGivenUpWhileItStillCommitsIsNotRefusedAndIsSettledLater) {
  ShipClusterOptions o;
  absl::Notification held, release;
  std::atomic<bool> armed{true};
  o.ship.tx.crash_before = [&](tx::CommitStep step, fabric::MachineId) {
    if (step != tx::CommitStep::kCommitBackup || !armed.exchange(false)) return false;
    held.Notify();
    release.WaitForNotification();
    return false;  // not a crash: a commit that is slow here
  };
  o.ship.tx.outcome_timeout = absl::Seconds(2);  // the worker's, were its COMMIT-BACKUP refused
  o.shipper.timeout = absl::Milliseconds(100);
  o.shipper.outcome_timeout = absl::Milliseconds(300);
  auto c = MakeCluster(o);
  const GlobalAddress a = CounterOn(*c, 2);
  const fabric::MachineId backup = c->cluster().table().Lookup(a.region())->replicas.at(1).machine;
  const GlobalAddress b = CounterOn(*c, backup);
  Shipper<ShmFabric>& ship = c->shipper(0);
  absl::StatusOr<std::string> r = ship.Ship(a, kIncrement, EncodeU64(a.raw()));
  ASSERT_TRUE(held.HasBeenNotified());
  ASSERT_TRUE(absl::IsUnknown(r.status())) << r.status();
  const tx::TxId given_up = ship.last_request();
  EXPECT_TRUE(absl::IsUnknown(ship.Outcome(given_up).status()));  // still undecided
  // The next request commits at the backup (b's primary) meanwhile.
  r = ship.Ship(b, kIncrement, EncodeU64(b.raw()));
  ASSERT_TRUE(r.ok()) << r.status();
  tx::Participant& at_backup = c->cluster().machine(backup).participant();
  EXPECT_EQ(at_backup.Known(given_up), tx::Outcome::kUnknown)
      << "the next request's watermark passed a request still running";
  release.Notify();
  absl::StatusOr<std::string> settled = absl::UnknownError("not asked");
  for (int i = 0; i < 200 && absl::IsUnknown(settled.status()); ++i)
    settled = ship.Outcome(given_up);
  ASSERT_TRUE(settled.ok()) << settled.status();
  EXPECT_EQ(AsU64(*settled), 0u) << "the first run's result";
  EXPECT_EQ(ValueOf(*c, a), 1u) << "committed once, and not left locked";
  EXPECT_TRUE(absl::IsNotFound(ship.Outcome(given_up).status()));
  EXPECT_EQ(ship.stats().settled_late, 1u);
  EXPECT_EQ(c->server(2).stats().ran, 1u);
  // Settled: the next request's watermark passes it.
  r = ship.Ship(b, kIncrement, EncodeU64(b.raw()));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ValueOf(*c, b), 2u);
  EXPECT_EQ(at_backup.Known(given_up), tx::Outcome::kFinished);
}

TEST(ShipTest, ARequestForAnotherConfigurationIsRefusedBeforeItRuns) {
  auto c = MakeCluster();
  const GlobalAddress a = CounterOn(*c, 1);
  // A client that names a configuration the machine is not in.
  std::atomic<uint64_t> stale{c->cluster().config() + 1};
  Shipper<ShmFabric> old(c->client(0), &c->cluster().table(), &stale,
                         {.refresh = nullptr, .machines = [] { return std::vector<fabric::MachineId>{1, 2, 3}; },
                          .workers = [](fabric::MachineId) { return 1; }});
  absl::StatusOr<std::string> r = old.Ship(a, kIncrement, EncodeU64(a.raw()));
  EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("configuration"), std::string::npos) << r.status();
  EXPECT_EQ(c->server(1).stats().refused_config, 1u);
  EXPECT_EQ(ValueOf(*c, a), 0u);
}

// The executing machine's coordinator stops dead at `step` (its machine
// crashes there); the cluster removes it and recovers. The client, which got
// no reply, learns the outcome from the participants. With
// give_up_on_new_config it stops waiting for the reply as soon as the
// configuration changes (the call's own timeout is then a minute).
struct CrashCase {
  tx::CommitStep step;
  bool committed;        // what recovery decides
  bool give_up = false;  // the client's coordinator gives up on a new configuration
};

class ShipCrashTest : public testing::TestWithParam<CrashCase> {};

TEST_P(ShipCrashTest, TheClientLearnsWhatRecoveryDecidedNeverASecondCommit) {
  ShipClusterOptions o;
  absl::Notification crashed;
  std::atomic<bool> armed{true};
  const tx::CommitStep step = GetParam().step;
  o.ship.tx.crash_before = [&](tx::CommitStep s, fabric::MachineId) {
    if (s != step || !armed.exchange(false)) return false;
    crashed.Notify();
    return true;
  };
  o.cluster.client.give_up_on_new_config = GetParam().give_up;
  o.shipper.timeout = GetParam().give_up ? absl::Minutes(1) : absl::Milliseconds(200);
  auto c = MakeCluster(o);
  const GlobalAddress a = CounterOn(*c, 2);
  absl::StatusOr<std::string> r;
  std::thread client([&] { r = c->shipper(0).Ship(a, kIncrement, EncodeU64(a.raw())); });
  crashed.WaitForNotification();
  c->Kill(2);
  ASSERT_TRUE(c->Recover({2}).ok());
  client.join();
  EXPECT_NE(c->PrimaryOf(a), 2u);
  EXPECT_EQ(c->shipper(0).stats().outcome_asked, 1u);
  EXPECT_EQ(c->shipper(0).stats().gave_up, GetParam().give_up ? 1u : 0u);
  if (GetParam().committed) {
    // Committed by recovery: the result died with machine 2.
    EXPECT_TRUE(absl::IsUnknown(r.status())) << r.status();
    EXPECT_NE(r.status().message().find("committed"), std::string::npos) << r.status();
    EXPECT_EQ(ValueOf(*c, a), 1u);
  } else {
    EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
    EXPECT_EQ(ValueOf(*c, a), 0u);
    // Safe to retry: shipped to the promoted primary, which has a ship server
    // of its own.
    r = c->shipper(0).Ship(a, kIncrement, EncodeU64(a.raw()));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(ValueOf(*c, a), 1u);
  }
}

INSTANTIATE_TEST_SUITE_P(Steps, ShipCrashTest,
                         testing::Values(CrashCase{tx::CommitStep::kCommitBackup, false},
                                         CrashCase{tx::CommitStep::kCommitPrimary, true},
                                         CrashCase{tx::CommitStep::kTruncate, true},
                                         CrashCase{tx::CommitStep::kCommitPrimary, true, true}),
                         [](const testing::TestParamInfo<CrashCase>& i) {
                           return std::string(i.param.give_up ? "GivingUp" : "") +
                                  (i.param.committed ? "Committed" : "NotCommitted") + "Before" +
                                  (i.param.step == tx::CommitStep::kCommitBackup ? "CommitBackup"
                                   : i.param.step == tx::CommitStep::kCommitPrimary
                                       ? "CommitPrimary"
                                       : "Truncate");
                         });

}  // namespace
}  // namespace dctk::farm::client
