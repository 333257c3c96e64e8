// mom_controller: configures a fabric of mom_switch processes for MOM groups
// and keeps it configured, routing around switches that fail.
//
//   mom_controller --fabric=fabric.conf [--interval_ms=200] [--link_holddown_ms=1000]
//                  [--probe_miss_ms=500] [--probe_loss_window_ms=4000]
//                  [--probe_loss_percent=25] [--once]
//
// The fabric file (fabric.proto, text format) gives the topology, each
// switch's control address, host addresses and the groups. Every interval it
// health-checks the switches and their ports' links
// (FabricController::Reconcile): a link down, or between switches and
// losing every probe one way for --probe_miss_ms (or --probe_loss_percent of
// them over --probe_loss_window_ms), is failed and used again only once it
// stayed up (probes crossing) for --link_holddown_ms (a lossy one also once
// it lost less than half that over a window); whenever it
// installs a configuration it prints one line
//   mom_controller configured: failed: none; group 5 (serialized) roots: spine0
// (with "; links down: leaf1-spine0" after the failed switches when links are
// down, "; links dropping: leaf0-spine1" when links drop probes, and
// "; host links dropping: leaf1-host1_1" when a host stops answering the ARP
// probes its switch sends it: reported, not routed around)
// With --once it configures once and exits (status 1 on failure).
#include <algorithm>
#include <cmath>
#include <csignal>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "mom/controller/fabric.h"
#include "mom/controller/fabric_controller.h"

ABSL_FLAG(std::string, fabric, "", "fabric file (mom/controller/fabric.proto, text format)");
ABSL_FLAG(int, interval_ms, 200, "health check and reconfiguration interval");
ABSL_FLAG(bool, once, false, "configure once and exit");
ABSL_FLAG(int, link_holddown_ms, 1000,
          "a link that was down or dropping is used again once reported up (probes crossing it) "
          "this long (rounded up to intervals)");
ABSL_FLAG(int, probe_miss_ms, 500,
          "a switch-to-switch link whose probes in one direction all went missing this long "
          "(rounded up to intervals) is failed as dropping");
ABSL_FLAG(int, probe_loss_window_ms, 4000,
          "partial loss on a switch-to-switch link is counted over the probes of this long "
          "(rounded up to intervals)");
ABSL_FLAG(double, probe_loss_percent, 25,
          "a switch-to-switch link that lost this percentage of its probes one way over the "
          "window is failed as dropping (0: off)");

namespace {

volatile std::sig_atomic_t stop = 0;
void OnSignal(int) { stop = 1; }

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<dctk::mom::Fabric> fabric = dctk::mom::LoadFabric(absl::GetFlag(FLAGS_fabric));
  if (!fabric.ok()) {
    std::cerr << "mom_controller: " << fabric.status() << "\n";
    return 2;
  }
  if (absl::GetFlag(FLAGS_interval_ms) <= 0) {
    std::cerr << "mom_controller: --interval_ms must be positive\n";
    return 2;
  }
  const int interval_ms = absl::GetFlag(FLAGS_interval_ms);
  const double loss_percent = absl::GetFlag(FLAGS_probe_loss_percent);
  if (loss_percent < 0 || loss_percent > 100) {
    std::cerr << "mom_controller: --probe_loss_percent must be in 0-100\n";
    return 2;
  }
  auto checks = [interval_ms](int ms) { return std::max(1, (ms + interval_ms - 1) / interval_ms); };
  // Reading the two ends of a link at slightly different times makes a
  // window's count of received probes one more or less than what crossed.
  const int window = checks(absl::GetFlag(FLAGS_probe_loss_window_ms));
  if (loss_percent > 0 && window * loss_percent / 100 < 2) {
    std::cerr << "mom_controller: --probe_loss_window_ms gives " << window
              << " checks, too few to tell " << loss_percent
              << "% loss from a probe read late (needs "
              << static_cast<int>(std::ceil(200 / loss_percent)) << ")\n";
    return 2;
  }
  dctk::mom::FabricController controller(
      *std::move(fabric), absl::Seconds(1),
      {.holddown_checks = checks(absl::GetFlag(FLAGS_link_holddown_ms)),
       .probe_misses = checks(absl::GetFlag(FLAGS_probe_miss_ms)),
       .probe_loss_window = window,
       .probe_loss = loss_percent / 100});
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  absl::Status last_error;
  while (!stop) {
    absl::StatusOr<bool> changed = controller.Reconcile();
    if (changed.ok() && *changed) {
      std::cout << "mom_controller configured: " << controller.Describe() << std::endl;
    } else if (!changed.ok() && changed.status() != last_error) {
      std::cerr << "mom_controller: " << changed.status() << std::endl;
    }
    last_error = changed.ok() ? absl::OkStatus() : changed.status();
    if (absl::GetFlag(FLAGS_once)) return changed.ok() ? 0 : 1;
    absl::SleepFor(absl::Milliseconds(absl::GetFlag(FLAGS_interval_ms)));
  }
  return 0;
}
