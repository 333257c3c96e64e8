// The whole chain of the main job on loopback, unprivileged: 3 cm_replica
// processes (Speculative Paxos), cm_driver (farm's CmService whose commands
// run on them, at a fixed control port), 3 farmd machines (net fabric,
// f = 1) registered with the driver, and farm_workload (bank transfers and
// lookups). Then, with the workload running:
//   1. the CM leader replica is SIGKILLed: transfers keep committing and the
//      driver keeps renewing leases (no machine expires);
//   2. cm_driver is SIGKILLed and restarted on the same port: it is ready at
//      once over the placed regions (no second bootstrap) and work goes on;
//   3. a FaRM machine is SIGKILLed: recovery runs through the replicated CM
//      and transfers commit again;
// and at SIGINT the workload's invariant (total, ledger, journals) holds.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/transport/free_port.h"
#include "gtest/gtest.h"
#include "tests/integration/test_process.h"

namespace dctk::integration {
namespace {

constexpr absl::Duration kPhase = absl::Seconds(60);

int FreeTcpPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sa);
  bind(fd, reinterpret_cast<sockaddr*>(&sa), len);
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  close(fd);
  return ntohs(sa.sin_port);
}

// The value of `key=` in a key=value line, or -1.
int64_t Field(absl::string_view line, absl::string_view key) {
  for (absl::string_view word : absl::StrSplit(line, ' ')) {
    if (!absl::ConsumePrefix(&word, key) || !absl::ConsumePrefix(&word, "=")) continue;
    double v;
    if (absl::SimpleAtod(word, &v)) return static_cast<int64_t>(v);
  }
  return -1;
}

// Lines of `log` starting with `prefix`.
std::vector<std::string> Lines(const std::string& log, absl::string_view prefix) {
  std::vector<std::string> out;
  for (absl::string_view l : absl::StrSplit(log, '\n')) {
    if (absl::StartsWith(l, prefix)) out.emplace_back(l);
  }
  return out;
}

int CommittingLines(const std::string& log) {
  int n = 0;
  for (const std::string& l : Lines(log, "progress ")) n += Field(l, "tx_per_s") > 0;
  return n;
}

class FarmReplicatedCmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = getenv("TEST_TMPDIR");
    config_ = dir_ + "/cluster.conf";
    std::ofstream f(config_);
    for (int i = 0; i < 3; ++i) f << "nodes { name: \"cm" << i << "\" address: \"127.0.0.1:" << transport::FreeLoopbackUdpPort() << "\" }\n";
    for (int i = 1; i <= 3; ++i) f << "nodes { name: \"m" << i << "\" address: \"127.0.0." << i + 1 << ":0\" }\n";
    f << "groups { name: \"cm\" f: 1 members: [\"cm0\", \"cm1\", \"cm2\"] }\n"
         "groups { name: \"farm\" replication: PRIMARY_BACKUP f: 2 members: [\"m1\", \"m2\", \"m3\"] }\n"
         // Machines fence themselves when no renewal is acknowledged within
         // 7/8 of a lease, so the driver's SIGKILL and restart must fit well
         // inside one lease, also on a loaded machine.
         "timeouts { request_ms: 10 heartbeat_ms: 2 view_change_ms: 100 lease_ms: 5000 }\n";
    f.close();
    port_ = FreeTcpPort();
    cm_ = absl::StrCat("127.0.0.1:", port_);
  }

  std::string Log(const std::string& name) { return dir_ + "/" + name + ".log"; }

  std::unique_ptr<ChildProcess> StartDriver(const std::string& name) {
    auto p = StartProcess(
        std::vector<std::string>{"tests/integration/cm_driver", "--config=" + config_, "--listen=127.0.0.1",
                                 absl::StrCat("--port=", port_), "--replicas=2", "--regions=6", "--region_mb=2",
                                 "--stats_ms=200"},
        Log(name));
    EXPECT_TRUE(WaitForFile(Log(name), [&](const std::string& s) { return absl::StrContains(s, "cm " + cm_); },
                            kPhase)
                    .ok());
    return p;
  }

  // Waits until the workload printed `more` further progress lines with commits.
  void WaitForCommits(int more, const std::string& why) {
    const int want = CommittingLines(ReadFile(Log("workload"))) + more;
    absl::Status s = WaitForFile(Log("workload"), [&](const std::string& log) { return CommittingLines(log) >= want; },
                                 kPhase);
    ASSERT_TRUE(s.ok()) << why << ": " << s;
  }

  // The driver's newest stats line in `log` after byte `from`, once one exists.
  std::string StatsAfter(const std::string& name, size_t from, const std::function<bool(const std::string&)>& ok) {
    std::string found;
    absl::Status s = WaitForFile(
        Log(name),
        [&](const std::string& log) {
          std::vector<std::string> lines = Lines(log.size() > from ? log.substr(from) : "", "cm_driver ");
          if (lines.empty() || !ok(lines.back())) return false;
          found = lines.back();
          return true;
        },
        kPhase);
    EXPECT_TRUE(s.ok()) << s;
    return found;
  }

  std::string dir_, config_, cm_;
  int port_ = 0;
};

TEST_F(FarmReplicatedCmTest, WorkloadSurvivesLeaderDriverAndMachineFailures) {
  std::vector<std::unique_ptr<ChildProcess>> replicas;
  for (int i = 0; i < 3; ++i) {
    replicas.push_back(StartProcess(
        std::vector<std::string>{"tests/integration/cm_replica", "--config=" + config_, absl::StrCat("--index=", i),
                                 absl::StrCat("--state_out=", dir_, "/cm", i, ".state")},
        Log(absl::StrCat("cm", i))));
  }
  std::unique_ptr<ChildProcess> driver = StartDriver("driver");
  std::vector<std::unique_ptr<ChildProcess>> machines;
  for (int i = 1; i <= 3; ++i) {
    machines.push_back(StartProcess(
        std::vector<std::string>{"farm/server/farmd", "--config=" + config_, "--role=machine",
                                 absl::StrCat("--name=m", i), "--cm=" + cm_, "--fabric=net"},
        Log(absl::StrCat("m", i))));
  }
  std::unique_ptr<ChildProcess> workload = StartProcess({"farm/workload/farm_workload", "--cm=" + cm_, "--fabric=net", "--report_ms=200",
                    "--transfer_threads=2", "--lookup_threads=1", "--accounts=32"},
                   Log("workload"));
  WaitForCommits(3, "workload running");
  const std::string first = StatsAfter("driver", 0, [](const std::string& l) { return Field(l, "regions") == 6; });
  EXPECT_EQ(Field(first, "machines"), 3) << first;

  // 1. The CM leader replica dies: a view change, invisible to FaRM.
  int leader = -1;
  for (int i = 0; i < 3; ++i) {
    if (absl::StrContains(ReadFile(absl::StrCat(dir_, "/cm", i, ".state")), "# leader: true")) leader = i;
  }
  ASSERT_NE(leader, -1) << "no CM leader in the state files";
  replicas[leader]->Kill(SIGKILL);
  size_t mark = ReadFile(Log("driver")).size();
  WaitForCommits(5, "after the CM leader was killed");
  const std::string renewing = StatsAfter("driver", mark, [](const std::string& l) {
    return Field(l, "renew_p50_us") > 0;  // renewals answered by the new view
  });
  EXPECT_EQ(Field(renewing, "machines"), 3) << "a lease expired across the view change: " << renewing;
  EXPECT_EQ(Field(renewing, "recoveries"), 0) << renewing;

  // 2. The driver dies and comes back on the same port, over the replicated state.
  driver->Kill(SIGKILL);
  driver = StartDriver("driver2");
  WaitForCommits(5, "after the driver was restarted");
  const std::string resumed = StatsAfter("driver2", 0, [](const std::string& l) { return Field(l, "commands") > 0; });
  EXPECT_EQ(Field(resumed, "regions"), 6) << resumed;
  EXPECT_EQ(Field(resumed, "machines"), 3) << resumed;
  EXPECT_FALSE(absl::StrContains(ReadFile(Log("driver2")), "cluster ready")) << "the restarted driver bootstrapped again";

  // 3. A FaRM machine dies: the driver expires its lease and recovers through the replicas.
  machines[2]->Kill(SIGKILL);
  const std::string recovered = StatsAfter("driver2", 0, [](const std::string& l) {
    return Field(l, "recoveries") >= 1 && Field(l, "machines") == 2;
  });
  EXPECT_GE(Field(recovered, "recoveries"), 1) << recovered;
  WaitForCommits(5, "after machine 3 was killed and recovered");

  EXPECT_EQ(workload->Kill(SIGINT), 0) << ReadFile(Log("workload"));
  const std::string out = ReadFile(Log("workload"));
  EXPECT_TRUE(absl::StrContains(out, "invariant ok")) << out;
  std::vector<std::string> summary = Lines(out, "summary ");
  ASSERT_EQ(summary.size(), 1u) << out;
  EXPECT_EQ(Field(summary[0], "total"), Field(summary[0], "expected_total")) << summary[0];
  printf("%s\nleader kill: %s\nrestart: %s\nrecovery: %s\n", summary[0].c_str(), renewing.c_str(), resumed.c_str(),
         recovered.c_str());
}

}  // namespace
}  // namespace dctk::integration
