// spaxos_client: closed-loop load (or a durability check) against a replica
// group started with spaxos_replica, over UdpTransport.
//
//   spaxos_client --config=shard.conf --group=shard0 [--protocol=spaxos|vr|fastpaxos|unreplicated]
//                 [--multicast=shard0-ordered [--mom]] [--clients=4] [--duration=5s] [--warmup=1s]
//                 [--op=null|put] [--verify] [--shared_endpoint] [--await_replies]
//                 [--mom_fabric=shard.mom --node=client0] [--max_datagram=1400]
//                 [--metrics=127.0.0.1:0]
//
// Load mode prints one line: protocol, clients, completed ops, throughput and
// median / p99 latency (after the warmup), the client library's counters
// (speculative successes "fast", fallbacks "slow", retries "resends", the
// speculative success rate), and a second line with its latency histogram
// (whole run) in /metrics' 1-2-5 buckets (metrics::FormatLatencyBuckets).
// Every latency comes from ClientStats.latency (recorded once, by the client
// library): ops and the percentiles are those of the completions after the
// warmup (the histogram less its state when the warmup ended), percentiles
// within 0.4% (common/metrics Histogram).
// --shared_endpoint (default): the process's clients share one endpoint,
// which sends the requests they issue together as one datagram per replica
// (client_endpoint.h); --noshared_endpoint: one endpoint per client.
// --await_replies (spaxos): the loop sleeps until a request can have its
// superquorum instead of waking for each reply (waits_per_op: the loop's
// sleeps per completed operation; off by default, see the README's
// numbers). --verify: each client PUTs rising
// values to its own key; after --duration every client reads its key back and
// the value must be the last acknowledged one (no acknowledged write lost);
// exits 1 otherwise. --mom_fabric: requests travel through a MOM group on
// the switch fabric (mom_fabric.h); the process runs as sender node --node
// (binds to its address, sends to its channel). --max_datagram: the shared
// endpoint's request batches stay within datagrams of this many bytes (as the
// replicas' --max_datagram). --metrics=ip:port serves the client library's
// counters and a latency histogram of every completion for Prometheus
// (process_metrics.h) while the process runs, and prints
// "spaxos_client metrics_port=PORT" on stderr once serving.
#include <unistd.h>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/metrics/histogram.h"
#include "common/metrics/table.h"
#include "common/transport/timeout.h"
#include "common/transport/udp_transport.h"
#include "glog/logging.h"
#include "speculative_paxos/client.h"
#include "speculative_paxos/kv_app.h"
#include "speculative_paxos/tools/mom_fabric.h"
#include "speculative_paxos/tools/process_config.h"
#include "speculative_paxos/tools/process_metrics.h"

ABSL_FLAG(std::string, config, "", "cluster config file (common/config text proto)");
ABSL_FLAG(std::string, group, "shard0", "replica group in the config");
ABSL_FLAG(std::string, multicast, "", "send requests to this multicast group (spaxos)");
ABSL_FLAG(bool, mom, false,
          "spaxos: requests travel as MOM packets (mom/group.h) to the --multicast group");
ABSL_FLAG(std::string, protocol, "spaxos", "spaxos, vr, fastpaxos or unreplicated");
ABSL_FLAG(int, clients, 1, "closed-loop clients in this process");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5), "measurement time");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1), "time before measuring");
ABSL_FLAG(std::string, op, "null", "null (empty op, for --app=null) or put");
ABSL_FLAG(bool, verify, false, "durability check instead of load");
ABSL_FLAG(std::string, mom_fabric, "",
          "spaxos: requests travel through this MOM group on the switch fabric (a "
          "MomFabricGroup file, mom_fabric.proto, naming a multicast group of --config)");
ABSL_FLAG(std::string, node, "",
          "with --mom_fabric: the sender node (of the cluster file) this process runs as");
ABSL_FLAG(bool, shared_endpoint, true,
          "the clients share one endpoint that batches their requests (not with --mom)");
ABSL_FLAG(bool, await_replies, false,
          "spaxos: each replica's replies arrive on a socket of their own and the loop "
          "sleeps until a request's superquorum can have answered (ClientConfig.await_replies)");
ABSL_FLAG(int, max_datagram, dctk::spaxos::ClientEndpoint::kDefaultMaxDatagram,
          "bytes of UDP payload a request batch of the shared endpoint may fill (the "
          "replicas' --max_datagram); a larger request goes alone");
ABSL_FLAG(std::string, metrics, "",
          "serve Prometheus metrics (spaxos_client_*) at ip:port while running; port 0 picks one");

namespace dctk::spaxos {
namespace {

struct Driver {
  transport::Transport* net;
  std::vector<std::unique_ptr<Client>> clients;
  std::vector<uint64_t> acked;  // --verify: last acknowledged value per client
  absl::Time stop_at;
  bool stopping = false;
  bool verify = false;
  std::string op_kind;
  int idle = 0;

  // Unique per client across processes (client ids embed the pid).
  std::string Key(int j) const { return absl::StrCat("w", clients[j]->client_id()); }

  // The stats of every client, summed.
  ClientStats Total() const {
    ClientStats total;
    for (const auto& c : clients) total.Add(c->stats());
    return total;
  }

  std::string NextOp(int j) {
    if (verify) return KvApp::Put(Key(j), absl::StrCat(acked[j] + 1));
    if (op_kind == "put") return KvApp::Put(absl::StrCat("k", j), "v");
    return "";
  }

  void Issue(int j) {
    if (net->Now() >= stop_at) {
      if (++idle == static_cast<int>(clients.size())) net->Stop();
      return;
    }
    clients[j]->Invoke(NextOp(j), [this, j](const std::string&) {
      if (verify) ++acked[j];
      Issue(j);
    });
  }
};

int Main() {
  absl::StatusOr<ProcessConfig> pc =
      LoadProcessConfig(absl::GetFlag(FLAGS_config), absl::GetFlag(FLAGS_group),
                        absl::GetFlag(FLAGS_multicast), absl::GetFlag(FLAGS_protocol));
  if (!pc.ok()) {
    std::cerr << pc.status() << "\n";
    return 2;
  }
  const int max_datagram = absl::GetFlag(FLAGS_max_datagram);
  if (absl::Status s = ClientEndpoint::CheckMaxDatagram(max_datagram); !s.ok()) {
    std::cerr << "--max_datagram=" << max_datagram << ": " << s.message() << "\n";
    return 2;
  }
  absl::StatusOr<std::unique_ptr<transport::UdpTransport>> udp =
      transport::UdpTransport::Create();
  if (!udp.ok()) {
    std::cerr << udp.status() << "\n";
    return 1;
  }
  transport::Transport* net = udp->get();
  ClientConfig cc{.replicas = pc->replicas, .group = pc->multicast,
                  // Fast Paxos clients also send to every replica (its
                  // coordinator's committed reply completes a request).
                  .mode = pc->protocol == Protocol::kSpeculativePaxos ||
                                  pc->protocol == Protocol::kFastPaxos
                              ? ClientConfig::Mode::kSpeculative
                              : ClientConfig::Mode::kLeader,
                  .resend_timeout = pc->request_timeout};
  if (pc->replicas[0].ip() >> 24 == 127) cc.endpoint.multicast_interface_ip = 0x7f000001;
  if (pc->protocol == Protocol::kSpeculativePaxos && absl::GetFlag(FLAGS_await_replies)) {
    cc.await_replies = true;
    cc.endpoint.peers = pc->replicas;  // also for the shared endpoint
  }
  if (absl::GetFlag(FLAGS_mom)) {
    if (!pc->multicast) {
      std::cerr << "--mom needs --multicast=<group>\n";
      return 2;
    }
    cc.mom = MomGroup(*pc);
    cc.group.reset();
  }
  const int n = absl::GetFlag(FLAGS_clients);
  std::vector<uint64_t> ids;
  for (int j = 0; j < n; ++j) {
    // Unique across processes on one host: pid and index.
    ids.push_back((static_cast<uint64_t>(getpid()) << 20) | static_cast<uint64_t>(j));
  }
  transport::Address bind = transport::Address::Loopback(0);
  if (const std::string path = absl::GetFlag(FLAGS_mom_fabric); !path.empty()) {
    absl::StatusOr<MomFabric> fabric = LoadMomFabric(path, absl::GetFlag(FLAGS_config));
    if (!fabric.ok()) {
      std::cerr << fabric.status() << "\n";
      return 2;
    }
    std::vector<uint32_t> sender_ids;
    for (uint64_t id : ids) sender_ids.push_back(MomSenderId(id));
    const std::string node = absl::GetFlag(FLAGS_node);
    absl::StatusOr<mom::GroupConfig> group = fabric->ForSender(node, sender_ids);
    if (!group.ok()) {
      std::cerr << "--node: " << group.status() << "\n";
      return 2;
    }
    cc.mom = *std::move(group);
    cc.group.reset();
    // The node's address: its interface carries the requests.
    bind = transport::Address(fabric->nodes.at(node).ip(), 0);
    cc.endpoint.multicast_interface_ip = bind.ip();
  }
  std::unique_ptr<ClientEndpoint> endpoint;  // outlives the clients in d
  Driver d;
  d.net = net;
  d.verify = absl::GetFlag(FLAGS_verify);
  d.op_kind = absl::GetFlag(FLAGS_op);
  if (absl::GetFlag(FLAGS_shared_endpoint) && !cc.mom) {
    endpoint = std::make_unique<ClientEndpoint>(net, bind, cc.endpoint, max_datagram);
    if (absl::Status s = endpoint->Start(); !s.ok()) {
      std::cerr << s << "\n";
      return 1;
    }
  }
  for (int j = 0; j < n; ++j) {
    d.clients.push_back(endpoint ? std::make_unique<Client>(endpoint.get(), cc, ids[j])
                                 : std::make_unique<Client>(net, cc, ids[j], bind));
    if (absl::Status s = d.clients.back()->Start(); !s.ok()) {
      std::cerr << s << "\n";
      return 1;
    }
  }
  // Metrics: the clients' stats exported every 100 ms on the loop.
  absl::StatusOr<ServedMetrics> served;
  std::unique_ptr<ClientExporter> exporter;
  std::unique_ptr<transport::Timeout> export_timer;
  if (const std::string address = absl::GetFlag(FLAGS_metrics); !address.empty()) {
    served = ServeMetrics(address, "spaxos_client", {{"protocol", absl::GetFlag(FLAGS_protocol)}});
    if (!served.ok()) {
      std::cerr << "--metrics: " << served.status() << "\n";
      return 1;
    }
    exporter = std::make_unique<ClientExporter>(*served->scope);
    export_timer = std::make_unique<transport::Timeout>(net, absl::Milliseconds(100),
                                                        [&] { exporter->Export(d.Total()); });
    export_timer->Start();
    std::cerr << "spaxos_client metrics_port=" << served->server->port() << std::endl;
  }
  d.acked.assign(n, 0);
  const absl::Duration warmup = absl::GetFlag(FLAGS_warmup);
  d.stop_at = net->Now() + warmup + absl::GetFlag(FLAGS_duration);
  ClientStats warm;  // the stats when the warmup ended: left out of the percentiles
  if (warmup > absl::ZeroDuration()) net->Timer(warmup, [&] { warm = d.Total(); });
  net->Post([&] {
    for (int j = 0; j < n; ++j) d.Issue(j);
  });
  net->Run();

  const ClientStats total_stats = d.Total();
  const uint64_t fast = total_stats.fast_path, slow = total_stats.slow_path,
                 resends = total_stats.resends, early = total_stats.early_commit_requests;
  if (d.verify) {
    // Read every key back; the value must be the last acknowledged PUT.
    int lost = 0, pending = n;
    for (int j = 0; j < n; ++j) {
      net->Post([&, j] {
        d.clients[j]->Invoke(KvApp::Get(d.Key(j)), [&, j](const std::string& r) {
          KvResult got = KvApp::ParseResult(r);
          if (got.value() != absl::StrCat(d.acked[j])) {
            std::cerr << "client " << j << ": key " << d.Key(j) << " holds '" << got.value()
                      << "', last acknowledged PUT wrote " << d.acked[j] << "\n";
            ++lost;
          }
          if (--pending == 0) net->Stop();
        });
      });
    }
    net->Run();
    uint64_t total = 0;
    for (uint64_t a : d.acked) total += a;
    std::cout << "verify " << (lost == 0 ? "ok" : "FAILED") << ": " << total
              << " acknowledged writes, " << lost << " lost; fast " << fast << " slow " << slow
              << " resends " << resends << "\n";
    return lost == 0 ? 0 : 1;
  }
  metrics::Histogram measured = total_stats.latency;
  measured.Subtract(warm.latency);
  const double secs = absl::ToDoubleSeconds(absl::GetFlag(FLAGS_duration));
  auto pct = [&](double p) { return measured.ValueAtQuantile(p) / 1e3; };
  std::cout << absl::StrFormat(
      "protocol=%s clients=%d ops=%d throughput=%.0f/s p50_us=%.1f p99_us=%.1f fast=%d "
      "slow=%d resends=%d early_commit=%d spec_success=%.4f datagrams_per_request=%.3f "
      "waits_per_op=%.2f\n"
      "latency_histogram: %s\n",
      absl::GetFlag(FLAGS_protocol), n, measured.count(), measured.count() / secs, pct(0.5),
      pct(0.99), fast, slow, resends, early, total_stats.SpeculativeSuccessRate(),
      endpoint && endpoint->stats().requests > 0
          ? static_cast<double>(endpoint->stats().request_datagrams) / endpoint->stats().requests
          : 1.0,
      total_stats.completed > 0 ? static_cast<double>((*udp)->stats().waits) / total_stats.completed
                                : 0.0,
      metrics::FormatLatencyBuckets(total_stats.latency));
  return 0;
}

}  // namespace
}  // namespace dctk::spaxos

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  google::InitGoogleLogging(argv[0]);
  return dctk::spaxos::Main();
}
