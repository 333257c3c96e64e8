// Three cm_replica processes on 127.0.0.1 (UDP), clients embedding CmClient:
// machines register, renew leases and regions are placed; the leader is
// SIGKILLed (view change) and the work goes on; it is restarted without its
// state (--recover) and rejoins; then the next leader is killed, so the
// restarted replica must now form the quorum (replicas compact their logs
// every 4 commands, so it catches up from a checkpoint). Every client reads the same
// configuration, and the surviving replicas' state files hold exactly it.
// The only waits are for conditions (a state file saying "normal"), bounded
// by generous deadlines.
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/transport/free_port.h"
#include "farm/cm/cm.pb.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "tests/integration/cm_client.h"
#include "tests/integration/test_process.h"

namespace dctk::integration {
namespace {

namespace cm = farm::cm;

constexpr absl::Duration kDeadline = absl::Seconds(30);

class CmReplicaProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp";
    conf_ = absl::StrCat(dir_, "/cluster.conf");
    std::ofstream out(conf_);
    for (int i = 0; i < 3; ++i) {
      out << "nodes { name: \"cm" << i << "\" address: \"127.0.0.1:" << transport::FreeLoopbackUdpPort() << "\" }\n";
    }
    out << "groups { name: \"cm\" f: 1 members: [\"cm0\", \"cm1\", \"cm2\"] }\n"
        << "timeouts { request_ms: 10 heartbeat_ms: 2 view_change_ms: 100 }\n";
  }

  std::string StateFile(int i) const { return absl::StrCat(dir_, "/cm", i, ".state"); }

  void StartReplica(int i, bool recover) {
    std::vector<std::string> args = {"tests/integration/cm_replica", "--config=" + conf_,
                                     absl::StrCat("--index=", i), "--state_out=" + StateFile(i),
                                     // Compact often: the restarted replica must
                                     // catch up from a checkpoint.
                                     "--checkpoint_interval=4"};
    if (recover) args.push_back("--recover");
    std::remove(StateFile(i).c_str());
    replicas_[i] = StartProcess(args, absl::StrCat(dir_, "/cm", i, ".log"));
    ASSERT_NE(replicas_[i], nullptr);
  }

  std::unique_ptr<CmClient> MakeClient() {
    absl::StatusOr<CmClientOptions> o = CmClientOptionsFromClusterFile(conf_, "cm");
    EXPECT_TRUE(o.ok()) << o.status();
    o->call_timeout = kDeadline;
    absl::StatusOr<std::unique_ptr<CmClient>> c = CmClient::Create(*o);
    EXPECT_TRUE(c.ok()) << c.status();
    return std::move(*c);
  }

  std::string dir_;
  std::string conf_;
  std::unique_ptr<ChildProcess> replicas_[3];
};

cm::Configuration ParseState(const std::string& text) {
  cm::Configuration c;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &c)) << text;
  return c;
}

TEST_F(CmReplicaProcessTest, StateSurvivesLeaderKillsAndReplicasAgree) {
  for (int i = 0; i < 3; ++i) StartReplica(i, /*recover=*/false);
  // One CmClient per FaRM machine, as each farmd embeds one.
  std::vector<std::unique_ptr<CmClient>> machines;
  for (int m = 0; m < 4; ++m) machines.push_back(MakeClient());
  ASSERT_TRUE(machines[0]->Initialize(2, 1 << 20, 600000).ok());
  for (uint32_t m = 1; m <= 3; ++m) {
    ASSERT_TRUE(machines[m - 1]->Join(m, absl::StrCat("10.0.0.", m, ":7100"), "").ok());
  }
  for (int r = 0; r < 3; ++r) ASSERT_TRUE(machines[0]->CreateRegion().ok());
  for (uint32_t m = 1; m <= 3; ++m) ASSERT_TRUE(machines[m - 1]->Renew(m).ok());

  // Replica 0 leads view 0. Kill it: the rest goes through a view change.
  ASSERT_TRUE(WaitForFile(StateFile(0), [](const std::string& s) {
                return absl::StrContains(s, "# leader: true");
              }, kDeadline).ok());
  replicas_[0]->Kill(SIGKILL);
  for (uint32_t m = 1; m <= 3; ++m) ASSERT_TRUE(machines[m - 1]->Renew(m).ok());
  ASSERT_TRUE(machines[3]->Join(4, "10.0.0.4:7100", "").ok());
  ASSERT_TRUE(machines[3]->CreateRegion().ok());

  // Restart it without state; wait until it has rejoined (normal, view >= 1).
  StartReplica(0, /*recover=*/true);
  absl::Status rejoined = WaitForFile(StateFile(0), [](const std::string& s) {
    return absl::StrContains(s, "# status: normal") && !absl::StrContains(s, "# view: 0\n");
  }, kDeadline);
  ASSERT_TRUE(rejoined.ok()) << rejoined;
  // The others' logs start above what it lost: it caught up from a checkpoint.
  EXPECT_FALSE(absl::StrContains(ReadFile(StateFile(0)), "# snapshots_installed: 0\n"))
      << ReadFile(StateFile(0));

  // Kill the current leader too: replicas 0 (restarted) and 2 must serve.
  int leader = -1;
  for (int i = 1; i < 3; ++i) {
    if (absl::StrContains(ReadFile(StateFile(i)), "# leader: true")) leader = i;
  }
  ASSERT_NE(leader, -1) << "no leader among replicas 1 and 2";
  replicas_[leader]->Kill(SIGKILL);
  for (uint32_t m = 1; m <= 4; ++m) ASSERT_TRUE(machines[m - 1]->Renew(m).ok());

  // Every client reads the same configuration, holding everything done.
  absl::StatusOr<cm::Configuration> first = machines[0]->GetConfiguration();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->machines_size(), 4);
  EXPECT_EQ(first->regions_size(), 4);
  EXPECT_EQ(first->id(), 9u);  // Init, 4 joins, 4 regions
  for (auto& c : machines) {
    absl::StatusOr<cm::Configuration> other = c->GetConfiguration();
    ASSERT_TRUE(other.ok()) << other.status();
    EXPECT_EQ(other->SerializeAsString(), first->SerializeAsString());
  }
  machines.clear();

  // Both survivors acknowledged the last Get, so their logs (and states)
  // hold everything; their final state files must equal what clients read.
  for (int i = 0; i < 3; ++i) {
    if (i == leader) continue;
    EXPECT_EQ(replicas_[i]->Kill(SIGTERM), 0) << "replica " << i;
    EXPECT_EQ(ParseState(ReadFile(StateFile(i))).SerializeAsString(), first->SerializeAsString())
        << "replica " << i << ":\n" << ReadFile(StateFile(i));
  }
}

}  // namespace
}  // namespace dctk::integration
