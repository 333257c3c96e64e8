// Checkpoints, log truncation and restart from files: a bank workload whose
// every machine crashes at once (coordinators stop dead mid-commit) and
// restarts from its checkpoint + log suffix keeps every committed transfer
// exactly once (balances, total, per-thread journals); the logs stay bounded
// under a long run; a torn final log record is ignored, a damaged checkpoint
// refuses the restart (DataLoss naming the file); with fsync on, a power
// loss that keeps only what the logs synced keeps every acknowledged commit
// (group commit: no reply precedes the sync of its record).
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <thread>

#include "absl/strings/str_format.h"
#include "farm/tx/test_util.h"
#include "gtest/gtest.h"

namespace dctk::farm::tx {
namespace {

using Client = TxClient<fabric::ShmFabric>;

constexpr int kAccounts = 16;
constexpr int kThreads = 2;
constexpr uint64_t kInitial = 1000;

struct Transfer {
  int from, to;
  uint64_t amount;
};

// Thread t's i-th transfer, the same in every run.
Transfer TransferOf(int t, uint64_t i) {
  std::mt19937_64 rng(t * 1000003 + i);
  Transfer x{static_cast<int>(rng() % kAccounts), 0, 1 + rng() % 20};
  x.to = static_cast<int>((x.from + 1 + rng() % (kAccounts - 1)) % kAccounts);
  return x;
}

struct Bank {
  std::vector<GlobalAddress> accounts;
  std::vector<GlobalAddress> journals;  // per thread: how many of its transfers committed
};

LocalClusterOptions Options(const std::string& dir) {
  LocalClusterOptions o;
  o.log_dir = dir;
  o.log_segment_bytes = 32 << 10;
  o.checkpoint_log_bytes = 128 << 10;
  o.client.rpc_timeout = absl::Seconds(2);
  o.clients_per_machine = 1;
  return o;
}

std::string FreshDir(const char* name) {
  const std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/", name, "-", getpid());
  EXPECT_EQ(system(absl::StrCat("rm -rf ", dir, " && mkdir -p ", dir).c_str()), 0);
  return dir;
}

Bank MakeBank(ShmCluster& c) {
  Bank b;
  auto tx = c.client(1).Begin();
  std::vector<RegionInfo> regions = c.table().All();
  for (int i = 0; i < kAccounts + kThreads; ++i) {
    const RegionId region = regions[i % regions.size()].id;
    absl::StatusOr<GlobalAddress> a = tx.Alloc(8, GlobalAddress(region, 0));
    EXPECT_TRUE(a.ok()) << a.status();
    EXPECT_TRUE(tx.Write(*a, U64(i < kAccounts ? kInitial : 0)).ok());
    (i < kAccounts ? b.accounts : b.journals).push_back(*a);
  }
  EXPECT_TRUE(tx.Commit().ok());
  return b;
}

// One transfer and the thread's journal + 1, in one transaction.
absl::Status Apply(Client& client, const Bank& b, int t, const Transfer& x) {
  auto tx = client.Begin();
  absl::StatusOr<std::string> from = tx.Read(b.accounts[x.from], 8);
  if (!from.ok()) return from.status();
  absl::StatusOr<std::string> to = tx.Read(b.accounts[x.to], 8);
  if (!to.ok()) return to.status();
  absl::StatusOr<std::string> j = tx.Read(b.journals[t], 8);
  if (!j.ok()) return j.status();
  absl::Status s = tx.Write(b.accounts[x.from], U64(AsU64(*from) - x.amount));
  if (s.ok()) s = tx.Write(b.accounts[x.to], U64(AsU64(*to) + x.amount));
  if (s.ok()) s = tx.Write(b.journals[t], U64(AsU64(*j) + 1));
  if (s.ok()) s = tx.Commit();
  return s;
}

struct RunResult {
  std::vector<uint64_t> ok;  // transfers each thread saw committed
  bool stopped_before_commit_primary = false;  // thread 0's last one: every backup logged it
};

// Runs `per_thread` transfers per thread (retrying conflicts); if `crash` is
// set, every coordinator stops dead once thread 0 reached that many, as when
// all machines crash at once: thread 0 in its next transfer just before
// COMMIT-PRIMARY (every backup logged it: recovery must commit it), thread 1
// just before its next COMMIT-BACKUP, COMMIT-PRIMARY or TRUNCATE. `sample`
// runs on thread 0 every 50 transfers.
RunResult RunTransfers(ShmCluster& c, const Bank& b, uint64_t per_thread, bool crash,
                       const std::function<void()>& sample = nullptr) {
  std::atomic<bool> crashed{false};
  std::vector<uint64_t> ok(kThreads, 0);
  std::atomic<bool> stopped0{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    Client& client = c.client(static_cast<fabric::MachineId>(t + 1));
    client.options().crash_before = [&crashed, t](CommitStep step, fabric::MachineId) {
      if (!crashed.load()) return false;
      if (t == 0) return step == CommitStep::kCommitPrimary;
      return step != CommitStep::kLock && step != CommitStep::kValidate;
    };
    threads.emplace_back([&, t, &client] {
      bool last = false;
      while (ok[t] < per_thread || crash) {
        if (crash && t == 0 && ok[t] >= per_thread) crashed.store(true);
        // Crashed: one more attempt, which stops dead at its first protocol
        // step (or aborts on a lock the other coordinator left).
        if (crashed.load() && std::exchange(last, true)) return;
        const absl::Status s = Apply(client, b, t, TransferOf(t, ok[t]));
        if (absl::IsCancelled(s)) {  // stopped dead mid-commit: outcome up to recovery
          if (t == 0) stopped0.store(true);
          return;
        }
        if (s.ok()) {
          ++ok[t];
          if (t == 0 && sample && ok[t] % 50 == 0) sample();
        } else {
          // Not committed, the same transfer again: a conflict, or a LOCK a
          // machine left unanswered for rpc_timeout (its server thread starved
          // under CPU load: 1 of 10 runs at load 14-21), which Commit reports
          // as DeadlineExceeded before anything is logged at a backup. The
          // journals' check (ExpectCommittedExactlyOnce) shows none committed.
          EXPECT_TRUE(absl::IsAborted(s) || absl::IsDeadlineExceeded(s)) << s;
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) c.client(static_cast<fabric::MachineId>(t + 1)).options().crash_before = nullptr;
  return {ok, stopped0.load()};
}

// Balances are exactly those of each thread's first journal[t] transfers,
// and every transfer a thread saw committed is among them.
void ExpectCommittedExactlyOnce(ShmCluster& c, const Bank& b, const std::vector<uint64_t>& ok) {
  auto tx = c.client(3).Begin();
  std::vector<int64_t> want(kAccounts, kInitial);
  for (int t = 0; t < kThreads; ++t) {
    absl::StatusOr<std::string> j = tx.Read(b.journals[t], 8);
    ASSERT_TRUE(j.ok()) << j.status();
    const uint64_t n = AsU64(*j);
    EXPECT_GE(n, ok[t]) << "thread " << t << ": a committed transfer was lost";
    EXPECT_LE(n, ok[t] + 1) << "thread " << t;  // at most the one in flight at the crash
    for (uint64_t i = 0; i < n; ++i) {
      const Transfer x = TransferOf(t, i);
      want[x.from] -= x.amount;
      want[x.to] += x.amount;
    }
  }
  int64_t total = 0;
  for (int i = 0; i < kAccounts; ++i) {
    absl::StatusOr<std::string> v = tx.Read(b.accounts[i], 8);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(static_cast<int64_t>(AsU64(*v)), want[i]) << "account " << i;
    total += static_cast<int64_t>(AsU64(*v));
  }
  EXPECT_EQ(total, kAccounts * static_cast<int64_t>(kInitial));
}

TEST(RestartTest, EveryCommittedTransferSurvivesACrashOfAllMachines) {
  const std::string dir = FreshDir("crash");
  Bank bank;
  RunResult run;
  {
    auto c = MakeShmCluster(Options(dir));
    bank = MakeBank(*c);
    run = RunTransfers(*c, bank, 1500, /*crash=*/true);
    // The machines die with whatever is in flight; their memory is gone.
  }
  const std::vector<uint64_t>& ok = run.ok;
  // A checkpoint write cut short by the crash is only a leftover temp file.
  std::ofstream(dir + "/machine-2.ckpt.tmp") << "FARMCKP1 half a checkpoint";
  LocalClusterOptions o = Options(dir);
  o.restart = true;
  auto c = MakeShmCluster(o);
  uint64_t from_checkpoints = 0;
  for (const auto& [m, r] : c->restored()) {
    from_checkpoints += r.checkpoint_lsn > 0;
    EXPECT_GT(*FirstRetainedLsn(c->log_path(m)), 1u) << "machine " << m << ": log never trimmed";
  }
  EXPECT_EQ(from_checkpoints, 3u);
  ExpectCommittedExactlyOnce(*c, bank, ok);
  if (run.stopped_before_commit_primary) {
    // (Unless thread 0's last transfer met a lock thread 1 left: rare.)
    EXPECT_GE(c->restart_recovery().committed, 1) << "in flight at the crash, logged at every backup";
    EXPECT_EQ(AsU64(*c->client(3).Begin().Read(bank.journals[0], 8)), ok[0] + 1);
  }
  // Nothing stays locked: the restarted cluster runs on.
  const uint64_t next = AsU64(*c->client(2).Begin().Read(bank.journals[0], 8));
  const absl::Status s = Apply(c->client(1), bank, 0, TransferOf(0, next));
  EXPECT_TRUE(s.ok()) << s;
}

// A power loss: the log at `path` keeps its records up to `lsn` only (what
// was fdatasynced); the rest of the page cache is gone.
void CutLogAfter(const std::string& path, uint64_t lsn) {
  const std::filesystem::path log(path);
  for (const auto& f : std::filesystem::directory_iterator(log.parent_path())) {
    const std::string name = f.path().filename().string();
    const std::string prefix = log.filename().string() + ".";
    if (name.rfind(prefix, 0) != 0 || name.size() != prefix.size() + 20) continue;
    const uint64_t first = std::stoull(name.substr(prefix.size()));
    if (first > lsn) {
      std::filesystem::remove(f.path());
      continue;
    }
    absl::StatusOr<std::vector<LogRecord>> records = ReadTxLog(path, first);
    ASSERT_TRUE(records.ok()) << records.status();
    uint64_t keep = 0;
    for (const LogRecord& r : *records) {
      if (r.lsn > lsn) break;
      keep += 17 + r.payload.size();  // [length][checksum][type][tx] + payload
    }
    if (keep < std::filesystem::file_size(f.path())) std::filesystem::resize_file(f.path(), keep);
  }
}

TEST(RestartTest, EveryAcknowledgedTransferSurvivesAPowerLoss) {
  const std::string dir = FreshDir("power-loss");
  LocalClusterOptions o = Options(dir);
  o.fsync = FsyncPolicy::kEveryRecord;
  Bank bank;
  RunResult run;
  std::map<fabric::MachineId, uint64_t> durable;
  uint64_t records = 0, syncs = 0;
  {
    auto c = MakeShmCluster(o);
    bank = MakeBank(*c);
    run = RunTransfers(*c, bank, 300, /*crash=*/true);
    for (fabric::MachineId m : {1, 2, 3}) {
      durable[m] = c->machine(m).log().durable_lsn();
      records += c->machine(m).log().records();
      syncs += c->machine(m).log().syncs();
      EXPECT_GT(durable[m], 0u) << "machine " << m;
    }
  }
  for (const auto& [m, lsn] : durable) {
    CutLogAfter(absl::StrCat(dir, "/machine-", m, ".txlog"), lsn);
  }
  o.restart = true;
  auto c = MakeShmCluster(o);
  ExpectCommittedExactlyOnce(*c, bank, run.ok);
  // Not an assertion on speed: says whether the run formed batches at all.
  std::cout << records << " records in " << syncs << " fdatasyncs\n";
  const uint64_t next = AsU64(*c->client(2).Begin().Read(bank.journals[0], 8));
  EXPECT_TRUE(Apply(c->client(1), bank, 0, TransferOf(0, next)).ok());
}

TEST(RestartTest, LogStaysBoundedUnderALongBankWorkload) {
  const std::string dir = FreshDir("bounded");
  LocalClusterOptions o = Options(dir);
  o.checkpoint_log_bytes = 64 << 10;
  o.log_segment_bytes = 16 << 10;
  auto c = MakeShmCluster(o);
  const Bank bank = MakeBank(*c);
  uint64_t max_retained = 0;
  auto sample = [&] {
    for (fabric::MachineId m : {1, 2, 3}) {
      max_retained = std::max(max_retained, c->machine(m).participant().retained_log_bytes());
    }
  };
  const std::vector<uint64_t> ok = RunTransfers(*c, bank, 3000, false, sample).ok;
  uint64_t appended = 0, checkpoints = 0;
  for (fabric::MachineId m : {1, 2, 3}) {
    appended = std::max(appended, c->machine(m).participant().logged_bytes());
    checkpoints += c->machine(m).checkpoints();
  }
  // Between checkpoints a log holds at most one interval of records, plus
  // the segment in progress and whatever arrives while a checkpoint is written.
  const uint64_t bound = 2 * o.checkpoint_log_bytes + 2 * o.log_segment_bytes;
  EXPECT_LT(max_retained, bound) << "appended " << appended;
  EXPECT_GT(appended, 4 * bound) << "the run is too short to show a bound";
  EXPECT_GT(checkpoints, 6u);
  ExpectCommittedExactlyOnce(*c, bank, ok);
}

TEST(RestartTest, TornFinalLogRecordIsIgnored) {
  const std::string dir = FreshDir("torn-log");
  LocalClusterOptions o = Options(dir);
  o.checkpoint_log_bytes = 0;  // the whole history replays from the log
  Bank bank;
  std::vector<uint64_t> ok;
  {
    auto c = MakeShmCluster(o);
    bank = MakeBank(*c);
    ok = RunTransfers(*c, bank, 100, false).ok;
  }
  // Each machine crashed mid-append of one more record: a header promising
  // 4000 bytes, 10 of them written.
  for (fabric::MachineId m : {1, 2, 3}) {
    const std::string log = absl::StrCat(dir, "/machine-", m, ".txlog");
    std::string last;
    for (uint64_t lsn = 1; lsn < 100000; ++lsn) {
      const std::string p = absl::StrFormat("%s.%020u", log, lsn);
      if (access(p.c_str(), F_OK) == 0) last = p;
    }
    ASSERT_FALSE(last.empty());
    std::ofstream(last, std::ios::binary | std::ios::app) << std::string("\xa0\x0f\0\0garbage!!", 14);
  }
  o.restart = true;
  {
    auto c = MakeShmCluster(o);
    for (const auto& [m, r] : c->restored()) EXPECT_EQ(r.checkpoint_lsn, 0u);
    ExpectCommittedExactlyOnce(*c, bank, ok);
    ASSERT_TRUE(Apply(c->client(1), bank, 0, TransferOf(0, ok[0])).ok());
    ++ok[0];
  }
  // The torn tails were cut off, so what was logged after them reads back.
  auto c = MakeShmCluster(o);
  ExpectCommittedExactlyOnce(*c, bank, ok);
}

TEST(RestartTest, DamagedCheckpointRefusesTheRestart) {
  const std::string dir = FreshDir("torn-ckpt");
  {
    auto c = MakeShmCluster(Options(dir));
    const Bank bank = MakeBank(*c);
    RunTransfers(*c, bank, 600, false);
    ASSERT_GT(c->machine(1).checkpoints(), 0u);
  }
  const std::string ckpt = dir + "/machine-1.ckpt";
  std::ifstream in(ckpt, std::ios::binary);
  const std::string whole((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(truncate(ckpt.c_str(), static_cast<off_t>(whole.size() / 2)), 0);
  LocalClusterOptions o = Options(dir);
  o.restart = true;
  auto c = ShmCluster::Create(o, [](fabric::MachineId id) { return fabric::ShmFabric::Create({.machine_id = id}); });
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(absl::IsDataLoss(c.status())) << c.status();
  EXPECT_NE(c.status().message().find(ckpt), std::string::npos) << c.status();
}

}  // namespace
}  // namespace dctk::farm::tx
