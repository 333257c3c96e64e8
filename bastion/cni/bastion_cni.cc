// bastion-cni: a chained CNI plugin (after the bridge plugin) that registers each
// container with bastiond as a dctk namespace container and waits until bastiond has
// installed the Bastion stack on its host-side veth. See bastion/README.md, "CNI plugin".
//
// ADD: removes stale registrations of the same host veth, writes
//      <containersDir>/<CNI_CONTAINERID>.json (atomically), waits until both tc
//      programs are attached on the host veth, prints prevResult.
// DEL: removes the file (fine if absent) and waits until the programs are gone from the
//      veth (if the veth still exists); succeeds if everything is already gone.
// CHECK: the file says what ADD would write and the programs are attached now.
// VERSION: prints the supported versions.
// Errors: CNI error JSON on stdout, exit code 1.
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "bastion/cni/cni.h"
#include "bastion/cni/registration.h"

namespace dctk::bastion::cni {
namespace {

std::string ResultJson(const CniConfig& config) {
  nlohmann::json result = config.prev_result;
  result["cniVersion"] = config.cni_version;
  return result.dump() + "\n";
}

absl::StatusOr<std::string> Add(const CniEnv& env, const CniConfig& config) {
  absl::StatusOr<Registration> a = FindAttachment(env, config, IsBridgePort);
  if (!a.ok()) return a.status();
  // A registration naming this veth is stale (a veth has one container): it would bind
  // the veth to the old container's addresses.
  if (absl::StatusOr<std::vector<std::string>> stale =
          RemoveStaleRegistrations(config.containers_dir, *a);
      !stale.ok()) {
    return stale.status();
  }
  absl::Status s = WriteRegistration(config.containers_dir, *a);
  if (!s.ok()) return s;
  s = WaitForStack(*a, /*installed=*/true, config.timeout, config.containers_dir);
  if (!s.ok()) return s;
  return ResultJson(config);
}

absl::Status Del(const CniEnv& env, const CniConfig& config) {
  const std::string file = env.container_id + ".json";
  absl::StatusOr<Registration> registered = ReadRegistration(config.containers_dir, file);
  if (absl::Status s = RemoveRegistration(config.containers_dir, file); !s.ok()) return s;
  if (!registered.ok() || registered->host_veth.empty()) return absl::OkStatus();
  absl::Status s =
      WaitForStack(*registered, /*installed=*/false, config.timeout, config.containers_dir);
  if (!s.ok()) {
    // The registration is gone; the bridge plugin's DEL deletes the veth (and its
    // filters) next, so DEL still succeeds.
    std::cerr << "bastion-cni: DEL " << env.container_id << ": " << s.message() << "\n";
  }
  return absl::OkStatus();
}

absl::Status Check(const CniEnv& env, const CniConfig& config) {
  absl::StatusOr<Registration> want = FindAttachment(env, config, IsBridgePort);
  if (!want.ok()) return want.status();
  absl::StatusOr<Registration> have = ReadRegistration(config.containers_dir, want->file_name);
  if (absl::IsNotFound(have.status())) {
    return absl::NotFoundError(absl::StrCat("container not registered: ", have.status().message()));
  }
  if (!have.ok()) return have.status();
  if (RegistrationJson(*have) != RegistrationJson(*want)) {
    return absl::FailedPreconditionError(
        absl::StrCat(config.containers_dir, "/", want->file_name, " says ",
                     RegistrationJson(*have), " but prevResult gives ", RegistrationJson(*want)));
  }
  absl::StatusOr<bool> attached = StackInstalled(*want);
  if (!attached.ok()) return attached.status();
  if (!*attached) {
    return absl::FailedPreconditionError(
        absl::StrCat("Bastion programs are not attached on ", want->host_veth));
  }
  return absl::OkStatus();
}

int Run() {
  absl::StatusOr<CniEnv> env = ParseEnv(::getenv);
  if (!env.ok()) {
    std::cout << ErrorJson(env.status(), "");
    return 1;
  }
  if (env->command == Command::kVersion) {
    std::cout << VersionJson();
    return 0;
  }
  std::stringstream in;
  in << std::cin.rdbuf();
  absl::StatusOr<CniConfig> config = ParseConfig(in.str());
  if (!config.ok()) {
    std::cout << ErrorJson(config.status(), "");
    return 1;
  }
  absl::StatusOr<std::string> out;
  switch (env->command) {
    case Command::kAdd:
      out = Add(*env, *config);
      break;
    case Command::kDel:
      if (absl::Status s = Del(*env, *config); !s.ok())
        out = s;
      else
        out = std::string();
      break;
    case Command::kCheck:
      if (absl::Status s = Check(*env, *config); !s.ok())
        out = s;
      else
        out = std::string();
      break;
    case Command::kVersion:
      break;
  }
  if (!out.ok()) {
    std::cout << ErrorJson(out.status(), config->cni_version);
    return 1;
  }
  std::cout << *out;
  return 0;
}

}  // namespace
}  // namespace dctk::bastion::cni

int main() { return dctk::bastion::cni::Run(); }
