// Testbed: a MOM topology on this machine's real network stack. Every host of
// a controller Topology is a network namespace, every link a veth pair, every
// switch a mom_switch process (DPDK af_packet ports on its veth ends), and
// the controller configures the switches over gRPC. Used by the privileged
// tests and by mom_measure.
//
// Hosts get 10.201.X.Y/16 addresses and static neighbour entries for each
// other (switches forward frames unchanged and do not answer ARP); switch
// ports facing hosts can be paced to a line rate so queues build under load.
// Everything (processes, namespaces, veths) is removed by the destructor, and
// switch processes die with their parent. Needs root.
//
// Example:
//   auto topo = Topology::LeafSpine(2, 2, 3);
//   auto bed = Testbed::Create(*topo, {.switch_binary = "mom/switch/mom_switch"});
//   auto routes = (*bed)->Configure({GroupSpec{.group_id = 5, .senders = {...},
//                                              .receivers = {...}, .design = d}});
//   int fd = *(*bed)->UdpSocket(host);  // sendto SenderChannelIp(routes[0], i)
#ifndef DCTK_MOM_TESTBED_TESTBED_H_
#define DCTK_MOM_TESTBED_TESTBED_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "mom/controller/routes.h"
#include "mom/controller/switch_client.h"
#include "mom/controller/topology.h"

namespace dctk::mom {

struct TestbedOptions {
  std::string switch_binary;    // path of mom_switch
  double host_port_mbps = 0;    // line rate of switch ports facing hosts; 0: unshaped
  int idle_sleep_us = 20;       // switches sleep when idle (2 cores, several switches)
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
  std::string netns(int host) const;
  uint32_t ip(int host) const;  // host byte order
  std::string mac(int host) const;
  // The interface (root namespace) behind port `port` of switch `node`: what
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
    pid_t pid = -1;
    int go_fd = -1;      // the child execs mom_switch once this is written / closed
    int stdout_fd = -1;  // kept open so the exit report never hits a closed pipe
    int control_port = 0;
    int metrics_port = 0;
    std::unique_ptr<SwitchClient> client;
  };

  Testbed(Topology topology, TestbedOptions options)
      : topology_(std::move(topology)), options_(std::move(options)) {}
  absl::Status Build();
  absl::Status AddHost(int host, int link);
  absl::Status SpawnSwitch(int node);
  absl::Status StartSwitch(int node);
  std::string LinkEnd(int link, int node) const;
  // `ip link add` of a veth pair whose switch ends get interface indexes that
  // DPDK's af_packet driver can use (see IfIndexFor), retried on a taken index.
  absl::Status AddVeth(int link, const std::string& options_a, const std::string& options_b);
  uint32_t IfIndexFor(int node);

  Topology topology_;
  TestbedOptions options_;
  std::vector<std::string> namespaces_;  // created, for cleanup
  std::vector<std::string> veths_;       // root-namespace ends created, for cleanup
  std::map<int, SwitchProcess> switches_;
  uint32_t next_fanout_ = 0;  // a block of 128 values per testbed, by pid
  absl::flat_hash_set<uint32_t> used_ifindexes_;
};

}  // namespace dctk::mom

#endif  // DCTK_MOM_TESTBED_TESTBED_H_
