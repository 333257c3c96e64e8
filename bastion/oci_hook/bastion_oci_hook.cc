// bastion-oci-hook: puts a container under Bastion before its process starts. Runs as an
// OCI hook (podman --hooks-dir with hooks.d/bastion.json; runc runs it in the runtime's
// namespaces) and reads the OCI state on stdin. See bastion/README.md, "OCI hook".
//
// createRuntime (status "creating", network already set up by netavark/CNI): reads the
// container's interface (veth peer, IPv4, MAC, gateway) from its network namespace, or
// its cgroup if it shares the host's network; registers it with bastiond (a label file
// <containers_dir>/<id>.json, bastion/cni/registration.h) and waits until bastiond has
// installed the stack. If that fails or times out, the registration is removed and the
// hook exits 1, so the runtime does not start the container (fail closed).
// poststop (status "stopped"): removes the registration.
//
// Flags: --containers_dir=DIR (bastiond's --netns_dir, default /run/dctk/containers),
// --timeout_ms=N (default 10000), --ifname=NAME (default eth0).
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bastion/cni/registration.h"
#include "bastion/datapath/cgroup.h"
#include "bastion/oci_hook/container_network.h"
#include "bastion/oci_hook/oci_state.h"

namespace dctk::bastion::oci_hook {
namespace {

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  return in ? std::string(std::istreambuf_iterator<char>(in), {}) : "";
}

// The registration for a container being created, from the kernel's view of it.
absl::StatusOr<Registration> Describe(const OciState& state, const HookOptions& options,
                                      bool* nothing_to_enforce) {
  absl::StatusOr<ContainerNetwork> net = ReadContainerNetwork(state.pid, options.ifname);
  if (!net.ok()) return net.status();
  const Identity who =
      ContainerIdentity(state, StorageName(ReadText(StorageFileFor(state.bundle)), state.id));
  Registration r{.name = who.name, .file_name = state.id + ".json", .labels = who.labels};
  if (net->host_network) {
    absl::StatusOr<std::string> cgroup = ProcessCgroup(state.pid);
    if (!cgroup.ok()) return cgroup.status();
    r.cgroup = *cgroup;
    return r;
  }
  if (!net->has_interface) {
    *nothing_to_enforce = true;  // its own namespace without a network: nothing leaves it
    return r;
  }
  r.netns = state.id;  // bastiond's runtime id for it
  r.host_veth = net->host_veth;
  r.ip = net->ip;
  r.mac = net->mac;
  r.gateway = net->gateway;
  return r;
}

// `who` gets "(name, address or cgroup)" once known, for the error message.
absl::Status Register(const OciState& state, const HookOptions& options, std::string* who) {
  bool nothing_to_enforce = false;
  absl::StatusOr<Registration> r = Describe(state, options, &nothing_to_enforce);
  if (!r.ok()) return r.status();
  *who = absl::StrCat(" (", r->name, ", ", r->ip.empty() ? r->cgroup : r->ip, ")");
  if (nothing_to_enforce) {
    std::cerr << "bastion-oci-hook: container " << r->name << ": no interface "
              << options.ifname << ", nothing to enforce\n";
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<std::string>> stale =
      RemoveStaleRegistrations(options.containers_dir, *r);
  if (!stale.ok()) return stale.status();
  if (!stale->empty()) {
    std::cerr << "bastion-oci-hook: removed stale registrations of "
              << (r->cgroup.empty() ? r->host_veth : r->cgroup) << ": "
              << absl::StrJoin(*stale, ", ") << "\n";
  }
  if (absl::Status s = WriteRegistration(options.containers_dir, *r); !s.ok()) return s;
  absl::Status s = WaitForStack(*r, /*installed=*/true, options.timeout, options.containers_dir);
  if (!s.ok()) {
    // Not enforced: the container must not start, and bastiond must not enforce a
    // container that will not exist.
    RemoveRegistration(options.containers_dir, r->file_name).IgnoreError();
    return s;
  }
  return absl::OkStatus();
}

int Run(int argc, char** argv) {
  absl::StatusOr<HookOptions> options = ParseHookArgs(argc, argv);
  if (!options.ok()) {
    std::cerr << "bastion-oci-hook: " << options.status().message() << "\n";
    return 2;
  }
  std::stringstream in;
  in << std::cin.rdbuf();
  absl::StatusOr<OciState> state = ParseOciState(in.str());
  if (!state.ok()) {
    std::cerr << "bastion-oci-hook: " << state.status().message() << "\n";
    return 1;
  }
  absl::StatusOr<HookAction> action = ActionFor(*state);
  if (!action.ok()) {
    std::cerr << "bastion-oci-hook: " << action.status().message() << "\n";
    return 1;
  }
  const std::string container = "bastion-oci-hook: container " + state->id.substr(0, 12);
  if (*action == HookAction::kUnregister) {
    absl::Status s = RemoveRegistration(options->containers_dir, state->id + ".json");
    if (!s.ok()) std::cerr << container << ": " << s.message() << "\n";
    return s.ok() ? 0 : 1;
  }
  std::string who;
  if (absl::Status s = Register(*state, *options, &who); !s.ok()) {
    std::cerr << container << who << " not started: " << s.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace dctk::bastion::oci_hook

int main(int argc, char** argv) { return dctk::bastion::oci_hook::Run(argc, argv); }
