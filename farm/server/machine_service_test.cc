// Fencing: a farmd machine that cannot renew its lease (here: the CM is
// gone, as in a partition) stops serving before the CM could remove it:
// one-sided reads of its regions fail and it reports itself evicted.
// Restart: a machine whose files hold a region the running cluster lost,
// started while no storage machine is left, waits for the CM to begin a
// restart from the files instead of refusing at once. Rings: a departed or
// removed coordinator's rings are dropped and their key slots reused.
#include "farm/server/machine_service.h"

#include <sys/stat.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/fabric/sync.h"
#include "farm/server/cm_service.h"
#include "farm/server/machine_files.h"
#include "gtest/gtest.h"

namespace dctk::farm::server {
namespace {

using fabric::ShmFabric;

// A CM placing `machines` regions of 1 MiB, each on every machine.
std::unique_ptr<CmService> MakeCm(uint32_t machines, int64_t lease_ms) {
  CmServiceOptions co;
  co.replicas = machines;
  co.region_size = 1 << 20;
  co.regions = static_cast<int>(machines);
  co.lease_ms = lease_ms;
  for (uint32_t m = 1; m <= machines; ++m) co.expected_machines.push_back(m);
  return std::make_unique<CmService>(co);
}

TEST(MachineServiceTest, MachineWithoutALeaseFencesItself) {
  auto cm = MakeCm(2, 300);
  ASSERT_TRUE(cm->Start("127.0.0.1").ok());
  std::vector<std::unique_ptr<MachineService<ShmFabric>>> machines;
  for (fabric::MachineId id : {1u, 2u}) {
    auto m = MachineService<ShmFabric>::Start({.id = id, .cm_address = cm->address()}, [](fabric::MachineId id) {
      return ShmFabric::Create({.machine_id = id});
    });
    ASSERT_TRUE(m.ok()) << m.status();
    machines.push_back(std::move(*m));
  }
  // Wait for the CM to place both regions (it bootstraps asynchronously).
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  cm::Configuration c;
  while (true) {
    c = cm->config();
    bool placed = c.regions_size() == 2;
    for (const cm::Region& r : c.regions()) {
      for (const cm::Replica& rep : r.replicas()) placed &= rep.key() != 0;
    }
    if (placed) break;
    ASSERT_LT(absl::Now(), deadline) << "regions never placed: " << c.ShortDebugString();
    absl::SleepFor(absl::Milliseconds(5));
  }
  // A reader on another machine reads machine 1's copy of a region.
  auto reader = ShmFabric::Create({.machine_id = 50});
  ASSERT_TRUE(reader.ok());
  for (const cm::Machine& m : c.machines()) {
    if (m.id() == 1) ASSERT_TRUE((*reader)->Connect(1, m.endpoint()).ok());
  }
  fabric::RegionKey key = 0;
  for (const cm::Replica& rep : c.regions(0).replicas()) {
    if (rep.machine() == 1) key = rep.key();
  }
  ASSERT_NE(key, 0u);
  auto q = (*reader)->CreateQueue();
  ASSERT_TRUE(q.ok());
  uint64_t word = 0;
  ASSERT_TRUE((*reader)->RegisterLocal(&word, sizeof(word)).ok());
  EXPECT_TRUE(fabric::SyncRead(**q, {1, key, 0}, &word, 8).ok());
  EXPECT_FALSE(machines[0]->evicted());

  cm.reset();  // no renewal can succeed from now on
  while (!(machines[0]->evicted() && machines[1]->evicted())) {
    ASSERT_LT(absl::Now(), deadline + absl::Seconds(10)) << "a machine without a lease kept serving";
    absl::SleepFor(absl::Milliseconds(5));
  }
  absl::Status s = fabric::SyncRead(**q, {1, key, 0}, &word, 8);
  EXPECT_FALSE(s.ok()) << "a fenced machine's region is still readable";
}

// A coordinator's rings at a machine (WIRE_RING) go when it leaves
// (UNWIRE: the ring memory is deregistered) and when a configuration that
// lists it as removed is installed; the fabric keys of rings wired later
// reuse the freed slots.
TEST(MachineServiceTest, ADepartedOrRemovedCoordinatorsRingsAreDropped) {
  auto cm = MakeCm(1, 10000);
  ASSERT_TRUE(cm->Start("127.0.0.1").ok());
  auto machine = MachineService<ShmFabric>::Start(
      {.id = 1, .cm_address = cm->address()},
      [](fabric::MachineId id) { return ShmFabric::Create({.machine_id = id}); });
  ASSERT_TRUE(machine.ok()) << machine.status();
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (cm->config().regions_size() < 1 || cm->config().regions(0).replicas(0).key() == 0) {
    ASSERT_LT(absl::Now(), deadline) << "region never placed: " << cm->config().ShortDebugString();
    absl::SleepFor(absl::Milliseconds(5));
  }
  auto ch = ControlChannel::Connect((*machine)->control_address());
  ASSERT_TRUE(ch.ok()) << ch.status();
  auto coordinator = ShmFabric::Create({.machine_id = 100});
  ASSERT_TRUE(coordinator.ok());
  auto inbox = (*coordinator)->Register(1 << 16);
  auto heads = (*coordinator)->Register(4096);
  ASSERT_TRUE(inbox.ok() && heads.ok());
  auto wire = [&]() -> absl::StatusOr<WireRingReply> {
    WireRing w;
    w.set_endpoint_id((1u << 24) | (100u << 8));
    w.set_machine(100);
    w.set_fabric_endpoint((*coordinator)->endpoint());
    w.set_inbox_key(inbox->key);
    w.set_head_key(heads->key);
    w.set_ring_size(1 << 16);
    absl::StatusOr<std::string> r =
        (*ch)->Call(WIRE_RING, w.SerializeAsString(), absl::Seconds(10));
    if (!r.ok()) return r.status();
    WireRingReply reply;
    if (!reply.ParseFromString(*r)) return absl::DataLossError("malformed WireRingReply");
    return reply;
  };
  auto unwire = [&]() -> uint32_t {
    Unwire u;
    u.set_machine(100);
    absl::StatusOr<std::string> r = (*ch)->Call(UNWIRE, u.SerializeAsString(), absl::Seconds(10));
    UnwireReply reply;
    EXPECT_TRUE(r.ok() && reply.ParseFromString(*r)) << r.status();
    return reply.rings();
  };

  absl::StatusOr<WireRingReply> first = wire();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(unwire(), 1u) << "the ring pair of a coordinator that left";
  EXPECT_EQ(unwire(), 0u) << "dropped already";

  absl::StatusOr<WireRingReply> second = wire();
  ASSERT_TRUE(second.ok()) << second.status();
  const absl::flat_hash_set<fabric::RegionKey> old_keys = {first->inbox_key(), first->head_key()};
  for (fabric::RegionKey key : {second->inbox_key(), second->head_key()}) {
    EXPECT_FALSE(old_keys.contains(key)) << "a deregistered key handed out again: " << key;
  }
  EXPECT_EQ((absl::flat_hash_set<uint32_t>{second->inbox_key() % ShmFabric::kSlots,
                                           second->head_key() % ShmFabric::kSlots}),
            (absl::flat_hash_set<uint32_t>{first->inbox_key() % ShmFabric::kSlots,
                                           first->head_key() % ShmFabric::kSlots}))
      << "the freed slots not reused";
  cm::Configuration removed = cm->config();
  removed.add_failed(100);
  ASSERT_TRUE((*ch)->Call(INSTALL_CONFIG, removed.SerializeAsString(), absl::Seconds(10)).ok());
  EXPECT_EQ(unwire(), 0u) << "a removed coordinator's rings stayed";
}

// A CM state that every storage machine left while the CM ran on: machine 1
// held the only copy of region 1, missed its lease and was removed, so the
// region is lost. BeginRestart waits for `release` (the few ms between the
// last removal and the CM's restart, held open).
class DownState {
 public:
  explicit DownState(int64_t lease_ms) {
    state_.Execute(cm::InitCommand(1, 1 << 20, lease_ms));
    state_.Execute(cm::JoinCommand(1, "endpoint-1", "", 0));
    on_file_ = state_.Execute(cm::CreateRegionCommand()).config();
    state_.Execute(cm::TickCommand(10 * lease_ms));
  }
  CmExecutor Executor() {
    return [this](const cm::Command& c) -> absl::StatusOr<cm::Result> {
      if (c.has_begin_restart()) release.WaitForNotification();
      absl::MutexLock l(&mu_);
      return state_.Execute(c);
    };
  }
  // What machine 1 kept in its state file.
  const cm::Configuration& on_file() const { return on_file_; }
  absl::Notification release;

 private:
  absl::Mutex mu_;
  cm::ConfigState state_;
  cm::Configuration on_file_;
};

CmServiceOptions DownCmOptions(DownState& state, bool restore_when_down, int64_t lease_ms) {
  CmServiceOptions o;
  o.replicas = 1;
  o.region_size = 1 << 20;
  o.regions = 1;
  o.lease_ms = lease_ms;
  o.expected_machines = {1};
  o.execute = state.Executor();
  o.restore_when_down = restore_when_down;
  return o;
}

MachineServiceOptions MachineOneWithFiles(const std::string& name, const cm::Configuration& on_file,
                                          const std::string& cm_address) {
  const std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/", name);
  EXPECT_EQ(mkdir(dir.c_str(), 0755), 0);
  MachineServiceOptions o;
  o.id = 1;
  o.slots = 1;
  o.cm_address = cm_address;
  o.files = {dir + "/m1.txlog", dir + "/m1.ckpt", dir + "/m1.state"};
  MachineState state;
  state.set_id(1);
  *state.mutable_config() = on_file;
  EXPECT_TRUE(WriteMachineState(o.files.state, state, false).ok());
  return o;
}

absl::StatusOr<std::unique_ptr<MachineService<ShmFabric>>> StartMachine(MachineServiceOptions o) {
  return MachineService<ShmFabric>::Start(std::move(o), [](fabric::MachineId id) {
    return ShmFabric::Create({.machine_id = id});
  });
}

TEST(MachineServiceTest, MachineWaitsForTheCmToBeginARestartFromFiles) {
  DownState state(/*lease_ms=*/2000);
  CmService cm(DownCmOptions(state, /*restore_when_down=*/true, /*lease_ms=*/2000));
  ASSERT_TRUE(cm.Start("127.0.0.1").ok());
  MachineServiceOptions o = MachineOneWithFiles("waits", state.on_file(), cm.address());
  absl::Notification waiting;
  o.on_waiting_for_restart = [&] { waiting.Notify(); };
  absl::StatusOr<std::unique_ptr<MachineService<ShmFabric>>> machine;
  std::thread start([&] { machine = StartMachine(o); });
  waiting.WaitForNotification();  // the CM is still running with every region lost
  state.release.Notify();         // now it begins the restart
  start.join();
  ASSERT_TRUE(machine.ok()) << machine.status();
  EXPECT_EQ((*machine)->id(), 1u) << "it joined fresh instead of restoring its files";
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (true) {
    const cm::Configuration c = cm.config();
    if (c.regions_size() == 1 && !c.regions(0).lost() && !c.restarting()) break;
    ASSERT_LT(absl::Now(), deadline) << "the region was never restored: " << c.ShortDebugString();
    absl::SleepFor(absl::Milliseconds(10));
  }
}

TEST(MachineServiceTest, MachineWaitsBoundedForACmThatDoesNotRestart) {
  DownState state(/*lease_ms=*/200);
  state.release.Notify();
  CmService cm(DownCmOptions(state, /*restore_when_down=*/false, /*lease_ms=*/200));
  ASSERT_TRUE(cm.Start("127.0.0.1").ok());
  absl::StatusOr<std::unique_ptr<MachineService<ShmFabric>>> machine =
      StartMachine(MachineOneWithFiles("bounded", state.on_file(), cm.address()));
  ASSERT_FALSE(machine.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(machine.status())) << machine.status();
  EXPECT_NE(machine.status().message().find("is lost in the running cluster"), std::string::npos) << machine.status();
  EXPECT_NE(machine.status().message().find("did not begin a restart"), std::string::npos) << machine.status();
}

}  // namespace
}  // namespace dctk::farm::server
