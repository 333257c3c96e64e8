#include "mom/testbed/testbed.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/process/child_process.h"
#include "common/process/run_command.h"
#include "mom/controller/switch_config.h"
#include "mom/testbed/netns.h"

namespace dctk::mom {
namespace {

constexpr uint32_t kHostNet = 0x0ac90000;  // 10.201.0.0/16

std::string Mac(uint32_t ip) {
  return absl::StrFormat("02:00:%02x:%02x:%02x:%02x", ip >> 24, (ip >> 16) & 0xff,
                         (ip >> 8) & 0xff, ip & 0xff);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Testbed>> Testbed::Create(Topology topology,
                                                         TestbedOptions options) {
  if (geteuid() != 0) return absl::PermissionDeniedError("the MOM testbed needs root");
  if (options.switch_binary.empty() || access(options.switch_binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("mom_switch binary '", options.switch_binary, "' is not executable"));
  }
  if (options.tag.empty()) options.tag = absl::StrCat(getpid() % 100000);
  std::unique_ptr<Testbed> bed(new Testbed(std::move(topology), std::move(options)));
  if (absl::Status s = bed->Build(); !s.ok()) return s;  // the destructor cleans up
  return bed;
}

std::string Testbed::netns(int node) const {
  return absl::StrCat("mom", options_.tag, "_", topology_.node(node).name);
}

uint32_t Testbed::ip(int host) const { return kHostNet + 1 + static_cast<uint32_t>(host); }

std::string Testbed::mac(int host) const { return Mac(ip(host)); }

std::string Testbed::SwitchPortIface(int node, int port) const {
  return LinkEnd(topology_.ports(node)[port].link, node);
}

bool Testbed::switch_running(int node) const {
  auto it = switches_.find(node);
  return it != switches_.end() && it->second.process != nullptr && it->second.process->running();
}

pid_t Testbed::switch_pid(int node) const {
  auto it = switches_.find(node);
  return it == switches_.end() || it->second.process == nullptr ? -1 : it->second.process->pid();
}

absl::Status Testbed::StopSwitch(int node, int signal) {
  auto it = switches_.find(node);
  if (!switch_running(node)) {
    return absl::NotFoundError(absl::StrCat("no running switch at node ", node));
  }
  SwitchProcess& sw = it->second;
  sw.client.reset();
  const pid_t pid = sw.process->pid();
  sw.process->Kill(signal);
  // A killed switch leaves DPDK's runtime directory (its exit path removes it).
  std::error_code ignored;
  std::filesystem::remove_all(absl::StrCat("/var/run/dpdk/mom_switch_", pid), ignored);
  return absl::OkStatus();
}

std::string Testbed::LinkEnd(int link, int node) const {
  const Link& l = topology_.links()[link];
  return absl::StrCat("m", options_.tag, "l", link, node == l.a ? "a" : "b");
}

absl::StatusOr<int> Testbed::UdpSocket(int host) const { return UdpSocketInNetns(netns(host)); }

absl::StatusOr<int> Testbed::GroupReceiver(int host, uint16_t* port,
                                           const std::vector<uint32_t>& groups) const {
  absl::StatusOr<int> fd = UdpSocket(host);
  if (!fd.ok()) return fd.status();
  auto fail = [&](absl::string_view what) {
    const absl::Status s = absl::InternalError(
        absl::StrCat("receiver on host ", host, ": ", what, ": ", strerror(errno)));
    close(*fd);
    return s;
  };
  const int size = 4 << 20;
  setsockopt(*fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(*port);
  if (bind(*fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0)
    return fail(absl::StrCat("bind to port ", *port));
  socklen_t len = sizeof(sa);
  if (getsockname(*fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) return fail("getsockname");
  *port = ntohs(sa.sin_port);
  for (uint32_t g : groups) {
    ip_mreq mreq{};
    mreq.imr_multiaddr.s_addr = htonl(g);
    mreq.imr_interface.s_addr = htonl(ip(host));
    if (setsockopt(*fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) != 0)
      return fail("IP_ADD_MEMBERSHIP");
  }
  timeval guard{5, 0};
  setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof(guard));
  return *fd;
}

absl::Status Testbed::RunIn(int host, const std::string& command) const {
  return RunCommand(absl::StrCat("ip netns exec ", netns(host), " ", command)).status();
}

absl::Status Testbed::AddNamespace(int node) {
  const std::string ns = netns(node);
  if (absl::Status s = RunCommand(absl::StrCat("ip netns add ", ns)).status(); !s.ok()) return s;
  namespaces_.push_back(ns);
  // IPv6 off on every interface made in it (no router solicitations or MLD
  // reports on the fabric).
  return RunCommand(absl::StrCat("ip netns exec ", ns,
                                 " sysctl -qw net.ipv6.conf.all.disable_ipv6=1"
                                 " net.ipv6.conf.default.disable_ipv6=1 && ip -n ",
                                 ns, " link set lo up"))
      .status();
}

absl::Status Testbed::AddLink(int link) {
  const Link& l = topology_.links()[link];
  auto end = [&](int node) {
    std::string s = absl::StrCat("name ", LinkEnd(link, node), " netns ", netns(node));
    if (topology_.is_host(node)) absl::StrAppend(&s, " address ", Mac(ip(node)));
    return s;
  };
  if (absl::Status s =
          RunCommand(absl::StrCat("ip link add ", end(l.a), " type veth peer ", end(l.b))).status();
      !s.ok()) {
    return s;
  }
  for (int node : {l.a, l.b}) {
    const std::string ns = netns(node), dev = LinkEnd(link, node);
    std::vector<std::string> commands;
    if (topology_.is_host(node)) {
      commands = {
          absl::StrCat("ip -n ", ns, " addr add ", Ipv4Text(ip(node)), "/16 dev ", dev),
          // veths leave checksums to "hardware" (CHECKSUM_PARTIAL); the switch
          // re-injects frames as they are, so hosts must fill them in.
          absl::StrCat("ip netns exec ", ns, " ethtool -K ", dev, " tx off"),
          absl::StrCat("ip -n ", ns, " link set ", dev, " up"),
          absl::StrCat("ip -n ", ns, " route add 224.0.0.0/4 dev ", dev)};
    } else {
      commands = {absl::StrCat("ip -n ", ns, " link set ", dev, " up")};
    }
    for (const std::string& cmd : commands) {
      if (absl::Status s = RunCommand(cmd).status(); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status Testbed::Build() {
  for (int node = 0; node < topology_.num_nodes(); ++node) {
    if (absl::Status s = AddNamespace(node); !s.ok()) return s;
  }
  for (int link = 0; link < static_cast<int>(topology_.links().size()); ++link) {
    if (absl::Status s = AddLink(link); !s.ok()) return s;
  }
  // Static neighbours: switches forward frames unchanged and drop ARP.
  for (int h : topology_.hosts()) {
    const std::string dev = LinkEnd(topology_.ports(h)[0].link, h);
    for (int other : topology_.hosts()) {
      if (other == h) continue;
      if (absl::Status s =
              RunCommand(absl::StrCat("ip -n ", netns(h), " neigh replace ", Ipv4Text(ip(other)),
                                      " lladdr ", Mac(ip(other)), " dev ", dev, " nud permanent"))
                  .status();
          !s.ok()) {
        return s;
      }
    }
  }
  for (int sw : topology_.switches()) {
    if (absl::Status s = StartSwitch(sw); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Testbed::StartSwitch(int node) {
  std::vector<std::string> ifaces, rates;
  const std::vector<Port>& ports = topology_.ports(node);
  for (int p = 0; p < static_cast<int>(ports.size()); ++p) {
    ifaces.push_back(LinkEnd(ports[p].link, node));
    if (options_.host_port_mbps > 0 && topology_.is_host(ports[p].neighbor)) {
      rates.push_back(absl::StrCat(p, ":", options_.host_port_mbps));
    }
  }
  std::vector<std::string> args = {
      options_.switch_binary,
      absl::StrCat("--name=", topology_.node(node).name),
      absl::StrCat("--netns=", netns(node)),
      absl::StrCat("--ifaces=", absl::StrJoin(ifaces, ",")),
      absl::StrCat("--port_mbps=", absl::StrJoin(rates, ",")),
      absl::StrCat("--idle_sleep_us=", options_.idle_sleep_us),
      "--control=127.0.0.1:0", "--metrics=127.0.0.1:0"};
  if (options_.max_datagram_bytes > 0) {
    args.push_back(absl::StrCat("--max_datagram_bytes=", options_.max_datagram_bytes));
  }
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Start(
      std::move(args),
      {.out = ChildOutput::Pipe(), .death_signal = SIGTERM, .stop_signal = SIGTERM});
  if (!child.ok()) return child.status();
  SwitchProcess& sw = switches_[node];
  sw.process = *std::move(child);
  // The switch prints one line once it forwards and serves gRPC.
  absl::StatusOr<std::string> said = sw.process->ReadLine(absl::Minutes(1));
  const std::string line = said.ok() ? *said : std::string(said.status().message());
  auto field = [&line](const std::string& key, int* value) {
    const size_t at = line.find(key + "=");
    return at != std::string::npos &&
           absl::SimpleAtoi(line.substr(at + key.size() + 1,
                                        line.find(' ', at) - at - key.size() - 1),
                            value);
  };
  if (!field("control_port", &sw.control_port) || !field("metrics_port", &sw.metrics_port)) {
    return absl::InternalError(absl::StrCat("mom_switch ", topology_.node(node).name,
                                            " did not start (said: '", line, "')"));
  }
  absl::StatusOr<std::unique_ptr<SwitchClient>> client =
      SwitchClient::Connect(control_address(node), absl::Seconds(10));
  if (!client.ok()) return client.status();
  sw.client = *std::move(client);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<GroupRoutes>> Testbed::Configure(const std::vector<GroupSpec>& groups,
                                                            const RootPolicy& policy) {
  Topology working = topology_;
  for (const auto& [node, sw] : switches_) {
    if (!switch_running(node)) working.FailNode(node);
  }
  std::vector<GroupRoutes> all;
  std::vector<SwitchConfig> configs =
      UnicastConfigs(working, [this](int host) { return ip(host); });
  for (const GroupSpec& spec : groups) {
    absl::StatusOr<GroupRoutes> routes = ComputeRoutes(working, spec, policy);
    if (!routes.ok()) return routes.status();
    if (absl::Status s = VerifyRoutes(working, *routes); !s.ok()) return s;
    for (SwitchConfig& c : SwitchConfigs(working, *routes)) configs.push_back(std::move(c));
    all.push_back(*std::move(routes));
  }
  std::map<std::string, SwitchClient*> clients;
  for (auto& [node, sw] : switches_) {
    if (switch_running(node)) clients[topology_.node(node).name] = sw.client.get();
  }
  if (absl::Status s = PushConfigs(clients, configs); !s.ok()) return s;
  return all;
}

absl::StatusOr<SwitchStats> Testbed::Stats(int switch_node) {
  auto it = switches_.find(switch_node);
  if (it == switches_.end() || !it->second.client) {
    return absl::NotFoundError(absl::StrCat("no running switch at node ", switch_node));
  }
  return it->second.client->Stats();
}

int Testbed::metrics_port(int switch_node) const {
  auto it = switches_.find(switch_node);
  return it == switches_.end() ? 0 : it->second.metrics_port;
}

std::string Testbed::control_address(int switch_node) const {
  auto it = switches_.find(switch_node);
  return absl::StrCat("127.0.0.1:", it == switches_.end() ? 0 : it->second.control_port);
}

Testbed::~Testbed() { TearDown(); }

void Testbed::TearDown() {
  for (auto& [node, sw] : switches_) {
    sw.client.reset();
    if (sw.process != nullptr) sw.process->Signal(SIGTERM);
  }
  for (auto& [node, sw] : switches_) {
    if (sw.process != nullptr) sw.process->Wait();
    sw.process.reset();
  }
  // The veths go with their namespaces (once the switches holding sockets on
  // them have exited, above).
  for (const std::string& ns : namespaces_) RunCommand("ip netns del " + ns).IgnoreError();
  namespaces_.clear();
}

sockaddr_in Sockaddr(uint32_t ip, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(ip);
  sa.sin_port = htons(port);
  return sa;
}

}  // namespace dctk::mom
