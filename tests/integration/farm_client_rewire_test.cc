// One FarmClient kept across a whole-cluster restart, on loopback,
// unprivileged: 3 cm_replica processes, cm_driver (the CM, whose state
// outlives the machines, restore_when_down) and 3 farmd machines (net fabric,
// 2 copies, files, one ship worker each). A single client runs shard bank
// transfers with journals, alternately coordinated by itself and shipped to
// the shard's primary, in a thread that calls Refresh() after every failure.
// Every farmd is SIGKILLed and restarted with its files: the machines come
// back under their ids at new fabric and control addresses. The same client:
//   - re-wires each machine at its new address at a Refresh (no new client),
//     for its participant and its ship worker, and transfers commit again;
//   - settles the transfer in flight at the crash (a shipped one's resend
//     reaches a machine that forgot its remembered replies: the outcome comes
//     from the participants' logs, never a second commit): every transfer
//     reported committed or settled committed is in the balances exactly once;
//   - drops the rings of a machine the CM then removes for good (they leave
//     its RPC endpoint: RemovePeer), and goes on.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/transport/free_port.h"
#include "farm/client/farm_client.h"
#include "farm/fabric/net_fabric.h"
#include "farm/workload/shard_bank.h"
#include "gtest/gtest.h"
#include "tests/integration/test_process.h"

namespace dctk::integration {
namespace {

using NetClient = farm::client::FarmClient<farm::fabric::NetFabric>;
using farm::workload::Bank;
using farm::workload::ShardBank;
constexpr absl::Duration kPhase = absl::Seconds(60);

int64_t Field(absl::string_view line, absl::string_view key) {
  for (absl::string_view word : absl::StrSplit(line, ' ')) {
    if (!absl::ConsumePrefix(&word, key) || !absl::ConsumePrefix(&word, "=")) continue;
    int64_t v;
    if (absl::SimpleAtoi(word, &v)) return v;
  }
  return -1;
}

// Shard transfers from one client, alternately coordinated and shipped,
// until Stop(); Refresh() after every failure but a conflict.
class Load {
 public:
  Load(NetClient* c, ShardBank bank, ShardBank::Journal journal)
      : c_(c), bank_(std::move(bank)), journal_(std::move(journal)) {}
  ~Load() { Stop(); }

  void Run() {
    stop_.store(false);
    thread_ = std::thread([this] {
      std::mt19937_64 rng(17);
      auto ship = [this](farm::GlobalAddress w, farm::client::ProcedureId p, absl::string_view a) {
        return c_->Ship(w, p, a);
      };
      for (uint64_t i = 0; !stop_.load(); ++i) {
        const ShardBank::Move m = bank_.Pick(rng);
        absl::Status s = i % 2 == 0 ? bank_.Transfer(c_->tx(), m, &ledger_, &journal_)
                                    : bank_.TransferShipped(c_->tx(), ship, m, &ledger_, &journal_);
        if (s.ok()) {
          committed_.store(ledger_.committed);
          continue;
        }
        if (absl::IsAborted(s) || absl::IsFailedPrecondition(s) && absl::StrContains(s.message(), "less than")) {
          continue;
        }
        if (!absl::IsUnavailable(s) && !absl::IsDeadlineExceeded(s) && !absl::IsUnknown(s) &&
            !absl::IsFailedPrecondition(s) && !absl::IsNotFound(s)) {
          absl::MutexLock l(&mu_);
          if (unclean_.empty()) unclean_ = s.ToString();  // e.g. DataLoss from a journal
        }
        if (!c_->Refresh().ok()) absl::SleepFor(absl::Milliseconds(5));  // the cluster is down or restarting
      }
    });
  }
  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  uint64_t committed() const { return committed_.load(); }
  bool WaitFor(uint64_t more) {
    const uint64_t target = committed() + more;
    const absl::Time deadline = absl::Now() + kPhase;
    while (committed() < target && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
    return committed() >= target;
  }
  std::string unclean() {
    absl::MutexLock l(&mu_);
    return unclean_;
  }
  // With the load stopped: settles a transfer of unknown outcome from its
  // journal, then checks journals, ledger and total through the client.
  absl::Status Check() {
    const absl::Time deadline = absl::Now() + kPhase;
    absl::Status s;
    do {
      s = bank_.SettlePending(c_->tx(), &journal_, &ledger_);
      if (!s.ok()) c_->Refresh().IgnoreError();
    } while (!s.ok() && absl::Now() < deadline);
    if (!s.ok()) return s;
    if (s = bank_.CheckJournal(c_->tx(), journal_); !s.ok()) return s;
    const Bank b = bank_.AsBank();
    if (s = b.CheckLedger(c_->tx(), ledger_); !s.ok()) return s;
    absl::StatusOr<uint64_t> total = b.Audit(c_->tx());
    if (!total.ok()) return total.status();
    if (*total != b.total()) return absl::DataLossError(absl::StrCat("total ", *total, ", expected ", b.total()));
    return absl::OkStatus();
  }
  const ShardBank::Journal& journal() const { return journal_; }

 private:
  NetClient* c_;
  const ShardBank bank_;
  ShardBank::Journal journal_;
  Bank::Ledger ledger_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> committed_{0};
  std::thread thread_;
  absl::Mutex mu_;
  std::string unclean_;
};

class FarmClientRewireTest : public ::testing::Test {
 protected:
  void SetUp() override {
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
    driver_ = StartProcess(
        std::vector<std::string>{"tests/integration/cm_driver", "--config=" + config_, "--listen=127.0.0.1",
                                 "--replicas=2", "--regions=6", "--region_mb=2", "--stats_ms=100"},
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

  std::string Log(const std::string& name) { return dir_ + "/" + name + ".log"; }

  std::unique_ptr<ChildProcess> StartMachine(int i, int run) {
    const std::string data = absl::StrCat(dir_, "/m", i);
    mkdir(data.c_str(), 0755);
    return StartProcess(
        std::vector<std::string>{"farm/server/farmd", "--config=" + config_, "--role=machine",
                                 absl::StrCat("--name=m", i), "--cm=" + cm_, "--fabric=net", "--txlog_dir=" + data,
                                 "--checkpoint_every_kb=64", "--ship_workers=1"},
        Log(absl::StrCat("m", i, "-", run)));
  }

  // The driver's last stats line once it satisfies `ok` ("" at the deadline).
  std::string WaitForStats(const std::function<bool(const std::string&)>& ok) {
    std::string found;
    absl::Status s = WaitForFile(
        Log("driver"),
        [&](const std::string& log) {
          for (absl::string_view l : absl::StrSplit(log, '\n')) {
            if (absl::StartsWith(l, "cm_driver ")) found = std::string(l);
          }
          return !found.empty() && ok(found);
        },
        kPhase);
    return s.ok() ? found : "";
  }

  absl::StatusOr<std::unique_ptr<NetClient>> Connect(farm::fabric::MachineId id) {
    farm::client::FarmClientOptions o;
    o.machine = id;
    o.cm_address = cm_;
    o.wait_ready = kPhase;
    o.tx.rpc_timeout = absl::Milliseconds(300);
    o.tx.outcome_timeout = absl::Seconds(3);
    o.ship.timeout = absl::Milliseconds(500);
    o.ship.outcome_timeout = absl::Seconds(5);
    auto f = farm::fabric::NetFabric::Create({.machine_id = id});
    if (!f.ok()) return f.status();
    return NetClient::Connect(o, std::move(*f));
  }

  std::string dir_, config_, cm_;
  std::vector<std::unique_ptr<ChildProcess>> replicas_;
  std::unique_ptr<ChildProcess> driver_;
};

TEST_F(FarmClientRewireTest, OneClientRewiresMachinesBackUnderTheirIdsAndDropsRemovedOnes) {
  std::vector<std::unique_ptr<ChildProcess>> machines;
  for (int i = 1; i <= 3; ++i) machines.push_back(StartMachine(i, 1));
  absl::StatusOr<std::unique_ptr<NetClient>> c = Connect(100);
  ASSERT_TRUE(c.ok()) << c.status();
  NetClient& client = **c;
  EXPECT_EQ(client.wiring_stats().wired, 3u);
  std::vector<farm::RegionId> regions;
  for (const farm::cm::Region& r : client.configuration().regions()) regions.push_back(r.id());
  absl::StatusOr<ShardBank> bank = ShardBank::Create(client.tx(), regions, 4, 1000);
  ASSERT_TRUE(bank.ok()) << bank.status();
  absl::StatusOr<ShardBank::Journal> journal = bank->CreateJournal(client.tx());
  ASSERT_TRUE(journal.ok()) << journal.status();
  Load load(&client, *bank, *journal);
  load.Run();
  ASSERT_TRUE(load.WaitFor(200)) << "no transfers before the crash";
  const std::string before = client.configuration().ShortDebugString();

  // Every machine killed under load; back with their files under their ids.
  for (auto& m : machines) m->Kill(SIGKILL);
  const std::string down =
      WaitForStats([](const std::string& l) { return Field(l, "restarting") == 1 && Field(l, "machines") == 0; });
  ASSERT_NE(down, "") << "the CM did not enter restarting";
  const uint64_t at_crash = load.committed();
  machines.clear();
  for (int i = 1; i <= 3; ++i) machines.push_back(StartMachine(i, 2));
  const std::string up =
      WaitForStats([](const std::string& l) { return Field(l, "restarting") == 0 && Field(l, "machines") == 3; });
  ASSERT_NE(up, "") << "the CM did not restore the cluster";
  ASSERT_TRUE(load.WaitFor(100)) << "the client kept from before the restart commits nothing: "
                                 << client.configuration().ShortDebugString() << " (before: " << before << ")";
  load.Stop();
  EXPECT_EQ(load.unclean(), "");
  // Each machine re-wired at its new address (more than once if the client
  // saw a configuration of the restart that did not list it yet: dropped,
  // then wired again).
  EXPECT_GE(client.wiring_stats().rewired, 3u);
  EXPECT_EQ(client.wired_machines(), (std::vector<farm::fabric::MachineId>{1, 2, 3}))
      << "machines came back under their ids";
  EXPECT_EQ(client.tx().endpoint().peer_count(), 6u)
      << "a participant's and a ship worker's rings per machine";
  const uint64_t dropped = client.wiring_stats().dropped;
  absl::Status checked = load.Check();
  ASSERT_TRUE(checked.ok()) << checked;
  const farm::client::ShipperStats& ship = client.ship_stats();
  printf("restart: %llu transfers before the crash, %llu after; journal settled %llu committed / %llu aborted; "
         "shipped %llu (committed %llu, resent %llu, forgotten by a restarted machine %llu, outcome asked %llu, "
         "unknown %llu)\n",
         static_cast<unsigned long long>(at_crash), static_cast<unsigned long long>(load.committed() - at_crash),
         static_cast<unsigned long long>(load.journal().settled_committed),
         static_cast<unsigned long long>(load.journal().settled_aborted),
         static_cast<unsigned long long>(ship.shipped), static_cast<unsigned long long>(ship.committed),
         static_cast<unsigned long long>(ship.resent), static_cast<unsigned long long>(ship.forgotten),
         static_cast<unsigned long long>(ship.outcome_asked), static_cast<unsigned long long>(ship.unknown));

  // m3 dies for good: the CM removes it, and the client drops its rings.
  load.Run();
  machines[2]->Kill(SIGKILL);
  ASSERT_NE(WaitForStats([](const std::string& l) { return Field(l, "machines") == 2; }), "")
      << "the CM did not remove m3";
  ASSERT_TRUE(load.WaitFor(100)) << "no transfers after m3's removal";
  load.Stop();
  EXPECT_EQ(load.unclean(), "");
  EXPECT_EQ(client.wiring_stats().dropped, dropped + 1);
  EXPECT_EQ(client.wired_machines(), (std::vector<farm::fabric::MachineId>{1, 2}));
  EXPECT_EQ(client.tx().endpoint().peer_count(), 4u) << "m3's rings left the endpoint";
  checked = load.Check();
  EXPECT_TRUE(checked.ok()) << checked;
}

}  // namespace
}  // namespace dctk::integration
