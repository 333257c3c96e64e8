// What bastion-oci-hook reads: the OCI runtime state a runtime (runc) writes to a hook's
// stdin (https://github.com/opencontainers/runtime-spec/blob/main/runtime.md#state:
// ociVersion, id, status, pid, bundle, annotations), the hook's own arguments, the
// container's name in containers/storage (podman keeps it in
// <storage>/overlay-containers/containers.json, next to the bundle), and the container's
// default gateway from /proc/PID/net/route. From them: who the container is for Bastion
// (name and labels, from annotations, see ContainerIdentity).
// Pure parsing: no system calls, all of it unit-tested without root.
//
// Example:
//   absl::StatusOr<OciState> state = ParseOciState(stdin_text);
//   absl::StatusOr<HookOptions> options = ParseHookArgs(argc, argv);
//   Identity who = ContainerIdentity(*state, StorageName(containers_json, state->id));
#ifndef DCTK_BASTION_OCI_HOOK_OCI_STATE_H_
#define DCTK_BASTION_OCI_HOOK_OCI_STATE_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace dctk::bastion::oci_hook {

inline constexpr char kDefaultContainersDir[] = "/run/dctk/containers";
// Annotations (podman run --annotation KEY=VALUE) the hook reads.
inline constexpr char kNameAnnotation[] = "bastion.name";
inline constexpr char kLabelAnnotationPrefix[] = "bastion.label.";

struct OciState {
  std::string oci_version;
  std::string id;
  std::string status;  // "creating" (createRuntime, prestart), "stopped" (poststop), ...
  int pid = 0;         // 0 once the container stopped
  std::string bundle;
  std::map<std::string, std::string> annotations;
};

// What the hook does for a state: register the container (it is being created), remove
// its registration (it stopped).
enum class HookAction { kRegister, kUnregister };

// InvalidArgument naming the field: not JSON, id missing or not [A-Za-z0-9_.-], status
// missing, pid not a number, annotations not strings.
absl::StatusOr<OciState> ParseOciState(absl::string_view text);
// kRegister for "creating"/"created" with a pid > 0, kUnregister for "stopped";
// InvalidArgument otherwise (the hook is registered for a stage it does not serve).
absl::StatusOr<HookAction> ActionFor(const OciState& state);

struct HookOptions {
  std::string containers_dir = kDefaultContainersDir;  // --containers_dir: bastiond's --netns_dir
  absl::Duration timeout = absl::Seconds(10);          // --timeout_ms: wait for the stack
  std::string ifname = "eth0";                         // --ifname: the container's interface
};

// argv[1..]: --containers_dir=DIR, --timeout_ms=N, --ifname=NAME. InvalidArgument for
// anything else.
absl::StatusOr<HookOptions> ParseHookArgs(int argc, const char* const argv[]);

struct Identity {
  std::string name;
  std::map<std::string, std::string> labels;
};

// Name: annotation bastion.name, else `storage_name` (podman's container name), else the
// first 12 characters of the id (podman's short id). Labels: every annotation
// bastion.label.KEY=VALUE as KEY=VALUE (podman does not hand --label to the runtime).
Identity ContainerIdentity(const OciState& state, const std::string& storage_name);

// The first name of container `id` in a containers/storage containers.json; empty if the
// text is not that file or does not list the container.
std::string StorageName(absl::string_view containers_json, const std::string& id);
// containers.json for a bundle <storage>/overlay-containers/<id>/userdata.
std::string StorageFileFor(const std::string& bundle);

// The gateway of the default route in a /proc/PID/net/route text, dotted; empty if none.
std::string DefaultGateway(absl::string_view route_text);

}  // namespace dctk::bastion::oci_hook

#endif  // DCTK_BASTION_OCI_HOOK_OCI_STATE_H_
