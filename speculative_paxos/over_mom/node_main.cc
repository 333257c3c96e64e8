// spaxos_mom_node: a Speculative Paxos replica or a client process whose
// requests travel through a MOM group (mom/group.h) given on the command line,
// as the over-MOM bench starts them inside testbed namespaces.
//
//   spaxos_mom_node --role=replica --index=0 --replicas=A,B,C --group='<GroupText>'
//                   [--arrivals=FILE] [--leader_timeout_ms=200] [--max_datagram=1400]
//                   [--transfer_chunk=256]
//     Runs a KvApp replica at replicas[index]; prints "ready" once serving. On
//     SIGTERM / SIGINT prints one "replica ..." line of counters (ReplicaStats,
//     the MOM receiver's, the final stamp and status) and writes to FILE the (sender id, sender seq) of
//     every MOM packet in arrival order, one "ID SEQ" per line.
//   spaxos_mom_node --role=client --ip=10.201.0.5 --replicas=A,B,C --group='<GroupText>'
//                   --first_client_id=1001 --clients=4
//                   (--warmup_ms=500 --duration_ms=3000 [--latencies=FILE] | --verify_ops=20)
//                   [--resend_timeout_ms=10]
//     Closed-loop clients, each on its own endpoint (MOM requests cannot share
//     one). Load: PUTs to the client's own keys; completions after the warmup
//     and before the end are counted and their latencies (us) written to
//     FILE. Verify: each client alternates PUT k=v<n> and GET k, and the GET
//     must return v<n>. Prints one "client ..." line: completed, measured,
//     window_s, fast, slow, resends, reconcile_requests,
//     early_commit_requests, wrong, unfinished. Exits 1 on a wrong reply.
#include <signal.h>
#include <sys/prctl.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/transport/udp_transport.h"
#include "glog/logging.h"
#include "speculative_paxos/client.h"
#include "speculative_paxos/kv_app.h"
#include "speculative_paxos/over_mom/group_text.h"
#include "speculative_paxos/over_mom/recording_transport.h"
#include "speculative_paxos/replica.h"

ABSL_FLAG(std::string, role, "", "replica or client");
ABSL_FLAG(std::string, replicas, "", "replica addresses, comma-separated (index order)");
ABSL_FLAG(std::string, group, "", "the MOM group (group_text.h)");
ABSL_FLAG(int, index, 0, "replica: this replica's index");
ABSL_FLAG(std::string, arrivals, "", "replica: file for MOM arrivals (written on exit)");
ABSL_FLAG(int, max_datagram, dctk::spaxos::ReplicaConfig().max_datagram,
          "replica: largest datagram it sends; log changes and transfers go in pieces that "
          "fit (the MOM switch's DPDK af_packet ports pass at most 1472 bytes)");
ABSL_FLAG(int, transfer_chunk, dctk::spaxos::ReplicaConfig().transfer_chunk,
          "replica: at most this many log entries per state-transfer reply");
ABSL_FLAG(int, leader_timeout_ms, 200,
          "replica: silence from the leader before a view change (a loaded 2-core machine "
          "deschedules processes for tens of ms)");
ABSL_FLAG(std::string, ip, "", "client: this host's address");
ABSL_FLAG(uint64_t, first_client_id, 1, "client: id of the first client (the MOM sender id)");
ABSL_FLAG(int, clients, 1, "client: closed-loop clients");
ABSL_FLAG(int, warmup_ms, 500, "client: completions before this are not measured");
ABSL_FLAG(int, duration_ms, 3000, "client: measured time after the warmup");
ABSL_FLAG(std::string, latencies, "", "client: file for measured latencies (us)");
ABSL_FLAG(int, resend_timeout_ms, 10, "client: resend (and ask the leader) after this");
ABSL_FLAG(int, verify_ops, 0, "client: PUT/GET checks per client instead of a timed load");

namespace dctk::spaxos {
namespace {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "spaxos_mom_node: %s\n", s.ToString().c_str());
  return 2;
}

absl::StatusOr<std::vector<transport::Address>> ParseAddresses(absl::string_view text) {
  std::vector<transport::Address> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    absl::StatusOr<transport::Address> a = transport::Address::Parse(part);
    if (!a.ok()) return a.status();
    out.push_back(*a);
  }
  if (out.empty()) return absl::InvalidArgumentError("--replicas is empty");
  return out;
}

int RunReplica(std::vector<transport::Address> replicas, mom::GroupConfig group) {
  const int index = absl::GetFlag(FLAGS_index);
  if (index < 0 || index >= static_cast<int>(replicas.size())) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("--index=", index, " out of range")));
  }
  // Signals go to the waiting thread only.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<transport::UdpTransport>> udp = transport::UdpTransport::Create();
  if (!udp.ok()) return Fail(udp.status());
  RecordingTransport net(udp->get());
  ReplicaConfig config{.replicas = replicas, .mom = group};
  config.leader_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_leader_timeout_ms));
  config.transfer_chunk = absl::GetFlag(FLAGS_transfer_chunk);
  config.max_datagram = absl::GetFlag(FLAGS_max_datagram);
  config.endpoint.multicast_interface_ip = replicas[index].ip();
  KvApp app;
  Replica replica(&net, config, static_cast<uint32_t>(index), &app);
  if (absl::Status s = replica.Start(); !s.ok()) return Fail(s);
  std::thread stopper([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    net.Stop();
  });
  std::printf("ready\n");
  std::fflush(stdout);
  net.Run();
  stopper.join();

  const ReplicaStats& st = replica.stats();
  const mom::MomReceiver::Stats& ms = replica.mom_receiver()->stats();
  std::printf(
      "replica index=%d requests=%lu duplicate_requests=%lu commits=%lu commit_point=%lu "
      "reconciliations=%lu view_changes=%lu order_repairs=%lu rolled_back=%lu transfers=%lu "
      "mom_delivered=%lu mom_missing=%lu mom_duplicates=%lu mom_group_seq_missing=%lu "
      "stamp=%s status=%d rejected=%s\n",
      index, st.requests, st.duplicate_requests, st.commits, replica.commit_point(),
      st.reconciliations, st.view_changes, st.order_repairs, st.rolled_back, st.transfers,
      ms.delivered, ms.missing, ms.count(mom::Arrival::kDuplicate), ms.group_seq_missing,
      replica.stamp().ToString().c_str(), static_cast<int>(replica.status()),
      absl::StrJoin(st.rejected, "/").c_str());
  std::fflush(stdout);
  if (const std::string path = absl::GetFlag(FLAGS_arrivals); !path.empty()) {
    std::ofstream out(path);
    for (const mom::MessageId& id : net.arrivals()) out << id.sender << ' ' << id.seq << '\n';
    if (!out) return Fail(absl::InternalError(absl::StrCat("writing ", path)));
  }
  return 0;
}

// Closed-loop clients on one transport.
class Load {
 public:
  Load(transport::Transport* net, int verify_ops, absl::Time measure_from, absl::Time end)
      : net_(net), verify_ops_(verify_ops), measure_from_(measure_from), end_(end) {}

  void Add(std::unique_ptr<Client> c) {
    clients_.push_back(std::move(c));
    ops_.push_back(0);
  }
  void Start() {
    for (size_t j = 0; j < clients_.size(); ++j) Issue(j);
  }
  // Gives up outstanding requests (a stalled client) and stops the loop.
  void Abandon() {
    for (auto& c : clients_) {
      if (c->busy()) {
        c->Cancel();
        ++unfinished_;
      }
    }
    net_->Stop();
  }

  uint64_t completed = 0, measured = 0, wrong = 0;
  std::vector<double> latencies_us;
  int unfinished() const { return unfinished_; }
  const std::vector<std::unique_ptr<Client>>& clients() const { return clients_; }

 private:
  std::string Key(size_t j) const { return absl::StrCat("k", clients_[j]->client_id()); }

  void Issue(size_t j) {
    const bool done = verify_ops_ > 0 ? ops_[j] >= static_cast<uint64_t>(verify_ops_)
                                      : net_->Now() >= end_;
    if (done) {
      if (++idle_ == static_cast<int>(clients_.size())) net_->Stop();
      return;
    }
    const uint64_t n = ops_[j]++;
    const bool get = verify_ops_ > 0 && n % 2 == 1;
    const std::string value = absl::StrCat("v", n / 2);
    const absl::Time sent = net_->Now();
    clients_[j]->Invoke(get ? KvApp::Get(Key(j)) : KvApp::Put(Key(j), value),
                        [this, j, get, value, sent](const std::string& result) {
                          const absl::Time now = net_->Now();
                          ++completed;
                          if (get) {
                            const KvResult r = KvApp::ParseResult(result);
                            if (!r.found() || r.value() != value) ++wrong;
                          }
                          if (now >= measure_from_ && now <= end_) {
                            ++measured;
                            latencies_us.push_back(absl::ToDoubleMicroseconds(now - sent));
                          }
                          Issue(j);
                        });
  }

  transport::Transport* net_;
  const int verify_ops_;
  const absl::Time measure_from_, end_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::vector<uint64_t> ops_;
  int idle_ = 0;
  int unfinished_ = 0;
};

int RunClient(std::vector<transport::Address> replicas, mom::GroupConfig group) {
  absl::StatusOr<transport::Address> ip = transport::Address::Parse(
      absl::StrCat(absl::GetFlag(FLAGS_ip), ":0"));
  if (!ip.ok()) return Fail(ip.status());
  absl::StatusOr<std::unique_ptr<transport::UdpTransport>> udp = transport::UdpTransport::Create();
  if (!udp.ok()) return Fail(udp.status());
  transport::UdpTransport* net = udp->get();
  ClientConfig config{.replicas = replicas, .mom = group};
  config.resend_timeout = absl::Milliseconds(absl::GetFlag(FLAGS_resend_timeout_ms));
  config.endpoint.multicast_interface_ip = ip->ip();
  const int verify_ops = absl::GetFlag(FLAGS_verify_ops);
  const absl::Time start = absl::Now();
  const absl::Time measure_from = start + absl::Milliseconds(absl::GetFlag(FLAGS_warmup_ms));
  const absl::Time end = measure_from + absl::Milliseconds(absl::GetFlag(FLAGS_duration_ms));
  Load load(net, verify_ops, measure_from, verify_ops > 0 ? absl::InfiniteFuture() : end);
  for (int j = 0; j < absl::GetFlag(FLAGS_clients); ++j) {
    auto c = std::make_unique<Client>(net, config, absl::GetFlag(FLAGS_first_client_id) + j, *ip);
    if (absl::Status s = c->Start(); !s.ok()) return Fail(s);
    load.Add(std::move(c));
  }
  net->Post([&] { load.Start(); });
  // Outstanding requests still unanswered this long after the end are a stall.
  const absl::Duration guard = verify_ops > 0 ? absl::Seconds(30) : (end - start) + absl::Seconds(2);
  net->Timer(guard, [&] { load.Abandon(); });
  net->Run();

  ClientStats stats;
  for (const auto& c : load.clients()) stats.Add(c->stats());
  const double window_s =
      verify_ops > 0 ? absl::ToDoubleSeconds(absl::Now() - start)
                     : absl::ToDoubleSeconds(end - measure_from);
  std::printf(
      "client completed=%lu measured=%lu window_s=%.3f fast=%lu slow=%lu resends=%lu "
      "reconcile_requests=%lu early_commit_requests=%lu wrong=%lu unfinished=%d\n",
      load.completed, load.measured, window_s, stats.fast_path, stats.slow_path, stats.resends,
      stats.reconcile_requests, stats.early_commit_requests, load.wrong, load.unfinished());
  std::fflush(stdout);
  if (const std::string path = absl::GetFlag(FLAGS_latencies); !path.empty()) {
    std::ofstream out(path);
    for (double us : load.latencies_us) out << absl::StrFormat("%.1f\n", us);
    if (!out) return Fail(absl::InternalError(absl::StrCat("writing ", path)));
  }
  return load.wrong == 0 ? 0 : 1;
}

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the bench that started us
  absl::StatusOr<std::vector<transport::Address>> replicas =
      ParseAddresses(absl::GetFlag(FLAGS_replicas));
  if (!replicas.ok()) return Fail(replicas.status());
  absl::StatusOr<mom::GroupConfig> group = GroupFromText(absl::GetFlag(FLAGS_group));
  if (!group.ok()) return Fail(group.status());
  const std::string role = absl::GetFlag(FLAGS_role);
  if (role == "replica") return RunReplica(*std::move(replicas), *std::move(group));
  if (role == "client") return RunClient(*std::move(replicas), *std::move(group));
  return Fail(absl::InvalidArgumentError("--role must be replica or client"));
}

}  // namespace
}  // namespace dctk::spaxos

int main(int argc, char** argv) { return dctk::spaxos::Main(argc, argv); }
