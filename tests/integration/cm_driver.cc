// cm_driver: FaRM's configuration manager service (farm/server CmService:
// bootstrap, leases, Tick every lease/4, recovery over the control plane)
// whose every command runs on the Speculative Paxos CM replicas (cm_replica)
// through CmClient. FaRM machines register with it exactly as with
// `farmd --role=cm` (`farmd --cm=ADDRESS`); the configuration itself lives on
// the replicas, so the driver can be killed and restarted: over placed
// regions it is ready at once (no second bootstrap). A (re)started driver
// sends no Tick during its first lease: the machines could not renew while it
// was down, so none is expired for that.
//
// Configured from the common cluster file: the CONSENSUS group --cm_group
// (the replicas; timeouts.request_ms is the resend timeout), the
// PRIMARY_BACKUP group --farm_group (expected machines 1..n; f + 1 copies of
// each region unless --replicas), timeouts.lease_ms (the lease).
//
// Stdout, machine-readable: "cm ADDRESS" once it listens, then one line per
// --stats_ms:
//   cm_driver t=3.0 commands=42 errors=0 renew_p50_us=700 renew_p99_us=1500
//     tick_p50_us=650 fast_path=40 slow_path=2 resends=1 spec_success=0.9524
//     config=9 machines=3 clients=1 regions=6 lost=0 restarting=0 recoveries=0 last_recovery_ms=0
// (one line; `commands`, `errors` and the Speculative Paxos completions are
// cumulative, percentiles over the interval; `errors`: commands with no reply
// from the replicas; `spec_success`: fast_path / completed).
//
//   cm_driver --config=cluster.conf --listen=10.88.0.2 --port=7101 --regions=6 --region_mb=16
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/config/cluster_config.h"
#include "common/metrics/histogram.h"
#include "farm/server/cm_service.h"
#include "glog/logging.h"
#include "tests/integration/cm_client.h"

ABSL_FLAG(std::string, config, "", "common cluster file (dctk.config.Cluster text proto)");
ABSL_FLAG(std::string, cm_group, "cm", "the CONSENSUS group of the CM replicas");
ABSL_FLAG(std::string, mom_group, "",
          "multicast group of the config file to send CM requests through (MOM; the replicas "
          "run with the same --mom_group); empty: one unicast copy per replica");
ABSL_FLAG(std::string, farm_group, "farm", "the PRIMARY_BACKUP group listing the FaRM machines");
ABSL_FLAG(std::string, listen, "127.0.0.1", "IP the control server listens on (machines' --cm)");
ABSL_FLAG(int, port, 0, "fixed control port (kept across restarts); 0: any free port, printed");
ABSL_FLAG(std::string, bind, "", "IP the CM client's UDP sockets bind to (default: --listen)");
ABSL_FLAG(int, replicas, 0, "copies of each region; 0: the farm group's f + 1");
ABSL_FLAG(int, regions, 6, "regions to create at bootstrap");
ABSL_FLAG(int, region_mb, 16, "region size in MiB");
ABSL_FLAG(int, concurrency, 4, "CM commands in flight to the replicas at once");
ABSL_FLAG(int, start_timeout_s, 30, "how long to wait for the replicas to answer Init");
ABSL_FLAG(int, stats_ms, 1000, "interval of the stats line (0: none)");
ABSL_FLAG(bool, restore_when_down, true,
          "when every FaRM machine died (all regions' copies gone), wait for them to come back with their files and "
          "restore the cluster from them (farm/server CmServiceOptions::restore_when_down)");
ABSL_FLAG(int, restart_wait_s, 0,
          "a restore from the machines' files waits this long for every machine, then restores what came back "
          "(regions with no copy back stay lost, named in the log); 0: wait for all");

namespace dctk::integration {
namespace {

namespace cm = farm::cm;
using metrics::Histogram;

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop.store(true); }

// Latency of the commands sent to the replicas, by kind, per interval.
class CommandStats {
 public:
  void Record(const cm::Command& c, absl::Duration took, bool replied) {
    const uint64_t us = static_cast<uint64_t>(absl::ToInt64Microseconds(took));
    absl::MutexLock l(&mu_);
    ++commands_;
    if (!replied) {
      ++errors_;
      return;
    }
    if (c.has_renew()) renew_.Record(us);
    if (c.has_tick()) tick_.Record(us);
  }
  std::string Line() {
    absl::MutexLock l(&mu_);
    std::string s = absl::StrCat("commands=", commands_, " errors=", errors_,
                                 " renew_p50_us=", renew_.ValueAtQuantile(0.5),
                                 " renew_p99_us=", renew_.ValueAtQuantile(0.99),
                                 " tick_p50_us=", tick_.ValueAtQuantile(0.5));
    renew_.Clear();
    tick_.Clear();
    return s;
  }

 private:
  absl::Mutex mu_;
  uint64_t commands_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t errors_ ABSL_GUARDED_BY(mu_) = 0;
  Histogram renew_ ABSL_GUARDED_BY(mu_);
  Histogram tick_ ABSL_GUARDED_BY(mu_);
};

// The CM client's Speculative Paxos completions since start: fast path (a
// superquorum of matching speculative replies, one round trip) vs fallbacks.
std::string SpeculationLine(CmClient& client) {
  const spaxos::ClientStats s = client.stats();
  return absl::StrFormat("fast_path=%d slow_path=%d resends=%d spec_success=%.4f", s.fast_path, s.slow_path,
                         s.resends, s.SpeculativeSuccessRate());
}

std::string ConfigLine(const farm::server::CmService& svc) {
  const cm::Configuration c = svc.config();
  int machines = 0, clients = 0;
  for (const cm::Machine& m : c.machines()) (m.client() ? clients : machines) += 1;
  const farm::server::CmRecoveryStats r = svc.recovery_stats();
  int lost = 0;
  for (const cm::Region& region : c.regions()) lost += region.lost();
  return absl::StrCat("config=", c.id(), " machines=", machines, " clients=", clients,
                      " regions=", c.regions_size(), " lost=", lost, " restarting=", c.restarting() ? 1 : 0,
                      " recoveries=", r.recoveries,
                      " last_recovery_ms=", absl::ToInt64Milliseconds(r.last_duration));
}

int Main() {
  const std::string path = absl::GetFlag(FLAGS_config);
  absl::StatusOr<config::ClusterConfig> cluster = config::ClusterConfig::Load(path);
  if (!cluster.ok()) {
    fprintf(stderr, "cm_driver: %s\n", cluster.status().ToString().c_str());
    return 2;
  }
  const config::ClusterConfig::Group* farm = cluster->FindGroup(absl::GetFlag(FLAGS_farm_group));
  if (farm == nullptr || farm->replication != config::ReplicaGroup::PRIMARY_BACKUP) {
    fprintf(stderr, "cm_driver: %s: no PRIMARY_BACKUP group '%s'\n", path.c_str(),
            absl::GetFlag(FLAGS_farm_group).c_str());
    return 2;
  }
  absl::StatusOr<CmClientOptions> co = CmClientOptionsFromClusterFile(
      path, absl::GetFlag(FLAGS_cm_group), absl::GetFlag(FLAGS_mom_group));
  if (!co.ok()) {
    fprintf(stderr, "cm_driver: %s\n", co.status().ToString().c_str());
    return 2;
  }
  const std::string bind = absl::GetFlag(FLAGS_bind).empty() ? absl::GetFlag(FLAGS_listen) : absl::GetFlag(FLAGS_bind);
  absl::StatusOr<transport::Address> bind_address = transport::Address::Parse(absl::StrCat(bind, ":0"));
  if (!bind_address.ok()) {
    fprintf(stderr, "cm_driver: --bind/--listen: %s\n", bind_address.status().ToString().c_str());
    return 2;
  }
  co->bind = *bind_address;
  co->concurrency = absl::GetFlag(FLAGS_concurrency);
  absl::StatusOr<std::unique_ptr<CmClient>> replicas = CmClient::Create(*co);
  if (!replicas.ok()) {
    fprintf(stderr, "cm_driver: CM client: %s\n", replicas.status().ToString().c_str());
    return 1;
  }

  CommandStats stats;
  farm::server::CmServiceOptions o;
  o.replicas = static_cast<uint32_t>(absl::GetFlag(FLAGS_replicas) > 0 ? absl::GetFlag(FLAGS_replicas) : farm->f + 1);
  o.region_size = uint64_t(absl::GetFlag(FLAGS_region_mb)) << 20;
  o.regions = absl::GetFlag(FLAGS_regions);
  o.lease_ms = absl::ToInt64Milliseconds(cluster->lease());
  o.restore_when_down = absl::GetFlag(FLAGS_restore_when_down);
  if (absl::GetFlag(FLAGS_restart_wait_s) > 0) o.restart_wait = absl::Seconds(absl::GetFlag(FLAGS_restart_wait_s));
  for (size_t i = 0; i < farm->members.size(); ++i) o.expected_machines.push_back(static_cast<uint32_t>(i + 1));
  // Machines could not renew while the driver was down (or not yet up): it
  // expires nobody during its first lease, so each has a whole lease to reach it.
  const absl::Time grace_until = absl::Now() + absl::Milliseconds(o.lease_ms);
  o.execute = [&stats, client = replicas->get(), grace_until](const cm::Command& c) -> absl::StatusOr<cm::Result> {
    if (c.has_tick() && absl::Now() < grace_until) return cm::Result();  // nothing removed
    const absl::Time start = absl::Now();
    absl::StatusOr<cm::Result> r = client->Submit(c);
    stats.Record(c, absl::Now() - start, r.ok());
    return r;
  };
  farm::server::CmService svc(o);

  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  // A fixed port (SO_REUSEADDR) is the same after a restart; port 0 is any.
  const std::string service_host =
      absl::StrCat(absl::GetFlag(FLAGS_listen), ":", absl::GetFlag(FLAGS_port));
  // The replicas may still be starting: Init is retried until they answer.
  const absl::Time deadline = absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_start_timeout_s));
  absl::Status started = svc.Start(service_host);
  while (!started.ok() && (absl::IsUnavailable(started) || absl::IsDeadlineExceeded(started)) &&
         absl::Now() < deadline && !g_stop.load()) {
    LOG(WARNING) << "cm_driver: " << started << "; retrying";
    absl::SleepFor(absl::Milliseconds(200));
    started = svc.Start(service_host);
  }
  if (!started.ok()) {
    fprintf(stderr, "cm_driver: %s\n", started.ToString().c_str());
    return 1;
  }
  printf("cm %s\n", svc.address().c_str());
  fflush(stdout);

  const absl::Time begin = absl::Now();
  const absl::Duration every = absl::Milliseconds(std::max(absl::GetFlag(FLAGS_stats_ms), 10));
  absl::Time next = begin + every;
  while (!g_stop.load()) {
    absl::SleepFor(std::min(absl::Milliseconds(50), next - absl::Now()));
    if (absl::GetFlag(FLAGS_stats_ms) == 0 || absl::Now() < next) continue;
    next += every;
    printf("cm_driver t=%.1f %s %s %s\n", absl::ToDoubleSeconds(absl::Now() - begin), stats.Line().c_str(),
           SpeculationLine(**replicas).c_str(), ConfigLine(svc).c_str());
    fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace dctk::integration

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  return dctk::integration::Main();
}
