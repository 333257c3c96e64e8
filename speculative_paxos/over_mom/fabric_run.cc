#include "speculative_paxos/over_mom/fabric_run.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/process/child_process.h"
#include "mom/controller/fabric_group.h"
#include "mom/testbed/netns.h"
#include "speculative_paxos/over_mom/group_text.h"

namespace dctk::spaxos {
namespace {

constexpr uint16_t kReplicaPort = 7100;
constexpr uint16_t kGroupPort = 7200;
constexpr uint16_t kBackgroundPort = 7001;
constexpr size_t kBackgroundBytes = 1000;

// A program started in a testbed namespace through `ip netns exec`, which
// execs it in place (so the child is the program); stdout piped, stderr
// inherited. SIGKILLed and reaped if still running when dropped.
absl::StatusOr<std::unique_ptr<ChildProcess>> StartInNetns(const std::string& netns,
                                                           const std::vector<std::string>& args) {
  std::string ip = "/usr/sbin/ip";  // ChildProcess takes a path: the first found
  for (const char* path : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (access(path, X_OK) == 0) {
      ip = path;
      break;
    }
  }
  std::vector<std::string> all = {ip, "netns", "exec", netns};
  all.insert(all.end(), args.begin(), args.end());
  return ChildProcess::Start(std::move(all), {.out = ChildOutput::Pipe()});
}

// Reads `child`'s stdout until the line `line`.
absl::Status WaitForLine(ChildProcess& child, const std::string& line, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    absl::StatusOr<std::string> got = child.ReadLine(deadline - absl::Now());
    if (!got.ok()) {
      return absl::Status(got.status().code(),
                          absl::StrCat("waiting for '", line, "': ", got.status().message()));
    }
    if (*got == line) return absl::OkStatus();
  }
}

// Waits for `child` to exit (SIGKILL after `timeout`); its output after the
// lines already read. Exit code 0 or 1 (a failed check it reports) is a result.
absl::StatusOr<std::string> Finish(ChildProcess& child, absl::Duration timeout) {
  absl::StatusOr<std::string> out = child.ReadToEnd(timeout);
  if (!out.ok()) {
    child.Kill(SIGKILL);
    return absl::DeadlineExceededError(absl::StrCat(
        "child killed after ", absl::FormatDuration(timeout), ": ", out.status().message()));
  }
  const int code = child.Wait();
  if (code != 0 && code != 1) {
    return absl::InternalError(absl::StrCat("child failed (exit status ", code, "): ", *out));
  }
  return out;
}

uint64_t MonotonicNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void SleepUntil(uint64_t ns) {
  timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
}

// Paced UDP blasters between host pairs; stopped and joined on destruction.
class Background {
 public:
  ~Background() {
    stop_ = true;
    for (std::thread& t : threads_) t.join();
    for (int fd : fds_) close(fd);
  }
  absl::Status Start(mom::Testbed& bed, const std::vector<std::pair<int, int>>& pairs, double mbps) {
    if (pairs.empty() || mbps <= 0) return absl::OkStatus();
    std::vector<int> senders;
    for (const auto& [from, to] : pairs) {
      absl::StatusOr<int> sink = bed.UdpSocket(to);
      if (!sink.ok()) return sink.status();
      fds_.push_back(*sink);
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(kBackgroundPort);
      int one = 1;
      setsockopt(*sink, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      bind(*sink, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));  // a second sink on `to` may fail: fine
      absl::StatusOr<int> fd = bed.UdpSocket(from);
      if (!fd.ok()) return fd.status();
      fds_.push_back(*fd);
      senders.push_back(*fd);
    }
    for (size_t b = 0; b < pairs.size(); ++b) {
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_port = htons(kBackgroundPort);
      to.sin_addr.s_addr = htonl(bed.ip(pairs[b].second));
      const int fd = senders[b];
      threads_.emplace_back([this, fd, to, mbps] {
        const std::string filler(kBackgroundBytes, 'b');
        const auto interval_ns = static_cast<uint64_t>(kBackgroundBytes * 8 / (mbps * 1e6) * 1e9);
        uint64_t next = MonotonicNanos();
        while (!stop_.load()) {
          sendto(fd, filler.data(), filler.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                 sizeof(to));
          next += interval_ns;
          SleepUntil(next);
        }
      });
    }
    SleepUntil(MonotonicNanos() + 50'000'000);  // let the queues reach steady state
    return absl::OkStatus();
  }

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  std::vector<int> fds_;
};

// The "key=value" fields of the line starting with `prefix`, which is
// appended to `lines`.
absl::StatusOr<std::map<std::string, double>> Counters(const std::string& output,
                                                       absl::string_view prefix,
                                                       std::vector<std::string>* lines) {
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (!absl::StartsWith(line, prefix)) continue;
    lines->emplace_back(line);
    std::map<std::string, double> out;
    for (absl::string_view field : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
      const std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(field, '=');
      double v = 0;
      if (absl::SimpleAtod(kv.second, &v)) out[std::string(kv.first)] = v;
    }
    return out;
  }
  return absl::InternalError(absl::StrCat("no '", prefix, "' line in: ", output));
}

// Switch drops by reason, summed over the fabric's switches.
absl::StatusOr<std::map<std::string, uint64_t>> SwitchDrops(mom::Testbed& bed) {
  std::map<std::string, uint64_t> total;
  for (int sw : bed.topology().switches()) {
    absl::StatusOr<mom::SwitchStats> s = bed.Stats(sw);
    if (!s.ok()) return s.status();
    for (const auto& [reason, n] : s->drops()) total[reason] += n;
  }
  return total;
}

absl::StatusOr<mom::GroupConfig> GroupFor(mom::Testbed& bed, const FabricRunConfig& c,
                                          const std::vector<transport::Address>& replicas,
                                          const std::vector<uint32_t>& first_ids) {
  if (!c.design) {
    absl::StatusOr<std::vector<mom::GroupRoutes>> none = bed.Configure({});  // unicast routes only
    if (!none.ok()) return none.status();
    return mom::GroupConfig{.group_id = c.group_id, .members = replicas,
                            .delivery = mom::Delivery::kReplicatedUnicast};
  }
  absl::StatusOr<std::vector<mom::GroupRoutes>> routes = bed.Configure(
      {mom::GroupSpec{.group_id = c.group_id, .senders = c.client_hosts,
                      .receivers = c.replica_hosts, .design = *c.design}});
  if (!routes.ok()) return routes.status();
  absl::StatusOr<mom::GroupConfig> g = mom::FabricGroupConfig((*routes)[0], kGroupPort, first_ids);
  if (!g.ok()) return g.status();
  // Every client of a host sends on that host's channel.
  for (uint32_t first : first_ids) {
    const transport::Address channel = g->sender_addresses.at(first);
    for (int j = 1; j < c.clients_per_host; ++j) g->sender_addresses[first + j] = channel;
  }
  g->members = replicas;
  return g;
}

}  // namespace

std::string RunName(const FabricRunConfig& config) {
  return config.design ? std::string(mom::DesignName(*config.design)) : "unicast";
}

absl::StatusOr<FabricRunResult> RunSpaxosOverFabric(mom::Testbed& bed, const FabricRunConfig& c) {
  if (c.replica_hosts.size() % 2 != 1 || c.client_hosts.empty() || c.clients_per_host < 1) {
    return absl::InvalidArgumentError("RunSpaxosOverFabric: need 2f+1 replicas and clients");
  }
  std::vector<transport::Address> replicas;
  std::string replica_list;
  for (int h : c.replica_hosts) {
    replicas.emplace_back(bed.ip(h), kReplicaPort);
    absl::StrAppend(&replica_list, replica_list.empty() ? "" : ",", replicas.back().ToString());
  }
  std::vector<uint32_t> first_ids;  // client host k: ids (k+1)*1000 + 1, ...
  for (size_t k = 0; k < c.client_hosts.size(); ++k) {
    first_ids.push_back(static_cast<uint32_t>((k + 1) * 1000 + 1));
  }
  absl::StatusOr<mom::GroupConfig> group = GroupFor(bed, c, replicas, first_ids);
  if (!group.ok()) return group.status();
  const std::string group_text = GroupToText(*group);

  absl::StatusOr<std::map<std::string, uint64_t>> drops_before = SwitchDrops(bed);
  if (!drops_before.ok()) return drops_before.status();
  std::vector<std::unique_ptr<ChildProcess>> replica_procs, client_procs;
  std::vector<std::string> arrival_files, latency_files;
  for (size_t i = 0; i < c.replica_hosts.size(); ++i) {
    arrival_files.push_back(absl::StrCat(c.work_dir, "/arrivals_", RunName(c), "_", i, ".txt"));
    absl::StatusOr<std::unique_ptr<ChildProcess>> p = StartInNetns(
        bed.netns(c.replica_hosts[i]),
        {c.node_binary, "--role=replica", absl::StrCat("--index=", i),
         "--replicas=" + replica_list, "--group=" + group_text, "--arrivals=" + arrival_files[i],
         absl::StrCat("--leader_timeout_ms=", c.leader_timeout_ms),
         absl::StrCat("--max_datagram=", c.max_datagram),
         absl::StrCat("--transfer_chunk=", c.transfer_chunk)});
    if (!p.ok()) return p.status();
    replica_procs.push_back(*std::move(p));
  }
  for (auto& p : replica_procs) {
    if (absl::Status s = WaitForLine(*p, "ready", absl::Seconds(20)); !s.ok()) return s;
  }
  Background background;
  if (absl::Status s = background.Start(bed, c.background, c.background_mbps); !s.ok()) return s;
  for (size_t k = 0; k < c.client_hosts.size(); ++k) {
    latency_files.push_back(absl::StrCat(c.work_dir, "/latency_", RunName(c), "_", k, ".txt"));
    std::vector<std::string> args = {
        c.node_binary, "--role=client", "--ip=" + mom::Ipv4Text(bed.ip(c.client_hosts[k])),
        "--replicas=" + replica_list, "--group=" + group_text,
        absl::StrCat("--first_client_id=", first_ids[k]),
        absl::StrCat("--clients=", c.clients_per_host), "--latencies=" + latency_files[k],
        absl::StrCat("--resend_timeout_ms=", c.resend_timeout_ms)};
    if (c.verify_ops > 0) {
      args.push_back(absl::StrCat("--verify_ops=", c.verify_ops));
    } else {
      args.push_back(absl::StrCat("--warmup_ms=", c.warmup_ms));
      args.push_back(absl::StrCat("--duration_ms=", c.duration_ms));
    }
    absl::StatusOr<std::unique_ptr<ChildProcess>> p =
        StartInNetns(bed.netns(c.client_hosts[k]), args);
    if (!p.ok()) return p.status();
    client_procs.push_back(*std::move(p));
  }
  if (c.pause_leader_ms > 0 && c.verify_ops == 0) {
    absl::SleepFor(absl::Milliseconds(c.warmup_ms + c.duration_ms / 3));
    replica_procs[0]->Signal(SIGSTOP);
    absl::SleepFor(absl::Milliseconds(c.pause_leader_ms));
    replica_procs[0]->Signal(SIGCONT);
  }

  FabricRunResult r;
  r.clients = static_cast<int>(c.client_hosts.size()) * c.clients_per_host;
  std::vector<double> latencies;
  const absl::Duration client_limit =
      absl::Milliseconds(c.warmup_ms + c.duration_ms) + absl::Seconds(40);
  for (size_t k = 0; k < client_procs.size(); ++k) {
    absl::StatusOr<std::string> out = Finish(*client_procs[k], client_limit);
    if (!out.ok()) return out.status();
    absl::StatusOr<std::map<std::string, double>> m = Counters(*out, "client ", &r.process_lines);
    if (!m.ok()) return m.status();
    auto get = [&](const char* key) { return static_cast<uint64_t>((*m)[key]); };
    r.completed += get("completed");
    r.measured += get("measured");
    r.window_s = std::max(r.window_s, (*m)["window_s"]);
    if ((*m)["window_s"] > 0) r.ops_per_s += (*m)["measured"] / (*m)["window_s"];
    r.fast += get("fast");
    r.slow += get("slow");
    r.resends += get("resends");
    r.reconcile_requests += get("reconcile_requests");
    r.early_commit_requests += get("early_commit_requests");
    r.wrong += get("wrong");
    r.unfinished += static_cast<int>(get("unfinished"));
    std::ifstream in(latency_files[k]);
    for (double us; in >> us;) latencies.push_back(us);
  }
  mom::ReorderMeter meter(static_cast<int>(replica_procs.size()));
  for (size_t i = 0; i < replica_procs.size(); ++i) {
    replica_procs[i]->Signal(SIGTERM);
    absl::StatusOr<std::string> out = Finish(*replica_procs[i], absl::Seconds(20));
    if (!out.ok()) return out.status();
    absl::StatusOr<std::map<std::string, double>> m = Counters(*out, "replica ", &r.process_lines);
    if (!m.ok()) return m.status();
    auto get = [&](const char* key) { return static_cast<uint64_t>((*m)[key]); };
    r.reconciliations = std::max(r.reconciliations, get("reconciliations"));
    r.view_changes = std::max(r.view_changes, get("view_changes"));
    r.order_repairs += get("order_repairs");
    r.rolled_back += get("rolled_back");
    r.transfers += get("transfers");
    r.mom_missing += get("mom_missing");
    r.group_seq_missing += get("mom_group_seq_missing");
    std::ifstream in(arrival_files[i]);
    uint32_t sender = 0;
    uint64_t seq = 0;
    while (in >> sender >> seq) meter.Record(static_cast<int>(i), {sender, seq});
  }
  r.reorder = meter.Compute();
  absl::StatusOr<std::map<std::string, uint64_t>> drops_after = SwitchDrops(bed);
  if (!drops_after.ok()) return drops_after.status();
  r.queue_full_drops = (*drops_after)["queue_full"] - (*drops_before)["queue_full"];
  r.tx_full_drops = (*drops_after)["tx_full"] - (*drops_before)["tx_full"];
  r.no_route_drops = (*drops_after)["no_route"] - (*drops_before)["no_route"];
  std::sort(latencies.begin(), latencies.end());
  if (!latencies.empty()) {
    r.p50_us = latencies[latencies.size() / 2];
    r.p99_us = latencies[std::min(latencies.size() - 1, latencies.size() * 99 / 100)];
  }
  return r;
}

}  // namespace dctk::spaxos
