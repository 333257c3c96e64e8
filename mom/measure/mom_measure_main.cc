// mom_measure: reorder rate, losses and latency of each MOM design on the real
// software data plane (needs root). Builds a leaf-spine of network namespaces
// and mom_switch processes (mom/testbed); then, for each design, writes a
// fabric file (the switches' control addresses, the hosts as its cluster
// section's nodes, the measured senders and receivers as the cluster's
// multicast group, one MOM group of the design per run) and has the
// mom_controller process configure the switches from it over gRPC, as in a
// deployment; the runs use the routes it installed. The same senders,
// receivers and background load for every design; the naive design is the
// baseline, measured in the same run.
//
//   mom_measure --switch_binary=bazel-bin/mom/switch/mom_switch \
//     --controller_binary=bazel-bin/mom/controller/mom_controller \
//     --leaves=2 --spines=2 --hosts_per_leaf=4 --senders=4 --receivers=4 \
//     --messages=1000 --rate=2000 --host_port_mbps=100 --background_mbps=60
//
// Senders are the first hosts of each leaf in turn, receivers the last ones
// (so both sit on every leaf); or, with --cluster=cluster.conf
// --cluster_group=NAME, the senders and members of that multicast group of
// the cluster's own file (its nodes named as hosts: host0_0, ...), embedded
// in the fabric files (with the testbed's IPs). With background, each sender
// host also sends best-effort UDP to a receiver (the next in the list). The controller keeps
// health-checking while runs go on; the `reconf` column counts the
// configurations it pushed during a run (a switch or link it found failed),
// each also printed to stderr.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/config/cluster_config.h"
#include "mom/controller/fabric.pb.h"
#include "mom/design.h"
#include "mom/measure/controlled_fabric.h"
#include "mom/measure/dataplane_run.h"
#include "mom/testbed/testbed.h"

ABSL_FLAG(std::string, switch_binary, "mom/switch/mom_switch", "path of mom_switch");
ABSL_FLAG(std::string, controller_binary, "mom/controller/mom_controller",
          "path of mom_controller");
ABSL_FLAG(std::string, controller_flags, "",
          "more mom_controller flags, space-separated (e.g. \"--interval_ms=100\")");
ABSL_FLAG(std::string, designs, "naive,topology-aware,topology-aware-qos,serialized",
          "designs to measure, comma-separated");
ABSL_FLAG(int, leaves, 2, "leaf switches");
ABSL_FLAG(int, spines, 2, "spine switches");
ABSL_FLAG(int, hosts_per_leaf, 4, "hosts per leaf");
ABSL_FLAG(int, senders, 4, "MOM sender hosts");
ABSL_FLAG(int, receivers, 4, "MOM receiver hosts (group members)");
ABSL_FLAG(std::string, cluster, "",
          "a cluster file (common/config) whose nodes are named as hosts (host0_0, ...): "
          "measure its multicast group --cluster_group instead of --senders/--receivers");
ABSL_FLAG(std::string, cluster_group, "", "the --cluster multicast group to measure");
ABSL_FLAG(int, messages, 1000, "messages per sender");
ABSL_FLAG(double, rate, 2000, "messages per second per sender (Poisson)");
ABSL_FLAG(double, host_port_mbps, 100, "line rate of switch ports facing hosts (0: unshaped)");
ABSL_FLAG(double, background_mbps, 0, "best-effort UDP per sender host to a remote receiver");
ABSL_FLAG(int, seeds, 1, "runs per design, seeds 1..N");
ABSL_FLAG(int, warmup_messages, 200,
          "messages per sender of an unreported first run (first runs are slow)");
ABSL_FLAG(std::string, csv, "", "also write one CSV row per run to this file");

namespace {

int Fail(const absl::Status& s) {
  std::cerr << "mom_measure: " << s << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace dctk::mom;
  std::vector<Design> designs;
  for (absl::string_view name : absl::StrSplit(absl::GetFlag(FLAGS_designs), ',')) {
    absl::StatusOr<Design> d = ParseDesign(name);
    if (!d.ok()) return Fail(d.status());
    designs.push_back(*d);
  }
  absl::StatusOr<Topology> topo = Topology::LeafSpine(
      absl::GetFlag(FLAGS_leaves), absl::GetFlag(FLAGS_spines), absl::GetFlag(FLAGS_hosts_per_leaf));
  if (!topo.ok()) return Fail(topo.status());
  // hosts() lists leaf 0's hosts, then leaf 1's, ...: take senders from the
  // front and receivers from the back of each leaf, round robin over leaves.
  const int leaves = absl::GetFlag(FLAGS_leaves), per_leaf = absl::GetFlag(FLAGS_hosts_per_leaf);
  const std::vector<int> hosts = topo->hosts();
  MeasuredGroups measured;
  if (!absl::GetFlag(FLAGS_cluster).empty()) {
    absl::StatusOr<dctk::config::ClusterConfig> cluster =
        dctk::config::ClusterConfig::Load(absl::GetFlag(FLAGS_cluster));
    if (!cluster.ok()) return Fail(cluster.status());
    if (absl::Status s =
            UseClusterGroup(*topo, *cluster, absl::GetFlag(FLAGS_cluster_group), &measured);
        !s.ok()) {
      return Fail(
          absl::Status(s.code(), absl::StrCat(absl::GetFlag(FLAGS_cluster), ": ", s.message())));
    }
  } else {
    const int num_senders = absl::GetFlag(FLAGS_senders);
    const int num_receivers = absl::GetFlag(FLAGS_receivers);
    if (num_senders + num_receivers > static_cast<int>(hosts.size())) {
      return Fail(absl::InvalidArgumentError("more senders + receivers than hosts"));
    }
    for (int i = 0; i < num_senders; ++i) {
      measured.senders.push_back(hosts[(i % leaves) * per_leaf + i / leaves]);
    }
    for (int i = 0; i < num_receivers; ++i) {
      measured.receivers.push_back(hosts[(i % leaves) * per_leaf + per_leaf - 1 - i / leaves]);
    }
  }
  const std::vector<int>& senders = measured.senders;
  const std::vector<int>& receivers = measured.receivers;
  const int num_senders = static_cast<int>(senders.size());
  const int num_receivers = static_cast<int>(receivers.size());
  DataplaneRunConfig config;
  config.messages_per_sender = absl::GetFlag(FLAGS_messages);
  config.rate = absl::GetFlag(FLAGS_rate);
  config.background_mbps = absl::GetFlag(FLAGS_background_mbps);
  if (config.background_mbps > 0) {
    for (size_t i = 0; i < senders.size(); ++i) {
      config.background.push_back({senders[i], receivers[(i + 1) % receivers.size()]});
    }
  }
  LeafSpineSpec shape;
  shape.set_leaves(leaves);
  shape.set_spines(absl::GetFlag(FLAGS_spines));
  shape.set_hosts_per_leaf(per_leaf);
  std::vector<std::string> controller_flags =
      absl::StrSplit(absl::GetFlag(FLAGS_controller_flags), ' ', absl::SkipEmpty());
  // Ctrl-C / SIGTERM: remove the namespaces, veths and switch processes first.
  // The signals are blocked in every thread (gRPC's too, so blocked before the
  // testbed starts); one thread waits for them once the testbed exists.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  absl::StatusOr<std::unique_ptr<Testbed>> bed =
      Testbed::Create(*std::move(topo), {.switch_binary = absl::GetFlag(FLAGS_switch_binary),
                                         .host_port_mbps = absl::GetFlag(FLAGS_host_port_mbps)});
  if (!bed.ok()) return Fail(bed.status());
  Testbed* raw_bed = bed->get();
  std::thread([signals, raw_bed] {
    int signal = 0;
    sigwait(&signals, &signal);
    std::fprintf(stderr, "mom_measure: signal %d, cleaning up\n", signal);
    raw_bed->TearDown();
    std::_Exit(130);
  }).detach();

  FILE* csv = nullptr;
  if (!absl::GetFlag(FLAGS_csv).empty()) {
    csv = std::fopen(absl::GetFlag(FLAGS_csv).c_str(), "w");
    if (csv == nullptr) return Fail(absl::NotFoundError("cannot write --csv"));
    std::fprintf(
        csv,
        "design,seed,senders,receivers,messages,rate,host_port_mbps,background_mbps,"
        "reorder_rate,pair_inversion_rate,copies_expected,copies_received,"
        "group_seq_gaps,latency_p50_us,latency_p99_us,queue_full_drops,tx_full_drops,roots,"
        "reconfigurations\n");
  }
  std::printf(
      "leaf-spine %dx%d, %d hosts/leaf; %d senders x %d msgs at %.0f/s; %d receivers; "
      "host ports %.0f Mb/s; background %.0f Mb/s per sender host; "
      "configured by mom_controller\n",
      leaves, absl::GetFlag(FLAGS_spines), per_leaf, num_senders, config.messages_per_sender,
      config.rate, num_receivers, absl::GetFlag(FLAGS_host_port_mbps), config.background_mbps);
  std::printf("%-20s %4s %9s %9s %9s %6s %9s %9s %8s %8s %6s\n", "design", "seed", "reorder%",
              "lost", "seq_gaps", "roots", "p50_us", "p99_us", "qfull", "txfull", "reconf");
  uint32_t group = 100;
  bool warmup = absl::GetFlag(FLAGS_warmup_messages) > 0;
  const int seeds = absl::GetFlag(FLAGS_seeds);
  for (Design design : designs) {
    MeasuredGroups groups = measured;
    groups.design = design;
    for (int run = warmup ? 0 : 1; run <= seeds; ++run) groups.group_ids.push_back(group++);
    absl::StatusOr<std::string> text = MeasureFabricText(**bed, shape, groups);
    if (!text.ok()) return Fail(text.status());
    // The controller reads the file once, at its start.
    const std::string path =
        (std::filesystem::temp_directory_path() /
         absl::StrCat("mom_measure_", getpid(), "_", DesignName(design), ".conf"))
            .string();
    std::ofstream(path) << *text;
    absl::StatusOr<std::unique_ptr<ControlledFabric>> fabric =
        ControlledFabric::Start(absl::GetFlag(FLAGS_controller_binary), path, controller_flags);
    std::filesystem::remove(path);
    if (!fabric.ok()) return Fail(fabric.status());
    size_t next = 0;
    if (warmup) {  // first runs are slow: one unreported run
      DataplaneRunConfig w = config;
      w.messages_per_sender = absl::GetFlag(FLAGS_warmup_messages);
      absl::StatusOr<DataplaneRunResult> r = RunOnDataplane(**bed, (*fabric)->routes()[next++], w);
      if (!r.ok()) return Fail(r.status());
      warmup = false;
    }
    (*fabric)->Reconfigurations();  // only those during measured runs count
    for (int seed = 1; seed <= seeds; ++seed) {
      config.seed = static_cast<uint64_t>(seed);
      absl::StatusOr<DataplaneRunResult> r =
          RunOnDataplane(**bed, (*fabric)->routes()[next++], config);
      if (!r.ok()) return Fail(r.status());
      const std::vector<std::string> reconfigurations = (*fabric)->Reconfigurations();
      for (const std::string& line : reconfigurations) {
        std::fprintf(stderr, "mom_measure: %s seed %d: %s\n",
                     std::string(DesignName(design)).c_str(), seed, line.c_str());
      }
      const uint64_t lost = r->copies_expected - r->copies_received;
      std::printf("%-20s %4d %9.2f %9llu %9llu %6d %9.0f %9.0f %8llu %8llu %6zu\n",
                  std::string(DesignName(design)).c_str(), seed, 100 * r->reorder.reorder_rate(),
                  static_cast<unsigned long long>(lost),
                  static_cast<unsigned long long>(r->group_seq_gaps), r->roots, r->latency_p50_us,
                  r->latency_p99_us, static_cast<unsigned long long>(r->queue_full_drops),
                  static_cast<unsigned long long>(r->tx_full_drops), reconfigurations.size());
      std::fflush(stdout);
      if (csv != nullptr) {
        std::fprintf(
            csv,
            "%s,%d,%d,%d,%d,%.0f,%.0f,%.0f,%.6f,%.8f,%llu,%llu,%llu,%.1f,%.1f,%llu,%llu,%d,%zu\n",
            std::string(DesignName(design)).c_str(), seed, num_senders, num_receivers,
            config.messages_per_sender, config.rate, absl::GetFlag(FLAGS_host_port_mbps),
            config.background_mbps, r->reorder.reorder_rate(), r->reorder.pair_inversion_rate(),
            static_cast<unsigned long long>(r->copies_expected),
            static_cast<unsigned long long>(r->copies_received),
            static_cast<unsigned long long>(r->group_seq_gaps), r->latency_p50_us,
            r->latency_p99_us, static_cast<unsigned long long>(r->queue_full_drops),
            static_cast<unsigned long long>(r->tx_full_drops), r->roots, reconfigurations.size());
      }
    }
  }
  if (csv != nullptr) std::fclose(csv);
  return 0;
}
