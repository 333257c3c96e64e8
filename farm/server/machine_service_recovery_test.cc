// The CM's recovery run again at real machines (MachineService with real
// tx::Participants, in this process): machine 3 of three dies while a
// client's coordinator has abandoned two transactions mid-commit, one after
// every COMMIT-BACKUP (recovery commits it) and one after LOCK (recovery
// aborts it). The removal's recovery fails once at one step (BLOCK, KNOWN,
// RECOVER_LOCKS, INSTALL_CONFIG, RESOLVE, RESUME) at the last machine it
// calls, either before the machine ran the step or after (the machine did
// it, the CM saw an error); the CM runs every step again from the start at
// its next Tick. So after a failure that follows the step, every live
// machine took that step twice in one configuration (BLOCK again, lock
// recovery of the same commit again, INSTALL_CONFIG again, RESOLVE of what it
// already resolved, RESUME again). Afterwards the cluster serves, the
// committed transaction is visible once with its allocation, the aborted one
// is not (its allocation is no object), and its locks are gone: every object
// can be written again.
//
// The fault is injected between the CM and the machine: the CM's commands
// run through an executor (CmServiceOptions::execute) that gives the CM a
// proxy's address for each machine's control server; the proxy forwards
// every call and fails the chosen step once.
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "farm/client/farm_client.h"
#include "farm/client/retry.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/server/cm_service.h"
#include "farm/server/control.pb.h"
#include "farm/server/counters.h"
#include "farm/server/machine_service.h"
#include "gtest/gtest.h"

namespace dctk::farm::server {
namespace {

using fabric::ShmFabric;
using Client = client::FarmClient<ShmFabric>;

// Forwards control calls to a machine; fails the next call of one method
// once, before or after forwarding it.
class FaultyProxy {
 public:
  explicit FaultyProxy(std::string target)
      : target_(std::move(target)),
        server_([this](uint16_t method, absl::string_view req) { return Handle(method, req); }) {}
  absl::Status Start() { return server_.Start("127.0.0.1"); }
  const std::string& address() const { return server_.address(); }
  void FailNext(uint16_t method, bool after_forwarding) {
    absl::MutexLock l(&mu_);
    fail_ = method;
    fail_after_ = after_forwarding;
  }
  // Calls of `method` the machine ran.
  int forwarded(uint16_t method) {
    absl::MutexLock l(&mu_);
    return forwarded_[method];
  }

 private:
  absl::StatusOr<std::string> Handle(uint16_t method, absl::string_view req) {
    absl::MutexLock l(&mu_);
    const bool fail = method == fail_;
    if (fail) fail_ = 0;
    const absl::Status injected = absl::InternalError(
        absl::StrCat("injected: ", Method_Name(static_cast<Method>(method)), " failed ",
                     fail_after_ ? "after" : "before", " the machine ran it"));
    if (fail && !fail_after_) return injected;
    if (ch_ == nullptr || ch_->broken()) {
      absl::StatusOr<std::unique_ptr<ControlChannel>> ch = ControlChannel::Connect(target_);
      if (!ch.ok()) return ch.status();
      ch_ = std::move(*ch);
    }
    absl::StatusOr<std::string> r = ch_->Call(method, req, absl::Seconds(10));
    ++forwarded_[method];
    if (fail) return injected;
    return r;
  }

  const std::string target_;
  absl::Mutex mu_;
  std::unique_ptr<ControlChannel> ch_ ABSL_GUARDED_BY(mu_);
  uint16_t fail_ ABSL_GUARDED_BY(mu_) = 0;
  bool fail_after_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<uint16_t, int> forwarded_ ABSL_GUARDED_BY(mu_);
  ControlServer server_;
};

// The CM's configuration state in this process; each storage machine's
// Join gets a proxy in front of its control server.
class ProxiedState {
 public:
  CmExecutor Executor() {
    return [this](const cm::Command& c) -> absl::StatusOr<cm::Result> {
      cm::Command cmd = c;
      if (cmd.has_join() && !cmd.join().client()) {
        absl::StatusOr<std::string> proxy = ProxyFor(cmd.join().machine(), cmd.join().control());
        if (!proxy.ok()) return proxy.status();
        cmd.mutable_join()->set_control(*proxy);
      }
      absl::MutexLock l(&mu_);
      return state_.Execute(cmd);
    };
  }
  FaultyProxy& proxy(uint32_t machine) {
    absl::MutexLock l(&mu_);
    return *proxies_.at(machine);
  }

 private:
  absl::StatusOr<std::string> ProxyFor(uint32_t machine, const std::string& control) {
    absl::MutexLock l(&mu_);
    auto& p = proxies_[machine];
    if (p == nullptr) {
      p = std::make_unique<FaultyProxy>(control);
      if (absl::Status s = p->Start(); !s.ok()) return s;
    }
    return p->address();
  }

  absl::Mutex mu_;
  cm::ConfigState state_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint32_t, std::unique_ptr<FaultyProxy>> proxies_ ABSL_GUARDED_BY(mu_);
};

constexpr int kRegions = 3;
constexpr uint64_t kCommittedBefore = 3;  // increments of every counter before the failure

absl::StatusOr<std::unique_ptr<Client>> ConnectClient(const std::string& cm, fabric::MachineId id) {
  client::FarmClientOptions o;
  o.machine = id;
  o.cm_address = cm;
  o.tx.rpc_timeout = absl::Milliseconds(300);
  absl::StatusOr<std::unique_ptr<ShmFabric>> f = ShmFabric::Create({.machine_id = id});
  if (!f.ok()) return f.status();
  return Client::Connect(o, std::move(*f));
}

// One counter per region, each incremented kCommittedBefore times.
absl::StatusOr<std::vector<GlobalAddress>> CountersInEveryRegion(Client& c) {
  std::vector<GlobalAddress> out;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  for (const RegionInfo& r : c.regions().All()) {
    absl::StatusOr<GlobalAddress> a =
        client::RetryWithRefresh(c, deadline, [&] { return NewCounter(c.tx(), r.id); });
    if (!a.ok()) return a.status();
    for (uint64_t i = 0; i < kCommittedBefore; ++i) {
      absl::Status s =
          client::RetryWithRefresh(c, deadline, [&] { return IncrementCounter(c.tx(), *a); });
      if (!s.ok()) return s;
    }
    out.push_back(*a);
  }
  return out;
}

// Increments every counter and allocates an object holding `value` in the
// first counter's region, stopping dead before `crash_before` (Commit
// returns Cancelled); the allocated address.
absl::StatusOr<GlobalAddress> AbandonedTransaction(Client& c,
                                                   const std::vector<GlobalAddress>& counters,
                                                   tx::CommitStep crash_before, uint64_t value) {
  c.tx().options().crash_before = [crash_before](tx::CommitStep step, fabric::MachineId) {
    return step == crash_before;
  };
  auto t = c.tx().Begin();
  for (GlobalAddress a : counters) {
    absl::StatusOr<std::string> v = t.Read(a, 8);
    if (!v.ok()) return v.status();
    uint64_t n = 0;
    memcpy(&n, v->data(), 8);
    ++n;
    if (absl::Status s = t.Write(a, std::string(reinterpret_cast<const char*>(&n), 8)); !s.ok())
      return s;
  }
  absl::StatusOr<GlobalAddress> obj = t.Alloc(8, counters[0]);
  if (!obj.ok()) return obj.status();
  if (absl::Status s = t.Write(*obj, std::string(reinterpret_cast<const char*>(&value), 8));
      !s.ok())
    return s;
  absl::Status s = t.Commit();
  c.tx().options().crash_before = nullptr;
  if (!absl::IsCancelled(s))
    return absl::InternalError(absl::StrCat("the commit did not stop dead: ", s.ToString()));
  return *obj;
}

class RecoveryRunAgain : public ::testing::TestWithParam<std::tuple<uint16_t, bool>> {};

TEST_P(RecoveryRunAgain, CommittedOnceAbortedNeverAndServingAfter) {
  const auto [step, after] = GetParam();
  ProxiedState state;
  CmServiceOptions co;
  co.replicas = 2;
  co.region_size = 1 << 20;
  co.regions = kRegions;
  co.lease_ms = 1000;  // generous: only machine 3's removal may happen on a loaded machine
  co.expected_machines = {1, 2, 3};
  co.rereplicate = false;  // the retried recovery is the only reconfiguration
  co.execute = state.Executor();
  CmService cm(co);
  ASSERT_TRUE(cm.Start("127.0.0.1").ok());
  std::vector<std::unique_ptr<MachineService<ShmFabric>>> machines;
  for (fabric::MachineId id : {1u, 2u, 3u}) {
    auto m = MachineService<ShmFabric>::Start(
        {.id = id, .cm_address = cm.address()},
        [](fabric::MachineId id) { return ShmFabric::Create({.machine_id = id}); });
    ASSERT_TRUE(m.ok()) << m.status();
    machines.push_back(std::move(*m));
  }
  absl::StatusOr<std::unique_ptr<Client>> c1 = ConnectClient(cm.address(), 100);
  ASSERT_TRUE(c1.ok()) << c1.status();
  absl::StatusOr<std::vector<GlobalAddress>> committed_set = CountersInEveryRegion(**c1);
  ASSERT_TRUE(committed_set.ok()) << committed_set.status();
  absl::StatusOr<std::vector<GlobalAddress>> aborted_set = CountersInEveryRegion(**c1);
  ASSERT_TRUE(aborted_set.ok()) << aborted_set.status();
  ASSERT_EQ(committed_set->size(), static_cast<size_t>(kRegions));

  // Every backup logged the first (recovery commits it); the second only
  // locked its objects at their primaries (recovery aborts it).
  absl::StatusOr<GlobalAddress> kept =
      AbandonedTransaction(**c1, *committed_set, tx::CommitStep::kCommitPrimary, 0xc0ffee);
  ASSERT_TRUE(kept.ok()) << kept.status();
  absl::StatusOr<GlobalAddress> dropped =
      AbandonedTransaction(**c1, *aborted_set, tx::CommitStep::kCommitBackup, 0xdead);
  ASSERT_TRUE(dropped.ok()) << dropped.status();

  FaultyProxy& last = state.proxy(2);  // the last live machine the CM calls at each step
  const int before = last.forwarded(step);
  last.FailNext(step, after);
  machines[2].reset();  // machine 3 dies: its lease runs out
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (cm.recovery_stats().recoveries == 0) {
    ASSERT_LT(absl::Now(), deadline) << "no recovery succeeded";
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(cm.recovery_stats().recoveries, 1);
  EXPECT_EQ(last.forwarded(step) - before, after ? 2 : 1)
      << "the step was not run again at the machine";
  // The run that succeeded decided what no machine had resolved: both
  // transactions, unless every machine resolved them in the failed run.
  const bool all_resolved = step == RESUME || (step == RESOLVE && after);
  EXPECT_EQ(cm.recovery_stats().last_in_flight, all_resolved ? 0 : 2);
  EXPECT_FALSE(machines[0]->evicted());
  EXPECT_FALSE(machines[1]->evicted());

  // A fresh client (machine 101) reads what recovery decided.
  absl::StatusOr<std::unique_ptr<Client>> c2 = ConnectClient(cm.address(), 101);
  ASSERT_TRUE(c2.ok()) << c2.status();
  Client& c = **c2;
  auto read = [&](GlobalAddress a) {
    return client::RetryWithRefresh(c, deadline, [&] { return ReadCounter(c.tx(), a); });
  };
  for (int i = 0; i < kRegions; ++i) {
    absl::StatusOr<uint64_t> n = read((*committed_set)[i]);
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_EQ(*n, kCommittedBefore + 1) << "the committed transaction's write in region " << i;
    n = read((*aborted_set)[i]);
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_EQ(*n, kCommittedBefore) << "the aborted transaction's write in region " << i;
  }
  absl::StatusOr<uint64_t> obj = read(*kept);
  ASSERT_TRUE(obj.ok()) << "the committed transaction's allocation: " << obj.status();
  EXPECT_EQ(*obj, 0xc0ffeeu);
  auto t = c.tx().Begin();
  absl::StatusOr<std::string> gone = t.Read(*dropped, 8);
  EXPECT_FALSE(gone.ok()) << "the aborted transaction's allocation is an object";

  // No lock left behind: every object is written again, and a new object
  // allocated next to the aborted one.
  for (const std::vector<GlobalAddress>* set : {&*committed_set, &*aborted_set}) {
    for (GlobalAddress a : *set) {
      absl::Status s =
          client::RetryWithRefresh(c, deadline, [&] { return IncrementCounter(c.tx(), a); });
      ASSERT_TRUE(s.ok()) << s;
    }
  }
  for (int i = 0; i < kRegions; ++i) {
    EXPECT_EQ(*read((*committed_set)[i]), kCommittedBefore + 2);
    EXPECT_EQ(*read((*aborted_set)[i]), kCommittedBefore + 1);
  }
  absl::StatusOr<GlobalAddress> fresh =
      client::RetryWithRefresh(c, deadline, [&] { return NewCounter(c.tx(), dropped->region()); });
  EXPECT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(cm.recovery_stats().recoveries, 1);
}

INSTANTIATE_TEST_SUITE_P(FailingStep, RecoveryRunAgain,
                         ::testing::Combine(::testing::Values(BLOCK, KNOWN, RECOVER_LOCKS,
                                                              INSTALL_CONFIG, RESOLVE, RESUME),
                                            ::testing::Bool()),
                         [](const ::testing::TestParamInfo<std::tuple<uint16_t, bool>>& p) {
                           return absl::StrCat(
                               Method_Name(static_cast<Method>(std::get<0>(p.param))),
                               std::get<1>(p.param) ? "_AfterTheMachineRanIt" : "_Before");
                         });

}  // namespace
}  // namespace dctk::farm::server
