#include "mom/bench/linux_bridge.h"

#include "absl/strings/str_cat.h"
#include "common/process/run_command.h"
#include "mom/testbed/netns.h"

namespace dctk::mom {
namespace {

constexpr char kBridge[] = "br0";

}  // namespace

absl::StatusOr<std::unique_ptr<LinuxBridge>> LinuxBridge::Create(
    const std::string& netns, std::vector<std::string> ifaces, const std::string& ifaces_netns) {
  if (ifaces.empty()) return absl::InvalidArgumentError("Linux bridge: no ports");
  std::unique_ptr<LinuxBridge> bridge(new LinuxBridge(netns, std::move(ifaces)));
  if (absl::Status s = bridge->Build(ifaces_netns); !s.ok()) return s;  // the destructor cleans up
  return bridge;
}

absl::Status LinuxBridge::Run(const std::string& command) const {
  return RunCommand(absl::StrCat("ip netns exec ", netns_, " ", command)).status();
}

absl::Status LinuxBridge::Build(const std::string& ifaces_netns) {
  if (absl::Status s = RunCommand(absl::StrCat("ip netns add ", netns_)).status(); !s.ok())
    return s;
  created_ = true;
  std::vector<std::string> commands = {
      "sysctl -qw net.ipv6.conf.all.disable_ipv6=1",
      "sysctl -qw net.ipv6.conf.default.disable_ipv6=1",
      absl::StrCat("ip link add ", kBridge, " type bridge mcast_snooping 0 stp_state 0"),
      absl::StrCat("ip link set ", kBridge, " up")};
  for (const std::string& c : commands) {
    if (absl::Status s = Run(c); !s.ok()) return s;
  }
  for (const std::string& iface : ifaces_) {
    const std::string from = ifaces_netns.empty() ? "" : absl::StrCat("-n ", ifaces_netns, " ");
    if (absl::Status s =
            RunCommand(absl::StrCat("ip ", from, "link set ", iface, " netns ", netns_)).status();
        !s.ok()) {
      return s;
    }
    std::vector<std::string> port = {
        absl::StrCat("ip link set ", iface, " master ", kBridge),
        absl::StrCat("bridge link set dev ", iface, " learning off flood off mcast_flood off"),
        absl::StrCat("ip link set ", iface, " up")};
    for (const std::string& c : port) {
      if (absl::Status s = Run(c); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status LinuxBridge::AddHost(int port, const std::string& mac) {
  return Run(absl::StrCat("bridge fdb add ", mac, " dev ", ifaces_.at(port), " master static"));
}

absl::Status LinuxBridge::AddMulticastMember(int port) {
  return Run(absl::StrCat("bridge link set dev ", ifaces_.at(port), " mcast_flood on"));
}

absl::Status LinuxBridge::ShapePorts(const PortShaping& shaping) {
  if (shaping.queue_packets <= 0) {
    return absl::InvalidArgumentError("Linux bridge: queue_packets must be positive");
  }
  if (shaping.priority_bands && !dscp_rule_) {
    for (const std::string& c :
         {std::string("nft add table bridge momprio"),
          std::string("nft add chain bridge momprio forwarding "
                      "'{ type filter hook forward priority 0; }'"),
          std::string("nft add rule bridge momprio forwarding ip dscp ef meta priority set 0:6")}) {
      if (absl::Status s = Run(c); !s.ok()) return s;
    }
    dscp_rule_ = true;
  }
  for (const std::string& iface : ifaces_) {
    // A veth starts with no qdisc ("noqueue"); deleting that fails, harmlessly.
    Run(absl::StrCat("tc qdisc del dev ", iface, " root 2>/dev/null")).IgnoreError();
    if (shaping.port_mbps <= 0) continue;
    const std::vector<std::string> commands = {
        absl::StrCat("ip link set ", iface, " txqueuelen ", shaping.queue_packets),
        // Two full frames of burst, as the MOM switch's shaper.
        absl::StrCat("tc qdisc add dev ", iface, " root handle 1: tbf rate ", shaping.port_mbps,
                     "mbit burst 3028 limit ", shaping.queue_packets * 1514),
        shaping.priority_bands
            ? absl::StrCat("tc qdisc add dev ", iface, " parent 1:1 handle 10: pfifo_fast")
            : absl::StrCat("tc qdisc add dev ", iface, " parent 1:1 handle 10: pfifo limit ",
                           shaping.queue_packets)};
    for (const std::string& c : commands) {
      if (absl::Status s = Run(c); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

LinuxBridge::~LinuxBridge() {
  // Deleting the namespace destroys the bridge and the veths in it (and so
  // their peers in the hosts' namespaces).
  if (created_) RunCommand(absl::StrCat("ip netns del ", netns_)).IgnoreError();
}

}  // namespace dctk::mom
