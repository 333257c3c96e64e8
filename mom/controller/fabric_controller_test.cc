// FabricController against in-process switches: each a real ControlService
// on a loopback gRPC port, its data plane a thread draining the mailbox, its
// ports' link state set by the test. A link reported down at either end is
// failed, the serialized group's root moves off a spine that lost its link to
// a receiver's leaf, and a link that comes back is used again only after the
// hold-down. Probes: each fake switch hands the probes it is asked to send to
// its peer's counters (a host's answer to its own), except a chosen fraction
// of those sent on the ports the test makes drop (all of them, or e.g. every
// second one).
#include "mom/controller/fabric_controller.h"

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "mom/switch/control_service.h"

namespace dctk::mom {
namespace {

constexpr int kHoldDown = 3;

// One switch: its control service, gRPC server and link states.
struct FakeSwitch {
  FakeSwitch(std::string name, int ports)
      : core(*ForwardingTable::Create(SwitchConfig(), ports)),
        service(std::move(name), ports, &mailbox),
        link_up(ports, true),
        probes_sent(ports, 0),
        probes_received(ports, 0) {
    service.set_port_reader([this](google::protobuf::RepeatedPtrField<PortStatus>* out) {
      absl::MutexLock lock(&mu);
      for (size_t p = 0; p < link_up.size(); ++p) {
        PortStatus* s = out->Add();
        s->set_port(static_cast<uint32_t>(p));
        s->set_link_up(link_up[p]);
        s->set_probes_sent(probes_sent[p]);
        s->set_probes_received(probes_received[p]);
      }
    });
  }
  void SetLink(int port, bool up) {
    absl::MutexLock lock(&mu);
    link_up[port] = up;
  }
  void Received(int port) {
    absl::MutexLock lock(&mu);
    ++probes_received[port];
  }

  DataPlaneMailbox mailbox;
  SwitchCore core;
  ControlService service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  absl::Mutex mu;
  std::vector<bool> link_up ABSL_GUARDED_BY(mu);
  std::vector<uint64_t> probes_sent ABSL_GUARDED_BY(mu);
  std::vector<uint64_t> probes_received ABSL_GUARDED_BY(mu);
};

class FabricControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string text = "leaf_spine { leaves: 2 spines: 2 hosts_per_leaf: 2 }\n";
    absl::StatusOr<Topology> topo = Topology::LeafSpine(2, 2, 2);
    ASSERT_TRUE(topo.ok());
    for (int sw : topo->switches()) {
      const std::string& name = topo->node(sw).name;
      auto fake = std::make_unique<FakeSwitch>(name, static_cast<int>(topo->ports(sw).size()));
      absl::StatusOr<std::unique_ptr<grpc::Server>> server =
          StartControlServer("127.0.0.1:0", &fake->service, &fake->port);
      ASSERT_TRUE(server.ok()) << server.status();
      fake->server = *std::move(server);
      absl::StrAppend(&text, "switches { name: \"", name, "\" control: \"127.0.0.1:", fake->port,
                      "\" }\n");
      by_name_[name] = fake.get();
      switches_.push_back(std::move(fake));
    }
    // Probes reach the peer switch's port at once, unless the port drops.
    for (int sw : topo->switches()) {
      FakeSwitch* from = by_name_.at(topo->node(sw).name);
      from->service.set_prober([this, from, sw, t = *topo](const StatsRequest& request) {
        std::vector<uint32_t> ports(request.probe_ports().begin(), request.probe_ports().end());
        for (const HostProbe& h : request.host_probes()) ports.push_back(h.port());
        for (uint32_t p : ports) {
          {
            absl::MutexLock lock(&from->mu);
            ++from->probes_sent[p];
          }
          const int peer = t.ports(sw)[p].neighbor;
          bool drops = false;
          {
            absl::MutexLock lock(&dropping_mu_);
            auto it = dropping_.find({sw, static_cast<int>(p)});
            if (it != dropping_.end()) {
              // Probe n is dropped when n * fraction passes a whole number:
              // exactly that fraction, evenly spread.
              Dropping& d = it->second;
              drops = static_cast<int64_t>((d.probes + 1) * d.fraction) >
                      static_cast<int64_t>(d.probes * d.fraction);
              ++d.probes;
            }
          }
          if (drops) continue;
          if (t.is_host(peer)) {
            from->Received(p);  // the host answers; the switch counts the answer
          } else {
            by_name_.at(t.node(peer).name)->Received(t.PortTo(peer, sw));
          }
        }
      });
    }
    absl::StrAppend(&text, "groups { group_id: 7 design: \"serialized\" senders: \"host0_0\" ",
                    "receivers: [\"host0_1\", \"host1_0\", \"host1_1\"] }\n");
    data_plane_ = std::thread([this] {
      while (!stop_.load()) {
        for (auto& s : switches_) s->mailbox.Drain(s->core);
        std::this_thread::yield();
      }
      for (auto& s : switches_) s->mailbox.Close();
    });
    absl::StatusOr<Fabric> fabric = ParseFabric(text, "fabric.conf");
    ASSERT_TRUE(fabric.ok()) << fabric.status();
    fabric_ = *fabric;
    controller_ = std::make_unique<FabricController>(
        *std::move(fabric), absl::Seconds(10), LinkCheckOptions{.holddown_checks = kHoldDown});
  }
  // A new controller for the same switches, judging links by `options`;
  // with `host_ips`, the fabric gives every host an address (so host links
  // are probed).
  void UseController(const LinkCheckOptions& options, bool host_ips = false) {
    Fabric fabric = fabric_;
    for (int h : fabric.topology.hosts()) {
      if (host_ips) fabric.host_ips[h] = 0x0ac90000 + h;
    }
    controller_ = std::make_unique<FabricController>(std::move(fabric), absl::Seconds(10), options);
  }
  void TearDown() override {
    stop_ = true;
    if (data_plane_.joinable()) data_plane_.join();
    for (auto& s : switches_) {
      if (s->server) s->server->Shutdown();
    }
  }

  const Topology& topology() { return controller_->fabric().topology; }
  int Node(const std::string& name) { return *topology().FindNode(name); }
  FakeSwitch& Switch(const std::string& name) { return *by_name_.at(name); }
  std::string Root() {
    return topology().node(controller_->routes().at(0).channels.at(0).source).name;
  }

  // The next check (or the one after: which end is read first) fails `link`,
  // the root's link to leaf1, as dropping; the group moves off `old_root`.
  void ExpectFailedAsDropping(int link, const std::string& old_root) {
    absl::StatusOr<bool> changed = controller_->Reconcile();
    if (changed.ok() && !*changed) changed = controller_->Reconcile();
    ASSERT_TRUE(changed.ok()) << changed.status();
    EXPECT_TRUE(*changed);
    EXPECT_EQ(controller_->links_dropping(), std::set<int>{link});
    EXPECT_TRUE(controller_->links_down().empty());
    EXPECT_NE(Root(), old_root);
    EXPECT_NE(controller_->Describe().find("links dropping: leaf1-" + old_root), std::string::npos)
        << controller_->Describe();
  }

  // Makes switch `node`'s port `port` drop `fraction` of what it sends (1:
  // everything; 0: nothing).
  void SetDropping(int node, int port, bool drop) { SetLoss(node, port, drop ? 1.0 : 0.0); }
  void SetLoss(int node, int port, double fraction) {
    absl::MutexLock lock(&dropping_mu_);
    if (fraction > 0) {
      dropping_[{node, port}] = {.fraction = fraction};
    } else {
      dropping_.erase({node, port});
    }
  }

  struct Dropping {
    double fraction = 1;
    int64_t probes = 0;  // sent on the port since the loss was set
  };

  std::vector<std::unique_ptr<FakeSwitch>> switches_;
  std::map<std::string, FakeSwitch*> by_name_;
  absl::Mutex dropping_mu_;
  std::map<std::pair<int, int>, Dropping> dropping_ ABSL_GUARDED_BY(dropping_mu_);
  Fabric fabric_;
  std::atomic<bool> stop_{false};
  std::thread data_plane_;
  std::unique_ptr<FabricController> controller_;
};

TEST_F(FabricControllerTest, LinkDownMovesTheRootAndComesBackAfterTheHoldDown) {
  absl::StatusOr<bool> changed = controller_->Reconcile();
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(*changed);
  EXPECT_TRUE(controller_->links_down().empty());
  const std::string root = Root();
  ASSERT_EQ(root.rfind("spine", 0), 0u) << root;
  EXPECT_FALSE(*controller_->Reconcile()) << "nothing changed";

  // The root's link to leaf1 goes down at leaf1's end only.
  const int leaf1 = Node("leaf1");
  const int port = topology().PortTo(leaf1, Node(root));
  Switch("leaf1").SetLink(port, false);
  changed = controller_->Reconcile();
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(*changed);
  const int link = topology().ports(leaf1)[port].link;
  EXPECT_EQ(controller_->links_down(), std::set<int>{link});
  EXPECT_NE(Root(), root) << "the old root has no 2-hop path to host1_*";
  EXPECT_TRUE(controller_->failed().empty());
  EXPECT_NE(controller_->Describe().find("links down: leaf1-" + root), std::string::npos)
      << controller_->Describe();

  // Up again: still avoided for kHoldDown - 1 checks, used on the kHoldDown-th.
  Switch("leaf1").SetLink(port, true);
  for (int check = 1; check < kHoldDown; ++check) {
    changed = controller_->Reconcile();
    ASSERT_TRUE(changed.ok());
    EXPECT_FALSE(*changed) << "check " << check;
    EXPECT_EQ(controller_->links_down(), std::set<int>{link});
  }
  // A flap during the hold-down starts it again.
  Switch("leaf1").SetLink(port, false);
  EXPECT_FALSE(*controller_->Reconcile());
  Switch("leaf1").SetLink(port, true);
  for (int check = 1; check < kHoldDown; ++check) EXPECT_FALSE(*controller_->Reconcile());
  changed = controller_->Reconcile();
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(*changed);
  EXPECT_TRUE(controller_->links_down().empty());
}

TEST_F(FabricControllerTest, LinkThatDropsProbesIsFailedAndComesBackAfterTheHoldDown) {
  ASSERT_TRUE(controller_->Reconcile().ok());
  EXPECT_FALSE(*controller_->Reconcile()) << "probes cross every link";
  EXPECT_FALSE(*controller_->Reconcile());
  const std::string root = Root();
  const int root_node = Node(root), leaf1 = Node("leaf1");
  const int link = topology().ports(leaf1)[topology().PortTo(leaf1, root_node)].link;

  // The root's link to leaf1 stays up but drops what the root sends: after
  // kProbeMisses checks without a probe received (one more, depending on
  // which end is read first) the link is failed and the root passed over.
  SetDropping(root_node, topology().PortTo(root_node, leaf1), true);
  constexpr int kProbeMisses = 3;  // FabricController's default
  for (int check = 1; check < kProbeMisses; ++check) {
    EXPECT_FALSE(*controller_->Reconcile()) << "check " << check;
  }
  ASSERT_NO_FATAL_FAILURE(ExpectFailedAsDropping(link, root));
  absl::StatusOr<bool> changed;

  // Still probed while failed: once probes crossed both ways on kHoldDown
  // consecutive checks (one more if the first crossing falls on the next
  // check), the link is used again.
  SetDropping(root_node, topology().PortTo(root_node, leaf1), false);
  for (int check = 1; check < kHoldDown; ++check) {
    EXPECT_FALSE(*controller_->Reconcile()) << "check " << check;
  }
  changed = controller_->Reconcile();
  if (changed.ok() && !*changed) changed = controller_->Reconcile();
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(*changed);
  EXPECT_TRUE(controller_->links_dropping().empty());
}

// Partial loss: the root's link to leaf1 stays up and loses every second
// probe the root sends. No direction is ever silent for kProbeMisses checks,
// but over a window of kWindow checks half the probes went missing (the
// threshold is a quarter): the link is failed as dropping once the window is
// full, and stays failed while it keeps losing. Once the loss stops, it is
// used again when the window's loss fell below half the threshold (at most
// one lossy check of kWindow left), not after the hold-down alone.
TEST_F(FabricControllerTest, LinkThatLosesHalfItsProbesIsFailedAndUsedAgainAfterACleanWindow) {
  constexpr int kWindow = 10;
  UseController({.holddown_checks = kHoldDown,
                 .probe_misses = 3,
                 .probe_loss_window = kWindow,
                 .probe_loss = 0.25});
  ASSERT_TRUE(controller_->Reconcile().ok());  // the first check sets the probe baseline
  const std::string root = Root();
  const int root_node = Node(root), leaf1 = Node("leaf1");
  const int link = topology().ports(leaf1)[topology().PortTo(leaf1, root_node)].link;
  SetLoss(root_node, topology().PortTo(root_node, leaf1), 0.5);

  // Checks 2..kWindow fill the window (one probe per check each way).
  for (int check = 2; check <= kWindow; ++check) {
    absl::StatusOr<bool> changed = controller_->Reconcile();
    ASSERT_TRUE(changed.ok()) << changed.status();
    EXPECT_FALSE(*changed) << "check " << check << ": window not full yet";
  }
  ASSERT_NO_FATAL_FAILURE(ExpectFailedAsDropping(link, root));
  absl::StatusOr<bool> changed;

  // Still losing half: failed for two more windows (probes do cross on
  // kHoldDown consecutive checks now and then; that is not enough).
  for (int check = 1; check <= 2 * kWindow; ++check) {
    EXPECT_FALSE(*controller_->Reconcile()) << "check " << check;
  }
  EXPECT_EQ(controller_->links_dropping(), std::set<int>{link});

  // The loss stops: used again only after a full window without loss.
  SetLoss(root_node, topology().PortTo(root_node, leaf1), 0);
  int checks = 0;
  do {
    changed = controller_->Reconcile();
    ASSERT_TRUE(changed.ok()) << changed.status();
    ++checks;
  } while (!*changed && checks < 3 * kWindow);
  EXPECT_TRUE(controller_->links_dropping().empty());
  EXPECT_GE(checks, kWindow - 2) << "used again before the lossy checks left the window";
  EXPECT_LE(checks, kWindow + 2);
}

// A link losing less than the threshold (every tenth probe, against a
// quarter) is never failed; nor is one losing nothing.
TEST_F(FabricControllerTest, LinkThatLosesLessThanTheThresholdStaysInUse) {
  constexpr int kWindow = 10;
  UseController({.holddown_checks = kHoldDown,
                 .probe_misses = 3,
                 .probe_loss_window = kWindow,
                 .probe_loss = 0.25});
  ASSERT_TRUE(controller_->Reconcile().ok());
  const std::string root = Root();
  const int root_node = Node(root), leaf1 = Node("leaf1");
  SetLoss(root_node, topology().PortTo(root_node, leaf1), 0.1);
  SetLoss(leaf1, topology().PortTo(leaf1, root_node), 0.1);
  for (int check = 1; check <= 5 * kWindow; ++check) {
    absl::StatusOr<bool> changed = controller_->Reconcile();
    ASSERT_TRUE(changed.ok()) << changed.status();
    EXPECT_FALSE(*changed) << "check " << check;
  }
  EXPECT_TRUE(controller_->links_dropping().empty());
  EXPECT_EQ(Root(), root);
}

// A host link whose host stops answering probes (a receiver's, host1_1's) is
// reported as dropping after the misses, but not failed: the group keeps its
// root and no switch-to-switch link is failed. Answers again: no longer
// reported after the hold-down.
TEST_F(FabricControllerTest, HostLinkThatDropsIsReportedNotRoutedAround) {
  UseController({.holddown_checks = kHoldDown}, /*host_ips=*/true);
  ASSERT_TRUE(controller_->Reconcile().ok());
  for (int check = 1; check <= 3; ++check) {
    EXPECT_FALSE(*controller_->Reconcile()) << "hosts answer every probe, check " << check;
  }
  const std::string root = Root();
  const int leaf1 = Node("leaf1"), host = Node("host1_1");
  const int port = topology().PortTo(leaf1, host);
  const int link = topology().ports(leaf1)[port].link;
  // The first check still counts the answer to the probe sent before the
  // drop; the next kProbeMisses are silent.
  SetDropping(leaf1, port, true);
  constexpr int kProbeMisses = 3;
  for (int check = 1; check <= kProbeMisses; ++check) {
    EXPECT_FALSE(*controller_->Reconcile()) << "check " << check;
  }
  absl::StatusOr<bool> changed = controller_->Reconcile();
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(*changed);
  EXPECT_EQ(controller_->host_links_dropping(), std::set<int>{link});
  EXPECT_TRUE(controller_->links_dropping().empty());
  EXPECT_TRUE(controller_->links_down().empty());
  EXPECT_EQ(Root(), root);
  EXPECT_NE(controller_->Describe().find("; host links dropping: leaf1-host1_1; group 7"),
            std::string::npos)
      << controller_->Describe();

  // Likewise the first check after the drop stopped still sees the last
  // probe lost; then kHoldDown answered checks.
  SetDropping(leaf1, port, false);
  for (int check = 1; check <= kHoldDown; ++check) {
    EXPECT_FALSE(*controller_->Reconcile()) << "check " << check;
  }
  changed = controller_->Reconcile();
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(*changed);
  EXPECT_TRUE(controller_->host_links_dropping().empty());
}

TEST_F(FabricControllerTest, NoEligibleRootIsAnErrorAndTheControllerKeepsChecking) {
  ASSERT_TRUE(controller_->Reconcile().ok());
  // Both spines lose their link to leaf1: no root reaches every receiver at
  // the common distance.
  for (const char* spine : {"spine0", "spine1"}) {
    Switch(spine).SetLink(topology().PortTo(Node(spine), Node("leaf1")), false);
  }
  EXPECT_FALSE(controller_->Reconcile().ok());
  Switch("spine1").SetLink(topology().PortTo(Node("spine1"), Node("leaf1")), true);
  for (int check = 1; check < kHoldDown; ++check) EXPECT_FALSE(controller_->Reconcile().ok());
  absl::StatusOr<bool> changed = controller_->Reconcile();
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(*changed);
  EXPECT_EQ(Root(), "spine1");
}

}  // namespace
}  // namespace dctk::mom
