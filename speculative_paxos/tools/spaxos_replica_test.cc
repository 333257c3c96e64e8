// spaxos_replica as a process: a flag the chosen protocol would ignore is
// refused (exit 2, naming the flag and why) instead of being dropped silently,
// and --checkpoint_interval reaches the VR baseline (its replica compacts).
#include <signal.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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

// A 3-replica cluster file on free loopback ports, with a multicast group.
std::string WriteConfig(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name, ".conf");
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

// The value of `name` in a Prometheus text body; -1 if absent.
double Sample(const std::string& body, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    double v = 0;
    if (absl::ConsumePrefix(&line, name + " ") && absl::SimpleAtod(line, &v)) return v;
  }
  return -1;
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
    for (;;) {
      absl::StatusOr<std::string> line = replicas.back()->ReadErrLine(absl::Seconds(60));
      ASSERT_TRUE(line.ok()) << line.status();
      absl::string_view rest = *line;
      if (absl::ConsumePrefix(&rest, "replica 0 metrics_port=")) port = std::string(rest);
      if (absl::StrContains(*line, "serving at")) break;
    }
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
    const std::string body =
        dctk::RunCommand(absl::StrCat("curl -s http://127.0.0.1:", port, "/metrics")).value_or("");
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
