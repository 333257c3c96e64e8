// mom_switch: runs the MOM switch on DPDK af_packet ports until SIGINT/SIGTERM.
//
//   mom_switch --name=leaf0 --ifaces=veth0,veth1,veth2 [--netns=leaf0]
//              [--config=switch.textproto] [--control=127.0.0.1:0]
//              [--metrics=127.0.0.1:0] [--port_mbps=0:100,2:100]
//              [--idle_sleep_us=20] [--max_datagram_bytes=32688]
//
// Port i is the i-th interface. With --netns the interfaces are those of that
// network namespace (/var/run/netns/NAME): the ports' sockets are opened there,
// so the switch's IPv4 reassembly (af_packet defragments) and PACKET_FANOUT
// groups are its own, as on a real switch; control and metrics stay in the
// namespace mom_switch was started in. The forwarding state is a dctk.mom.SwitchConfig
// (controller/switch_config.proto): from --config in protobuf text format at
// start, and from the controller at any time over gRPC (MomSwitch.Configure on
// --control; port 0 picks a free port). With --metrics it serves its counters
// (switch_metrics.h) for Prometheus at http://ADDRESS/metrics, refreshed every
// 100 ms. Once forwarding, it prints one line
//   mom_switch NAME ready control_port=PORT metrics_port=PORT ports=N rules=R
// (port 0: not served) so a launcher can connect. GetStats reports every
// port's link state (interface up with carrier) and counters: the
// controller's health check; the StatsRequest may name ports to send a link
// probe out of (counted by the peer switch). Every 10 ms it checks its
// ports' links and voids the frames waiting in a down port's transmit ring. Datagrams longer than an
// out port's MTU (up to --max_datagram_bytes, which sizes the receive rings)
// leave as IPv4 fragments. On exit it prints forwarded
// and dropped packet counts by reason.
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/metrics/metrics_server.h"
#include "google/protobuf/text_format.h"
#include "mom/switch/control_service.h"
#include "mom/switch/dpdk_switch.h"
#include "mom/switch/switch_metrics.h"

ABSL_FLAG(std::string, name, "switch", "switch name (the controller's topology node name)");
ABSL_FLAG(std::string, ifaces, "", "comma-separated interfaces, one per switch port");
ABSL_FLAG(std::string, netns, "",
          "network namespace (/var/run/netns/NAME) holding the interfaces; empty: this one");
ABSL_FLAG(std::string, config, "", "initial SwitchConfig in protobuf text format (default: empty)");
ABSL_FLAG(std::string, control, "127.0.0.1:0", "gRPC control address; empty: no control API");
ABSL_FLAG(std::string, metrics, "", "Prometheus /metrics address (port 0: any); empty: none");
ABSL_FLAG(std::string, port_mbps, "", "line rates of shaped ports, PORT:MBPS,... (others unshaped)");
ABSL_FLAG(int, idle_sleep_us, 0, "sleep this long when a poll finds no work (0: busy poll)");
ABSL_FLAG(uint32_t, max_datagram_bytes, dctk::mom::kDefaultMaxDatagramBytes,
          "longest IPv4 datagram received whole (1500-61360; sizes rings and mbufs; longer: too_big)");

namespace {

volatile std::sig_atomic_t stop = 0;
void OnSignal(int) { stop = 1; }

absl::StatusOr<dctk::mom::SwitchConfig> LoadConfig(const std::string& path) {
  dctk::mom::SwitchConfig config;
  if (path.empty()) return config;
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read --config ", path));
  std::stringstream text;
  text << in.rdbuf();
  if (!google::protobuf::TextFormat::ParseFromString(text.str(), &config)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a valid SwitchConfig text proto"));
  }
  return config;
}

absl::Status ApplyPortRates(const std::string& spec, dctk::mom::DpdkSwitch* sw) {
  for (absl::string_view item : absl::StrSplit(spec, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(item, ':');
    int port;
    double mbps;
    if (!absl::SimpleAtoi(kv.first, &port) || !absl::SimpleAtod(kv.second, &mbps) || port < 0 ||
        port >= sw->num_ports() || mbps <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("--port_mbps: bad entry '", item, "'"));
    }
    sw->SetPortRate(port, static_cast<uint64_t>(mbps * 1e6));
  }
  return absl::OkStatus();
}

// DpdkSwitch::Create with the calling thread in network namespace `netns`
// (empty: where it is), so the ports' sockets are opened there; the thread
// returns to its own namespace afterwards (sockets keep theirs).
absl::StatusOr<std::unique_ptr<dctk::mom::DpdkSwitch>> CreateInNetns(
    const std::string& netns, const std::vector<std::string>& vdevs,
    dctk::mom::ForwardingTable table, uint32_t max_datagram) {
  auto create = [&] {
    return dctk::mom::DpdkSwitch::Create(vdevs, std::move(table),
                                         {.max_datagram_bytes = max_datagram});
  };
  if (netns.empty()) return create();
  const int own = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  const std::string path = "/var/run/netns/" + netns;
  const int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  const int open_errno = errno;
  if (own < 0 || target < 0) {
    if (own >= 0) close(own);
    return absl::NotFoundError(
        absl::StrCat("--netns: cannot open ", own < 0 ? "/proc/self/ns/net" : path, ": ",
                     std::strerror(open_errno)));
  }
  if (setns(target, CLONE_NEWNET) != 0) {
    const absl::Status s = absl::PermissionDeniedError(
        absl::StrCat("--netns: setns ", path, ": ", std::strerror(errno)));
    close(own);
    close(target);
    return s;
  }
  close(target);
  absl::StatusOr<std::unique_ptr<dctk::mom::DpdkSwitch>> sw = create();
  if (setns(own, CLONE_NEWNET) != 0) {
    // Control and metrics would listen in the ports' namespace instead.
    std::perror("mom_switch: setns back to the original network namespace");
    std::abort();
  }
  close(own);
  return sw;
}

int Fail(const absl::Status& s) {
  std::cerr << "mom_switch " << absl::GetFlag(FLAGS_name) << ": " << s << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string name = absl::GetFlag(FLAGS_name);
  const std::vector<std::string> ifaces =
      absl::StrSplit(absl::GetFlag(FLAGS_ifaces), ',', absl::SkipEmpty());
  if (ifaces.empty()) return Fail(absl::InvalidArgumentError("need --ifaces"));
  absl::StatusOr<dctk::mom::SwitchConfig> config = LoadConfig(absl::GetFlag(FLAGS_config));
  if (!config.ok()) return Fail(config.status());
  absl::StatusOr<dctk::mom::ForwardingTable> table =
      dctk::mom::ForwardingTable::Create(*config, static_cast<int>(ifaces.size()));
  if (!table.ok()) return Fail(table.status());
  const uint32_t max_datagram = absl::GetFlag(FLAGS_max_datagram_bytes);
  std::vector<std::string> vdevs;
  for (size_t i = 0; i < ifaces.size(); ++i) {
    vdevs.push_back(dctk::mom::DpdkSwitch::AfPacketVdev(static_cast<int>(i), ifaces[i],
                                                        max_datagram));
  }
  absl::StatusOr<std::unique_ptr<dctk::mom::DpdkSwitch>> sw =
      CreateInNetns(absl::GetFlag(FLAGS_netns), vdevs, *std::move(table), max_datagram);
  if (!sw.ok()) return Fail(sw.status());
  if (absl::Status s = ApplyPortRates(absl::GetFlag(FLAGS_port_mbps), sw->get()); !s.ok()) {
    return Fail(s);
  }

  dctk::mom::DataPlaneMailbox mailbox;
  dctk::mom::ControlService service(name, (*sw)->num_ports(), &mailbox);
  service.set_port_reader([sw = sw->get()](auto* ports) {
    const dctk::mom::SwitchCounters c = sw->Counters();
    for (int p = 0; p < sw->num_ports(); ++p) {
      dctk::mom::PortStatus* status = ports->Add();
      status->set_port(p);
      status->set_link_up(sw->LinkUp(p));
      status->set_rx_packets(c.ports[p].rx_packets);
      status->set_tx_packets(c.ports[p].tx_packets);
      status->set_tx_full(c.ports[p].tx_full);
      status->set_probes_sent(c.ports[p].probes_sent);
      status->set_probes_received(c.ports[p].probes_received);
      status->set_stale_voided(c.ports[p].stale_voided);
    }
  });
  service.set_prober([sw = sw->get()](const dctk::mom::StatsRequest& request) {
    sw->SendProbes({request.probe_ports().begin(), request.probe_ports().end()});
    std::vector<std::pair<uint32_t, uint32_t>> hosts;
    for (const dctk::mom::HostProbe& h : request.host_probes()) hosts.push_back({h.port(), h.ip()});
    sw->SendHostProbes(hosts);
  });
  std::unique_ptr<grpc::Server> server;
  int control_port = 0;
  if (!absl::GetFlag(FLAGS_control).empty()) {
    absl::StatusOr<std::unique_ptr<grpc::Server>> started =
        dctk::mom::StartControlServer(absl::GetFlag(FLAGS_control), &service, &control_port);
    if (!started.ok()) return Fail(started.status());
    server = *std::move(started);
  }
  auto registry = std::make_shared<dctk::metrics::Registry>();
  dctk::mom::SwitchMetrics metrics(*registry, name, (*sw)->num_ports());
  std::unique_ptr<dctk::metrics::MetricsServer> metrics_server;
  if (!absl::GetFlag(FLAGS_metrics).empty()) {
    absl::StatusOr<std::unique_ptr<dctk::metrics::MetricsServer>> started =
        dctk::metrics::MetricsServer::Start(registry, absl::GetFlag(FLAGS_metrics));
    if (!started.ok()) return Fail(started.status());
    metrics_server = *std::move(started);
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::printf("mom_switch %s ready control_port=%d metrics_port=%d ports=%zu rules=%d\n",
              name.c_str(), control_port, metrics_server ? metrics_server->port() : 0,
              ifaces.size(), config->rules_size());
  std::fflush(stdout);

  const int idle_sleep_us = absl::GetFlag(FLAGS_idle_sleep_us);
  dctk::mom::DpdkSwitch& s = **sw;
  constexpr auto kPublishEvery = std::chrono::milliseconds(100);
  constexpr auto kWatchLinksEvery = std::chrono::milliseconds(10);
  auto next_publish = std::chrono::steady_clock::now();
  auto next_watch = next_publish;
  while (!stop) {
    const int received = s.Poll();
    mailbox.Drain(s.core());
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_watch) {
      s.WatchLinks();
      next_watch = now + kWatchLinksEvery;
    }
    if (now >= next_publish) {
      if (metrics_server) metrics.Publish(s.Counters());
      next_publish = now + kPublishEvery;
    }
    if (received == 0 && idle_sleep_us > 0 && s.Idle()) usleep(idle_sleep_us);
  }
  mailbox.Close();
  if (server) server->Shutdown();
  metrics_server.reset();
  const dctk::mom::SwitchCore& core = s.core();
  std::cout << "mom_switch " << name << ": forwarded " << core.forwarded();
  for (int r = 0; r < dctk::mom::kNumDropReasons; ++r) {
    std::cout << " " << dctk::mom::DropReasonName(static_cast<dctk::mom::DropReason>(r)) << " "
              << core.drops()[r];
  }
  std::cout << "\n";
  return 0;
}
