// spaxos_client as a process against spaxos_replica processes on loopback UDP,
// for every protocol: --metrics serves the client library's counters and the
// latency histogram of its completions (scraped with curl while it runs), and
// --max_datagram out of its bounds is refused naming the flag and the bounds;
// the load line carries the fields the bench scripts read.
// Replica 0's --metrics is scraped the same way (the unreplicated server,
// which keeps no stats, refuses the flag). spaxos_replica refuses every flag
// its protocol would ignore, and VR compacts at the given --checkpoint_interval.
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/process/child_process.h"
#include "common/process/run_command.h"
#include "common/transport/free_port.h"
#include "gtest/gtest.h"

namespace {

using dctk::ChildOptions;
using dctk::ChildOutput;
using dctk::ChildProcess;

constexpr char kReplica[] = "speculative_paxos/tools/spaxos_replica";
constexpr char kClient[] = "speculative_paxos/tools/spaxos_client";

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

// A 3-replica cluster file on free loopback ports, with a multicast group.
std::string WriteConfig(const std::string& name) {
  const std::string path = absl::StrCat(TempDir(), "/", name, ".conf");
  std::ofstream out(path);
  for (int i = 0; i < 3; ++i) {
    out << "nodes { name: \"r" << i
        << "\" address: \"127.0.0.1:" << dctk::transport::FreeLoopbackUdpPort() << "\" }\n";
  }
  out << "nodes { name: \"clients\" address: \"127.0.0.1:0\" }\n"
      << "groups { name: \"shard0\" f: 1 members: [\"r0\", \"r1\", \"r2\"] }\n"
      << "multicast_groups { name: \"ordered\" address: \"239.255.1.1:"
      << dctk::transport::FreeLoopbackUdpPort()
      << "\" members: [\"r0\", \"r1\", \"r2\"] senders: [\"clients\"] }\n"
      << "timeouts { request_ms: 10 heartbeat_ms: 2 view_change_ms: 100 }\n";
  return path;
}

std::unique_ptr<ChildProcess> Start(std::vector<std::string> args, ChildOptions options) {
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Start(std::move(args), std::move(options));
  EXPECT_TRUE(child.ok()) << child.status();
  return child.ok() ? *std::move(child) : nullptr;
}

std::string Scrape(const std::string& port) {
  return dctk::RunCommand(absl::StrCat("curl -s http://127.0.0.1:", port, "/metrics")).value_or("");
}

// Reads `child`'s stderr until a line containing `text`; that line, or "".
std::string WaitForErrLine(ChildProcess& child, absl::string_view text) {
  for (;;) {
    absl::StatusOr<std::string> line = child.ReadErrLine(absl::Seconds(60));
    if (!line.ok()) {
      ADD_FAILURE() << "waiting for '" << text << "': " << line.status();
      return "";
    }
    if (absl::StrContains(*line, text)) return *line;
  }
}

// The value of the sample `name` (with its labels) in a Prometheus text body;
// -1 if absent.
double Sample(const std::string& body, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    double v = 0;
    if (absl::ConsumePrefix(&line, name + " ") && absl::SimpleAtod(line, &v)) return v;
  }
  return -1;
}

class SpaxosClientTest : public ::testing::TestWithParam<std::string> {
 protected:
  // Starts the group (one server for the unreplicated baseline), each
  // serving once started; with `metrics`, replica 0 serves its metrics at
  // replica_metrics_port_.
  void StartGroup(bool metrics = false) {
    config_ = WriteConfig(GetParam());
    const int n = GetParam() == "unreplicated" ? 1 : 3;
    for (int i = 0; i < n; ++i) {
      std::vector<std::string> args = {kReplica, "--config=" + config_, absl::StrCat("--index=", i),
                                       "--protocol=" + GetParam()};
      if (metrics && i == 0) args.push_back("--metrics=127.0.0.1:0");
      replicas_.push_back(Start(args, {.err = ChildOutput::Pipe()}));
      ASSERT_NE(replicas_.back(), nullptr);
      if (metrics && i == 0) {
        const std::string line = WaitForErrLine(*replicas_[0], "replica 0 metrics_port=");
        ASSERT_NE(line, "");
        replica_metrics_port_ = line.substr(line.find('=') + 1);
      }
      ASSERT_NE(WaitForErrLine(*replicas_.back(), "serving at"), "");
    }
  }

  std::vector<std::string> ClientArgs() const {
    return {kClient, "--config=" + config_, "--protocol=" + GetParam(), "--clients=4",
            "--warmup=0s"};
  }

  std::string config_;
  std::vector<std::unique_ptr<ChildProcess>> replicas_;
  std::string replica_metrics_port_;
};

TEST_P(SpaxosClientTest, ServesClientMetricsWhileRunning) {
  ASSERT_NO_FATAL_FAILURE(StartGroup());
  std::vector<std::string> args = ClientArgs();
  args.push_back("--duration=600s");  // killed once scraped
  args.push_back("--metrics=127.0.0.1:0");
  std::unique_ptr<ChildProcess> client = Start(args, {.err = ChildOutput::Pipe()});
  ASSERT_NE(client, nullptr);
  const std::string line = WaitForErrLine(*client, "spaxos_client metrics_port=");
  ASSERT_NE(line, "");
  const std::string port = line.substr(line.find('=') + 1);

  const std::string labels = absl::StrCat("{protocol=\"", GetParam(), "\"}");
  auto sample = [&](const std::string& body, const std::string& name) {
    return Sample(body, absl::StrCat("spaxos_client_", name, labels));
  };
  // Counters are copied every 100 ms: scrape until completions show.
  std::string body;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    body = Scrape(port);
    if (sample(body, "completed_total") > 0 && sample(body, "latency_seconds_count") > 0 &&
        sample(body, "fast_path_total") + sample(body, "slow_path_total") > 0) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_GT(sample(body, "completed_total"), 0) << body;
  EXPECT_GT(sample(body, "latency_seconds_count"), 0) << body;
  EXPECT_GT(sample(body, "latency_seconds_sum"), 0) << body;
  EXPECT_GT(sample(body, "fast_path_total") + sample(body, "slow_path_total"), 0) << body;
  for (const char* name : {"resends_total", "reconcile_requests_total",
                           "early_commit_requests_total", "speculative_success_rate"}) {
    EXPECT_GE(sample(body, name), 0) << name << " missing: " << body;
  }
  // Prometheus buckets (1-2-5 steps, seconds), cumulative up to +Inf.
  auto bucket = [&](const char* le) {
    return Sample(body, absl::StrCat("spaxos_client_latency_seconds_bucket{protocol=\"", GetParam(),
                                     "\",le=\"", le, "\"}"));
  };
  EXPECT_GE(bucket("0.001"), 0) << body;
  EXPECT_EQ(bucket("+Inf"), sample(body, "latency_seconds_count")) << body;
  EXPECT_EQ(client->Kill(SIGTERM), 128 + SIGTERM);
}

// Replica 0 (leader / coordinator of the first view) under a client's load:
// its protocol's counters, scraped as for the client.
TEST_P(SpaxosClientTest, ReplicaServesMetricsWhileRunning) {
  if (GetParam() == "unreplicated") {
    std::unique_ptr<ChildProcess> server =
        Start({kReplica, "--config=" + WriteConfig("unreplicated_metrics"),
               "--protocol=unreplicated", "--metrics=127.0.0.1:0"},
              {.err = ChildOutput::Pipe()});
    ASSERT_NE(server, nullptr);
    EXPECT_NE(WaitForErrLine(*server, "the unreplicated server keeps no stats"), "");
    EXPECT_EQ(server->Wait(), 2);
    return;
  }
  ASSERT_NO_FATAL_FAILURE(StartGroup(/*metrics=*/true));
  std::vector<std::string> args = ClientArgs();
  args.push_back("--duration=600s");  // killed once scraped
  std::unique_ptr<ChildProcess> client = Start(args, {});
  ASSERT_NE(client, nullptr);
  // Counters that must grow, then counters and gauges that must be there.
  std::vector<std::string> grow, present = {"view"};
  std::string prefix;
  if (GetParam() == "spaxos") {
    prefix = "spaxos_replica_";
    grow = {"commit_point", "requests_total", "replies_total", "commits_total"};
    present.insert(present.end(), {"reconciliations_total", "view_changes_total",
                                   "rolled_back_total", "rejected_total", "log_entries"});
  } else if (GetParam() == "vr") {
    prefix = "vr_replica_";
    grow = {"executed_total", "requests_total", "prepares_total"};
    present.insert(present.end(), {"view_changes_total", "duplicates_total"});
  } else {
    prefix = "fastpaxos_replica_";
    grow = {"executed_total", "votes_total"};
    present.insert(present.end(), {"fast_decisions_total", "classic_rounds_total",
                                   "view_changes_total", "merge_conflicts_total"});
  }
  auto sample = [&](const std::string& body, const std::string& name) {
    return Sample(body, absl::StrCat(prefix, name, "{replica=\"0\"}"));
  };
  std::string body;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    body = Scrape(replica_metrics_port_);
    if (sample(body, grow[0]) > 0) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  if (GetParam() == "vr" && sample(body, "view") != 0) {
    // A view change on the loaded machine made replica 0 a follower, which
    // takes neither requests nor sends prepares.
    present.insert(present.end(), grow.begin() + 1, grow.end());
    grow.resize(1);
  }
  for (const std::string& name : grow) EXPECT_GT(sample(body, name), 0) << name << ": " << body;
  for (const std::string& name : present) EXPECT_GE(sample(body, name), 0) << name << ": " << body;
  if (GetParam() == "fastpaxos") EXPECT_EQ(sample(body, "merge_conflicts_total"), 0) << body;
}

TEST_P(SpaxosClientTest, RunsWithTheSmallestMaxDatagram) {
  ASSERT_NO_FATAL_FAILURE(StartGroup());
  std::vector<std::string> args = ClientArgs();
  args.push_back("--duration=1s");
  args.push_back("--op=put");
  args.push_back("--max_datagram=256");
  std::unique_ptr<ChildProcess> client = Start(args, {.out = ChildOutput::Pipe()});
  ASSERT_NE(client, nullptr);
  absl::StatusOr<std::string> line = client->ReadLine(absl::Seconds(120));
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_TRUE(absl::StartsWith(*line, "protocol=" + GetParam())) << *line;
  EXPECT_FALSE(absl::StrContains(*line, " ops=0 ")) << *line;
  EXPECT_EQ(client->Wait(), 0);
}

// The load line's fields that bench/run_bench.sh and compaction_bench.sh
// read (throughput=, p50_us=, p99_us=, fast=, slow=), and the histogram line.
TEST_P(SpaxosClientTest, PrintsTheBenchFields) {
  ASSERT_NO_FATAL_FAILURE(StartGroup());
  std::vector<std::string> args = ClientArgs();
  args.back() = "--warmup=200ms";
  args.push_back("--duration=1s");
  std::unique_ptr<ChildProcess> client = Start(args, {.out = ChildOutput::Pipe()});
  ASSERT_NE(client, nullptr);
  absl::StatusOr<std::string> line = client->ReadLine(absl::Seconds(120));
  ASSERT_TRUE(line.ok()) << line.status();
  absl::StatusOr<std::string> histogram = client->ReadLine(absl::Seconds(10));
  ASSERT_TRUE(histogram.ok()) << histogram.status();
  EXPECT_EQ(client->Wait(), 0);
  std::map<std::string, double> field;
  for (absl::string_view kv : absl::StrSplit(*line, ' ')) {
    std::pair<absl::string_view, absl::string_view> p =
        absl::StrSplit(kv, absl::MaxSplits('=', 1));
    absl::ConsumeSuffix(&p.second, "/s");
    double v = 0;
    if (absl::SimpleAtod(p.second, &v)) field[std::string(p.first)] = v;
  }
  for (const char* name : {"ops", "throughput", "p50_us", "p99_us", "fast", "slow"}) {
    EXPECT_EQ(field.count(name), 1u) << name << ": " << *line;
  }
  EXPECT_GT(field["ops"], 0) << *line;
  EXPECT_NEAR(field["throughput"], field["ops"], 0.5) << *line;  // per second of --duration=1s
  EXPECT_GT(field["p50_us"], 0) << *line;
  EXPECT_LE(field["p50_us"], field["p99_us"]) << *line;
  // The whole run's histogram, warmup included: at least the measured ops.
  ASSERT_TRUE(absl::StartsWith(*histogram, "latency_histogram: <=")) << *histogram;
  double whole_run = 0;
  for (absl::string_view bucket : absl::StrSplit(histogram->substr(19), ' ')) {
    double n = 0;
    ASSERT_TRUE(absl::SimpleAtod(bucket.substr(bucket.find(':') + 1), &n)) << *histogram;
    whole_run += n;
  }
  EXPECT_GE(whole_run, field["ops"]) << *histogram;
}

INSTANTIATE_TEST_SUITE_P(EveryProtocol, SpaxosClientTest,
                         ::testing::Values("spaxos", "vr", "fastpaxos", "unreplicated"),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

TEST(SpaxosClientFlagsTest, MaxDatagramOutOfBoundsIsRefusedByName) {
  const std::string config = WriteConfig("bounds");
  for (const char* value : {"255", "65508", "0"}) {
    std::unique_ptr<ChildProcess> client =
        Start({kClient, "--config=" + config, absl::StrCat("--max_datagram=", value)},
              {.err = ChildOutput::Pipe()});
    ASSERT_NE(client, nullptr);
    absl::StatusOr<std::string> line = client->ReadErrLine(absl::Seconds(60));
    ASSERT_TRUE(line.ok()) << line.status();
    EXPECT_EQ(*line, absl::StrCat("--max_datagram=", value, ": ", value,
                                  " bytes, need 256 .. 65507 (UDP payload)"));
    EXPECT_EQ(client->Wait(), 2);
  }
}

// spaxos_replica refuses a flag the chosen protocol would ignore (exit 2,
// naming the flag and why) instead of dropping it silently.
struct Refused {
  std::vector<std::string> flags;
  std::string error;  // the whole stderr line
};

TEST(SpaxosReplicaFlagsTest, FlagsAProtocolWouldIgnoreAreRefused) {
  const std::string config = WriteConfig("refused");
  const Refused cases[] = {
      {{"--protocol=fastpaxos", "--recover"},
       "--recover=true: not for --protocol=fastpaxos (no recovery protocol: a replica restarted "
       "without its state must stay down, as a Fast Paxos acceptor that forgot its votes could "
       "vote twice in one ballot); only for --protocol=spaxos|vr"},
      {{"--protocol=unreplicated", "--recover"},
       "--recover=true: not for --protocol=unreplicated (no recovery protocol: a replica "
       "restarted without its state must stay down, as a Fast Paxos acceptor that forgot its "
       "votes could vote twice in one ballot); only for --protocol=spaxos|vr"},
      {{"--protocol=fastpaxos", "--checkpoint_interval=64"},
       "--checkpoint_interval=64: not for --protocol=fastpaxos (no log compaction); only for "
       "--protocol=spaxos|vr"},
      {{"--protocol=vr", "--multicast=ordered"},
       "--multicast=ordered: not for --protocol=vr (its replicas join no multicast group); only "
       "for --protocol=spaxos"},
      {{"--protocol=fastpaxos", "--mom"},
       "--mom=true: not for --protocol=fastpaxos (its replicas take no MOM packets); only for "
       "--protocol=spaxos"},
      {{"--protocol=spaxos", "--batch=8"},
       "--batch=8: not for --protocol=spaxos (only VR batches prepares); only for --protocol=vr"},
      {{"--protocol=unreplicated", "--max_datagram=512"},
       "--max_datagram=512: not for --protocol=unreplicated (the unreplicated server does not "
       "bound its reply batches by it); only for --protocol=spaxos|vr|fastpaxos"},
      {{"--protocol=unreplicated", "--metrics=127.0.0.1:0"},
       "--metrics=127.0.0.1:0: not for --protocol=unreplicated (the unreplicated server keeps no "
       "stats to export); only for --protocol=spaxos|vr|fastpaxos"},
      {{"--protocol=vr", "--inject_delay=100us"},
       "--inject_delay=100us: only with --inject_reorder"},
  };
  for (const Refused& c : cases) {
    std::vector<std::string> args = {kReplica, "--config=" + config, "--index=0"};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    std::unique_ptr<ChildProcess> replica = Start(args, {.err = ChildOutput::Pipe()});
    ASSERT_NE(replica, nullptr);
    absl::StatusOr<std::string> line = replica->ReadErrLine(absl::Seconds(60));
    ASSERT_TRUE(line.ok()) << line.status();
    EXPECT_EQ(*line, c.error);
    EXPECT_EQ(replica->Wait(), 2) << c.error;
  }
}

TEST(SpaxosReplicaFlagsTest, VrTakesCheckpointsAtTheGivenInterval) {
  const std::string config = WriteConfig("vr_checkpoints");
  std::vector<std::unique_ptr<ChildProcess>> replicas;
  std::string port;
  for (int i = 0; i < 3; ++i) {
    std::vector<std::string> args = {kReplica, "--config=" + config, absl::StrCat("--index=", i),
                                     "--protocol=vr", "--checkpoint_interval=16"};
    if (i == 0) args.push_back("--metrics=127.0.0.1:0");
    replicas.push_back(Start(args, {.err = ChildOutput::Pipe()}));
    ASSERT_NE(replicas.back(), nullptr);
    if (i == 0) {
      const std::string line = WaitForErrLine(*replicas[0], "replica 0 metrics_port=");
      ASSERT_NE(line, "");
      port = line.substr(line.find('=') + 1);
    }
    ASSERT_NE(WaitForErrLine(*replicas.back(), "serving at"), "");
  }
  std::unique_ptr<ChildProcess> client =
      Start({kClient, "--config=" + config, "--protocol=vr", "--clients=2", "--op=put",
             "--warmup=0s", "--duration=1s"},
            {});
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->Wait(), 0);
  // Counters are exported every 100 ms, after the load: a checkpoint per 16
  // executed entries (the default interval, 4096, would take one per 4096).
  double executed = -1, checkpoints = -1;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    const std::string body = Scrape(port);
    executed = Sample(body, "vr_replica_executed_total{replica=\"0\"}");
    checkpoints = Sample(body, "vr_replica_checkpoints_total{replica=\"0\"}");
    if (executed >= 64 && checkpoints >= 0) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_GE(executed, 64);
  EXPECT_GE(checkpoints, executed / 16 - 2) << executed << " executed";
  for (auto& r : replicas) EXPECT_EQ(r->Kill(SIGTERM), 0);
}

}  // namespace
