// Testbed: a MOM topology on this machine's real network stack. Every node of
// a controller Topology (host or switch) is a network namespace, every link a
// veth pair between two of them, every switch a mom_switch process (DPDK
// af_packet ports on the veth ends in its namespace; its gRPC control and
// metrics in the caller's namespace, on 127.0.0.1), and the controller
// configures the switches over gRPC. Like real switches, switch processes
// share no network state: not the IPv4 reassembly queues af_packet's
// defragmentation uses, not the PACKET_FANOUT group ids. Used by the
// privileged tests, mom_measure and the forwarding benchmark.
//
// Hosts get 10.201.X.Y/16 addresses and static neighbour entries for each
// other (switches forward frames unchanged and do not answer ARP); switch
// ports facing hosts can be paced to a line rate so queues build under load.
// Everything (processes, namespaces and the veths in them) is removed by the
// destructor, and switch processes die with their parent. Needs root.
//
// Example:
//   auto topo = Topology::LeafSpine(2, 2, 3);
//   auto bed = Testbed::Create(*topo, {.switch_binary = "mom/switch/mom_switch"});
//   auto routes = (*bed)->Configure({GroupSpec{.group_id = 5, .senders = {...},
//                                              .receivers = {...}, .design = d}});
//   int fd = *(*bed)->UdpSocket(host);  // sendto SenderChannelIp(routes[0], i)
#ifndef DCTK_MOM_TESTBED_TESTBED_H_
#define DCTK_MOM_TESTBED_TESTBED_H_

#include <netinet/in.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/process/child_process.h"
#include "mom/controller/routes.h"
#include "mom/controller/switch_client.h"
#include "mom/controller/topology.h"

namespace dctk::mom {

struct TestbedOptions {
  std::string switch_binary;    // path of mom_switch
  double host_port_mbps = 0;    // line rate of switch ports facing hosts; 0: unshaped
  int idle_sleep_us = 20;       // switches sleep when idle (2 cores, several switches)
  uint32_t max_datagram_bytes = 0;  // mom_switch --max_datagram_bytes; 0: its default
  std::string tag;              // unique part of names; default: this pid
};

class Testbed {
 public:
  static absl::StatusOr<std::unique_ptr<Testbed>> Create(Topology topology,
                                                         TestbedOptions options);
  ~Testbed();
  Testbed(const Testbed&) = delete;

  // Stops the switches and removes namespaces and veths now (the destructor
  // does the same). For a signal-handling thread of a tool about to exit; the
  // testbed must not be used afterwards.
  void TearDown();
  Testbed& operator=(const Testbed&) = delete;

  const Topology& topology() const { return topology_; }
  // The network namespace of host or switch `node` (a switch's holds its ports).
  std::string netns(int node) const;
  uint32_t ip(int host) const;  // host byte order
  std::string mac(int host) const;
  // The interface behind port `port` of switch `node`, in netns(node): what
  // its mom_switch drives, or what a Linux bridge can take over once stopped.
  std::string SwitchPortIface(int node, int port) const;

  // Stops switch `node`'s process with `signal` (SIGKILL: a crash) and waits
  // for it. Its ports stay; Configure() then leaves it out.
  absl::Status StopSwitch(int node, int signal);
  bool switch_running(int node) const;
  // The running switch's process id (-1 if none), e.g. to read its CPU time.
  pid_t switch_pid(int node) const;

  // A UDP socket in `host`'s namespace.
  absl::StatusOr<int> UdpSocket(int host) const;
  // A receiving UDP socket in `host`'s namespace: bound to `*port` (0: the
  // kernel picks one, written back), a 4 MiB receive buffer, a 5 s receive
  // timeout (only a guard against hanging on a lost datagram), and joined to
  // each of `groups` (host byte order) on the host's interface.
  absl::StatusOr<int> GroupReceiver(int host, uint16_t* port,
                                    const std::vector<uint32_t>& groups) const;
  // Runs `command` inside `host`'s namespace (ip netns exec).
  absl::Status RunIn(int host, const std::string& command) const;

  // Computes every group's routes, verifies them, and installs them with
  // unicast routes between all hosts on every running switch (replacing what
  // was there). Returns the routes, in `groups` order. Stopped switches are
  // not routed through (failed in the topology used) and never chosen as root.
  absl::StatusOr<std::vector<GroupRoutes>> Configure(const std::vector<GroupSpec>& groups,
                                                     const RootPolicy& policy = {});
  absl::StatusOr<SwitchStats> Stats(int switch_node);
  // Where switch `node` serves its Prometheus metrics (127.0.0.1:PORT/metrics).
  int metrics_port(int switch_node) const;
  // Its gRPC control address ("127.0.0.1:PORT").
  std::string control_address(int switch_node) const;

 private:
  struct SwitchProcess {
    // Kept after the switch stopped, so its stdout pipe stays open (its exit
    // report never hits a closed pipe).
    std::unique_ptr<ChildProcess> process;
    int control_port = 0;
    int metrics_port = 0;
    std::unique_ptr<SwitchClient> client;
  };

  Testbed(Topology topology, TestbedOptions options)
      : topology_(std::move(topology)), options_(std::move(options)) {}
  absl::Status Build();
  absl::Status AddNamespace(int node);
  // The link's veth pair, each end in its node's namespace and up; a host's
  // end gets the host's MAC and IP address.
  absl::Status AddLink(int link);
  absl::Status StartSwitch(int node);
  std::string LinkEnd(int link, int node) const;

  Topology topology_;
  TestbedOptions options_;
  std::vector<std::string> namespaces_;  // created, for cleanup (with their veths)
  std::map<int, SwitchProcess> switches_;
};

// A sockaddr_in for an IPv4 address and port in host byte order (as `Testbed::ip` gives).
sockaddr_in Sockaddr(uint32_t ip, uint16_t port);

}  // namespace dctk::mom

#endif  // DCTK_MOM_TESTBED_TESTBED_H_
