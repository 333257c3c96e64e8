// The CNI side of bastion-cni: the spec's environment (CNI_COMMAND, CNI_CONTAINERID,
// CNI_NETNS, CNI_IFNAME, CNI_ARGS), the network config on stdin with the `prevResult` of
// the bridge plugin it chains after, the dctk namespace-container label file it derives
// from them (a Registration, bastion/cni/registration.h), and CNI error/version JSON.
// Pure parsing: no system calls, so all of it is unit-tested without root.
//
// Example:
//   absl::StatusOr<CniEnv> env = ParseEnv(getenv);
//   absl::StatusOr<CniConfig> config = ParseConfig(stdin_text);
//   absl::StatusOr<Registration> a = FindAttachment(*env, *config, IsBridgePort);
//   std::string file = RegistrationJson(*a);
//   ... on error: std::cout << ErrorJson(status, config->cni_version); exit(1);
#ifndef DCTK_BASTION_CNI_CNI_H_
#define DCTK_BASTION_CNI_CNI_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "bastion/cni/registration.h"
#include "nlohmann/json.hpp"

namespace dctk::bastion::cni {

// CNI spec error codes (https://www.cni.dev/docs/spec/#error).
inline constexpr int kIncompatibleVersion = 1;
inline constexpr int kInvalidEnvironment = 4;
inline constexpr int kDecodingFailure = 6;
inline constexpr int kInvalidConfig = 7;
inline constexpr int kTryAgainLater = 11;
inline constexpr int kPluginError = 100;  // 100+: plugin-specific

inline constexpr char kDefaultContainersDir[] = "/run/dctk/containers";

enum class Command { kAdd, kDel, kCheck, kVersion };

struct CniEnv {
  Command command = Command::kVersion;
  std::string container_id;
  std::string netns;                        // path, e.g. /run/netns/foo or /proc/123/ns/net
  std::string ifname;                       // the container-side interface, e.g. eth0
  std::map<std::string, std::string> args;  // CNI_ARGS "K=V;K=V"
};

// Reads the variables through `getenv` (injectable). VERSION needs only CNI_COMMAND;
// DEL tolerates a missing CNI_NETNS (the spec allows it). Errors: InvalidArgument.
absl::StatusOr<CniEnv> ParseEnv(const std::function<const char*(const char*)>& getenv);

struct CniConfig {
  std::string cni_version;
  std::string name;
  // Bastion fields in the plugin's config:
  std::string containers_dir = kDefaultContainersDir;  // "containersDir"
  absl::Duration timeout = absl::Seconds(10);          // "timeoutMs": wait for bastiond's attach
  std::map<std::string, std::string> labels;           // "labels": given to every container
  nlohmann::json prev_result;                          // null if absent
};

// Parses the stdin config. Errors: DataLoss (not JSON), InvalidArgument (bad field).
absl::StatusOr<CniConfig> ParseConfig(absl::string_view text);

// What Bastion needs about the container, from prevResult: name (CNI_ARGS BASTION_NAME or
// K8S_POD_NAME, else the container id), file <container id>.json, netns (base name of
// CNI_NETNS), labels (config labels + CNI_ARGS BASTION_LABEL_<key>).
// Finds the container interface (CNI_IFNAME, in the sandbox), its IPv4 address and the
// host-side veth (an interface without sandbox for which `is_bridge_port` holds: the
// bridge plugin lists the bridge itself too). FailedPrecondition if prevResult is missing.
absl::StatusOr<Registration> FindAttachment(
    const CniEnv& env, const CniConfig& config,
    const std::function<bool(const std::string&)>& is_bridge_port);

// {"cniVersion", "code", "msg", "details"}: code from the status (see the constants;
// a status with payload "cni-code" overrides), msg its message.
std::string ErrorJson(const absl::Status& status, const std::string& cni_version);
absl::Status WithCniCode(absl::Status status, int code);
int CniCode(const absl::Status& status);

std::string VersionJson();
bool SupportedVersion(absl::string_view version);

}  // namespace dctk::bastion::cni

#endif  // DCTK_BASTION_CNI_CNI_H_
