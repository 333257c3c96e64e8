// ReplicaMain: see replica_main.h.
#include "speculative_paxos/tools/replica_main.h"

#include <signal.h>

#include <iostream>
#include <memory>
#include <thread>

#include "absl/algorithm/container.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/transport/reordering_transport.h"
#include "common/transport/timeout.h"
#include "common/transport/udp_transport.h"
#include "glog/logging.h"
#include "speculative_paxos/fast_paxos_replica.h"
#include "speculative_paxos/replica.h"
#include "speculative_paxos/spaxos.pb.h"
#include "speculative_paxos/tools/mom_fabric.h"
#include "speculative_paxos/tools/process_config.h"
#include "speculative_paxos/tools/process_metrics.h"
#include "speculative_paxos/vr_replica.h"

ABSL_FLAG(std::string, config, "", "cluster config file (common/config text proto)");
ABSL_FLAG(std::string, group, "shard0", "replica group in the config");
ABSL_FLAG(std::string, multicast, "", "multicast group the replicas join (optional)");
ABSL_FLAG(int, index, 0, "this replica's index in the group");
ABSL_FLAG(bool, mom, false,
          "spaxos: requests travel as MOM packets (mom/group.h) to the --multicast group");
ABSL_FLAG(std::string, protocol, "spaxos", "spaxos, vr, fastpaxos or unreplicated");
ABSL_FLAG(int, batch, 1, "vr: requests per prepare");
ABSL_FLAG(bool, recover, false, "spaxos, vr: restarted without state; run recovery");
ABSL_FLAG(uint64_t, checkpoint_interval, dctk::spaxos::ReplicaConfig().checkpoint_interval,
          "spaxos, vr: committed entries between checkpoints (log compaction); 0: keep the "
          "whole log");
ABSL_FLAG(std::string, mom_fabric, "",
          "spaxos: requests travel through this MOM group on the switch fabric (a "
          "MomFabricGroup file, mom_fabric.proto, naming a multicast group of --config)");
ABSL_FLAG(int, max_datagram, dctk::spaxos::ReplicaConfig().max_datagram,
          "spaxos, vr, fastpaxos: largest datagram sent; log changes, transfers and checkpoints go "
          "in pieces "
          "that fit (1400: one Ethernet frame, as a MOM switch needs)");
ABSL_FLAG(double, inject_reorder, 0,
          "fault injection: share of received client request datagrams (Request, RequestBatch) "
          "held back for up to --inject_delay, so later ones overtake them (0: off; not with "
          "--mom / --mom_fabric)");
ABSL_FLAG(absl::Duration, inject_delay, absl::Microseconds(50),
          "longest hold of a request held by --inject_reorder (each held (0, inject_delay])");
ABSL_FLAG(uint64_t, inject_seed, 1,
          "seed of --inject_reorder; replica i draws from seed + i, so each holds other requests");
ABSL_FLAG(std::string, metrics, "",
          "serve Prometheus metrics at ip:port (port 0: any, printed on stderr; not for "
          "--protocol=unreplicated)");

namespace dctk::spaxos {
namespace {

// A flag set (away from its default) that `p` would ignore is refused, naming
// why: the process must not run something other than what was asked, least of
// all a Fast Paxos acceptor that lost its votes rejoining as if new.
absl::Status CheckFlagsApply(Protocol p) {
  using P = Protocol;
  struct Use {
    const absl::CommandLineFlag& flag;
    std::vector<Protocol> used_by;
    const char* why;  // what the other protocols lack
  };
  const Use uses[] = {
      {absl::GetFlagReflectionHandle(FLAGS_multicast),
       {P::kSpeculativePaxos},
       "its replicas join no multicast group"},
      {absl::GetFlagReflectionHandle(FLAGS_mom),
       {P::kSpeculativePaxos},
       "its replicas take no MOM packets"},
      {absl::GetFlagReflectionHandle(FLAGS_mom_fabric),
       {P::kSpeculativePaxos},
       "its replicas take no MOM packets"},
      {absl::GetFlagReflectionHandle(FLAGS_batch), {P::kVr}, "only VR batches prepares"},
      {absl::GetFlagReflectionHandle(FLAGS_recover),
       {P::kSpeculativePaxos, P::kVr},
       "no recovery protocol: a replica restarted without its state must stay down, as a Fast "
       "Paxos acceptor that forgot its votes could vote twice in one ballot"},
      {absl::GetFlagReflectionHandle(FLAGS_checkpoint_interval),
       {P::kSpeculativePaxos, P::kVr},
       "no log compaction"},
      {absl::GetFlagReflectionHandle(FLAGS_max_datagram),
       {P::kSpeculativePaxos, P::kVr, P::kFastPaxos},
       "the unreplicated server does not bound its reply batches by it"},
      {absl::GetFlagReflectionHandle(FLAGS_metrics),
       {P::kSpeculativePaxos, P::kVr, P::kFastPaxos},
       "the unreplicated server keeps no stats to export"},
  };
  for (const Use& use : uses) {
    if (use.flag.CurrentValue() == use.flag.DefaultValue() ||
        absl::c_linear_search(use.used_by, p)) {
      continue;
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "--", use.flag.Name(), "=", use.flag.CurrentValue(),
        ": not for --protocol=", ProtocolName(p), " (", use.why, "); only for --protocol=",
        absl::StrJoin(use.used_by, "|",
                      [](std::string* out, Protocol q) { out->append(ProtocolName(q)); })));
  }
  if (absl::GetFlag(FLAGS_inject_reorder) == 0) {
    for (const absl::CommandLineFlag* flag : {&absl::GetFlagReflectionHandle(FLAGS_inject_delay),
                                              &absl::GetFlagReflectionHandle(FLAGS_inject_seed)}) {
      if (flag->CurrentValue() != flag->DefaultValue()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--", flag->Name(), "=", flag->CurrentValue(), ": only with --inject_reorder"));
      }
    }
  }
  return absl::OkStatus();
}

int Run(const AppFactory& make_app) {
  absl::StatusOr<ProcessConfig> pc =
      LoadProcessConfig(absl::GetFlag(FLAGS_config), absl::GetFlag(FLAGS_group),
                        absl::GetFlag(FLAGS_multicast), absl::GetFlag(FLAGS_protocol));
  if (!pc.ok()) {
    std::cerr << pc.status() << "\n";
    return 2;
  }
  const int index = absl::GetFlag(FLAGS_index);
  if (index < 0 || index >= static_cast<int>(pc->replicas.size())) {
    std::cerr << "--index=" << index << " out of range (" << pc->replicas.size()
              << " replicas)\n";
    return 2;
  }
  if (absl::Status s = CheckFlagsApply(pc->protocol); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 2;
  }
  absl::StatusOr<std::unique_ptr<App>> made = make_app();
  if (!made.ok()) {
    std::cerr << made.status() << "\n";
    return 2;
  }
  std::unique_ptr<App> app = std::move(*made);

  // SIGINT / SIGTERM go to a thread that stops the loop.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<transport::UdpTransport>> net =
      transport::UdpTransport::Create();
  if (!net.ok()) {
    std::cerr << net.status() << "\n";
    return 1;
  }
  // --inject_reorder: the protocol registers through a ReorderingTransport.
  transport::Transport* net_for_node = net->get();
  std::unique_ptr<transport::ReorderingTransport> reordering;
  if (const double rate = absl::GetFlag(FLAGS_inject_reorder); rate != 0) {
    if (absl::GetFlag(FLAGS_mom) || !absl::GetFlag(FLAGS_mom_fabric).empty()) {
      std::cerr << "--inject_reorder holds client Request datagrams; MOM packets are not held: "
                   "drop --mom / --mom_fabric\n";
      return 2;
    }
    absl::StatusOr<std::unique_ptr<transport::ReorderingTransport>> made =
        transport::ReorderingTransport::Create(
            net->get(),
            {.rate = rate,
             .max_hold = absl::GetFlag(FLAGS_inject_delay),
             .seed = absl::GetFlag(FLAGS_inject_seed) + index,
             .type_ids = {transport::TypeId<Request>(), transport::TypeId<RequestBatch>()}});
    if (!made.ok()) {
      std::cerr << "--inject_reorder / --inject_delay: " << made.status() << "\n";
      return 2;
    }
    reordering = std::move(*made);
    net_for_node = reordering.get();
  }
  std::unique_ptr<transport::TransportReceiver> node;
  absl::Status started;
  switch (pc->protocol) {
    case Protocol::kSpeculativePaxos: {
      ReplicaConfig rc;
      rc.replicas = pc->replicas;
      rc.group = pc->multicast;
      if (absl::GetFlag(FLAGS_mom)) {
        if (!pc->multicast) {
          std::cerr << "--mom needs --multicast=<group>\n";
          return 2;
        }
        rc.mom = MomGroup(*pc);
        rc.group.reset();
      }
      if (const std::string path = absl::GetFlag(FLAGS_mom_fabric); !path.empty()) {
        absl::StatusOr<MomFabric> fabric = LoadMomFabric(path, absl::GetFlag(FLAGS_config));
        if (!fabric.ok()) {
          std::cerr << fabric.status() << "\n";
          return 2;
        }
        rc.mom = fabric->group;
        rc.group.reset();
        // Joins and sends on the interface of its own address (a fabric host).
        rc.endpoint.multicast_interface_ip = pc->replicas[index].ip();
      }
      // Multicast on loopback needs the loopback interface named explicitly.
      if (pc->replicas[index].ip() >> 24 == 127) rc.endpoint.multicast_interface_ip = 0x7f000001;
      rc.sync_interval = pc->heartbeat;
      rc.leader_timeout = pc->view_change_timeout;
      rc.checkpoint_interval = absl::GetFlag(FLAGS_checkpoint_interval);
      rc.max_datagram = absl::GetFlag(FLAGS_max_datagram);
      auto r = std::make_unique<Replica>(net_for_node, rc, index, app.get(),
                                         absl::GetFlag(FLAGS_recover));
      started = r->Start();
      node = std::move(r);
      break;
    }
    case Protocol::kVr: {
      VrConfig vc{.replicas = pc->replicas,
                  .max_batch = absl::GetFlag(FLAGS_batch),
                  .heartbeat = pc->heartbeat,
                  .view_change_timeout = pc->view_change_timeout,
                  .max_datagram = absl::GetFlag(FLAGS_max_datagram),
                  .checkpoint_interval = absl::GetFlag(FLAGS_checkpoint_interval)};
      auto r = std::make_unique<VrReplica>(net_for_node, vc, index, app.get(),
                                           absl::GetFlag(FLAGS_recover));
      started = r->Start();
      node = std::move(r);
      break;
    }
    case Protocol::kFastPaxos: {
      FastPaxosConfig fc{.replicas = pc->replicas,
                         .heartbeat = pc->heartbeat,
                         .view_change_timeout = pc->view_change_timeout,
                         .max_datagram = absl::GetFlag(FLAGS_max_datagram)};
      auto r = std::make_unique<FastPaxosReplica>(net_for_node, fc, index, app.get());
      started = r->Start();
      node = std::move(r);
      break;
    }
    case Protocol::kUnreplicated: {
      auto r = std::make_unique<UnreplicatedServer>(net_for_node, pc->replicas[0], app.get());
      started = r->Start();
      node = std::move(r);
      break;
    }
  }
  if (!started.ok()) {
    std::cerr << "replica " << index << ": " << started << "\n";
    return 1;
  }
  // Metrics: counters copied from the replica's stats every 100 ms on the loop.
  absl::StatusOr<ServedReplicaMetrics> served;
  std::unique_ptr<transport::Timeout> export_timer;
  if (!absl::GetFlag(FLAGS_metrics).empty()) {
    served = ServeReplicaMetrics(absl::GetFlag(FLAGS_metrics), index, *node);
    if (!served.ok()) {
      std::cerr << "--metrics: " << served.status() << "\n";
      return 1;
    }
    std::cerr << "replica " << index << " metrics_port=" << served->served.server->port()
              << "\n";
    export_timer = std::make_unique<transport::Timeout>(net->get(), absl::Milliseconds(100),
                                                        [&] { served->export_once(); });
    export_timer->Start();
  }
  std::thread stopper([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    (*net)->Stop();
  });
  std::cerr << "replica " << index << " serving at " << pc->replicas[index].ToString() << "\n";
  (*net)->Run();
  stopper.join();
  export_timer.reset();
  if (auto* r = dynamic_cast<Replica*>(node.get())) {
    const ReplicaStats& s = r->stats();
    std::cerr << "replica " << index << ": requests " << s.requests << " commits " << s.commits
              << " reconciliations " << s.reconciliations << " order_repairs " << s.order_repairs
              << " view_changes " << s.view_changes
              << " transfers " << s.transfers << " rolled_back " << s.rolled_back
              << " log_end " << r->log().end() << " log_entries " << r->log().size()
              << " checkpoints " << s.checkpoints << " snapshots_installed "
              << s.snapshots_installed << " checkpoint_bytes " << r->checkpoint_bytes() << "\n";
  }
  if (auto* r = dynamic_cast<FastPaxosReplica*>(node.get())) {
    const FastPaxosStats& s = r->stats();
    std::cerr << "replica " << index << ": votes " << s.votes << " fast_decisions "
              << s.fast_decisions << " classic_rounds " << s.classic_rounds << " classic_entries "
              << s.classic_entries << " executed " << s.executed << " fetched " << s.fetched
              << "\n";
  }
  if (reordering != nullptr) {
    std::cerr << "replica " << index << ": inject_reorder client_datagrams "
              << reordering->stats().matched << " held " << reordering->stats().held
              << " overtaken " << reordering->stats().overtaken << "\n";
  }
  node.reset();
  return 0;
}

}  // namespace

int ReplicaMain(int argc, char** argv, const AppFactory& make_app) {
  absl::ParseCommandLine(argc, argv);
  google::InitGoogleLogging(argv[0]);
  return Run(make_app);
}

}  // namespace dctk::spaxos
