// Whole-cluster restart under the replicated CM, on loopback, unprivileged:
// 3 cm_replica processes (Speculative Paxos), cm_driver (farm's CmService
// whose commands run on them, restore_when_down) and 3 farmd machines (net
// fabric, 2 copies, logs and checkpoints on files). Every farmd is SIGKILLed;
// the CM, whose state outlives them, removes them all, marks every region
// lost and enters restarting (BeginRestart). Then:
//   - RestoresEveryRegionFromTheMachinesFiles: bank transfers with a journal
//     run from an in-process client when the machines die; restarted with
//     their files, they rejoin under their ids and the CM installs the
//     restart plan through the replicas (InstallRestartPlan): every transfer
//     reported committed is in the balances exactly once (the one of unknown
//     outcome settled from the journal), the total holds, and new transfers
//     commit.
//   - RegionsWithNoCopyBackStayLostByName: only one machine comes back; after
//     --restart_wait_s the CM restores the regions it holds and names each
//     region that stays lost; those accounts read as before, the others fail
//     naming their region, and a second machine restarted later refuses to
//     start fresh over the files holding the lost regions.
// A new client is used after the restart: the machines came back at new
// endpoints under the same ids (farm/client wires rings by id).
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/transport/free_port.h"
#include "farm/client/farm_client.h"
#include "farm/fabric/net_fabric.h"
#include "farm/workload/bank.h"
#include "gtest/gtest.h"
#include "tests/integration/test_process.h"

namespace dctk::integration {
namespace {

using NetClient = farm::client::FarmClient<farm::fabric::NetFabric>;
using farm::workload::Bank;
constexpr absl::Duration kPhase = absl::Seconds(60);

int64_t Field(absl::string_view line, absl::string_view key) {
  for (absl::string_view word : absl::StrSplit(line, ' ')) {
    if (!absl::ConsumePrefix(&word, key) || !absl::ConsumePrefix(&word, "=")) continue;
    int64_t v;
    if (absl::SimpleAtoi(word, &v)) return v;
  }
  return -1;
}

// The last "cm_driver " stats line of `log`, or "".
std::string LastStats(const std::string& log) {
  std::string last;
  for (absl::string_view l : absl::StrSplit(log, '\n')) {
    if (absl::StartsWith(l, "cm_driver ")) last = std::string(l);
  }
  return last;
}

class FarmReplicatedRestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One directory per test: logs and machine files of another test's run must not count.
    dir_ = absl::StrCat(getenv("TEST_TMPDIR"), "/", ::testing::UnitTest::GetInstance()->current_test_info()->name());
    mkdir(dir_.c_str(), 0755);
    config_ = dir_ + "/cluster.conf";
    std::ofstream f(config_);
    for (int i = 0; i < 3; ++i) f << "nodes { name: \"cm" << i << "\" address: \"127.0.0.1:" << transport::FreeLoopbackUdpPort() << "\" }\n";
    for (int i = 1; i <= 3; ++i) f << "nodes { name: \"m" << i << "\" address: \"127.0.0." << i + 1 << ":0\" }\n";
    f << "groups { name: \"cm\" f: 1 members: [\"cm0\", \"cm1\", \"cm2\"] }\n"
         "groups { name: \"farm\" replication: PRIMARY_BACKUP f: 2 members: [\"m1\", \"m2\", \"m3\"] }\n"
         "timeouts { request_ms: 10 heartbeat_ms: 2 view_change_ms: 100 lease_ms: 2000 }\n";
    f.close();
    for (int i = 0; i < 3; ++i) {
      replicas_.push_back(StartProcess(
          std::vector<std::string>{"tests/integration/cm_replica", "--config=" + config_, absl::StrCat("--index=", i)},
          Log(absl::StrCat("cm", i))));
    }
  }

  std::string Log(const std::string& name) { return dir_ + "/" + name + ".log"; }

  void StartDriver(int restart_wait_s) {
    driver_ = StartProcess(
        std::vector<std::string>{"tests/integration/cm_driver", "--config=" + config_, "--listen=127.0.0.1",
                                 "--replicas=2", "--regions=6", "--region_mb=2", "--stats_ms=100",
                                 absl::StrCat("--restart_wait_s=", restart_wait_s)},
        Log("driver"));
    absl::Status s = WaitForFile(
        Log("driver"),
        [&](const std::string& log) {
          for (absl::string_view l : absl::StrSplit(log, '\n')) {
            if (absl::ConsumePrefix(&l, "cm ")) cm_ = std::string(l);
          }
          return !cm_.empty();
        },
        kPhase);
    ASSERT_TRUE(s.ok()) << s;
  }

  // farmd m`i` with its files in dir/m`i` (kept across restarts).
  std::unique_ptr<ChildProcess> StartMachine(int i, int run) {
    const std::string data = absl::StrCat(dir_, "/m", i);
    mkdir(data.c_str(), 0755);
    return StartProcess(
        std::vector<std::string>{"farm/server/farmd", "--config=" + config_, "--role=machine",
                                 absl::StrCat("--name=m", i), "--cm=" + cm_, "--fabric=net", "--txlog_dir=" + data,
                                 "--checkpoint_every_kb=32", "--log_segment_kb=8"},
        Log(absl::StrCat("m", i, "-", run)));
  }

  // Waits until the driver's stats line satisfies `ok`; returns it.
  std::string WaitForStats(const std::function<bool(const std::string&)>& ok, const std::string& why) {
    std::string found;
    absl::Status s = WaitForFile(
        Log("driver"),
        [&](const std::string& log) {
          found = LastStats(log);
          return !found.empty() && ok(found);
        },
        kPhase);
    EXPECT_TRUE(s.ok()) << why << ": " << s;
    return found;
  }

  absl::StatusOr<std::unique_ptr<NetClient>> Connect(farm::fabric::MachineId id) {
    farm::client::FarmClientOptions o;
    o.machine = id;
    o.cm_address = cm_;
    o.wait_ready = kPhase;
    o.tx.rpc_timeout = absl::Milliseconds(300);
    o.tx.outcome_timeout = absl::Seconds(3);
    auto f = farm::fabric::NetFabric::Create({.machine_id = id});
    if (!f.ok()) return f.status();
    return NetClient::Connect(o, std::move(*f));
  }

  // Kills every farmd and waits until the CM removed them all and entered
  // restarting (only then may a machine come back with its files).
  void KillEveryMachine(std::vector<std::unique_ptr<ChildProcess>>& machines) {
    for (auto& m : machines) m->Kill(SIGKILL);
    const std::string down = WaitForStats(
        [](const std::string& l) { return Field(l, "restarting") == 1 && Field(l, "machines") == 0; },
        "the CM did not enter restarting");
    EXPECT_EQ(Field(down, "lost"), 6) << down;
  }

  std::string dir_, config_, cm_;
  std::vector<std::unique_ptr<ChildProcess>> replicas_;
  std::unique_ptr<ChildProcess> driver_;
};

TEST_F(FarmReplicatedRestartTest, RestoresEveryRegionFromTheMachinesFiles) {
  ASSERT_NO_FATAL_FAILURE(StartDriver(0));
  std::vector<std::unique_ptr<ChildProcess>> machines;
  for (int i = 1; i <= 3; ++i) machines.push_back(StartMachine(i, 1));
  absl::StatusOr<std::unique_ptr<NetClient>> c1 = Connect(100);
  ASSERT_TRUE(c1.ok()) << c1.status();
  absl::StatusOr<Bank> bank = Bank::Create((*c1)->tx(), 16, 1000);
  ASSERT_TRUE(bank.ok()) << bank.status();
  absl::StatusOr<Bank::Journal> journal = Bank::CreateJournal((*c1)->tx());
  ASSERT_TRUE(journal.ok()) << journal.status();

  // Transfers until the machines die (they then fail: Unavailable,
  // DeadlineExceeded, or Unknown for the one in flight).
  Bank::Ledger ledger;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> committed{0};
  std::thread load([&] {
    std::mt19937_64 rng(7);
    while (!stop.load()) {
      absl::Status s = bank->Transfer((*c1)->tx(), rng, &ledger, &*journal);
      if (s.ok()) {
        committed.store(ledger.committed);
      } else if (!absl::IsAborted(s) && !(*c1)->Refresh().ok()) {
        absl::SleepFor(absl::Milliseconds(5));  // the cluster is down
      }
    }
  });
  const absl::Time deadline = absl::Now() + kPhase;
  while (committed.load() < 300 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_GE(committed.load(), 300u) << "no transfers before the crash";

  KillEveryMachine(machines);
  stop.store(true);
  load.join();
  c1->reset();  // its rings point at the dead processes
  const uint64_t before = ledger.committed;

  const size_t mark = ReadFile(Log("driver")).size();
  machines.clear();
  for (int i = 1; i <= 3; ++i) machines.push_back(StartMachine(i, 2));
  // The plan is installed (restarting=0) before recovery's last steps; the
  // CM logs the restart once the cluster is ready.
  absl::Status restored = WaitForFile(
      Log("driver"),
      [&](const std::string& log) {
        return log.size() > mark && absl::StrContains(log.substr(mark), "restarted from the machines' files");
      },
      kPhase);
  ASSERT_TRUE(restored.ok()) << restored;
  const std::string up = WaitForStats(
      [](const std::string& l) { return Field(l, "restarting") == 0 && Field(l, "machines") == 3; },
      "the CM did not restore the cluster");
  EXPECT_EQ(Field(up, "lost"), 0) << up;
  for (int i = 1; i <= 3; ++i) {
    const std::string log = ReadFile(Log(absl::StrCat("m", i, "-2")));
    EXPECT_TRUE(absl::StrContains(log, "kept its files for a whole-cluster restart")) << log;
    EXPECT_TRUE(absl::StrContains(log, absl::StrCat("machine ", i, ": restored"))) << log;
  }

  absl::StatusOr<std::unique_ptr<NetClient>> c2 = Connect(101);
  ASSERT_TRUE(c2.ok()) << c2.status();
  const absl::Time settle_by = absl::Now() + absl::Seconds(30);
  while (journal->pending) {
    absl::Status s = bank->Settle((*c2)->tx(), &*journal, &ledger);
    ASSERT_TRUE(s.ok() || absl::Now() < settle_by) << s;
  }
  EXPECT_TRUE(bank->CheckJournal((*c2)->tx(), *journal).ok());
  absl::Status checked = bank->CheckLedger((*c2)->tx(), ledger);
  EXPECT_TRUE(checked.ok()) << checked;
  absl::StatusOr<uint64_t> total = bank->Audit((*c2)->tx());
  ASSERT_TRUE(total.ok()) << total.status();
  EXPECT_EQ(*total, bank->total());

  // The cluster runs on: new transfers commit.
  std::mt19937_64 rng(11);
  int more = 0;
  while (more < 50 && absl::Now() < settle_by + kPhase) {
    absl::Status s = bank->Transfer((*c2)->tx(), rng, &ledger, &*journal);
    more += s.ok();
    ASSERT_TRUE(s.ok() || absl::IsAborted(s)) << s;
  }
  EXPECT_EQ(more, 50);
  checked = bank->CheckLedger((*c2)->tx(), ledger);
  EXPECT_TRUE(checked.ok()) << checked;
  printf("restart: %llu transfers before the crash (%llu settled committed, %llu aborted), %s\n",
         static_cast<unsigned long long>(before), static_cast<unsigned long long>(journal->settled_committed),
         static_cast<unsigned long long>(journal->settled_aborted), up.c_str());
}

TEST_F(FarmReplicatedRestartTest, RegionsWithNoCopyBackStayLostByName) {
  ASSERT_NO_FATAL_FAILURE(StartDriver(2));
  std::vector<std::unique_ptr<ChildProcess>> machines;
  for (int i = 1; i <= 3; ++i) machines.push_back(StartMachine(i, 1));
  absl::StatusOr<std::unique_ptr<NetClient>> c1 = Connect(100);
  ASSERT_TRUE(c1.ok()) << c1.status();
  absl::StatusOr<Bank> bank = Bank::Create((*c1)->tx(), 16, 1000);
  ASSERT_TRUE(bank.ok()) << bank.status();
  Bank::Ledger ledger;
  std::mt19937_64 rng(5);
  for (int done = 0; done < 200;) {
    absl::Status s = bank->Transfer((*c1)->tx(), rng, &ledger);
    done += s.ok();
    ASSERT_TRUE(s.ok() || absl::IsAborted(s)) << s;
  }
  // The machine that comes back: one that holds some regions but not all.
  const farm::cm::Configuration placed = (*c1)->configuration();
  int back = 0;
  absl::flat_hash_set<uint32_t> kept;  // regions with a copy on `back`
  for (int m = 1; m <= 3 && back == 0; ++m) {
    kept.clear();
    for (const farm::cm::Region& r : placed.regions()) {
      for (const farm::cm::Replica& rep : r.replicas()) {
        if (rep.machine() == static_cast<uint32_t>(m)) kept.insert(r.id());
      }
    }
    if (!kept.empty() && kept.size() < static_cast<size_t>(placed.regions_size())) back = m;
  }
  ASSERT_NE(back, 0) << placed.ShortDebugString();

  KillEveryMachine(machines);
  c1->reset();
  machines.clear();
  machines.push_back(StartMachine(back, 2));
  const std::string up = WaitForStats(
      [](const std::string& l) { return Field(l, "restarting") == 0 && Field(l, "machines") == 1; },
      "the CM did not restore what came back");
  EXPECT_EQ(Field(up, "lost"), 6 - static_cast<int64_t>(kept.size())) << up;
  const std::string driver_log = ReadFile(Log("driver"));
  for (const farm::cm::Region& r : placed.regions()) {
    EXPECT_EQ(absl::StrContains(driver_log, absl::StrCat("region ", r.id(), " stays lost")), !kept.contains(r.id()))
        << "region " << r.id() << "\n" << driver_log;
  }

  absl::StatusOr<std::unique_ptr<NetClient>> c2 = Connect(101);
  ASSERT_TRUE(c2.ok()) << c2.status();
  std::vector<farm::GlobalAddress> alive;
  for (size_t i = 0; i < bank->accounts().size(); ++i) {
    const farm::GlobalAddress a = bank->accounts()[i];
    auto tx = (*c2)->tx().Begin();
    absl::StatusOr<std::string> v = tx.Read(a, 8);
    if (!kept.contains(a.region())) {
      ASSERT_FALSE(v.ok()) << "account " << i << " in lost region " << a.region();
      EXPECT_TRUE(absl::StrContains(v.status().message(), absl::StrCat("region ", a.region()))) << v.status();
      continue;
    }
    ASSERT_TRUE(v.ok()) << "account " << i << " in restored region " << a.region() << ": " << v.status();
    uint64_t balance = 0;
    memcpy(&balance, v->data(), 8);
    EXPECT_EQ(static_cast<int64_t>(balance), 1000 + ledger.delta[i]) << "account " << i;
    alive.push_back(a);
  }
  if (alive.size() >= 2) {  // the restored regions take new transfers
    Bank survivors(alive, 0);
    Bank::Ledger unused;
    absl::Status s;
    for (int attempt = 0; attempt < 100; ++attempt) {
      s = survivors.Transfer((*c2)->tx(), rng, &unused);
      if (!absl::IsAborted(s)) break;
    }
    EXPECT_TRUE(s.ok()) << s;
  }

  // A machine whose files hold the lost regions refuses to start fresh.
  const int late = back % 3 + 1;
  std::unique_ptr<ChildProcess> refused = StartMachine(late, 3);
  EXPECT_EQ(refused->Wait(), 1);
  const std::string log = ReadFile(Log(absl::StrCat("m", late, "-3")));
  EXPECT_TRUE(absl::StrContains(log, "is lost in the running cluster")) << log;
  printf("partial restart: machine %d back, %zu of 6 regions restored, %zu of 16 accounts readable; %s\n", back,
         kept.size(), alive.size(), up.c_str());
}

}  // namespace
}  // namespace dctk::integration
