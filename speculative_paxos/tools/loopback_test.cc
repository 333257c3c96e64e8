// Real processes: 3 spaxos_replica processes and 4 independent spaxos_client
// processes (--verify) over UDP on 127.0.0.1. The leader is killed (SIGKILL)
// mid-run and restarted without its state (--recover); every client must see
// all its acknowledged writes afterwards. The sleeps only place the fault in
// the middle of the run; success is the clients' exit status. Run with the
// default log compaction and with a checkpoint every 64 entries, where the
// restarted leader must copy a checkpoint (its log says so at exit). And with
// reordering injected at every replica (--inject_reorder: client requests held
// back so later ones overtake them), Speculative Paxos over a loopback
// multicast group and VR still complete every --verify request.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

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

const char kReplicaBin[] = "speculative_paxos/tools/spaxos_replica";
const char kClientBin[] = "speculative_paxos/tools/spaxos_client";

// A fresh directory `name` under the test's temporary directory.
std::string TestDir(const std::string& name) {
  const std::string tmp = std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp";
  const std::string dir = absl::StrCat(tmp, "/", name);
  mkdir(dir.c_str(), 0755);
  return dir;
}

// Writes dir/shard.conf: replicas r0..r2 on free loopback ports and a
// multicast group "ordered" they join (a per-process address); returns its path.
std::string WriteConfig(const std::string& dir) {
  const std::string conf = absl::StrCat(dir, "/shard.conf");
  std::ofstream out(conf);
  for (int i = 0; i < 3; ++i) {
    out << "nodes { name: \"r" << i
        << "\" address: \"127.0.0.1:" << dctk::transport::FreeLoopbackUdpPort() << "\" }\n";
  }
  out << "nodes { name: \"clients\" address: \"127.0.0.1:0\" }\n"
      << "groups { name: \"shard0\" f: 1 members: [\"r0\", \"r1\", \"r2\"] }\n"
      << "multicast_groups { name: \"ordered\" address: \"239.255." << getpid() % 250 << "."
      << getpid() / 250 % 250 + 1 << ":" << dctk::transport::FreeLoopbackUdpPort()
      << "\" members: [\"r0\", \"r1\", \"r2\"] senders: [\"clients\"] }\n"
      << "timeouts { request_ms: 10 heartbeat_ms: 2 view_change_ms: 100 }\n";
  return conf;
}

// Runs the group (failures are test failures); returns the restarted replica 0's log.
std::string RunGroup(uint64_t checkpoint_interval) {
  const std::string dir = TestDir(absl::StrCat("ckpt", checkpoint_interval));
  const std::string conf = WriteConfig(dir);
  const std::string replica_bin = kReplicaBin;
  const std::string client_bin = kClientBin;
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

// 3 replicas of `protocol` holding back 5% of client request datagrams each
// (own seed per replica), 4 --verify client processes: every client must
// complete; returns the replicas' logs (each counts what it held).
std::string RunWithInjectedReorder(const std::string& protocol,
                                   const std::vector<std::string>& extra) {
  const std::string dir = TestDir("reorder-" + protocol);
  const std::string conf = WriteConfig(dir);
  std::vector<std::unique_ptr<dctk::ChildProcess>> replicas;
  for (int i = 0; i < 3; ++i) {
    std::vector<std::string> args = {kReplicaBin,
                                     "--config=" + conf,
                                     absl::StrCat("--index=", i),
                                     "--protocol=" + protocol,
                                     "--inject_reorder=0.05",
                                     "--inject_delay=50us"};
    args.insert(args.end(), extra.begin(), extra.end());
    replicas.push_back(Start(args, absl::StrCat(dir, "/replica", i, ".log")));
    if (replicas.back() == nullptr) return "";
  }
  absl::SleepFor(absl::Milliseconds(300));  // sockets bound
  std::vector<std::unique_ptr<dctk::ChildProcess>> clients;
  for (int j = 0; j < 4; ++j) {
    std::vector<std::string> args = {kClientBin,     "--config=" + conf, "--protocol=" + protocol,
                                     "--verify",     "--clients=2",      "--warmup=0s",
                                     "--duration=2s"};
    args.insert(args.end(), extra.begin(), extra.end());
    clients.push_back(Start(args, absl::StrCat(dir, "/client", j, ".log")));
    if (clients.back() == nullptr) return "";
  }
  for (int j = 0; j < 4; ++j) {
    EXPECT_EQ(clients[j]->Wait(), 0)
        << "client " << j << ": " << ReadFile(absl::StrCat(dir, "/client", j, ".log"))
        << "\nreplica 0: " << ReadFile(absl::StrCat(dir, "/replica0.log"));
  }
  std::string logs;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(replicas[i]->Kill(SIGTERM), 0);
    logs += ReadFile(absl::StrCat(dir, "/replica", i, ".log"));
  }
  return logs;
}

TEST(LoopbackTest, SpeculativePaxosCompletesEveryRequestUnderInjectedReorder) {
  const std::string logs = RunWithInjectedReorder("spaxos", {"--multicast=ordered"});
  EXPECT_NE(logs.find("inject_reorder client_datagrams"), std::string::npos) << logs;
  // Every replica held some requests, and later ones overtook some of them.
  EXPECT_EQ(logs.find(" held 0 "), std::string::npos) << logs;
  EXPECT_EQ(logs.find(" overtaken 0\n"), std::string::npos) << logs;
}

TEST(LoopbackTest, VrCompletesEveryRequestUnderInjectedReorder) {
  const std::string logs = RunWithInjectedReorder("vr", {});
  EXPECT_NE(logs.find("inject_reorder client_datagrams"), std::string::npos) << logs;
}

}  // namespace
