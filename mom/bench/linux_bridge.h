// LinuxBridge: the kernel's bridge as the baseline a MOM switch is compared
// with, on the same veths. It lives in a network namespace of its own (so the
// root namespace's netfilter rules do not apply to bridged frames, and it is
// as isolated as a testbed switch), takes over interfaces of a stopped
// mom_switch (from the switch's namespace), and gets static FDB entries for the
// hosts and static MDB entries for multicast groups (IGMP snooping on), so it
// forwards and replicates to exactly the ports a switch's rules name, never
// flooding.
//
// Port queues: unshaped by default (a veth has no queue: frames go straight to
// the peer's backlog). ShapePorts with `port_mbps` gives every port a tbf
// shaper with a queue of `queue_packets` per band: one FIFO band, or with
// `priority_bands` a pfifo_fast, strict priority on skb->priority, which an
// nftables rule in the bridge's namespace sets to 6 (band 0) for DSCP 46
// frames (a sender's own SO_PRIORITY is cleared when the frame crosses into
// another namespace) -- the kernel's counterpart of the MOM switch's paced
// strict-priority ports.
//
// Deleting the object deletes the namespace, the bridge and the interfaces
// it holds.
//
// Example:
//   auto br = LinuxBridge::Create("mom123_br", {"m123l0b", "m123l1b"}, "mom123_leaf0");
//   (*br)->AddHost(0, "02:00:0a:c9:00:01");       // port 0 reaches that MAC
//   (*br)->AddMulticastMember(1);
//   (*br)->ShapePorts({.port_mbps = 100, .priority_bands = true});
#ifndef DCTK_MOM_BENCH_LINUX_BRIDGE_H_
#define DCTK_MOM_BENCH_LINUX_BRIDGE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dctk::mom {

struct PortShaping {
  double port_mbps = 0;  // 0: unshaped, no queue
  int queue_packets = 256;
  bool priority_bands = false;
};

class LinuxBridge {
 public:
  // Moves `ifaces` (down or up, no master; in namespace `ifaces_netns`, empty:
  // the root namespace) into a new namespace `netns` and enslaves them, in
  // order, as the bridge's ports.
  static absl::StatusOr<std::unique_ptr<LinuxBridge>> Create(
      const std::string& netns, std::vector<std::string> ifaces,
      const std::string& ifaces_netns = "");
  ~LinuxBridge();
  LinuxBridge(const LinuxBridge&) = delete;
  LinuxBridge& operator=(const LinuxBridge&) = delete;

  // Frames to `mac` leave through `port`.
  absl::Status AddHost(int port, const std::string& mac);
  // Multicast (to any group) is replicated to `port`.
  absl::Status AddMulticastMember(int port);
  // Replaces every port's egress queueing (see above).
  absl::Status ShapePorts(const PortShaping& shaping);

 private:
  LinuxBridge(std::string netns, std::vector<std::string> ifaces)
      : netns_(std::move(netns)), ifaces_(std::move(ifaces)) {}
  absl::Status Build(const std::string& ifaces_netns);
  absl::Status Run(const std::string& command) const;

  const std::string netns_;
  const std::vector<std::string> ifaces_;
  bool created_ = false;
  bool dscp_rule_ = false;
};

}  // namespace dctk::mom

#endif  // DCTK_MOM_BENCH_LINUX_BRIDGE_H_
