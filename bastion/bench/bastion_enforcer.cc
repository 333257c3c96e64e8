// bastion_enforcer: puts Bastion on two namespace containers for the bench script and
// holds it there until SIGINT/SIGTERM, then detaches. Run in the namespace that holds the
// containers' host-side veths. Installs the client -> server dependency with the given
// TCP/UDP ports allowed, plus filler policies between other containers up to --policies:
// per filler edge one dependency and one exact-port rule, the shape of one iptables
// ACCEPT rule (-s -d -p --dport). With --range_policies, each filler edge also gets a
// port-range rule (its own LPM trie), as //bastion/bpf:datapath_benchmark installs.
//
//   ip netns exec HOST bastion_enforcer --policies=10000 \
//       --client=va,10.216.0.2,02:00:00:00:00:02 --server=vb,10.216.0.3,02:00:00:00:00:03 \
//       --tcp_ports=5201,11111 --udp_ports=11111
// Prints "ready" once the programs are attached and every policy is installed.
#include <arpa/inet.h>
#include <net/if.h>
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bastion/datapath/bpf_datapath.h"

ABSL_FLAG(int, policies, 1000, "policies installed in total (filler edges + the real one)");
ABSL_FLAG(std::string, client, "", "client container: host_veth,ipv4,mac");
ABSL_FLAG(std::string, server, "", "server container: host_veth,ipv4,mac");
ABSL_FLAG(std::vector<std::string>, tcp_ports, {}, "TCP ports the client may use on the server");
ABSL_FLAG(std::vector<std::string>, udp_ports, {}, "UDP ports the client may use on the server");
ABSL_FLAG(bool, range_policies, false, "also a port-range rule per filler edge");

namespace dctk::bastion {
namespace {

constexpr uint32_t kClient = 1, kServer = 2;

struct Container {
  int ifindex = 0;
  uint32_t ip = 0;
  MacAddress mac;
};

absl::StatusOr<Container> ParseContainer(const std::string& spec) {
  std::vector<std::string> f = absl::StrSplit(spec, ',');
  if (f.size() != 3) return absl::InvalidArgumentError("'" + spec + "' is not veth,ipv4,mac");
  Container c;
  c.ifindex = static_cast<int>(if_nametoindex(f[0].c_str()));
  if (c.ifindex == 0) return absl::NotFoundError("no interface " + f[0] + " in this namespace");
  in_addr addr{};
  if (inet_pton(AF_INET, f[1].c_str(), &addr) != 1) {
    return absl::InvalidArgumentError("'" + f[1] + "' is not an IPv4 address");
  }
  c.ip = ntohl(addr.s_addr);
  absl::StatusOr<MacAddress> mac = MacAddress::Parse(f[2]);
  if (!mac.ok()) return mac.status();
  c.mac = *mac;
  return c;
}

absl::Status AllowPorts(Datapath& dp, uint8_t proto, const std::vector<std::string>& ports) {
  for (const std::string& text : ports) {
    uint32_t port = 0;
    if (!absl::SimpleAtoi(text, &port) || port > 65535) {
      return absl::InvalidArgumentError("'" + text + "' is not a port");
    }
    auto p = static_cast<uint16_t>(port);
    if (absl::Status s = dp.UpsertPolicy({.src_id = kClient, .dst_id = kServer, .proto = proto,
                                          .first_port = p, .last_port = p});
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

// Filler edges between containers that exist only in the policy (ids 100+ -> 10000+).
absl::Status InstallFiller(Datapath& dp, int n, bool ranges) {
  for (int i = 1; i < n; ++i) {
    uint32_t src = 100 + i / 50, dst = 10000 + i % 50;
    absl::Status s = dp.AddDependency(src, dst, 0);
    if (s.ok()) {
      s = dp.UpsertPolicy({.src_id = src, .dst_id = dst, .proto = kTcp,
                           .first_port = static_cast<uint16_t>(1000 + i),
                           .last_port = static_cast<uint16_t>(1000 + i)});
    }
    if (s.ok() && ranges) {
      s = dp.UpsertPolicy({.src_id = src, .dst_id = dst, .proto = kUdp,
                           .first_port = static_cast<uint16_t>(16 * (i % 4000) + 1),
                           .last_port = static_cast<uint16_t>(16 * (i % 4000) + 8)});
    }
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Run() {
  absl::StatusOr<Container> client = ParseContainer(absl::GetFlag(FLAGS_client));
  if (!client.ok()) return client.status();
  absl::StatusOr<Container> server = ParseContainer(absl::GetFlag(FLAGS_server));
  if (!server.ok()) return server.status();
  // Signals wait for sigwait below, so the datapath's destructor always detaches.
  sigset_t stop;
  sigemptyset(&stop);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&stop, sig);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  absl::StatusOr<std::unique_ptr<BpfDatapath>> dp = BpfDatapath::Create({});
  if (!dp.ok()) return dp.status();
  absl::Time start = absl::Now();
  for (const auto& [id, c] : {std::pair{kClient, *client}, std::pair{kServer, *server}}) {
    if (absl::Status s = (*dp)->UpsertEndpoint(c.ip, {id, c.mac, c.ifindex}); !s.ok()) return s;
    if (absl::Status s = (*dp)->BindInterface(c.ifindex, {id, c.ip, c.mac}); !s.ok()) return s;
  }
  if (absl::Status s = (*dp)->AddDependency(kClient, kServer, 0); !s.ok()) return s;
  if (absl::Status s = AllowPorts(**dp, kTcp, absl::GetFlag(FLAGS_tcp_ports)); !s.ok()) return s;
  if (absl::Status s = AllowPorts(**dp, kUdp, absl::GetFlag(FLAGS_udp_ports)); !s.ok()) return s;
  if (absl::Status s = InstallFiller(**dp, absl::GetFlag(FLAGS_policies),
                                       absl::GetFlag(FLAGS_range_policies)); !s.ok()) return s;
  for (const Container& c : {*client, *server}) {
    if (absl::Status s = (*dp)->Attach(c.ifindex); !s.ok()) return s;
  }
  std::printf("ready: %d policies installed in %.2f s\n", absl::GetFlag(FLAGS_policies),
              absl::ToDoubleSeconds(absl::Now() - start));
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  absl::StatusOr<VerdictCounters> counters = (*dp)->ReadCounters();
  if (counters.ok()) {
    for (uint32_t i = 0; i < counters->size(); ++i) {
      if ((*counters)[i]) std::printf("counter %s %lu\n", VerdictName(i).data(), (*counters)[i]);
    }
  }
  return absl::OkStatus();  // the datapath detaches from both veths as it goes
}

}  // namespace
}  // namespace dctk::bastion

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::Status s = dctk::bastion::Run();
  if (!s.ok()) {
    std::fprintf(stderr, "bastion_enforcer: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
