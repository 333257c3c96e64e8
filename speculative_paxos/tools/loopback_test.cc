// Real processes: 3 spaxos_replica processes and 4 independent spaxos_client
// processes (--verify) over UDP on 127.0.0.1. The leader is killed (SIGKILL)
// mid-run and restarted without its state (--recover); every client must see
// all its acknowledged writes afterwards. The sleeps only place the fault in
// the middle of the run; success is the clients' exit status. Run with the
// default log compaction and with a checkpoint every 64 entries, where the
// restarted leader must copy a checkpoint (its log says so at exit).
#include <signal.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/process/child_process.h"
#include "common/transport/free_port.h"
#include "gtest/gtest.h"
#include "speculative_paxos/replica.h"

namespace {

// `args` with stdout and stderr appended to `log`; SIGKILLed and reaped if
// still running at scope exit; nullptr (a test failure) if it cannot start.
std::unique_ptr<dctk::ChildProcess> Start(std::vector<std::string> args, const std::string& log) {
  absl::StatusOr<std::unique_ptr<dctk::ChildProcess>> child =
      dctk::ChildProcess::Start(std::move(args), dctk::ChildOptions::LogTo(log));
  EXPECT_TRUE(child.ok()) << child.status();
  return child.ok() ? *std::move(child) : nullptr;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs the group (failures are test failures); returns the restarted replica 0's log.
std::string RunGroup(uint64_t checkpoint_interval) {
  const std::string tmp = std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp";
  const std::string dir = absl::StrCat(tmp, "/ckpt", checkpoint_interval);
  mkdir(dir.c_str(), 0755);
  const std::string conf = absl::StrCat(dir, "/shard.conf");
  {
    std::ofstream out(conf);
    for (int i = 0; i < 3; ++i) {
      out << "nodes { name: \"r" << i
          << "\" address: \"127.0.0.1:" << dctk::transport::FreeLoopbackUdpPort() << "\" }\n";
    }
    out << "groups { name: \"shard0\" f: 1 members: [\"r0\", \"r1\", \"r2\"] }\n"
        << "timeouts { request_ms: 10 heartbeat_ms: 2 view_change_ms: 100 }\n";
  }
  const std::string replica_bin = "speculative_paxos/tools/spaxos_replica";
  const std::string client_bin = "speculative_paxos/tools/spaxos_client";
  auto replica_args = [&](int i, bool recover) {
    std::vector<std::string> a = {replica_bin, "--config=" + conf, absl::StrCat("--index=", i),
                                  absl::StrCat("--checkpoint_interval=", checkpoint_interval)};
    if (recover) a.push_back("--recover");
    return a;
  };
  std::vector<std::unique_ptr<dctk::ChildProcess>> replicas;
  for (int i = 0; i < 3; ++i) {
    replicas.push_back(Start(replica_args(i, false), absl::StrCat(dir, "/replica", i, ".log")));
    if (replicas.back() == nullptr) return "";
  }
  absl::SleepFor(absl::Milliseconds(300));  // sockets bound
  std::vector<std::unique_ptr<dctk::ChildProcess>> clients;
  for (int j = 0; j < 4; ++j) {
    clients.push_back(Start(std::vector<std::string>{client_bin, "--config=" + conf, "--verify",
                                                     "--clients=1", "--warmup=0s", "--duration=3s"},
                            absl::StrCat(dir, "/client", j, ".log")));
    if (clients.back() == nullptr) return "";
  }
  absl::SleepFor(absl::Seconds(1));
  replicas[0]->Kill(SIGKILL);
  absl::SleepFor(absl::Milliseconds(500));
  replicas[0] = Start(replica_args(0, true), absl::StrCat(dir, "/replica0-restarted.log"));
  if (replicas[0] == nullptr) return "";
  for (int j = 0; j < 4; ++j) {
    EXPECT_EQ(clients[j]->Wait(), 0)
        << "client " << j << ": " << ReadFile(absl::StrCat(dir, "/client", j, ".log"))
        << "\nreplica 1: " << ReadFile(absl::StrCat(dir, "/replica1.log"))
        << "\nconfig: " << ReadFile(conf);
  }
  for (auto& r : replicas) EXPECT_EQ(r->Kill(SIGTERM), 0);
  return ReadFile(absl::StrCat(dir, "/replica0-restarted.log"));
}

TEST(LoopbackTest, LeaderKilledAndRestartedLosesNoAcknowledgedWrite) {
  RunGroup(dctk::spaxos::ReplicaConfig().checkpoint_interval);
}

TEST(LoopbackTest, RestartedLeaderRecoversFromCheckpoint) {
  const std::string log = RunGroup(64);
  EXPECT_EQ(log.find("snapshots_installed 0 "), std::string::npos) << log;
  EXPECT_NE(log.find("snapshots_installed "), std::string::npos) << log;
}

}  // namespace
