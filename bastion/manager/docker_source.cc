#include "bastion/manager/docker_source.h"

#include <curl/curl.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bastion/manager/run_command.h"
#include "nlohmann/json.hpp"

namespace dctk::bastion {
namespace {

using nlohmann::json;

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

uint32_t ParseIp(const std::string& text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '.');
  uint32_t ip = 0;
  for (absl::string_view p : parts) {
    uint32_t octet;
    if (parts.size() != 4 || !absl::SimpleAtoi(p, &octet) || octet > 255) return 0;
    ip = (ip << 8) | octet;
  }
  return ip;
}

// The host-side peer of the container's eth0: "2: eth0@if17: <...>" -> 17.
absl::StatusOr<int> HostPeerIfindex(int pid) {
  absl::StatusOr<std::string> out = RunCommand(
      absl::StrCat("nsenter --net=/proc/", pid, "/ns/net ip -o link show eth0"));
  if (!out.ok()) return out.status();
  size_t at = out->find("@if");
  int ifindex = 0;
  if (at == std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(*out).substr(at + 3, out->find(':', at) - at - 3),
                        &ifindex)) {
    return absl::NotFoundError(absl::StrCat("pid ", pid, ": eth0 is not a veth: ", *out));
  }
  return ifindex;
}

std::string Get(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

absl::StatusOr<std::string> DockerApiGet(const std::string& socket, const std::string& path) {
  CURL* curl = curl_easy_init();
  if (!curl) return absl::InternalError("curl_easy_init failed");
  std::string body;
  const std::string url = "http://d" + path;
  curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, socket.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    return absl::UnavailableError(
        absl::StrCat("docker API ", socket, " GET ", path, ": ", curl_easy_strerror(rc)));
  }
  if (status != 200) {
    return absl::UnavailableError(
        absl::StrCat("docker API ", socket, " GET ", path, ": HTTP ", status, ": ", body));
  }
  return body;
}

DockerSource::DockerSource(std::string socket) : socket_(std::move(socket)) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  events_ = std::thread([this] { FollowEvents(); });
}

DockerSource::~DockerSource() {
  stop_ = true;
  events_.join();
}

absl::StatusOr<std::vector<ContainerInfo>> DockerSource::List() {
  absl::StatusOr<std::string> body = DockerApiGet(socket_, "/v1.40/containers/json");
  if (!body.ok()) return body.status();
  json list = json::parse(*body, nullptr, /*allow_exceptions=*/false);
  if (!list.is_array()) {
    return absl::DataLossError(absl::StrCat("docker API ", socket_, ": container list not a list"));
  }
  std::vector<ContainerInfo> out;
  for (const json& summary : list) {
    const std::string id = Get(summary, "Id");
    absl::StatusOr<std::string> inspect = DockerApiGet(socket_, "/v1.40/containers/" + id + "/json");
    if (!inspect.ok()) continue;  // gone between list and inspect
    json j = json::parse(*inspect, nullptr, false);
    if (!j.is_object()) continue;
    ContainerInfo c;
    c.runtime_id = id;
    c.name = Get(j, "Name");
    if (!c.name.empty() && c.name[0] == '/') c.name.erase(0, 1);
    if (j.contains("Config") && j["Config"].contains("Labels") && j["Config"]["Labels"].is_object()) {
      for (const auto& [k, v] : j["Config"]["Labels"].items()) {
        if (v.is_string()) c.labels[k] = v.get<std::string>();
      }
    }
    c.network_mode = j.value("/HostConfig/NetworkMode"_json_pointer, std::string());
    const int pid = j.value("/State/Pid"_json_pointer, 0);
    if (c.network_mode == "host") {
      out.push_back(std::move(c));  // shares the host's stack: no veth, no address
      continue;
    }
    const json networks = j.value("/NetworkSettings/Networks"_json_pointer, json::object());
    for (const auto& [name, net] : networks.items()) {
      c.ip = ParseIp(Get(net, "IPAddress"));
      c.gateway = ParseIp(Get(net, "Gateway"));
      if (absl::StatusOr<MacAddress> mac = MacAddress::Parse(Get(net, "MacAddress")); mac.ok()) {
        c.mac = *mac;
      }
      if (c.ip != 0) break;  // the first network with an address
    }
    if (c.ip == 0 || pid <= 0) continue;  // not networked yet
    absl::StatusOr<int> ifindex = HostPeerIfindex(pid);
    if (!ifindex.ok()) continue;  // exited meanwhile
    c.host_ifindex = *ifindex;
    out.push_back(std::move(c));
  }
  return out;
}

void DockerSource::FollowEvents() {
  while (!stop_) {
    CURL* curl = curl_easy_init();
    if (!curl) return;
    const std::string url =
        "http://d/v1.40/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D";
    curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, socket_.c_str());
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION,
                     +[](char*, size_t size, size_t n, void* self) -> size_t {
                       auto* source = static_cast<DockerSource*>(self);
                       absl::MutexLock l(&source->mu_);
                       source->changed_ = true;
                       return size * n;
                     });
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, this);
    // Progress callback: lets the destructor end the stream.
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION,
                     +[](void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> int {
                       return static_cast<DockerSource*>(self)->stop_ ? 1 : 0;
                     });
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, this);
    curl_easy_perform(curl);
    curl_easy_cleanup(curl);
    // Stream ended or the socket is not there yet: retry shortly; polling covers the gap.
    for (int i = 0; i < 10 && !stop_; ++i) absl::SleepFor(absl::Milliseconds(100));
  }
}

bool DockerSource::WaitForChange(absl::Duration timeout) {
  absl::MutexLock l(&mu_);
  auto changed = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return changed_; };
  const bool woke = mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
  changed_ = false;
  return woke;
}

}  // namespace dctk::bastion
