// farmd: a FaRM process. With --role=machine it is one storage machine
// (fabric, regions, participant, lease); with --role=cm it is the
// configuration manager service that places regions, watches leases and
// drives recovery. Both read the common cluster file (common/config): the
// group named by --group (replication PRIMARY_BACKUP, f backups) lists the
// machines in order (machine id = position + 1); its nodes' hosts are the
// hosts a machine listens on (net fabric and control), at the ports
// --fabric_port and --control_port (0, the default: any free port; fixed
// ports let a firewall policy name them); timeouts.lease_ms is the lease. The
// CM prints "cm <address>" on stdout once it listens; machines print
// "machine <id> <control address>".
//
//   farmd --config=cluster.conf --role=cm --group=farm --regions=6 --region_mb=16
//   farmd --config=cluster.conf --role=machine --name=m1 --cm=127.0.0.1:PORT --fabric=shm
//   farmd --config=cluster.conf --role=machine --name=farm0 --cm=10.88.0.2:7101 --fabric=net \
//         --fabric_port=7100 --control_port=7101
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/config/cluster_config.h"
#include "farm/fabric/net_fabric.h"
#include "farm/fabric/shm_fabric.h"
#include "farm/server/cm_service.h"
#include "farm/server/machine_service.h"
#include "glog/logging.h"

ABSL_FLAG(std::string, config, "", "common cluster config file (dctk.config.Cluster text proto)");
ABSL_FLAG(std::string, role, "machine", "machine | cm");
ABSL_FLAG(std::string, group, "farm", "the PRIMARY_BACKUP replica group listing the FaRM machines");
ABSL_FLAG(std::string, name, "", "this machine's node name (role=machine)");
ABSL_FLAG(std::string, cm, "", "the CM service's control address host:port (role=machine)");
ABSL_FLAG(std::string, cm_host, "127.0.0.1", "host the CM listens on (role=cm)");
ABSL_FLAG(std::string, fabric, "shm", "shm | net");
ABSL_FLAG(int, fabric_port, 0, "port the net fabric listens on (role=machine); 0: any free port");
ABSL_FLAG(int, control_port, 0, "port the control server listens on (role=machine); 0: any free port");
ABSL_FLAG(int, replicas, 0, "copies of each region (role=cm); 0: the group's f + 1");
ABSL_FLAG(int, regions, 6, "regions to create (role=cm)");
ABSL_FLAG(int, region_mb, 16, "region size in MiB (role=cm)");
ABSL_FLAG(std::string, txlog_dir, "", "directory for the transaction log (empty: none)");
ABSL_FLAG(bool, fsync, false, "fdatasync every log record before acknowledging it");

namespace {

using dctk::config::ClusterConfig;
using namespace dctk::farm;

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

void WaitForSignal() {
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  while (!g_stop) pause();
}

std::string HostOf(const dctk::transport::Address& a) {
  std::vector<std::string> parts = absl::StrSplit(a.ToString(), ':');
  return parts.empty() ? "127.0.0.1" : parts[0];
}

// "host" (any free port) or "host:port".
std::string Listen(const std::string& host, int port) {
  return port == 0 ? host : absl::StrCat(host, ":", port);
}

int RunCm(const ClusterConfig& c, const ClusterConfig::Group& g) {
  server::CmServiceOptions o;
  o.replicas = static_cast<uint32_t>(absl::GetFlag(FLAGS_replicas) > 0 ? absl::GetFlag(FLAGS_replicas) : g.f + 1);
  o.region_size = uint64_t(absl::GetFlag(FLAGS_region_mb)) << 20;
  o.regions = absl::GetFlag(FLAGS_regions);
  o.lease_ms = absl::ToInt64Milliseconds(c.lease());
  for (size_t i = 0; i < g.members.size(); ++i) o.expected_machines.push_back(static_cast<uint32_t>(i + 1));
  server::CmService cm(o);
  absl::Status s = cm.Start(absl::GetFlag(FLAGS_cm_host));
  if (!s.ok()) {
    LOG(ERROR) << s;
    return 1;
  }
  printf("cm %s\n", cm.address().c_str());
  fflush(stdout);
  WaitForSignal();
  return 0;
}

template <typename F>
int RunMachine(server::MachineServiceOptions o, absl::StatusOr<std::unique_ptr<F>> fabric) {
  if (!fabric.ok()) {
    LOG(ERROR) << "fabric: " << fabric.status();
    return 1;
  }
  auto svc = server::MachineService<F>::Start(o, std::move(*fabric));
  if (!svc.ok()) {
    LOG(ERROR) << "machine " << o.id << ": " << svc.status();
    return 1;
  }
  printf("machine %u %s\n", o.id, (*svc)->control_address().c_str());
  fflush(stdout);
  WaitForSignal();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  FLAGS_logtostderr = true;  // a daemon: its supervisor keeps stderr
  google::InitGoogleLogging(argv[0]);
  absl::StatusOr<ClusterConfig> c = ClusterConfig::Load(absl::GetFlag(FLAGS_config));
  if (!c.ok()) {
    fprintf(stderr, "farmd: %s\n", c.status().ToString().c_str());
    return 2;
  }
  const ClusterConfig::Group* g = c->FindGroup(absl::GetFlag(FLAGS_group));
  if (g == nullptr || g->replication != dctk::config::ReplicaGroup::PRIMARY_BACKUP) {
    fprintf(stderr, "farmd: %s: no PRIMARY_BACKUP group '%s'\n", absl::GetFlag(FLAGS_config).c_str(),
            absl::GetFlag(FLAGS_group).c_str());
    return 2;
  }
  if (absl::GetFlag(FLAGS_role) == "cm") return RunCm(*c, *g);
  if (absl::GetFlag(FLAGS_role) != "machine") {
    fprintf(stderr, "farmd: --role must be machine or cm\n");
    return 2;
  }
  server::MachineServiceOptions o;
  for (size_t i = 0; i < g->members.size(); ++i) {
    if (g->members[i] == absl::GetFlag(FLAGS_name)) {
      o.id = static_cast<uint32_t>(i + 1);
      o.control_host = Listen(HostOf(g->addresses[i]), absl::GetFlag(FLAGS_control_port));
    }
  }
  if (o.id == 0) {
    fprintf(stderr, "farmd: --name=%s is not a member of group '%s'\n", absl::GetFlag(FLAGS_name).c_str(),
            g->name.c_str());
    return 2;
  }
  if (absl::GetFlag(FLAGS_cm).empty()) {
    fprintf(stderr, "farmd: --cm (the CM service's address) is required for role=machine\n");
    return 2;
  }
  for (int port : {absl::GetFlag(FLAGS_fabric_port), absl::GetFlag(FLAGS_control_port)}) {
    if (port < 0 || port > 65535) {
      fprintf(stderr, "farmd: port %d out of range (--fabric_port / --control_port)\n", port);
      return 2;
    }
  }
  o.cm_address = absl::GetFlag(FLAGS_cm);
  if (!absl::GetFlag(FLAGS_txlog_dir).empty()) {
    o.log_path = absl::StrCat(absl::GetFlag(FLAGS_txlog_dir), "/", absl::GetFlag(FLAGS_name), ".txlog");
  }
  o.fsync = absl::GetFlag(FLAGS_fsync) ? tx::FsyncPolicy::kEveryRecord : tx::FsyncPolicy::kNever;
  const std::string kind = absl::GetFlag(FLAGS_fabric);
  if (kind == "shm") return RunMachine<fabric::ShmFabric>(o, fabric::ShmFabric::Create({.machine_id = o.id}));
  if (kind == "net") {
    const std::string host = HostOf(g->addresses[o.id - 1]);
    return RunMachine<fabric::NetFabric>(
        o, fabric::NetFabric::Create(
               {.machine_id = o.id, .listen_host = Listen(host, absl::GetFlag(FLAGS_fabric_port))}));
  }
  fprintf(stderr, "farmd: --fabric must be shm or net\n");
  return 2;
}
