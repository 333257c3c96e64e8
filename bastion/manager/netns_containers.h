// dctk namespace containers: network namespaces made by dctk itself that Bastion
// discovers and enforces like runtime containers (for tests and labs without podman).
//
// The convention (also in bastion/manager/README.md):
//   * the container's network namespace is a named netns, /run/netns/<netns>;
//   * its eth0 is one end of a veth pair whose other end (`host_veth`) sits on a Linux
//     bridge in the host namespace, the one bastiond runs in;
//   * a label file <dir>/<name>.json (default dir /run/dctk/containers) describes it:
//       {"name": "farm-1", "netns": "dctk-farm-1", "host_veth": "dfarm-1",
//        "ip": "10.89.0.5", "mac": "02:00:0a:59:00:05", "gateway": "10.89.0.1",
//        "labels": {"role": "farm"}}
//     written atomically (temp file + rename) after the network is up, and removed
//     before the namespace is deleted, so discovery never sees a half-made container.
// A container exists for Bastion while its file is there and its host veth exists.
//
// Host network mode (a network-privileged container, like `podman run --network host`):
// no netns or veth; the container shares the network namespace bastiond runs in, and its
// processes run in its own cgroup v2 directory, NamespaceContainerCgroup(name)
// (<cgroup2 mount>/dctk-<name>), which is what Bastion enforces it by. Its label file:
//       {"name": "monitor", "network": "host",
//        "cgroup": "/sys/fs/cgroup/unified/dctk-monitor", "labels": {"role": "monitor"}}
// It exists for Bastion while its file and its cgroup directory are there. A process
// joins it by writing its pid to <cgroup>/cgroup.procs (children inherit it):
//   sh -c 'echo $$ > /sys/fs/cgroup/unified/dctk-monitor/cgroup.procs && exec PROGRAM'
//
// NamespaceContainerSource discovers them (inotify on the directory wakes it);
// CreateNamespaceContainer/DeleteNamespaceContainer make and remove them, and
// CreateBridge makes the bridge, so tests, benchmarks and the demo share one recipe.
//
// Example:
//   NamespaceNetwork net{.host_netns = "lab", .bridge = "br0", .prefix = "10.89.0"};
//   RETURN_IF_ERROR(CreateBridge(net));
//   RETURN_IF_ERROR(CreateNamespaceContainer(net, {.name = "farm-1", .index = 5,
//                                                  .labels = {{"role", "farm"}}}, dir));
//   ...
//   DeleteNamespaceContainer(net, "farm-1", dir).IgnoreError();
#ifndef DCTK_BASTION_MANAGER_NETNS_CONTAINERS_H_
#define DCTK_BASTION_MANAGER_NETNS_CONTAINERS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "bastion/manager/container_source.h"

namespace dctk::bastion {

inline constexpr char kDefaultNamespaceContainerDir[] = "/run/dctk/containers";

// Where namespace containers are plugged in: a bridge in `host_netns` (empty = the
// caller's namespace) holding prefix.1/24 as the gateway.
struct NamespaceNetwork {
  std::string host_netns;
  std::string bridge = "dctkbr0";
  std::string prefix = "10.89.0";  // a /24: containers get prefix.<index>
};

struct NamespaceContainerSpec {
  std::string name;   // letters, digits, '-', '_' ; at most 12 characters
  int index = 2;      // host part of the address, 2..254; also the MAC's last bytes
  std::map<std::string, std::string> labels;
  // Host network mode: no netns, veth or address (`index` unused); a cgroup instead.
  bool host_network = false;
};

// The netns and host veth names a container gets: "<netns_prefix><name>", "d<name>".
std::string NamespaceContainerNetns(const std::string& name);
std::string NamespaceContainerVeth(const std::string& name);
// The cgroup v2 directory of a host-network container; an error without a cgroup2 mount.
absl::StatusOr<std::string> NamespaceContainerCgroup(const std::string& name);

absl::Status CreateBridge(const NamespaceNetwork& net);
absl::Status DeleteBridge(const NamespaceNetwork& net);
// Makes the netns, veth, addresses and route (host network mode: the cgroup), then
// writes the label file in `dir`. On failure removes what it made.
absl::Status CreateNamespaceContainer(const NamespaceNetwork& net,
                                      const NamespaceContainerSpec& spec, const std::string& dir);
// Removes the label file, then the namespace (which takes the veth pair with it); for a
// host-network container, kills the processes in its cgroup and removes the cgroup.
absl::Status DeleteNamespaceContainer(const std::string& name, const std::string& dir);

// Discovers the containers described in `dir`; resolves host veths in the caller's netns.
class NamespaceContainerSource : public ContainerSource {
 public:
  explicit NamespaceContainerSource(std::string dir);
  ~NamespaceContainerSource() override;
  std::string name() const override { return "netns:" + dir_; }
  absl::StatusOr<std::vector<ContainerInfo>> List() override;
  bool WaitForChange(absl::Duration timeout) override;
  absl::StatusOr<std::string> HostNetworkCgroup(const std::string& runtime_id) const override;

 private:
  std::string dir_;
  int inotify_fd_ = -1;
  mutable absl::Mutex mu_;
  std::map<std::string, std::string> cgroups_ ABSL_GUARDED_BY(mu_);  // runtime id -> cgroup
};

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_MANAGER_NETNS_CONTAINERS_H_
