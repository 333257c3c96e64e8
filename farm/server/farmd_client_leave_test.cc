// Clients that leave (FarmClient::Leave) with farmd processes (shm fabric, 3
// machines, 10 s leases: long enough that machines under CPU load keep
// theirs, and a client that did not leave would block its id for that long): 300 short clients one
// after another against one cluster, each connected as the workload programs connect theirs
// (workload::ConnectClients from id 100), each committing an increment and
// leaving as those programs do at the end of a run (workload::LeaveClients).
//
// Before Leave, a finished client stayed a member until its lease ran out;
// the CM then removed it as failed (a reconfiguration and a recovery) and
// retired its id, so ConnectClients moved to the next id each time and a
// cluster ran out of shm ids (< 256) after a few hundred clients. Now every
// client leaves cleanly and the next one gets id 100 again: the machines
// connect their fabric to the new process under that id and wire it rings,
// the configuration never changes and nothing is listed as failed. A client
// leaving has every machine drop its rings (UNWIRE), and the machines' shm
// fabrics reuse the freed key slots: here they hold at most 32 regions at
// once (--shm_region_slots), and each client takes 4 keys a machine (rings
// with its participant and its ship worker), so without either the machines
// run out of keys within a few clients; after the last client left, no
// machine holds a ring of id 100 (machine_service_test: a removed
// coordinator's rings go when its removal's configuration is installed).
//
// A client that cannot tell whether a machine handled what it sent (the
// machine does not answer within FarmClientOptions::leave_settle: paused
// here) is removed as failed instead, and recovery decides what it left.
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "farm/client/retry.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/server/control.h"
#include "farm/server/control.pb.h"
#include "farm/server/counters.h"
#include "farm/server/farmd_process.h"
#include "farm/tx/transaction.h"
#include "farm/workload/cluster_clients.h"
#include "gtest/gtest.h"

namespace dctk::farm {
namespace {

using fabric::ShmFabric;
using server::FarmdCluster;

// The ring pairs each storage machine still holds for coordinator `client`
// (UNWIRE drops them: a second one finds none).
std::vector<uint32_t> RingsHeldFor(const FarmdCluster& cluster, fabric::MachineId client) {
  std::vector<uint32_t> out;
  absl::StatusOr<std::pair<bool, cm::Configuration>> state = cluster.CmState();
  EXPECT_TRUE(state.ok()) << state.status();
  if (!state.ok()) return out;
  server::Unwire u;
  u.set_machine(client);
  for (const cm::Machine& m : state->second.machines()) {
    if (m.client()) continue;
    auto ch = server::ControlChannel::Connect(m.control());
    absl::StatusOr<std::string> r =
        ch.ok() ? (*ch)->Call(server::UNWIRE, u.SerializeAsString(), absl::Seconds(10))
                : ch.status();
    server::UnwireReply reply;
    EXPECT_TRUE(r.ok() && reply.ParseFromString(*r)) << "machine " << m.id() << ": " << r.status();
    out.push_back(reply.rings());
  }
  return out;
}

constexpr int kClients = 300;

// One client as a workload program connects it (ConnectClients), and its
// "left" line once it left (LeaveClients).
struct ShortClient {
  workload::ClusterClients<ShmFabric> clients;
  std::string left_line;
  absl::Status left;

  client::FarmClient<ShmFabric>& client() { return *clients.clients[0]; }
  fabric::MachineId id() const { return clients.fabrics[0]->machine_id(); }
  void Leave() {
    char* buf = nullptr;
    size_t size = 0;
    FILE* out = open_memstream(&buf, &size);
    left = workload::LeaveClients(clients, out);
    fclose(out);
    left_line.assign(buf, size);
    free(buf);
  }
};

absl::StatusOr<ShortClient> Connect(const std::string& cm) {
  workload::ClusterClientOptions o;
  o.cm_address = cm;
  o.fabric = "shm";
  o.first_id = 100;
  absl::StatusOr<workload::ClusterClients<ShmFabric>> c = workload::ConnectClients<ShmFabric>(o, 1);
  if (!c.ok()) return c.status();
  return ShortClient{std::move(*c), "", absl::OkStatus()};
}

TEST(FarmdClientLeaveTest, ShortClientsOneAfterAnotherReuseTheirIdWithoutAReconfiguration) {
  const std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/leave");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  FarmdCluster cluster(server::WriteFarmConfig(dir, 3, /*lease_ms=*/10000), dir, "shm",
                       {"--ship_workers=1", "--shm_region_slots=32"});
  ASSERT_TRUE(cluster.Start().ok());
  GlobalAddress counter;
  uint64_t config = 0;  // the first client's
  for (int i = 0; i < kClients; ++i) {
    absl::StatusOr<ShortClient> c = Connect(cluster.cm_address());
    ASSERT_TRUE(c.ok()) << "client " << i << ": " << c.status();
    ASSERT_EQ(c->id(), 100u) << "client " << i << " did not get the id its predecessor left";
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    if (i == 0) config = c->client().config_id();
    EXPECT_EQ(c->client().config_id(), config) << "client " << i;
    if (i == 0) {
      const RegionId region = c->client().configuration().regions(0).id();
      absl::StatusOr<GlobalAddress> created = client::RetryWithRefresh(
          c->client(), deadline, [&] { return server::NewCounter(c->client().tx(), region); });
      ASSERT_TRUE(created.ok()) << created.status();
      counter = *created;
    }
    const absl::Status inc = client::RetryWithRefresh(
        c->client(), deadline, [&] { return server::IncrementCounter(c->client().tx(), counter); });
    ASSERT_TRUE(inc.ok()) << "client " << i << ": " << inc;
    c->Leave();
    ASSERT_TRUE(c->left.ok()) << "client " << i << ": " << c->left;
    ASSERT_EQ(c->left_line, "left clients=1 clean=1 ids=100-100\n") << "client " << i;
    ASSERT_EQ(c->client().wiring_stats().unwired, 3u)
        << "client " << i << ": machines that dropped its rings";
    const absl::Status again = c->client().Leave();
    EXPECT_TRUE(absl::IsFailedPrecondition(again)) << again;
    EXPECT_NE(again.message().find("client 100 left the cluster"), std::string::npos) << again;
  }

  absl::StatusOr<ShortClient> last = Connect(cluster.cm_address());
  ASSERT_TRUE(last.ok()) << last.status();
  absl::StatusOr<uint64_t> n =
      client::RetryWithRefresh(last->client(), absl::Now() + absl::Seconds(60),
                               [&] { return server::ReadCounter(last->client().tx(), counter); });
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, static_cast<uint64_t>(kClients));
  last->Leave();
  ASSERT_TRUE(last->left.ok()) << last->left;
  EXPECT_EQ(RingsHeldFor(cluster, 100), std::vector<uint32_t>(3, 0u))
      << "rings of a client that left";

  absl::StatusOr<std::pair<bool, cm::Configuration>> end = cluster.CmState();
  ASSERT_TRUE(end.ok()) << end.status();
  const cm::Configuration& after = end->second;
  EXPECT_EQ(after.id(), config) << "a client's departure changed the configuration";
  EXPECT_EQ(after.failed_size(), 0) << "a client was removed as failed";
  ASSERT_EQ(after.machines_size(), 3) << "a client is still a member";
  for (const cm::Machine& m : after.machines()) EXPECT_FALSE(m.client()) << m.id();
  printf("%d clients under id 100, configuration %lu throughout\n", kClients + 1,
         static_cast<unsigned long>(after.id()));
}

// A client's coordinator incarnation is the one the CM issued at its Join,
// not its start time: client A, whose host clock ran an hour ahead (its
// start time then, set as its incarnation: the default before), commits and
// leaves; client B rejoins under id 100 with an earlier start time and
// commits (by start time it would have been refused as the process A
// replaced); client C, under id 100 with an incarnation older than B's (as
// a replaced process's would be), is refused, naming both.
TEST(FarmdClientLeaveTest, ARejoiningClientTakesTheIncarnationTheCmIssued) {
  const std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/incarnation");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  FarmdCluster cluster(server::WriteFarmConfig(dir, 3, /*lease_ms=*/10000), dir, "shm");
  ASSERT_TRUE(cluster.Start().ok());
  auto connect = [&](uint64_t incarnation) {
    client::FarmClientOptions o;
    o.machine = 100;
    o.cm_address = cluster.cm_address();
    o.tx.incarnation = incarnation;
    return client::FarmClient<ShmFabric>::Connect(o, *ShmFabric::Create({.machine_id = 100}));
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  const uint64_t ahead = tx::StartIncarnation() + uint64_t{3600} * 1000000;
  GlobalAddress counter;
  {
    auto a = connect(ahead);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_EQ((*a)->tx().incarnation(), ahead);
    const RegionId region = (*a)->configuration().regions(0).id();
    absl::StatusOr<GlobalAddress> created = client::RetryWithRefresh(
        **a, deadline, [&] { return server::NewCounter((*a)->tx(), region); });
    ASSERT_TRUE(created.ok()) << created.status();
    counter = *created;
    ASSERT_TRUE((*a)->Leave().ok());
  }

  uint64_t issued = 0;
  {
    auto b = connect(0);
    ASSERT_TRUE(b.ok()) << b.status();
    absl::StatusOr<std::pair<bool, cm::Configuration>> state = cluster.CmState();
    ASSERT_TRUE(state.ok()) << state.status();
    for (const cm::Machine& m : state->second.machines()) {
      if (m.id() == 100) issued = m.incarnation();
    }
    EXPECT_EQ((*b)->tx().incarnation(), issued) << "not the incarnation the CM issued";
    EXPECT_LT(tx::StartIncarnation(), ahead) << "B starts earlier by the clocks";
    const absl::Status inc = client::RetryWithRefresh(
        **b, deadline, [&] { return server::IncrementCounter((*b)->tx(), counter); });
    EXPECT_TRUE(inc.ok()) << inc;
    ASSERT_TRUE((*b)->Leave().ok());
  }

  auto c = connect(issued - 1);
  ASSERT_TRUE(c.ok()) << c.status();
  // Retried while a loaded machine times out or it conflicts, not once refused.
  absl::Status stale = server::IncrementCounter((*c)->tx(), counter);
  while ((absl::IsUnavailable(stale) || absl::IsAborted(stale)) && absl::Now() < deadline) {
    (void)(*c)->Refresh();
    stale = server::IncrementCounter((*c)->tx(), counter);
  }
  EXPECT_TRUE(absl::IsFailedPrecondition(stale)) << stale;
  EXPECT_NE(stale.message().find(absl::StrCat("is of incarnation ", issued - 1,
                                              " of coordinator 100 (slot 0), which incarnation ",
                                              issued, " replaced")),
            std::string::npos)
      << stale;
}

TEST(FarmdClientLeaveTest, AClientLeavingWhileAMachineIsSilentIsRemovedAsFailed) {
  const std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/silent");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  FarmdCluster cluster(server::WriteFarmConfig(dir, 3, /*lease_ms=*/10000), dir, "shm");
  ASSERT_TRUE(cluster.Start().ok());
  client::FarmClientOptions o;
  o.machine = 100;
  o.cm_address = cluster.cm_address();
  o.leave_settle = absl::Milliseconds(300);
  auto c = client::FarmClient<ShmFabric>::Connect(o, *ShmFabric::Create({.machine_id = 100}));
  ASSERT_TRUE(c.ok()) << c.status();
  const RegionId region = (*c)->configuration().regions(0).id();
  absl::StatusOr<GlobalAddress> counter = client::RetryWithRefresh(
      **c, absl::Now() + absl::Seconds(60), [&] { return server::NewCounter((*c)->tx(), region); });
  ASSERT_TRUE(counter.ok()) << counter.status();
  const uint64_t config = (*c)->config_id();

  ASSERT_TRUE(cluster.machine(1).Pause());
  const absl::Status left = (*c)->Leave();
  cluster.machine(1).Signal(SIGCONT);
  EXPECT_TRUE(absl::IsFailedPrecondition(left)) << left;
  EXPECT_NE(left.message().find("machines not answering"), std::string::npos) << left;
  EXPECT_NE(left.message().find("removed it as failed"), std::string::npos) << left;
  absl::StatusOr<std::pair<bool, cm::Configuration>> state = cluster.CmState();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_GT(state->second.id(), config);
  ASSERT_EQ(state->second.failed_size(), 1);
  EXPECT_EQ(state->second.failed(0), 100u);
}

}  // namespace
}  // namespace dctk::farm
