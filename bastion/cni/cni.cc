#include "bastion/cni/cni.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace dctk::bastion::cni {
namespace {

constexpr char kCodePayload[] = "cni-code";
constexpr const char* kVersions[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};

std::string Env(const std::function<const char*(const char*)>& getenv, const char* name) {
  const char* v = getenv(name);
  return v ? v : "";
}

absl::Status EnvError(absl::string_view what) {
  return WithCniCode(absl::InvalidArgumentError(what), kInvalidEnvironment);
}

absl::Status ConfigError(absl::string_view what) {
  return WithCniCode(absl::InvalidArgumentError(absl::StrCat("network config: ", what)),
                     kInvalidConfig);
}

std::string StringField(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

absl::Status WithCniCode(absl::Status status, int code) {
  status.SetPayload(kCodePayload, absl::Cord(absl::StrCat(code)));
  return status;
}

int CniCode(const absl::Status& status) {
  if (absl::optional<absl::Cord> p = status.GetPayload(kCodePayload)) {
    int code = 0;
    if (absl::SimpleAtoi(std::string(*p), &code)) return code;
  }
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kTryAgainLater;
    case absl::StatusCode::kDataLoss:
      return kDecodingFailure;
    default:
      return kPluginError;
  }
}

absl::StatusOr<CniEnv> ParseEnv(const std::function<const char*(const char*)>& getenv) {
  CniEnv env;
  const std::string command = Env(getenv, "CNI_COMMAND");
  if (command == "ADD") {
    env.command = Command::kAdd;
  } else if (command == "DEL") {
    env.command = Command::kDel;
  } else if (command == "CHECK") {
    env.command = Command::kCheck;
  } else if (command == "VERSION") {
    env.command = Command::kVersion;
    return env;
  } else {
    return EnvError(
        absl::StrCat("CNI_COMMAND: '", command, "' is not one of ADD, DEL, CHECK, VERSION"));
  }
  env.container_id = Env(getenv, "CNI_CONTAINERID");
  env.netns = Env(getenv, "CNI_NETNS");
  env.ifname = Env(getenv, "CNI_IFNAME");
  if (env.container_id.empty()) return EnvError("CNI_CONTAINERID: missing");
  for (char c : env.container_id) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') {
      return EnvError(absl::StrCat("CNI_CONTAINERID: '", env.container_id,
                                   "' has a character other than letters, digits, '-_.'"));
    }
  }
  if (env.ifname.empty()) return EnvError("CNI_IFNAME: missing");
  if (env.netns.empty() && env.command != Command::kDel) return EnvError("CNI_NETNS: missing");
  const std::string args = Env(getenv, "CNI_ARGS");
  for (absl::string_view kv : absl::StrSplit(args, ';', absl::SkipEmpty())) {
    std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    if (p.first.empty() || !absl::StrContains(kv, '=')) {
      return EnvError(absl::StrCat("CNI_ARGS: '", kv, "' is not KEY=VALUE"));
    }
    env.args[p.first] = p.second;
  }
  return env;
}

absl::StatusOr<CniConfig> ParseConfig(absl::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return WithCniCode(absl::DataLossError("network config on stdin: not a JSON object"),
                       kDecodingFailure);
  }
  CniConfig config;
  config.cni_version = StringField(j, "cniVersion");
  config.name = StringField(j, "name");
  if (config.cni_version.empty()) return ConfigError("cniVersion: missing");
  if (!SupportedVersion(config.cni_version)) {
    return WithCniCode(
        absl::InvalidArgumentError(absl::StrCat("network config: cniVersion ", config.cni_version,
                                                " is not supported (see VERSION)")),
        kIncompatibleVersion);
  }
  if (j.contains("containersDir")) {
    config.containers_dir = StringField(j, "containersDir");
    if (config.containers_dir.empty()) return ConfigError("containersDir: not a non-empty string");
  }
  if (j.contains("timeoutMs")) {
    const nlohmann::json& t = j["timeoutMs"];
    if (!t.is_number_integer() || t.get<int64_t>() < 0) {
      return ConfigError("timeoutMs: not a non-negative integer");
    }
    config.timeout = absl::Milliseconds(t.get<int64_t>());
  }
  if (j.contains("labels")) {
    const nlohmann::json& l = j["labels"];
    if (!l.is_object()) return ConfigError("labels: not an object");
    for (const auto& [k, v] : l.items()) {
      if (!v.is_string()) return ConfigError(absl::StrCat("labels.", k, ": not a string"));
      config.labels[k] = v.get<std::string>();
    }
  }
  if (j.contains("prevResult")) {
    config.prev_result = j["prevResult"];
    if (!config.prev_result.is_object()) return ConfigError("prevResult: not an object");
  }
  return config;
}

absl::StatusOr<Registration> FindAttachment(
    const CniEnv& env, const CniConfig& config,
    const std::function<bool(const std::string&)>& is_bridge_port) {
  if (config.prev_result.is_null()) {
    return WithCniCode(absl::FailedPreconditionError(
                           "network config: no prevResult: bastion-cni chains after the bridge "
                           "plugin"),
                       kInvalidConfig);
  }
  const nlohmann::json& pr = config.prev_result;
  Registration a;
  a.file_name = env.container_id + ".json";
  a.name = env.container_id;
  for (const char* key : {"K8S_POD_NAME", "BASTION_NAME"}) {
    if (auto it = env.args.find(key); it != env.args.end() && !it->second.empty())
      a.name = it->second;
  }
  a.labels = config.labels;
  for (const auto& [k, v] : env.args) {
    if (absl::StartsWith(k, "BASTION_LABEL_") && k.size() > 14) a.labels[k.substr(14)] = v;
  }
  const size_t slash = env.netns.rfind('/');
  a.netns = slash == std::string::npos ? env.netns : env.netns.substr(slash + 1);

  const nlohmann::json interfaces = pr.value("interfaces", nlohmann::json::array());
  if (!interfaces.is_array()) return ConfigError("prevResult.interfaces: not an array");
  int container_index = -1;
  for (size_t i = 0; i < interfaces.size(); ++i) {
    const nlohmann::json& itf = interfaces[i];
    if (!itf.is_object())
      return ConfigError(absl::StrCat("prevResult.interfaces[", i, "]: not an object"));
    const std::string name = StringField(itf, "name");
    const std::string sandbox = StringField(itf, "sandbox");
    if (!sandbox.empty()) {
      if (name == env.ifname) {
        container_index = static_cast<int>(i);
        a.mac = absl::AsciiStrToLower(StringField(itf, "mac"));
      }
    } else if (a.host_veth.empty() && !name.empty() && is_bridge_port(name)) {
      a.host_veth = name;
    }
  }
  if (container_index < 0) {
    return ConfigError(
        absl::StrCat("prevResult.interfaces: no interface '", env.ifname, "' with a sandbox"));
  }
  if (a.mac.empty()) {
    return ConfigError(absl::StrCat("prevResult.interfaces[", container_index, "]: no mac"));
  }
  if (a.host_veth.empty()) {
    return ConfigError("prevResult.interfaces: no host-side interface that is a bridge port");
  }
  const nlohmann::json ips = pr.value("ips", nlohmann::json::array());
  if (!ips.is_array()) return ConfigError("prevResult.ips: not an array");
  for (size_t i = 0; i < ips.size() && a.ip.empty(); ++i) {
    const nlohmann::json& ip = ips[i];
    if (!ip.is_object()) return ConfigError(absl::StrCat("prevResult.ips[", i, "]: not an object"));
    if (ip.contains("interface") &&
        (!ip["interface"].is_number_integer() || ip["interface"].get<int>() != container_index)) {
      continue;
    }
    const std::string address = StringField(ip, "address");
    if (address.find(':') != std::string::npos) continue;  // IPv6: not enforced by Bastion
    if (address.find('/') == std::string::npos) {
      return ConfigError(
          absl::StrCat("prevResult.ips[", i, "].address: '", address, "' is not ADDRESS/PREFIX"));
    }
    a.ip = address.substr(0, address.find('/'));
    a.gateway = StringField(ip, "gateway");
  }
  if (a.ip.empty()) {
    return ConfigError(absl::StrCat("prevResult.ips: no IPv4 address on interface ",
                                    container_index, " ('", env.ifname, "')"));
  }
  return a;
}

std::string ErrorJson(const absl::Status& status, const std::string& cni_version) {
  nlohmann::json j = {{"cniVersion", cni_version.empty() ? "1.0.0" : cni_version},
                      {"code", CniCode(status)},
                      {"msg", std::string(status.message())},
                      {"details", absl::StatusCodeToString(status.code())}};
  return j.dump() + "\n";
}

bool SupportedVersion(absl::string_view version) {
  for (const char* v : kVersions) {
    if (version == v) return true;
  }
  return false;
}

std::string VersionJson() {
  nlohmann::json j = {{"cniVersion", "1.0.0"}, {"supportedVersions", nlohmann::json::array()}};
  for (const char* v : kVersions) j["supportedVersions"].push_back(v);
  return j.dump() + "\n";
}

}  // namespace dctk::bastion::cni
