#include "mom/bench/switch_bench.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "mom/bench/linux_bridge.h"
#include "mom/bench/traffic.h"
#include "mom/controller/switch_config.h"
#include "mom/design.h"
#include "mom/testbed/netns.h"
#include "mom/testbed/testbed.h"

namespace dctk::mom {
namespace {

constexpr uint32_t kGroupId = 9;
constexpr uint16_t kPort = 7100;
constexpr size_t kSmallFrame = 64;
constexpr size_t kLargeFrame = 1042;
constexpr int kDscpEfTos = 46 << 2;
constexpr int kHosts = 5;                // sender, 3 members, background sender

bool IsMulticast(uint32_t ip) { return (ip >> 28) == 0xe; }

// User + system CPU seconds `pid` has used (/proc/PID/stat), 0 if unreadable.
double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');  // the command name may hold spaces
  if (paren == std::string::npos) return 0;
  std::vector<std::string> fields = absl::StrSplit(text.substr(paren + 2), ' ');
  // Fields after the name start at 3 (state); utime and stime are 14 and 15.
  double utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtod(fields[11], &utime) ||
      !absl::SimpleAtod(fields[12], &stime)) {
    return 0;
  }
  return (utime + stime) / sysconf(_SC_CLK_TCK);
}

Topology Star() {
  Topology t;
  const int sw = t.AddNode(NodeKind::kSwitch, "sw0", 1);
  for (int h = 0; h < kHosts; ++h) t.AddLink(sw, t.AddNode(NodeKind::kHost, absl::StrCat("h", h), 0));
  return t;
}

// The sockets of one measurement, closed when it ends.
class Sockets {
 public:
  explicit Sockets(const Testbed& bed) : bed_(bed) {}
  ~Sockets() {
    for (int fd : fds_) close(fd);
  }
  // A socket in `host`'s namespace, bound to `port` (0: any), joined to `group` if multicast.
  absl::StatusOr<int> Open(int host, uint16_t port, uint32_t group) {
    absl::StatusOr<int> fd = bed_.UdpSocket(host);
    if (!fd.ok()) return fd.status();
    fds_.push_back(*fd);
    sockaddr_in sa = Sockaddr(INADDR_ANY, port);
    if (bind(*fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
      return absl::InternalError(absl::StrCat("bind port ", port, " in ", bed_.netns(host)));
    }
    if (IsMulticast(group)) {
      ip_mreq mreq{};
      mreq.imr_multiaddr.s_addr = htonl(group);
      mreq.imr_interface.s_addr = htonl(bed_.ip(host));
      if (setsockopt(*fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) != 0) {
        return absl::InternalError(absl::StrCat("join ", Ipv4Text(group), " in ", bed_.netns(host)));
      }
    }
    return *fd;
  }

 private:
  const Testbed& bed_;
  std::vector<int> fds_;
};

struct Measurement {
  std::string fabric;
  std::string test;
  int sender;
  uint32_t dst;  // unicast host address or the group's channel address
  std::vector<int> receivers;
  size_t frame_bytes;
  double rate_pps = 0;  // 0: blast (throughput); else paced, latency recorded
  int tos = 0;          // of the measured flow
  int background_from = -1;
  double background_pps = 0;
};

absl::StatusOr<BenchRow> Measure(Testbed& bed, const Measurement& m, absl::Duration phase) {
  const int sw = bed.topology().switches()[0];
  absl::StatusOr<SwitchStats> before = absl::NotFoundError("no switch");
  double cpu_before = 0;
  if (bed.switch_running(sw)) {
    before = bed.Stats(sw);
    cpu_before = ProcessCpuSeconds(bed.switch_pid(sw));
  }
  Sockets sockets(bed);
  std::vector<std::unique_ptr<Sink>> sinks;
  for (int host : m.receivers) {
    absl::StatusOr<int> fd = sockets.Open(host, kPort, m.dst);
    if (!fd.ok()) return fd.status();
    sinks.push_back(std::make_unique<Sink>(*fd, m.rate_pps > 0 ? 0 : -1));
  }
  absl::StatusOr<int> tx = sockets.Open(m.sender, 0, 0);
  if (!tx.ok()) return tx.status();
  setsockopt(*tx, IPPROTO_IP, IP_TOS, &m.tos, sizeof(m.tos));
  std::thread background;
  SendResult background_sent;
  if (m.background_from >= 0) {
    absl::StatusOr<int> bg = sockets.Open(m.background_from, 0, 0);
    if (!bg.ok()) return bg.status();
    FlowSpec spec{.fd = *bg, .dst = Sockaddr(bed.ip(m.receivers[0]), kPort),
                  .payload_bytes = PayloadForFrame(kLargeFrame), .rate_pps = m.background_pps,
                  .duration = phase + absl::Milliseconds(100), .flow = 1};
    background = std::thread([spec, &background_sent] { background_sent = SendFlow(spec); });
    absl::SleepFor(absl::Milliseconds(100));  // queues fill before measuring
  }
  const SendResult sent = SendFlow({.fd = *tx, .dst = Sockaddr(m.dst, kPort),
                                    .payload_bytes = PayloadForFrame(m.frame_bytes),
                                    .rate_pps = m.rate_pps, .duration = phase, .flow = 0});
  if (background.joinable()) background.join();
  BenchRow row{.fabric = m.fabric, .test = m.test};
  metrics::Histogram latency;
  uint64_t copies = 0, background_bytes = 0;
  for (auto& sink : sinks) {
    SinkResult r = sink->Stop(absl::Milliseconds(200));
    copies += r.packets[0];
    background_bytes += r.bytes[1];
    latency.Merge(r.latency_ns);
  }
  row.offered_pps = sent.packets / sent.seconds;
  row.delivered_pps = copies / sent.seconds;
  row.delivered_mbps = row.delivered_pps * m.frame_bytes * 8 / 1e6;
  const double expected = static_cast<double>(sent.packets) * m.receivers.size();
  row.loss_pct = expected > 0 ? 100 * (1 - copies / expected) : 0;
  row.latency_samples = latency.count();
  row.p50_us = latency.ValueAtQuantile(0.5) / 1e3;
  row.p99_us = latency.ValueAtQuantile(0.99) / 1e3;
  if (m.background_from >= 0 && background_sent.seconds > 0) {
    const double frames = background_bytes / static_cast<double>(PayloadForFrame(kLargeFrame));
    row.note = absl::StrFormat("background %.0f of %.0f Mbit/s offered arrived",
                               frames * kLargeFrame * 8 / 1e6 / background_sent.seconds,
                               background_sent.packets * kLargeFrame * 8 / 1e6 /
                                   background_sent.seconds);
  }
  if (before.ok()) {
    const double cpu = ProcessCpuSeconds(bed.switch_pid(sw)) - cpu_before;
    absl::StatusOr<SwitchStats> after = bed.Stats(sw);
    if (!after.ok()) return after.status();
    const uint64_t forwarded = after->forwarded() - before->forwarded();
    row.switch_cpu_seconds = cpu;
    row.forwarded_per_cpu_second = cpu > 0 ? forwarded / cpu : 0;
    absl::StrAppend(&row.note, row.note.empty() ? "" : "; ", "switch forwarded ", forwarded,
                    absl::StrFormat(" on %.2f CPU-s (%.0fk/CPU-s)", cpu,
                                    row.forwarded_per_cpu_second / 1e3),
                    ", drops: queue_full ",
                    after->drops().at("queue_full") - before->drops().at("queue_full"),
                    " tx_full ", after->drops().at("tx_full") - before->drops().at("tx_full"));
  }
  return row;
}

// The unshaped tests, on whatever forwards between the hosts now.
absl::Status RunUnshaped(Testbed& bed, const std::string& fabric, uint32_t group_ip,
                         const SwitchBenchOptions& o, std::vector<BenchRow>* rows) {
  const std::vector<int> h = bed.topology().hosts();
  const std::vector<int> members = {h[1], h[2], h[3]};
  std::vector<Measurement> tests;
  for (size_t frame : {kSmallFrame, kLargeFrame}) {
    tests.push_back({fabric, absl::StrCat("unicast ", frame, "B blast"), h[0], bed.ip(h[1]),
                     {h[1]}, frame});
    tests.push_back({fabric, absl::StrCat("multicast x3 ", frame, "B blast"), h[0], group_ip,
                     members, frame});
  }
  tests.push_back({fabric, absl::StrCat("unicast 64B paced"), h[0], bed.ip(h[1]), {h[1]},
                   kSmallFrame, o.latency_pps});
  tests.push_back({fabric, absl::StrCat("multicast x3 64B paced"), h[0], group_ip, members,
                   kSmallFrame, o.latency_pps});
  for (const Measurement& m : tests) {
    absl::StatusOr<BenchRow> row = Measure(bed, m, o.phase);
    if (!row.ok()) return row.status();
    rows->push_back(*std::move(row));
  }
  return absl::OkStatus();
}

Measurement QosTest(const Testbed& bed, const std::string& fabric, const std::string& test,
                    uint32_t group_ip, const SwitchBenchOptions& o, bool background) {
  const std::vector<int> h = bed.topology().hosts();
  Measurement m{fabric, test, h[0], group_ip, {h[1]}, kSmallFrame, o.latency_pps};
  if (background) {
    m.background_from = h[4];
    m.background_pps = o.background_load * o.shaped_mbps * 1e6 / (kLargeFrame * 8);
  }
  return m;
}

// The Linux bridge on the stopped switch's veths, members and hosts static.
absl::StatusOr<std::unique_ptr<LinuxBridge>> BridgeInstead(Testbed& bed) {
  const int sw = bed.topology().switches()[0];
  if (absl::Status s = bed.StopSwitch(sw, SIGTERM); !s.ok()) return s;
  std::vector<std::string> ifaces;
  for (int p = 0; p < static_cast<int>(bed.topology().ports(sw).size()); ++p) {
    ifaces.push_back(bed.SwitchPortIface(sw, p));
  }
  absl::StatusOr<std::unique_ptr<LinuxBridge>> bridge =
      LinuxBridge::Create(absl::StrCat("mombr", getpid()), ifaces, bed.netns(sw));
  if (!bridge.ok()) return bridge.status();
  const std::vector<int> h = bed.topology().hosts();
  for (int host : h) {
    if (absl::Status s = (*bridge)->AddHost(bed.topology().PortTo(sw, host), bed.mac(host));
        !s.ok()) {
      return s;
    }
  }
  for (int member : {h[1], h[2], h[3]}) {
    if (absl::Status s = (*bridge)->AddMulticastMember(bed.topology().PortTo(sw, member));
        !s.ok()) {
      return s;
    }
  }
  return bridge;
}

absl::StatusOr<uint32_t> ConfigureGroup(Testbed& bed, Design design) {
  const std::vector<int> h = bed.topology().hosts();
  absl::StatusOr<std::vector<GroupRoutes>> routes = bed.Configure(
      {GroupSpec{.group_id = kGroupId, .senders = {h[0]}, .receivers = {h[1], h[2], h[3]},
                 .design = design}});
  if (!routes.ok()) return routes.status();
  return SenderChannelIp((*routes)[0], 0);
}

}  // namespace

absl::StatusOr<std::vector<BenchRow>> RunSwitchBench(const SwitchBenchOptions& o) {
  std::vector<BenchRow> rows;
  if (o.throughput) {
    absl::StatusOr<std::unique_ptr<Testbed>> bed =
        Testbed::Create(Star(), {.switch_binary = o.switch_binary, .idle_sleep_us = 0});
    if (!bed.ok()) return bed.status();
    absl::StatusOr<uint32_t> group_ip = ConfigureGroup(**bed, Design::kTopologyAwareQos);
    if (!group_ip.ok()) return group_ip.status();
    if (absl::Status s = RunUnshaped(**bed, "mom_switch", *group_ip, o, &rows); !s.ok()) return s;
    absl::StatusOr<std::unique_ptr<LinuxBridge>> bridge = BridgeInstead(**bed);
    if (!bridge.ok()) return bridge.status();
    if (absl::Status s = RunUnshaped(**bed, "linux_bridge", *group_ip, o, &rows); !s.ok()) {
      return s;
    }
  }
  if (o.qos) {
    absl::StatusOr<std::unique_ptr<Testbed>> bed = Testbed::Create(
        Star(),
        {.switch_binary = o.switch_binary, .host_port_mbps = o.shaped_mbps, .idle_sleep_us = 0});
    if (!bed.ok()) return bed.status();
    const std::string shaped = absl::StrCat(o.shaped_mbps, " Mb/s ports");
    std::vector<std::pair<Measurement, Design>> switch_tests;
    absl::StatusOr<uint32_t> group_ip = ConfigureGroup(**bed, Design::kTopologyAwareQos);
    if (!group_ip.ok()) return group_ip.status();
    Measurement idle = QosTest(**bed, "mom_switch", shaped + ", no background", *group_ip, o, false);
    Measurement prio = QosTest(**bed, "mom_switch", shaped + " + background, strict priority",
                               *group_ip, o, true);
    prio.tos = kDscpEfTos;
    Measurement fifo =
        QosTest(**bed, "mom_switch", shaped + " + background, one FIFO", *group_ip, o, true);
    for (const auto& [m, design] : {std::pair{idle, Design::kTopologyAwareQos},
                                    std::pair{prio, Design::kTopologyAwareQos},
                                    std::pair{fifo, Design::kTopologyAware}}) {
      if (absl::StatusOr<uint32_t> ip = ConfigureGroup(**bed, design); !ip.ok()) return ip.status();
      absl::StatusOr<BenchRow> row = Measure(**bed, m, o.phase);
      if (!row.ok()) return row.status();
      rows.push_back(*std::move(row));
    }
    absl::StatusOr<std::unique_ptr<LinuxBridge>> bridge = BridgeInstead(**bed);
    if (!bridge.ok()) return bridge.status();
    for (bool priority : {false, true}) {
      if (absl::Status s = (*bridge)->ShapePorts(
              {.port_mbps = o.shaped_mbps, .priority_bands = priority});
          !s.ok()) {
        return s;
      }
      for (bool background : {false, true}) {
        if (!background && priority) continue;
        Measurement m = QosTest(
            **bed, "linux_bridge",
            absl::StrCat(shaped, background ? " + background, " : ", no background",
                         background ? (priority ? "strict priority" : "one FIFO") : ""),
            *group_ip, o, background);
        if (priority) m.tos = kDscpEfTos;
        absl::StatusOr<BenchRow> row = Measure(**bed, m, o.phase);
        if (!row.ok()) return row.status();
        rows.push_back(*std::move(row));
      }
    }
  }
  return rows;
}

std::string FormatBenchTable(const std::vector<BenchRow>& rows) {
  std::string out = absl::StrFormat("%-13s %-52s %10s %10s %8s %7s %9s %9s  %s\n", "fabric",
                                    "test", "sent/s", "copies/s", "Mbit/s", "loss%",
                                    "p50_us", "p99_us", "note");
  for (const BenchRow& r : rows) {
    const bool latency = r.latency_samples > 0;
    absl::StrAppendFormat(&out, "%-13s %-52s %10.0f %10.0f %8.1f %7.2f %9s %9s  %s\n", r.fabric,
                          r.test, r.offered_pps, r.delivered_pps, r.delivered_mbps, r.loss_pct,
                          latency ? absl::StrFormat("%.1f", r.p50_us) : "-",
                          latency ? absl::StrFormat("%.1f", r.p99_us) : "-", r.note);
  }
  return out;
}

}  // namespace dctk::mom
