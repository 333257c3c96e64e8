// The crash-test matrix over farmd processes, on the shm and the net fabric:
// a CM and storage machines (f = 1: 4 machines, 2 copies of each region;
// f = 2: 5 machines, 3 copies) and a client in this process coordinating a
// bank transfer that writes `from` (region a) and `to` (region b) and only
// reads `audit`. At each step of its commit (LOCK, VALIDATE, COMMIT-BACKUP,
// COMMIT-PRIMARY, TRUNCATE) the client SIGKILLs one farmd: a's primary, a's
// first backup, or the primary of a region it only reads (holding no copy of
// a or b). The coordinator's fault-injection hook
// (TxClientOptions::crash_before) kills it right before the step's message
// to it (before the step's first message when the step sends it none;
// VALIDATE: before its one-sided read, which then meets the dead machine when
// it is the reads' primary). Or the victim kills itself (farmd --crash_after)
// right after handling the step's message to it, before its reply leaves
// (the record logged, locks taken or writes applied), at the steps that send
// it one. The coordinator goes on; the CM removes the machine at its lease
// expiry and recovery decides the transfer. Or (f = 2) the coordinator, a
// second client, stops dead after 0 or 1 of a step's messages and goes away
// (its Leave, the transfer unfinished, has the CM remove it as failed).
// Then: the transfer is in the balances exactly once if the client was told
// committed, not at all if told it failed (an Unknown would be settled by
// OUTCOME at the surviving machines, which must agree with what the client
// was told), the outcome is the one the crash matrix's row pins where it pins
// one (farm/tx/crash_cases.h), the total holds, no live copy is locked, a next
// transfer commits and every live copy of the three accounts is equal.
// farm/tx/crash_matrix_test runs those rows in one process with the victim's
// message first or last and the coordinator's own crash; DeadClientTest in
// farmd_cluster_test kills the coordinating client over processes.
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "farm/client/farm_client.h"
#include "farm/client/retry.h"
#include "farm/fabric/net_fabric.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/server/crash_steps_util.h"
#include "farm/server/farmd_process.h"
#include "farm/tx/crash_cases.h"
#include "farm/tx/test_util.h"
#include "gtest/gtest.h"

namespace dctk::farm {
namespace {

using server::FarmdCluster;
using server::WriteFarmConfig;
using server::crash_steps::AskOutcome;
using server::crash_steps::CopiesOf;
using server::crash_steps::FindPlacement;
using server::crash_steps::Placement;
using server::crash_steps::StepReaches;
using server::crash_steps::VictimFirst;
using tx::CommitStep;
using tx::CrashRole;
using tx::kBackup;
using tx::kCoordinator;
using tx::kPrimary;
using tx::kReadPrimary;

bool NotCommitted(const absl::Status& s) {
  return absl::IsAborted(s) || absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s);
}

constexpr uint64_t kFrom = 100, kAudit = 7;

struct Accounts {
  GlobalAddress from, to, audit;
};

template <typename F>
absl::StatusOr<Accounts> Open(tx::TxClient<F>& client, RegionId a, RegionId b, RegionId r) {
  auto t = client.Begin();
  Accounts acc;
  const std::pair<GlobalAddress*, RegionId> where[] = {
      {&acc.from, a}, {&acc.to, b}, {&acc.audit, r}};
  for (auto [at, region] : where) {
    absl::StatusOr<GlobalAddress> x = t.Alloc(8, GlobalAddress(region, 0));
    if (!x.ok()) return x.status();
    *at = *x;
  }
  absl::Status s = t.Write(acc.from, tx::U64(kFrom));
  if (s.ok()) s = t.Write(acc.to, tx::U64(0));
  if (s.ok()) s = t.Write(acc.audit, tx::U64(kAudit));
  if (s.ok()) s = t.Commit();
  if (!s.ok()) return s;
  return acc;
}

// How the victim dies: SIGKILLed by the client right before the step's
// message to it, or by itself (farmd --crash_after) right after it handled
// that message and before its reply left.
enum Mode { kBeforeMessage, kAfterHandling };

enum class FabricKind { kShm, kNet };

// A role, a step, f, how the victim dies, the fabric, and for kCoordinator
// how many of the step's messages it sends before it stops dead.
using CrashSteps = std::tuple<CrashRole, CommitStep, int, Mode, FabricKind, int>;
class FarmdCrashStepsTest : public ::testing::TestWithParam<CrashSteps> {};

// The case on fabric F (`fabric_name`: farmd's --fabric).
template <typename F>
void RunCase(CrashRole role, CommitStep step, int f, Mode mode, const char* fabric_name,
             int stop_after) {
  using Client = client::FarmClient<F>;
  const int machines = f + 3;
  const std::string dir = absl::StrCat(
      getenv("TEST_TMPDIR"), "/",
      absl::StrReplaceAll(::testing::UnitTest::GetInstance()->current_test_info()->name(),
                          {{"/", "_"}}));
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  const std::string arm = dir + "/crash";  // names the machine --crash_after kills
  std::vector<std::string> flags;
  if (mode == kAfterHandling) {
    flags.push_back(absl::StrCat("--crash_after=", tx::CommitStepName(step), ":", arm));
  }
  FarmdCluster cluster(WriteFarmConfig(dir, machines, /*lease_ms=*/3000), dir, fabric_name, flags);
  cluster.set_cm_flags({absl::StrCat("--replicas=", f + 1), "--regions=12"});
  ASSERT_TRUE(cluster.Start(machines).ok());
  client::FarmClientOptions o;
  o.machine = 100;
  o.cm_address = cluster.cm_address();
  o.tx.rpc_timeout = absl::Milliseconds(300);
  o.tx.outcome_timeout = absl::Seconds(20);
  absl::StatusOr<std::unique_ptr<F>> own = F::Create({.machine_id = 100});
  ASSERT_TRUE(own.ok()) << own.status();
  auto connected = Client::Connect(o, std::move(*own));
  ASSERT_TRUE(connected.ok()) << connected.status();
  Client& c = **connected;
  // kCoordinator: a second client coordinates, stops dead and goes away; `c`
  // checks.
  std::unique_ptr<Client> dead;
  constexpr fabric::MachineId kDeadClient = 101;
  if (role == kCoordinator) {
    o.machine = kDeadClient;
    absl::StatusOr<std::unique_ptr<F>> its = F::Create({.machine_id = kDeadClient});
    ASSERT_TRUE(its.ok()) << its.status();
    auto made = Client::Connect(o, std::move(*its));
    ASSERT_TRUE(made.ok()) << made.status();
    dead = std::move(*made);
  }
  Client& coordinator = dead ? *dead : c;
  const absl::optional<Placement> p = FindPlacement(c.configuration());
  ASSERT_TRUE(p.has_value()) << "no placement fits: " << c.configuration().ShortDebugString();
  const cm::Region& audit_region = role == kReadPrimary ? p->r : p->a;
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  const absl::StatusOr<Accounts> opened = client::RetryWithRefresh(
      c, deadline, [&] { return Open(c.tx(), p->a.id(), p->b.id(), audit_region.id()); });
  ASSERT_TRUE(opened.ok()) << opened.status();
  const Accounts acc = *opened;
  const fabric::MachineId victim = role == kPrimary       ? p->a.replicas(0).machine()
                                   : role == kBackup      ? p->a.replicas(1).machine()
                                   : role == kReadPrimary ? p->r.replicas(0).machine()
                                                          : kDeadClient;
  const bool reached = StepReaches(*p, step, victim);

  // Machine ids are the slots: every machine started once.
  bool killed = false;
  // The step's crash_before calls before the victim's failure: 0 when the
  // step sends it nothing; after handling, its own message counts.
  int calls = 0, after = 0;
  if (mode == kAfterHandling) {
    ASSERT_TRUE(reached) << "the step sends machine " << victim << " nothing to handle";
    std::ofstream(arm + ".tmp") << "m" << victim << "\n";
    ASSERT_EQ(rename((arm + ".tmp").c_str(), arm.c_str()), 0);
  }
  coordinator.tx().options().crash_before = [&](CommitStep at, fabric::MachineId target) {
    if (killed || at != step) return false;
    if (role == kCoordinator) {  // stops dead: sends nothing more
      if (calls++ < stop_after) return false;
      after = stop_after;
      killed = true;
      return true;
    }
    if (mode == kAfterHandling) {
      if (target == victim) after = calls + 1;
      ++calls;
      return false;
    }
    if (reached && target != victim) {
      ++calls;
      return false;
    }
    after = calls;
    cluster.machine(victim).Kill(SIGKILL);
    killed = true;
    // The client's fabric sees the dead primary hang up (a one-sided read
    // of it fails, as on RDMA once the connection broke) before the commit
    // goes on, so VALIDATE's read meets the failed machine, not the memory
    // it left mapped.
    const absl::Time until = absl::Now() + absl::Seconds(10);
    while (role != kBackup && absl::Now() < until) {
      auto probe = c.tx().Begin();
      if (!probe.Read(acc.audit, 8).ok()) break;
      absl::SleepFor(absl::Milliseconds(1));
    }
    return false;
  };
  tx::TxId id = 0;
  absl::Status told;
  // Tried again if it failed before the kill (a call timing out on a loaded
  // machine): such a try committed nothing.
  deadline = absl::Now() + absl::Seconds(30);
  do {
    calls = 0;
    told = tx::Transfer(coordinator.tx(), acc.from, acc.to, acc.audit, &id);
    // Its message reached the victim iff it died (before the commit returned).
    if (mode == kAfterHandling) killed = cluster.machine(victim).Wait(absl::Seconds(1)).ok();
  } while (!killed && NotCommitted(told) && absl::Now() < deadline);
  coordinator.tx().options().crash_before = nullptr;
  ASSERT_TRUE(killed) << "the commit ended before the step: " << told;
  EXPECT_FALSE(absl::IsUnknown(told)) << "no decision reached the coordinator: " << told;
  if (role == kCoordinator) {
    ASSERT_TRUE(absl::IsCancelled(told)) << told;
    // It goes away: it stops renewing and leaves with the transfer
    // unfinished, so the CM removes it as failed at once (as at its lease
    // expiry, sooner).
    dead.reset();
  }

  // The CM removes the victim at its lease expiry (a stopped coordinator at
  // its Leave); recovery decides.
  deadline = absl::Now() + absl::Seconds(30);
  while (true) {
    ASSERT_LT(absl::Now(), deadline) << "machine " << victim << " was never removed";
    if (c.Refresh().ok() &&
        !std::any_of(c.configuration().machines().begin(), c.configuration().machines().end(),
                     [&](const cm::Machine& m) { return m.id() == victim; })) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  int storage = 0;
  for (const cm::Machine& m : c.configuration().machines()) storage += !m.client();
  ASSERT_EQ(storage, machines - (role == kCoordinator ? 0 : 1))
      << "the CM removed a machine besides " << victim
      << " (a lease expired under CPU load?): " << c.configuration().ShortDebugString();
  auto read = [&] { return tx::ReadBalances(c.tx(), acc.from, acc.to, acc.audit); };
  absl::StatusOr<tx::Balances> b = client::RetryWithRefresh(c, deadline, read);
  ASSERT_TRUE(b.ok()) << b.status();

  // What happened: what the client was told, else what OUTCOME says; the
  // surviving machines agree with it either way.
  const tx::Outcome said = AskOutcome(c, id);
  bool committed = told.ok();
  if (told.ok()) {
    EXPECT_NE(said, tx::Outcome::kAborted) << "told committed, OUTCOME says aborted";
  } else if (NotCommitted(told)) {
    EXPECT_NE(said, tx::Outcome::kCommitted) << "told " << told << ", OUTCOME says committed";
  } else if (absl::IsUnknown(told)) {
    committed = said == tx::Outcome::kCommitted;
  } else {
    ASSERT_TRUE(role == kCoordinator && absl::IsCancelled(told)) << told;
    // The stopped coordinator's: the participants answer OUTCOME for a
    // removed coordinator's transactions only until recovery ended (then
    // refused: kUnknown here), so the balances tell when OUTCOME no longer
    // does (and are checked against the row's pin below).
    committed = said == tx::Outcome::kCommitted || (said == tx::Outcome::kUnknown && b->to == 1);
  }
  // The crash matrix's row for this role, step and messages sent before
  // the failure.
  const bool first = VictimFirst(*p);
  const tx::Expect e = tx::PinnedOutcome(role, step, after, /*victim_last=*/!first);
  printf("victim %u (%s, after %d): told %s; OUTCOME %d; committed %d; pinned %s\n", victim,
         first ? "first" : "not first", after, told.ToString().c_str(), static_cast<int>(said),
         committed,
         e == tx::Expect::kEither      ? "no"
         : e == tx::Expect::kCommitted ? "committed"
                                       : "not");
  if (e != tx::Expect::kEither) {
    EXPECT_EQ(committed, e == tx::Expect::kCommitted) << "told " << told;
  }
  const uint64_t moved = committed ? 1 : 0;
  EXPECT_EQ(b->to, moved) << "told " << told;
  EXPECT_EQ(b->from, kFrom - moved);
  EXPECT_EQ(b->audit, kAudit);
  fabric::MachineId reader = 60;
  for (GlobalAddress x : {acc.from, acc.to, acc.audit}) {
    for (auto [m, copy] : CopiesOf<F>(c.configuration(), x, &reader)) {
      EXPECT_FALSE(copy.locked) << x.ToString() << " is locked at machine " << m;
    }
  }

  // A next transfer over the same accounts commits and reaches every copy.
  const absl::Status next = client::RetryWithRefresh(
      c, deadline, [&] { return tx::Transfer(c.tx(), acc.from, acc.to, acc.audit); });
  ASSERT_TRUE(next.ok()) << next;
  b = client::RetryWithRefresh(c, deadline, read);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->to, moved + 1);
  EXPECT_EQ(b->from + b->to + b->audit, kFrom + kAudit);
  // Once the accounts' regions are back at f + 1 complete copies (the CM
  // re-replicates what the victim held), every copy holds the balances.
  const std::pair<GlobalAddress, uint64_t> balances[] = {
      {acc.from, b->from}, {acc.to, b->to}, {acc.audit, b->audit}};
  auto replicated = [&] {
    for (const cm::Region& region : c.configuration().regions()) {
      if (region.id() != acc.from.region() && region.id() != acc.to.region() &&
          region.id() != acc.audit.region()) {
        continue;
      }
      if (region.replicas_size() != f + 1) return false;
      for (const cm::Replica& rep : region.replicas()) {
        if (rep.copying() || rep.key() == 0) return false;
      }
    }
    return true;
  };
  while (!(c.Refresh().ok() && replicated())) {
    ASSERT_LT(absl::Now(), deadline)
        << "not re-replicated: " << c.configuration().ShortDebugString();
    absl::SleepFor(absl::Milliseconds(20));
  }
  // A backup applies a commit when its TRUNCATE arrives; one the coordinator
  // still has to send again (it timed out, or came while the region was
  // recovering) goes out only at its next read-write commit, so it is sent
  // now (without it, a new backup was seen one transfer behind, 1 of 27 runs).
  EXPECT_EQ(c.tx().Settle(deadline), 0u) << "TRUNCATEs or outcomes left unsettled";
  for (auto [x, want] : balances) {
    const auto copies = CopiesOf<F>(c.configuration(), x, &reader);
    EXPECT_EQ(copies.size(), static_cast<size_t>(f + 1)) << x.ToString();
    for (auto [m, copy] : copies) {
      EXPECT_EQ(copy.value, want) << x.ToString() << " at machine " << m;
      EXPECT_FALSE(copy.locked) << x.ToString() << " at machine " << m;
    }
  }
}

TEST_P(FarmdCrashStepsTest, CommittedExactlyOnceIffTold) {
  const auto& [role, step, f, mode, kind, stop_after] = GetParam();
  if (kind == FabricKind::kShm) {
    RunCase<fabric::ShmFabric>(role, step, f, mode, "shm", stop_after);
  } else {
    RunCase<fabric::NetFabric>(role, step, f, mode, "net", stop_after);
  }
}

// Every role before every step's message, or (kAfterHandling) the messages
// the victim handles: a's primary's LOCK, COMMIT-PRIMARY and TRUNCATE, its
// backup's COMMIT-BACKUP and TRUNCATE; at f = 1 and 2.
std::vector<CrashSteps> Cases(Mode mode, FabricKind kind) {
  const std::vector<std::pair<CrashRole, CommitStep>> handled = {
      {kPrimary, CommitStep::kLock},
      {kPrimary, CommitStep::kCommitPrimary},
      {kPrimary, CommitStep::kTruncate},
      {kBackup, CommitStep::kCommitBackup},
      {kBackup, CommitStep::kTruncate}};
  std::vector<CrashSteps> cases;
  for (int f : {1, 2}) {
    if (mode == kAfterHandling) {
      for (auto [role, step] : handled) cases.emplace_back(role, step, f, mode, kind, 0);
      continue;
    }
    for (CrashRole role : {kPrimary, kBackup, kReadPrimary}) {
      for (CommitStep step : {CommitStep::kLock, CommitStep::kValidate, CommitStep::kCommitBackup,
                              CommitStep::kCommitPrimary, CommitStep::kTruncate}) {
        cases.emplace_back(role, step, f, mode, kind, 0);
      }
    }
  }
  return cases;
}

// The coordinator stopping dead after 0 or 1 of each step's messages
// (VALIDATE: before its read), at f = 2: a's two backups make COMMIT-BACKUP
// two messages or more (at f = 1 the placement may give a and b one backup).
std::vector<CrashSteps> CoordinatorCases(FabricKind kind) {
  std::vector<CrashSteps> cases;
  for (CommitStep step : {CommitStep::kLock, CommitStep::kValidate, CommitStep::kCommitBackup,
                          CommitStep::kCommitPrimary, CommitStep::kTruncate}) {
    for (int stop_after : {0, 1}) {
      if (step != CommitStep::kValidate || stop_after == 0) {
        cases.emplace_back(kCoordinator, step, 2, kBeforeMessage, kind, stop_after);
      }
    }
  }
  return cases;
}

std::string CaseName(const ::testing::TestParamInfo<CrashSteps>& info) {
  const auto& [role, step, f, mode, kind, stop_after] = info.param;
  return absl::StrCat(role == kPrimary       ? "Primary"
                      : role == kBackup      ? "Backup"
                      : role == kReadPrimary ? "ReadPrimary"
                                             : absl::StrCat("Coordinator_", stop_after),
                      "_", tx::StepTestName(step), "_f", f,
                      mode == kAfterHandling ? "_AfterHandling" : "",
                      kind == FabricKind::kNet ? "_Net" : "");
}

INSTANTIATE_TEST_SUITE_P(EachRoleAndStep, FarmdCrashStepsTest,
                         ::testing::ValuesIn(Cases(kBeforeMessage, FabricKind::kShm)), CaseName);
INSTANTIATE_TEST_SUITE_P(AfterHandling, FarmdCrashStepsTest,
                         ::testing::ValuesIn(Cases(kAfterHandling, FabricKind::kShm)), CaseName);
INSTANTIATE_TEST_SUITE_P(EachRoleAndStepNet, FarmdCrashStepsTest,
                         ::testing::ValuesIn(Cases(kBeforeMessage, FabricKind::kNet)), CaseName);
INSTANTIATE_TEST_SUITE_P(AfterHandlingNet, FarmdCrashStepsTest,
                         ::testing::ValuesIn(Cases(kAfterHandling, FabricKind::kNet)), CaseName);
INSTANTIATE_TEST_SUITE_P(Coordinator, FarmdCrashStepsTest,
                         ::testing::ValuesIn(CoordinatorCases(FabricKind::kShm)), CaseName);
INSTANTIATE_TEST_SUITE_P(CoordinatorNet, FarmdCrashStepsTest,
                         ::testing::ValuesIn(CoordinatorCases(FabricKind::kNet)), CaseName);

}  // namespace
}  // namespace dctk::farm
