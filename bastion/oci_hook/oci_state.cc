#include "bastion/oci_hook/oci_state.h"

#include <cstdint>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace dctk::bastion::oci_hook {
namespace {

absl::Status StateError(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("OCI state on stdin: ", what));
}

}  // namespace

absl::StatusOr<OciState> ParseOciState(absl::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return StateError("not a JSON object");
  OciState s;
  for (auto [key, field] : {std::pair{"ociVersion", &s.oci_version}, std::pair{"id", &s.id},
                            std::pair{"status", &s.status}, std::pair{"bundle", &s.bundle}}) {
    auto it = j.find(key);
    if (it == j.end()) continue;
    if (!it->is_string()) return StateError(absl::StrCat(key, ": not a string"));
    *field = it->get<std::string>();
  }
  if (s.id.empty()) return StateError("id: missing");
  for (char c : s.id) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') {
      return StateError(
          absl::StrCat("id: '", s.id, "' has a character other than letters, digits, '-_.'"));
    }
  }
  if (s.status.empty()) return StateError("status: missing");
  if (auto it = j.find("pid"); it != j.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > INT32_MAX) {
      return StateError("pid: not a process id");
    }
    s.pid = it->get<int>();
  }
  if (auto it = j.find("annotations"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return StateError("annotations: not an object");
    for (const auto& [k, v] : it->items()) {
      if (!v.is_string()) return StateError(absl::StrCat("annotations.", k, ": not a string"));
      s.annotations[k] = v.get<std::string>();
    }
  }
  return s;
}

absl::StatusOr<HookAction> ActionFor(const OciState& state) {
  if (state.status == "creating" || state.status == "created") {
    if (state.pid <= 0) {
      return StateError(absl::StrCat("container ", state.id, " is ", state.status,
                                     " but has no pid (register at createRuntime or prestart)"));
    }
    return HookAction::kRegister;
  }
  if (state.status == "stopped") return HookAction::kUnregister;
  return StateError(absl::StrCat("container ", state.id, ": status '", state.status,
                                 "': the hook serves createRuntime/prestart (creating) and "
                                 "poststop (stopped)"));
}

absl::StatusOr<HookOptions> ParseHookArgs(int argc, const char* const argv[]) {
  HookOptions o;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    absl::string_view value = arg;
    if (absl::ConsumePrefix(&value, "--containers_dir=")) {
      if (value.empty()) return absl::InvalidArgumentError("--containers_dir: empty");
      o.containers_dir = std::string(value);
    } else if (absl::ConsumePrefix(&value, "--timeout_ms=")) {
      int64_t ms = 0;
      if (!absl::SimpleAtoi(value, &ms) || ms < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("--timeout_ms: '", value, "' is not a non-negative integer"));
      }
      o.timeout = absl::Milliseconds(ms);
    } else if (absl::ConsumePrefix(&value, "--ifname=")) {
      if (value.empty()) return absl::InvalidArgumentError("--ifname: empty");
      o.ifname = std::string(value);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown argument '", arg, "' (--containers_dir=DIR, --timeout_ms=N, --ifname=NAME)"));
    }
  }
  return o;
}

Identity ContainerIdentity(const OciState& state, const std::string& storage_name) {
  Identity who;
  if (auto it = state.annotations.find(kNameAnnotation);
      it != state.annotations.end() && !it->second.empty()) {
    who.name = it->second;
  } else if (!storage_name.empty()) {
    who.name = storage_name;
  } else {
    who.name = state.id.substr(0, 12);
  }
  for (const auto& [k, v] : state.annotations) {
    absl::string_view key = k;
    if (absl::ConsumePrefix(&key, kLabelAnnotationPrefix) && !key.empty()) {
      who.labels[std::string(key)] = v;
    }
  }
  return who;
}

std::string StorageName(absl::string_view containers_json, const std::string& id) {
  nlohmann::json j =
      nlohmann::json::parse(containers_json.begin(), containers_json.end(), nullptr, false);
  if (!j.is_array()) return "";
  for (const nlohmann::json& c : j) {
    if (!c.is_object() || c.value("id", "") != id) continue;
    auto names = c.find("names");
    if (names == c.end() || !names->is_array() || names->empty() || !(*names)[0].is_string()) {
      return "";
    }
    return (*names)[0].get<std::string>();
  }
  return "";
}

std::string StorageFileFor(const std::string& bundle) {
  std::string dir = bundle;
  while (absl::EndsWith(dir, "/")) dir.pop_back();
  for (int up = 0; up < 2; ++up) {  // .../overlay-containers/<id>/userdata -> overlay-containers
    const size_t slash = dir.rfind('/');
    if (slash == std::string::npos) return "";
    dir.resize(slash);
  }
  return dir + "/containers.json";
}

std::string DefaultGateway(absl::string_view route_text) {
  for (absl::string_view line : absl::StrSplit(route_text, '\n')) {
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    // Iface Destination Gateway Flags ...: the default route has destination and mask 0.
    if (f.size() < 8 || f[1] != "00000000" || f[7] != "00000000") continue;
    uint32_t gw = 0;
    if (!absl::SimpleHexAtoi(f[2], &gw) || gw == 0) continue;
    // The kernel prints the address as a native (little-endian here) integer.
    return absl::StrCat(gw & 0xff, ".", (gw >> 8) & 0xff, ".", (gw >> 16) & 0xff, ".", gw >> 24);
  }
  return "";
}

}  // namespace dctk::bastion::oci_hook
