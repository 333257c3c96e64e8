// netns_ct: dctk namespace containers from the shell, for the demo's
// runtime layer (runtime.sh) when podman is not used. A thin command-line
// front of bastion/manager/netns_containers.h, so the demo, Bastion's tests
// and bastiond's discovery share one convention (named netns, veth on a
// bridge, a label file per container).
//
//   netns_ct --bridge=dctkbr1 --prefix=10.91.0 bridge-up
//   netns_ct --bridge=dctkbr1 --prefix=10.91.0 --dir=/run/dctk/c1 create NAME INDEX [KEY=VALUE...]
//   netns_ct --host_network --dir=/run/dctk/c1 create NAME [KEY=VALUE...]
//   netns_ct --dir=/run/dctk/c1 delete NAME
//   netns_ct --bridge=dctkbr1 bridge-down
//   netns_ct netns NAME            print the container's netns name
//   netns_ct cgroup NAME           print a host-network container's cgroup directory
//
// --host_network makes a network-privileged container (like podman --network host):
// no netns, veth or address, its own cgroup v2 directory instead, which bastiond
// enforces it by. A process joins it by writing its pid to <cgroup>/cgroup.procs.
//
// Exit status 0 on success, 1 on failure (the reason on stderr), 2 on usage.
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bastion/manager/netns_containers.h"

ABSL_FLAG(std::string, bridge, "dctkbr0", "the bridge containers are plugged into");
ABSL_FLAG(std::string, prefix, "10.89.0", "the /24 of the bridge (gateway prefix.1)");
ABSL_FLAG(std::string, dir, dctk::bastion::kDefaultNamespaceContainerDir,
          "directory of the label files (bastiond --netns_dir)");
ABSL_FLAG(bool, host_network, false,
          "create: a host-network container (its own cgroup, no netns; no INDEX)");

namespace dctk::integration {
namespace {

int Usage() {
  std::cerr << "usage: netns_ct [--bridge=B --prefix=P --dir=D] "
               "bridge-up | bridge-down | create NAME INDEX [K=V...] | "
               "--host_network create NAME [K=V...] | delete NAME | netns NAME | cgroup NAME\n";
  return 2;
}

int Main(const std::vector<std::string>& args) {
  if (args.empty()) return Usage();
  const bastion::NamespaceNetwork net{.bridge = absl::GetFlag(FLAGS_bridge),
                                      .prefix = absl::GetFlag(FLAGS_prefix)};
  const std::string& op = args[0];
  absl::Status s;
  if (op == "bridge-up" && args.size() == 1) {
    s = bastion::CreateBridge(net);
  } else if (op == "bridge-down" && args.size() == 1) {
    s = bastion::DeleteBridge(net);
  } else if (op == "create" && args.size() >= 2) {
    bastion::NamespaceContainerSpec spec{.name = args[1],
                                         .host_network = absl::GetFlag(FLAGS_host_network)};
    size_t first_label = 2;
    if (!spec.host_network) {
      if (args.size() < 3 || !absl::SimpleAtoi(args[2], &spec.index)) return Usage();
      first_label = 3;
    }
    for (size_t i = first_label; i < args.size(); ++i) {
      std::pair<std::string, std::string> kv = absl::StrSplit(args[i], absl::MaxSplits('=', 1));
      if (kv.first.empty()) return Usage();
      spec.labels[kv.first] = kv.second;
    }
    s = bastion::CreateNamespaceContainer(net, spec, absl::GetFlag(FLAGS_dir));
  } else if (op == "delete" && args.size() == 2) {
    s = bastion::DeleteNamespaceContainer(args[1], absl::GetFlag(FLAGS_dir));
  } else if (op == "netns" && args.size() == 2) {
    std::cout << bastion::NamespaceContainerNetns(args[1]) << "\n";
  } else if (op == "cgroup" && args.size() == 2) {
    absl::StatusOr<std::string> cgroup = bastion::NamespaceContainerCgroup(args[1]);
    if (cgroup.ok()) std::cout << *cgroup << "\n";
    s = cgroup.status();
  } else {
    return Usage();
  }
  if (!s.ok()) {
    std::cerr << "netns_ct " << op << ": " << s << "\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace dctk::integration

int main(int argc, char** argv) {
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  return dctk::integration::Main(std::vector<std::string>(rest.begin() + 1, rest.end()));
}
