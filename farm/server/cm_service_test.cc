#include "farm/server/cm_service.h"

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "farm/server/control.pb.h"
#include "farm/tx/tx_log.h"
#include "farm/tx/wire.h"
#include "gtest/gtest.h"

namespace dctk::farm::server {
namespace {

// The configuration state living outside the service, as on CM replicas.
class ExternalState {
 public:
  CmExecutor Executor() {
    return [this](const cm::Command& c) -> absl::StatusOr<cm::Result> {
      absl::MutexLock l(&mu_);
      if (down_) return absl::UnavailableError("replicas unreachable");
      ++commands_;
      return state_.Execute(c);
    };
  }
  void SetDown(bool down) {
    absl::MutexLock l(&mu_);
    down_ = down;
  }
  int commands() {
    absl::MutexLock l(&mu_);
    return commands_;
  }
  cm::Configuration config() {
    absl::MutexLock l(&mu_);
    return state_.config();
  }

 private:
  absl::Mutex mu_;
  cm::ConfigState state_;
  bool down_ = false;
  int commands_ = 0;
};

cm::Result Call(const CmService& cm, const cm::Command& c) {
  absl::StatusOr<std::unique_ptr<ControlChannel>> ch = ControlChannel::Connect(cm.address());
  EXPECT_TRUE(ch.ok()) << ch.status();
  absl::StatusOr<std::string> reply =
      (*ch)->Call(CM_COMMAND, c.SerializeAsString(), absl::Seconds(5));
  EXPECT_TRUE(reply.ok()) << reply.status();
  cm::Result r;
  EXPECT_TRUE(r.ParseFromString(*reply));
  return r;
}

// The CM's answer to Get once it is no longer Unavailable (starting: its
// bootstrap has not placed the regions yet), or Unavailable after 30 s.
absl::Status GetOnceStarted(ControlChannel& ch) {
  absl::Status get;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  do {
    absl::SleepFor(absl::Milliseconds(5));
    get = ch.Call(CM_COMMAND, cm::GetCommand().SerializeAsString(), absl::Seconds(5)).status();
  } while (absl::IsUnavailable(get) && absl::Now() < deadline);
  return get;
}

CmServiceOptions Options(ExternalState& state, int regions) {
  CmServiceOptions o;
  o.replicas = 1;
  o.region_size = 1 << 20;
  o.regions = regions;
  o.lease_ms = 60'000;
  o.expected_machines = {1};
  o.now_ms = [] { return int64_t{1000}; };
  o.execute = state.Executor();
  return o;
}

TEST(CmServiceExecutor, CommandsRunOnTheExternalState) {
  ExternalState state;
  CmService cm(Options(state, /*regions=*/1));
  ASSERT_TRUE(cm.Start("127.0.0.1").ok());
  EXPECT_EQ(state.config().replicas(), 1u);  // Start issued Init there

  cm::Result joined = Call(cm, cm::JoinCommand(7, "endpoint-7", "", /*now_ms=*/0));
  EXPECT_EQ(joined.code(), 0) << joined.message();
  ASSERT_EQ(state.config().machines_size(), 1);
  EXPECT_EQ(state.config().machines(0).id(), 7u);
  EXPECT_EQ(cm.config().id(), state.config().id());
}

TEST(CmServiceExecutor, UnreachableStateIsAnErrorResultNotACrash) {
  ExternalState state;
  CmService cm(Options(state, /*regions=*/1));
  ASSERT_TRUE(cm.Start("127.0.0.1").ok());
  state.SetDown(true);
  cm::Result r = Call(cm, cm::RenewCommand(7, 0));
  EXPECT_EQ(r.code(), static_cast<int>(absl::StatusCode::kUnavailable));
  EXPECT_NE(r.message().find("replicas unreachable"), std::string::npos);
}

TEST(CmServiceExecutor, StartFailsWhenInitCannotRun) {
  ExternalState state;
  state.SetDown(true);
  CmService cm(Options(state, /*regions=*/1));
  absl::Status s = cm.Start("127.0.0.1");
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_NE(s.message().find("Init"), std::string::npos) << s;
}

TEST(CmServiceExecutor, RestartOverPlacedRegionsIsReadyAtOnce) {
  ExternalState state;
  CmExecutor run = state.Executor();
  ASSERT_TRUE(run(cm::InitCommand(1, 1 << 20, 60'000)).ok());
  ASSERT_TRUE(run(cm::JoinCommand(1, "endpoint-1", "", 1000)).ok());
  ASSERT_EQ(run(cm::CreateRegionCommand())->code(), 0);

  CmService cm(Options(state, /*regions=*/1));
  ASSERT_TRUE(cm.Start("127.0.0.1").ok());
  cm::Result get = Call(cm, cm::GetCommand());  // refused while still starting
  EXPECT_EQ(get.code(), 0) << get.message();
  EXPECT_EQ(get.config().regions_size(), 1);
}

TEST(CmServiceExecutor, RestartWithOtherParametersIsRefused) {
  ExternalState state;
  ASSERT_TRUE(state.Executor()(cm::InitCommand(3, 1 << 20, 60'000)).ok());
  CmService cm(Options(state, /*regions=*/1));
  absl::Status s = cm.Start("127.0.0.1");
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find("replicas=3"), std::string::npos) << s;
}

// A storage machine that kept `saved` on file and whose files cannot be
// restored: it answers RESTORE with DataLoss.
class DamagedMachine {
 public:
  explicit DamagedMachine(cm::Configuration saved)
      : saved_(std::move(saved)),
        server_([this](uint16_t method, absl::string_view) { return Handle(method); }) {}
  absl::Status Start() { return server_.Start("127.0.0.1"); }
  const std::string& address() const { return server_.address(); }
  int restores() {
    absl::MutexLock l(&mu_);
    return restores_;
  }

 private:
  absl::StatusOr<std::string> Handle(uint16_t method) {
    if (method == RESTORABLE) {
      Restorable kept;
      *kept.mutable_config() = saved_;
      return kept.SerializeAsString();
    }
    if (method == RESTORE) {
      absl::MutexLock l(&mu_);
      ++restores_;
      return absl::DataLossError(
          "restoring from m1.ckpt and m1.txlog.*: log record 7 does not follow the checkpoint");
    }
    return absl::InvalidArgumentError(absl::StrCat("unexpected method ", method));
  }

  const cm::Configuration saved_;
  absl::Mutex mu_;
  int restores_ ABSL_GUARDED_BY(mu_) = 0;
  ControlServer server_;
};

TEST(CmServiceRestart, UnrestorableFilesEndTheBootstrapWithTheMachinesReason) {
  cm::ConfigState before;  // the cluster the machine's files were written under
  before.Execute(cm::InitCommand(1, 1 << 20, 40));
  before.Execute(cm::JoinCommand(1, "endpoint-1", "control-1", 0));
  ASSERT_EQ(before.Execute(cm::CreateRegionCommand()).code(), 0);
  DamagedMachine machine(before.config());
  ASSERT_TRUE(machine.Start().ok());

  CmServiceOptions o;
  o.replicas = 1;
  o.region_size = 1 << 20;
  o.regions = 1;
  o.lease_ms = 40;  // the bootstrap would be retried every 10 ms
  o.expected_machines = {1};
  CmService cm(o);
  ASSERT_TRUE(cm.Start("127.0.0.1").ok());
  cm::Result joined = Call(cm, cm::JoinCommand(1, "endpoint-1", machine.address(), 0));
  ASSERT_EQ(joined.code(), 0) << joined.message();

  auto ch = ControlChannel::Connect(cm.address());
  ASSERT_TRUE(ch.ok()) << ch.status();
  const absl::Status get = GetOnceStarted(**ch);
  EXPECT_TRUE(absl::IsDataLoss(get)) << get;
  EXPECT_NE(get.message().find("machine 1 cannot restore"), std::string::npos) << get;
  EXPECT_NE(get.message().find("log record 7 does not follow the checkpoint"), std::string::npos)
      << get;
  // Not retried: 20 more bootstrap periods pass without another RESTORE.
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(machine.restores(), 1);
  EXPECT_TRUE(absl::IsDataLoss(
      (*ch)->Call(CM_COMMAND, cm::GetCommand().SerializeAsString(), absl::Seconds(5)).status()));
}

// A storage machine that answers every call, hosting regions under keys
// 100, 101, ..., and fails its next call of a method once told to. At BLOCK
// it reports one in-flight transaction, a COMMIT-BACKUP record holding every
// region it writes, which recovery commits: so every recovery also recovers
// the locks (RECOVER_LOCKS). `on_call` runs in each call, before the reply.
class ObedientMachine {
 public:
  ObedientMachine()
      : server_([this](uint16_t method, absl::string_view) { return Handle(method); }) {}
  absl::Status Start() { return server_.Start("127.0.0.1"); }
  const std::string& address() const { return server_.address(); }
  void FailNext(uint16_t method) {
    absl::MutexLock l(&mu_);
    fail_next_ = method;
  }
  int calls(uint16_t method) {
    absl::MutexLock l(&mu_);
    return calls_[method];
  }
  void OnCall(std::function<void(uint16_t method)> on_call) {
    absl::MutexLock l(&mu_);
    on_call_ = std::move(on_call);
  }

 private:
  absl::StatusOr<std::string> Handle(uint16_t method) {
    std::function<void(uint16_t)> on_call;
    {
      absl::MutexLock l(&mu_);
      on_call = on_call_;
    }
    if (on_call) on_call(method);
    absl::MutexLock l(&mu_);
    ++calls_[method];
    if (method == fail_next_) {
      fail_next_ = 0;
      return absl::InternalError(absl::StrCat("injected: method ", method, " failed"));
    }
    if (method == HOST_REGION) {
      HostRegionReply key;
      key.set_key(100 + hosted_++);
      return key.SerializeAsString();
    }
    if (method == BLOCK) {
      const tx::WriteEntry e{GlobalAddress(1, 0), 1, tx::EntryKind::kWrite, 64, "x"};
      InFlight in;
      InFlightRecord* rec = in.add_records();
      rec->set_tx(42);
      rec->set_machine(1);
      rec->set_type(static_cast<uint32_t>(tx::LogType::kCommitBackup));
      rec->set_request(tx::Encode(tx::LockRequest{1, 42, {1}, {e}}));
      return in.SerializeAsString();
    }
    return std::string();  // an empty reply parses as every reply message
  }

  absl::Mutex mu_;
  uint16_t fail_next_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint16_t, int> calls_ ABSL_GUARDED_BY(mu_);
  uint32_t hosted_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<void(uint16_t)> on_call_ ABSL_GUARDED_BY(mu_);
  ControlServer server_;
};

// A CM over machines 1 and 2 (`regions` regions of `replicas` copies) whose
// clock the test moves.
struct RecoveringCm {
  uint32_t replicas = 1;
  int regions = 2;
  ObedientMachine m1, m2;
  std::shared_ptr<std::atomic<int64_t>> now = std::make_shared<std::atomic<int64_t>>(1000);
  std::unique_ptr<CmService> cm;

  void Start() {
    ASSERT_TRUE(m1.Start().ok());
    ASSERT_TRUE(m2.Start().ok());
    CmServiceOptions o;
    o.replicas = replicas;
    o.region_size = 1 << 20;
    o.regions = regions;
    o.lease_ms = 40;  // Ticks every 10 ms of real time
    o.expected_machines = {1, 2};
    o.rereplicate = false;
    o.now_ms = [now = now] { return now->load(); };
    cm = std::make_unique<CmService>(o);
    ASSERT_TRUE(cm->Start("127.0.0.1").ok());
    ASSERT_EQ(Call(*cm, cm::JoinCommand(1, "endpoint-1", m1.address(), 1000)).code(), 0);
    ASSERT_EQ(Call(*cm, cm::JoinCommand(2, "endpoint-2", m2.address(), 1000)).code(), 0);
    auto ch = ControlChannel::Connect(cm->address());
    ASSERT_TRUE(ch.ok()) << ch.status();
    const absl::Status get = GetOnceStarted(**ch);
    ASSERT_TRUE(get.ok()) << get;
  }

  // Machine 2's lease runs out while machine 1 renews (and `client`, if
  // set); waits for the removal's recovery to be counted.
  void RemoveMachine2(uint32_t client = 0) {
    now->store(1030);
    ASSERT_EQ(Call(*cm, cm::RenewCommand(1, 1030)).code(), 0);
    if (client != 0) {
      ASSERT_EQ(Call(*cm, cm::RenewCommand(client, 1030)).code(), 0);  // lease to 1070
    }
    now->store(1060);
    ASSERT_EQ(Call(*cm, cm::RenewCommand(1, 1060)).code(), 0);  // lease to 1100
    WaitForRecoveries(1);
  }
  void WaitForRecoveries(int n) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (cm->recovery_stats().recoveries < n && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
  }
};

// The removal's recovery fails at one of the steps it sends the machines, at
// machine 1: BLOCK, KNOWN and RECOVER_LOCKS before the configuration is
// installed, INSTALL_CONFIG while some machines have it, RESOLVE and RESUME
// after, with machine 1's regions blocked.
class CmServiceRecovery : public ::testing::TestWithParam<uint16_t> {};

TEST_P(CmServiceRecovery, AFailedRecoveryIsFinishedAndCountedByTheNextOne) {
  RecoveringCm c;
  ASSERT_NO_FATAL_FAILURE(c.Start());
  // The recovery fails at machine 1, the next Tick's succeeds.
  const int before = c.m1.calls(GetParam());  // the bootstrap's INSTALL_CONFIG
  c.m1.FailNext(GetParam());
  ASSERT_NO_FATAL_FAILURE(c.RemoveMachine2());
  EXPECT_EQ(c.cm->recovery_stats().recoveries, 1);
  EXPECT_EQ(c.m1.calls(GetParam()) - before, 2);
  // The last RESUME succeeded: machine 1's regions serve again.
  EXPECT_EQ(c.m1.calls(RESUME), GetParam() == RESUME ? 2 : 1);
}

INSTANTIATE_TEST_SUITE_P(FailingStep, CmServiceRecovery,
                         ::testing::Values(BLOCK, KNOWN, RECOVER_LOCKS, INSTALL_CONFIG, RESOLVE,
                                           RESUME),
                         [](const ::testing::TestParamInfo<uint16_t>& step) {
                           return Method_Name(step.param);
                         });

// A client learns a configuration from the CM (Get, lease renewals) only
// once its lock recovery is done: until then a promoted backup may still
// serve, unlocked, an object a committed transaction writes.
TEST(CmServiceRecoveryOrder, ClientsLearnTheConfigurationOnlyAfterLockRecovery) {
  RecoveringCm c;
  ASSERT_NO_FATAL_FAILURE(c.Start());
  const uint64_t old_id = Call(*c.cm, cm::GetCommand()).config().id();
  std::map<uint16_t, uint64_t> seen_by_get, seen_by_renewal;
  c.m1.OnCall([&](uint16_t method) {
    if (method != BLOCK && method != RECOVER_LOCKS && method != INSTALL_CONFIG) return;
    seen_by_get[method] = Call(*c.cm, cm::GetCommand()).config().id();
    seen_by_renewal[method] = Call(*c.cm, cm::RenewCommand(1, 0)).config().id();
  });
  ASSERT_NO_FATAL_FAILURE(c.RemoveMachine2());
  c.m1.OnCall(nullptr);
  ASSERT_EQ(c.cm->recovery_stats().recoveries, 1);
  const uint64_t new_id = Call(*c.cm, cm::GetCommand()).config().id();
  EXPECT_GT(new_id, old_id);
  for (auto* seen : {&seen_by_get, &seen_by_renewal}) {
    EXPECT_EQ((*seen)[BLOCK], old_id);
    EXPECT_EQ((*seen)[RECOVER_LOCKS], old_id);
    EXPECT_EQ((*seen)[INSTALL_CONFIG], new_id);  // machine 1 (and 2, gone) locked
  }
}

// A client that is done leaves over the network: nothing unfinished, so no
// recovery and no configuration change, even once its lease would have run
// out; its id joins again. Leaving twice, or as a storage machine, is refused.
TEST(CmServiceLeave, AClientWithNothingUnfinishedLeavesWithoutARecovery) {
  RecoveringCm c;
  ASSERT_NO_FATAL_FAILURE(c.Start());
  ASSERT_EQ(Call(*c.cm, cm::JoinCommand(100, "client-100", "", 0, /*client=*/true)).code(), 0);
  const cm::Configuration before = Call(*c.cm, cm::GetCommand()).config();
  cm::Result left = Call(*c.cm, cm::LeaveCommand(100));
  ASSERT_EQ(left.code(), 0) << left.message();
  EXPECT_EQ(left.removed_size(), 0);
  EXPECT_EQ(left.config().id(), before.id());
  // Past the lease it held (to 1040): the machines renew, nothing is removed.
  for (int64_t t : {1030, 1060, 1090}) {
    c.now->store(t);
    ASSERT_EQ(Call(*c.cm, cm::RenewCommand(1, t)).code(), 0);
    ASSERT_EQ(Call(*c.cm, cm::RenewCommand(2, t)).code(), 0);
    absl::SleepFor(absl::Milliseconds(30));  // a few Ticks (every 10 ms) at each time
  }
  EXPECT_EQ(c.cm->recovery_stats().recoveries, 0);
  const cm::Configuration after = Call(*c.cm, cm::GetCommand()).config();
  EXPECT_EQ(after.id(), before.id());
  EXPECT_EQ(after.failed_size(), 0);
  EXPECT_EQ(after.machines_size(), 2);

  cm::Result again = Call(*c.cm, cm::LeaveCommand(100));
  EXPECT_EQ(again.code(), static_cast<int>(absl::StatusCode::kNotFound)) << again.message();
  EXPECT_NE(again.message().find("machine 100 is not a member"), std::string::npos)
      << again.message();
  EXPECT_EQ(Call(*c.cm, cm::RenewCommand(100, 1090)).code(),
            static_cast<int>(absl::StatusCode::kNotFound));
  cm::Result storage = Call(*c.cm, cm::LeaveCommand(2));
  EXPECT_EQ(storage.code(), static_cast<int>(absl::StatusCode::kInvalidArgument))
      << storage.message();
  cm::Result rejoined =
      Call(*c.cm, cm::JoinCommand(100, "client-100-again", "", 0, /*client=*/true));
  EXPECT_EQ(rejoined.code(), 0) << rejoined.message();
  EXPECT_EQ(rejoined.config().id(), before.id());
}

// With transactions unfinished, the client is removed as failed and its
// transactions recovered at once (no lease to wait out).
TEST(CmServiceLeave, AClientLeavingWithUnfinishedTransactionsIsRecovered) {
  RecoveringCm c;
  ASSERT_NO_FATAL_FAILURE(c.Start());
  ASSERT_EQ(Call(*c.cm, cm::JoinCommand(100, "client-100", "", 0, /*client=*/true)).code(), 0);
  const cm::Configuration before = Call(*c.cm, cm::GetCommand()).config();
  const int blocks = c.m1.calls(BLOCK);
  cm::Result left = Call(*c.cm, cm::LeaveCommand(100, /*unfinished=*/1));
  ASSERT_EQ(left.code(), 0) << left.message();
  ASSERT_EQ(left.removed_size(), 1);
  c.WaitForRecoveries(1);
  EXPECT_EQ(c.cm->recovery_stats().recoveries, 1);
  EXPECT_GT(c.m1.calls(BLOCK), blocks);
  const cm::Configuration after = Call(*c.cm, cm::GetCommand()).config();
  EXPECT_GT(after.id(), before.id());
  ASSERT_EQ(after.failed_size(), 1);
  EXPECT_EQ(after.failed(0), 100u);
}

// Precise membership: machine 2, primary of some regions, is removed while
// client 100 follows the configuration before; the promoted regions must
// not resume (no write may commit at machine 1) until the client
// acknowledged the new configuration or its lease ran out.
class CmServiceClientAcks : public ::testing::Test {
 protected:
  void SetUp() override {
    c_.replicas = 2;
    c_.regions = 4;
    ASSERT_NO_FATAL_FAILURE(c_.Start());
    ASSERT_EQ(Call(*c_.cm, cm::JoinCommand(100, "client-100", "", 0, /*client=*/true)).code(), 0);
    before_ = Call(*c_.cm, cm::GetCommand()).config();
    bool primary = false;
    for (const cm::Region& r : before_.regions()) primary |= r.replicas(0).machine() == 2;
    ASSERT_TRUE(primary) << "machine 2 is the primary of no region";
    ASSERT_EQ(Call(*c_.cm, cm::RenewCommand(100, 0, before_.id())).code(), 0);
    c_.m1.OnCall([this](uint16_t method) {
      if (method == RESUME && !released_.load()) resumed_early_ = true;
    });
  }
  void TearDown() override { c_.m1.OnCall(nullptr); }

  // Machine 2 is removed and the new configuration published (Get answers
  // it); then the CM gets time to resume too early, which it must not.
  uint64_t RemoveMachine2AndWaitForThePublish() {
    c_.now->store(1030);
    EXPECT_EQ(Call(*c_.cm, cm::RenewCommand(1, 1030)).code(), 0);
    EXPECT_EQ(Call(*c_.cm, cm::RenewCommand(100, 1030, before_.id())).code(), 0);  // lease to 1070
    c_.now->store(1060);
    EXPECT_EQ(Call(*c_.cm, cm::RenewCommand(1, 1060)).code(), 0);  // lease to 1100
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    uint64_t id = before_.id();
    while (id == before_.id() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
      id = Call(*c_.cm, cm::GetCommand()).config().id();
    }
    EXPECT_GT(id, before_.id());
    absl::SleepFor(absl::Milliseconds(200));
    EXPECT_EQ(c_.cm->recovery_stats().recoveries, 0);
    return id;
  }

  RecoveringCm c_;
  cm::Configuration before_;
  std::atomic<bool> released_{false};  // the test acknowledged, or let the lease run out
  std::atomic<bool> resumed_early_{false};
};

TEST_F(CmServiceClientAcks, PromotedRegionsResumeOnceTheClientAcknowledges) {
  const uint64_t id = RemoveMachine2AndWaitForThePublish();
  released_ = true;
  // Renewals that do not say the new configuration acknowledge nothing.
  ASSERT_EQ(Call(*c_.cm, cm::RenewCommand(100, 0, before_.id())).code(), 0);
  ASSERT_EQ(Call(*c_.cm, cm::RenewCommand(100, 0, id)).code(), 0);
  c_.WaitForRecoveries(1);
  EXPECT_EQ(c_.cm->recovery_stats().recoveries, 1);
  EXPECT_FALSE(resumed_early_)
      << "a promoted region resumed while client 100 followed configuration " << before_.id();
  const CmRecoveryStats stats = c_.cm->recovery_stats();
  EXPECT_EQ(stats.ack_waits, 1);
  EXPECT_EQ(stats.clients_expired, 0);
}

TEST_F(CmServiceClientAcks, PromotedRegionsResumeOnceTheClientsLeaseRunsOut) {
  RemoveMachine2AndWaitForThePublish();
  released_ = true;
  c_.now->store(1071);  // client 100's lease (to 1070) ran out; machine 1's runs to 1100
  c_.WaitForRecoveries(1);
  EXPECT_FALSE(resumed_early_);
  EXPECT_EQ(c_.cm->recovery_stats().clients_expired, 1);
  // Then the next Tick removes the client, as any member whose lease ran out.
  c_.WaitForRecoveries(2);
  const cm::Configuration after = Call(*c_.cm, cm::GetCommand()).config();
  ASSERT_EQ(after.machines_size(), 1);
  EXPECT_EQ(after.machines(0).id(), 1u);
}

// A removal that moves no primary (machine 2 held only backups or lost
// regions) resumes without waiting: a client behind reads the same primaries.
TEST(CmServiceClientAcksNotNeeded, ARemovalThatMovesNoPrimaryDoesNotWait) {
  RecoveringCm c;  // one copy per region: machine 2's region is lost, none promoted
  ASSERT_NO_FATAL_FAILURE(c.Start());
  ASSERT_EQ(Call(*c.cm, cm::JoinCommand(100, "client-100", "", 0, /*client=*/true)).code(), 0);
  ASSERT_NO_FATAL_FAILURE(c.RemoveMachine2(/*client=*/100));
  EXPECT_EQ(c.cm->recovery_stats().recoveries, 1);
  EXPECT_EQ(c.cm->recovery_stats().ack_waits, 0);
}

}  // namespace
}  // namespace dctk::farm::server
