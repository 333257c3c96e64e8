// FaRM's crash-test matrix: a primary, a backup or the coordinator of a
// transaction, or the primary of an object it only reads, fails at each step
// of its commit (LOCK, VALIDATE, COMMIT-BACKUP, COMMIT-PRIMARY, TRUNCATE),
// after 0 or 1 of that step's messages went out. The transaction is a bank
// transfer that also reads an account it does not write, so VALIDATE makes a
// one-sided read, at the machine killed when a primary fails. After
// recovery, in every case: the
// transfer is in the balances exactly once if the coordinator was told
// committed, not at all if it was told it failed; a coordinator that died or
// was left without an answer learns the outcome from the participants
// (OUTCOME), and the balances agree with it; the total holds; every live
// replica holds the same balances, none locked; and a later transfer over the
// same accounts commits. Every case runs at f = 1 on the shm and on the net
// fabric, and at f = 2 (three copies of each region) on shm.
#include <algorithm>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/optional.h"
#include "farm/fabric/net_fabric.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/fabric/sync.h"
#include "farm/tx/crash_cases.h"
#include "farm/tx/test_util.h"
#include "gtest/gtest.h"

namespace dctk::farm::tx {
namespace {

// f = 1: 6 machines; f = 2: 8. The transfer writes `from` (region a) and
// `to` (region b) and reads `audit` (region a; region r when r's primary is
// the victim). a and b have 2(f + 1) distinct replicas, so every step but
// VALIDATE sends two or more messages (in machine order), a's first (a's
// primary < b's, a's first backup < every other backup) or, with
// `victim_last`, last; r's primary is one more machine and the coordinator
// runs on the last, which holds none of them.
struct Placement {
  RegionInfo a, b, r;
  fabric::MachineId coordinator = 0;
};

int Machines(int f) { return 2 * (f + 1) + 2; }

// `give_up`: TxClientOptions::give_up_on_new_config (farmd clients' default):
// a call stops waiting for a machine once a new configuration is installed.
// f = 2 takes more (smaller) regions for a placement to fit.
LocalClusterOptions Options(bool give_up, int f) {
  LocalClusterOptions o;
  o.machines = Machines(f);
  o.replicas = static_cast<uint32_t>(f + 1);
  o.regions = f == 1 ? 18 : 48;
  o.region_size = f == 1 ? 4 << 20 : 1 << 20;
  o.client.rpc_timeout = absl::Milliseconds(500);
  o.client.outcome_timeout = absl::Seconds(20);
  o.client.give_up_on_new_config = give_up;
  return o;
}

template <typename F>
std::unique_ptr<LocalCluster<F>> MakeCluster(const LocalClusterOptions& o) {
  auto c = LocalCluster<F>::Create(o, [](fabric::MachineId id) { return F::Create({.machine_id = id}); });
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(*c) : nullptr;
}

template <typename F>
absl::optional<Placement> FindPlacement(const LocalCluster<F>& c, bool victim_last, int f) {
  std::vector<RegionInfo> regions = c.table().All();
  std::sort(regions.begin(), regions.end(), [](auto& x, auto& y) { return x.id < y.id; });
  for (const RegionInfo& a : regions) {
    for (const RegionInfo& b : regions) {
      std::vector<fabric::MachineId> busy, other_backups;
      for (const RegionInfo* x : {&a, &b}) {
        for (size_t i = 0; i < x->replicas.size(); ++i) {
          busy.push_back(x->replicas[i].machine);
          if (i > 0 && !(x == &a && i == 1)) other_backups.push_back(x->replicas[i].machine);
        }
      }
      std::sort(busy.begin(), busy.end());
      if (std::adjacent_find(busy.begin(), busy.end()) != busy.end()) continue;  // not distinct
      const fabric::MachineId pa = a.replicas[0].machine, pb = b.replicas[0].machine;
      const fabric::MachineId ba = a.replicas[1].machine;
      if (!(victim_last ? VictimLast(pa, pb, ba, other_backups)
                        : VictimFirst(pa, pb, ba, other_backups))) {
        continue;
      }
      auto is_busy = [&](fabric::MachineId m) {
        return std::binary_search(busy.begin(), busy.end(), m);
      };
      for (const RegionInfo& r : regions) {
        const fabric::MachineId pr = r.replicas[0].machine;
        if (is_busy(pr)) continue;
        for (fabric::MachineId m = 1; m <= static_cast<fabric::MachineId>(Machines(f)); ++m) {
          if (!is_busy(m) && m != pr) return Placement{a, b, r, m};
        }
      }
    }
  }
  return absl::nullopt;
}

bool NotCommitted(const absl::Status& s) {
  return absl::IsAborted(s) || absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s);
}

struct Accounts {
  GlobalAddress from, to, audit;
};
constexpr uint64_t kFrom = 100, kAudit = 7;

template <typename F>
absl::StatusOr<Accounts> Open(TxClient<F>& client, const Placement& p,
                              RegionId audit) {
  auto tx = client.Begin();
  Accounts acc;
  const std::pair<GlobalAddress*, RegionId> where[] = {
      {&acc.from, p.a.id}, {&acc.to, p.b.id}, {&acc.audit, audit}};
  for (auto [at, region] : where) {
    absl::StatusOr<GlobalAddress> a = tx.Alloc(8, GlobalAddress(region, 0));
    if (!a.ok()) return a.status();
    *at = *a;
  }
  absl::Status s = tx.Write(acc.from, U64(kFrom));
  if (s.ok()) s = tx.Write(acc.to, U64(0));
  if (s.ok()) s = tx.Write(acc.audit, U64(kAudit));
  if (s.ok()) s = tx.Commit();
  if (!s.ok()) return s;
  return acc;
}

// `op` again while it fails without committing (Aborted, Unavailable,
// DeadlineExceeded: a call can time out on this loaded 2-core machine), for
// 30 s at most; its last result.
template <typename Op>
auto UntilDone(Op op) -> decltype(op()) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  auto status = [](const auto& r) -> absl::Status {
    if constexpr (std::is_same_v<std::decay_t<decltype(r)>, absl::Status>) {
      return r;
    } else {
      return r.status();
    }
  };
  auto r = op();
  while (NotCommitted(status(r)) && absl::Now() < deadline) r = op();
  return r;
}

// Blocks until `f`'s one-sided reads at `at` fail (its fabric saw the killed
// peer hang up), so the next read there meets a failed machine rather than
// the memory it left mapped.
template <typename F>
void AwaitUnreachable(F& f, const fabric::RemoteAddress& at) {
  auto q = f.CreateQueue();
  ASSERT_TRUE(q.ok()) << q.status();
  uint64_t word;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (fabric::SyncRead(**q, at, &word, sizeof(word)).ok()) {
    ASSERT_LT(absl::Now(), deadline)
        << at.ToString() << " still readable after its machine was killed";
    absl::SleepFor(absl::Milliseconds(1));
  }
}

// What the live participants say of `tx` once recovery is over (AgreedOutcome).
template <typename F>
Outcome AskParticipants(LocalCluster<F>& c, TxId tx) {
  return AgreedOutcome(c.live(), [&](fabric::MachineId m) {
    return c.machine(m).participant().QueryOutcome(TxRequest{c.config(), tx});
  });
}

// The coordinator thread's progress, under a mutex.
struct Progress {
  bool killed = false;    // the victim was killed
  bool recover = false;   // recovery may start
  bool finished = false;  // the commit returned
};
bool RecoverOrFinished(Progress* p) { return p->recover || p->finished; }

// A row of the matrix run on fabric F, coordinators giving up on a new
// configuration or not (`give_up`), the victim's message first or last of its
// steps.
template <typename F>
void RunCase(const CrashCase& k, bool give_up, bool victim_last, int f) {
  std::unique_ptr<LocalCluster<F>> c = MakeCluster<F>(Options(give_up, f));
  ASSERT_NE(c, nullptr);
  const absl::optional<Placement> p = FindPlacement(*c, victim_last, f);
  ASSERT_TRUE(p.has_value()) << "no two regions with 2(f + 1) distinct replicas in that order";
  auto& client = c->client(p->coordinator);
  const RegionInfo& audit_region = k.role == kReadPrimary ? p->r : p->a;
  const absl::StatusOr<Accounts> opened =
      UntilDone([&] { return Open(client, *p, audit_region.id); });
  ASSERT_TRUE(opened.ok()) << opened.status();
  const Accounts& acc = *opened;
  const fabric::MachineId victim = k.role == kPrimary       ? p->a.primary().machine
                                   : k.role == kBackup      ? p->a.replicas[1].machine
                                   : k.role == kReadPrimary ? p->r.primary().machine
                                                            : 0;
  absl::Mutex mu;
  Progress progress;
  int sent = 0;
  client.options().crash_before = [&](CommitStep step, fabric::MachineId) {
    absl::MutexLock l(&mu);
    if (progress.killed) {
      progress.recover = true;
      return false;
    }
    if (step != k.step || sent++ != k.after) return false;
    if (k.role == kCoordinator) return true;  // stops dead here
    c->Kill(victim);
    progress.killed = true;
    // A later read of a killed primary meets the failed machine, not the
    // memory it left mapped (as on RDMA once the connection broke).
    if (k.role == kPrimary || k.role == kReadPrimary) {
      const Replica& at = audit_region.replicas[0];
      AwaitUnreachable(c->fabric(p->coordinator), {at.machine, at.key, acc.audit.offset()});
    }
    // Recovery races the coordinator's next messages; after a failure at
    // VALIDATE it starts once VALIDATE read (at the next step, or the end),
    // so that the read meets the failed machine, not the promoted backup.
    progress.recover = step != CommitStep::kValidate;
    return false;
  };
  TxId id = 0;
  absl::Status told;
  // The transfer, tried again if a call timed out before the failure point
  // (a loaded machine): such a try committed nothing.
  auto transfer = [&] {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (true) {
      {
        absl::MutexLock l(&mu);
        sent = 0;
      }
      told = Transfer(client, acc.from, acc.to, acc.audit, &id);
      absl::MutexLock l(&mu);
      if (progress.killed || !NotCommitted(told) || absl::Now() > deadline) return;
    }
  };
  if (k.role == kCoordinator) {
    transfer();
    client.options().crash_before = nullptr;
    ASSERT_TRUE(absl::IsCancelled(told)) << told;
    absl::StatusOr<RecoveryReport> r = c->Recover({});
    ASSERT_TRUE(r.ok()) << r.status();
  } else {
    // The coordinator goes on while recovery runs.
    std::thread coordinator([&] {
      transfer();
      absl::MutexLock l(&mu);
      progress.finished = true;
    });
    mu.LockWhen(absl::Condition(&RecoverOrFinished, &progress));
    const bool killed = progress.killed;
    mu.Unlock();
    absl::StatusOr<RecoveryReport> r =
        killed ? c->Recover({victim}) : absl::StatusOr<RecoveryReport>(RecoveryReport{});
    coordinator.join();
    client.options().crash_before = nullptr;
    ASSERT_TRUE(killed) << "the commit ended before the failure: " << told;
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_FALSE(absl::IsUnknown(told)) << "no decision reached the coordinator: " << told;
  }

  // What happened: what the coordinator was told, else what OUTCOME says.
  const Outcome said = AskParticipants(*c, id);
  bool committed = false;
  if (told.ok()) {
    committed = true;
    EXPECT_NE(said, Outcome::kAborted) << "told committed, OUTCOME says aborted";
  } else if (NotCommitted(told)) {
    EXPECT_NE(said, Outcome::kCommitted) << "told " << told << ", OUTCOME says committed";
  } else {
    ASSERT_TRUE(absl::IsCancelled(told) || absl::IsUnknown(told)) << told;
    committed = said == Outcome::kCommitted;
  }
  if ((k.role == kPrimary || k.role == kReadPrimary) && k.step == CommitStep::kValidate) {
    EXPECT_TRUE(absl::IsUnavailable(told) && absl::StrContains(told.message(), "VALIDATE"))
        << "VALIDATE's read of the dead primary did not fail: " << told;
  }
  printf("%s: told %s; OUTCOME %d; committed %d\n",
         ::testing::UnitTest::GetInstance()->current_test_info()->name(), told.ToString().c_str(),
         static_cast<int>(said), committed);
  if (const Expect e = victim_last ? k.last : k.first; e != Expect::kEither) {
    EXPECT_EQ(committed, e == Expect::kCommitted) << "told " << told;
  }

  // The balances agree, exactly once, total intact, nothing locked.
  auto& other = c->client(p->b.primary().machine);  // never the victim
  const uint64_t moved = committed ? 1 : 0;
  auto read = [&] { return ReadBalances(other, acc.from, acc.to, acc.audit); };
  absl::StatusOr<Balances> b = UntilDone(read);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->to, moved) << "told " << told;
  EXPECT_EQ(b->from, kFrom - moved);
  EXPECT_EQ(b->audit, kAudit);
  for (GlobalAddress x : {acc.from, acc.to, acc.audit}) {
    const std::vector<fabric::MachineId> locked = LockedAt(*c, x);
    EXPECT_TRUE(locked.empty()) << x.ToString() << " is locked at machine " << locked[0];
  }
  // A later transfer over the same accounts commits, and reaches every copy.
  const absl::Status next = UntilDone([&] { return Transfer(other, acc.from, acc.to, acc.audit); });
  ASSERT_TRUE(next.ok()) << next;
  b = UntilDone(read);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->to, moved + 1);
  EXPECT_EQ(b->from + b->to + b->audit, kFrom + kAudit);
  const std::pair<GlobalAddress, uint64_t> balances[] = {
      {acc.from, b->from}, {acc.to, b->to}, {acc.audit, b->audit}};
  for (auto [x, want] : balances) {
    for (auto [m, v] : CopiesAt(*c, x)) EXPECT_EQ(v, want) << x.ToString() << " at machine " << m;
  }
}

// The fabric and f a row runs with: shm and net at f = 1, shm at f = 2.
enum class FabricKind { kShm, kNet };
struct Setup {
  FabricKind fabric;
  int f;
};

// A row of the matrix, whether coordinators give up on a new configuration,
// whether the victim's message is the last of its steps, and the setup.
class CrashMatrixTest : public ::testing::TestWithParam<std::tuple<CrashCase, bool, bool, Setup>> {
};

TEST_P(CrashMatrixTest, CommittedExactlyOnceAndNothingElse) {
  const auto& [k, give_up, victim_last, setup] = GetParam();
  if (setup.fabric == FabricKind::kShm) {
    RunCase<fabric::ShmFabric>(k, give_up, victim_last, setup.f);
  } else {
    RunCase<fabric::NetFabric>(k, give_up, victim_last, setup.f);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Matrix, CrashMatrixTest,
    ::testing::Combine(::testing::ValuesIn(kCrashMatrix), ::testing::Bool(), ::testing::Bool(),
                       ::testing::Values(Setup{FabricKind::kShm, 1}, Setup{FabricKind::kNet, 1},
                                         Setup{FabricKind::kShm, 2})),
    [](const auto& info) {
      const CrashCase& k = std::get<0>(info.param);
      const Setup& setup = std::get<3>(info.param);
      const char* role = k.role == kPrimary       ? "Primary"
                         : k.role == kBackup      ? "Backup"
                         : k.role == kReadPrimary ? "ReadPrimary"
                                                  : "Coordinator";
      return absl::StrCat(
          role, "_", StepTestName(k.step), "_", k.after, std::get<1>(info.param) ? "_GiveUp" : "",
          std::get<2>(info.param) ? "_VictimLast" : "",
          setup.fabric == FabricKind::kNet ? "_Net" : "", setup.f == 2 ? "_F2" : "");
    });

}  // namespace
}  // namespace dctk::farm::tx
