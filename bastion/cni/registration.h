// Registering a container with bastiond from outside it, and waiting until bastiond
// enforces it: what bastion-cni and bastion-oci-hook share. A registration is a label
// file in bastiond's namespace-container directory (bastion/manager/netns_containers.h,
// `--netns_dir`, default /run/dctk/containers); bastiond's inotify wakes it, it compiles
// the container into the policy and attaches the Bastion stack, and the caller waits
// until the stack is there, so the container's first packet is already enforced.
//
// A bridged container is enforced by the two tc programs on its host veth; a host-network
// one (`cgroup` set) by the two cgroup programs on its cgroup. A veth belongs to one
// container, so a registration naming the same veth as a new one is stale (its
// container's unregistration never ran) and is removed first.
//
// Example:
//   Registration r{.name = "web", .file_name = "1a2b.json", .netns = "1a2b",
//                  .host_veth = "veth3", .ip = "10.88.0.5", .mac = "02:..", .labels = {...}};
//   RETURN_IF_ERROR(RemoveStaleRegistrations(dir, r).status());
//   RETURN_IF_ERROR(WriteRegistration(dir, r));
//   RETURN_IF_ERROR(WaitForStack(r, /*installed=*/true, absl::Seconds(10), dir));
#ifndef DCTK_BASTION_CNI_REGISTRATION_H_
#define DCTK_BASTION_CNI_REGISTRATION_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace dctk::bastion {

// One container as bastiond's NamespaceContainerSource reads it.
struct Registration {
  std::string name;       // what policies select by (with the labels)
  std::string file_name;  // <runtime container id>.json in the directory
  std::string netns;      // bastiond's runtime id of the container
  std::string host_veth;  // the host-side interface of the container's veth
  std::string ip;         // IPv4, no prefix length
  std::string mac;        // of the container interface, lower case
  std::string gateway;    // may be empty
  std::map<std::string, std::string> labels;
  // Host network mode: the container's cgroup v2 directory; no netns, veth or address.
  std::string cgroup;
};

// The label file text, and back (ParseRegistration: DataLoss if not a JSON object).
std::string RegistrationJson(const Registration& r);
absl::StatusOr<Registration> ParseRegistration(absl::string_view text);

// Writes <dir>/<file_name> atomically (temp file + rename), making `dir` if needed.
absl::Status WriteRegistration(const std::string& dir, const Registration& r);
// NotFound if there is no such file.
absl::StatusOr<Registration> ReadRegistration(const std::string& dir,
                                              const std::string& file_name);
// Absent is fine.
absl::Status RemoveRegistration(const std::string& dir, const std::string& file_name);
// Removes every other registration in `dir` that names r's host veth (or cgroup); returns
// their file names.
absl::StatusOr<std::vector<std::string>> RemoveStaleRegistrations(const std::string& dir,
                                                                  const Registration& r);

// Whether `ifname` is a port of a bridge (in the caller's network namespace).
bool IsBridgePort(const std::string& ifname);

// Whether bastiond's programs ("bastion_*") are on both tc hooks of the host veth, or on
// both cgroup skb hooks of the cgroup. NotFound if the veth or cgroup does not exist.
absl::StatusOr<bool> StackInstalled(const Registration& r);
// Waits (polling, bounded by `timeout`) until StackInstalled(r) == installed; a vanished
// veth or cgroup counts as uninstalled. Unavailable on timeout, naming the interface,
// the time and `dir` (bastiond's --netns_dir).
absl::Status WaitForStack(const Registration& r, bool installed, absl::Duration timeout,
                          const std::string& dir);

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_CNI_REGISTRATION_H_
