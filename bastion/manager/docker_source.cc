#include "bastion/manager/docker_source.h"

#include <curl/curl.h>

#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bastion/datapath/cgroup.h"
#include "common/process/run_command.h"
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
  // `ip` lives in /usr/sbin, which a test runner's or a service's PATH may lack.
  absl::StatusOr<std::string> out = RunCommand(absl::StrCat(
      "PATH=\"$PATH:/usr/sbin:/sbin\" nsenter --net=/proc/", pid, "/ns/net ip -o link show eth0"));
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

// Container actions that may change what List() returns or what it found.
bool Relevant(const std::string& action) {
  static const std::set<std::string>* kActions = new std::set<std::string>{
      "create", "start", "restart", "die", "died", "stop", "kill", "remove", "destroy",
      "cleanup", "rename", "pause", "unpause", "connect", "disconnect", "update"};
  return kActions->count(action) > 0;
}

std::string Get(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string UrlEscape(const std::string& text) {
  std::string out;
  for (unsigned char ch : text) {
    if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      out += static_cast<char>(ch);
    } else {
      out += absl::StrFormat("%%%02X", ch);
    }
  }
  return out;
}

}  // namespace

std::string DockerFilters(const std::vector<std::string>& labels, const std::string& type) {
  json filters = json::object();
  if (!labels.empty()) filters["label"] = labels;
  if (!type.empty()) filters["type"] = json::array({type});
  return UrlEscape(filters.dump());
}

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

DockerSource::DockerSource(Options options) : options_(std::move(options)) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  events_thread_ = std::thread([this] { FollowEvents(); });
}

DockerSource::~DockerSource() {
  stop_ = true;
  events_thread_.join();
}

uint64_t DockerSource::events_seen() const {
  absl::MutexLock l(&mu_);
  return events_;
}

uint64_t DockerSource::inspections() const {
  absl::MutexLock l(&mu_);
  return inspections_;
}

absl::StatusOr<ContainerInfo> DockerSource::Inspect(const std::string& id) {
  {
    absl::MutexLock l(&mu_);
    ++inspections_;
  }
  absl::StatusOr<std::string> inspect = DockerApiGet(options_.socket, "/v1.40/containers/" + id + "/json");
  if (!inspect.ok()) return inspect.status();  // gone between list and inspect
  json j = json::parse(*inspect, nullptr, false);
  if (!j.is_object()) return absl::DataLossError("container " + id + ": inspection is not JSON");
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
  if (c.network_mode == "host") {  // shares the host's stack: no veth, no address
    if (pid <= 0) return absl::UnavailableError("container " + c.name + ": not running (yet)");
    absl::StatusOr<std::string> cgroup = ProcessCgroup(pid);
    if (!cgroup.ok()) return cgroup.status();  // exited meanwhile
    absl::MutexLock l(&mu_);
    cgroups_[id] = *cgroup;
    return c;
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
  if (c.ip == 0 || pid <= 0) {
    return absl::UnavailableError("container " + c.name + ": not networked (yet)");
  }
  absl::StatusOr<int> ifindex = HostPeerIfindex(pid);
  if (!ifindex.ok()) return ifindex.status();  // exited meanwhile
  c.host_ifindex = *ifindex;
  return c;
}

absl::StatusOr<std::vector<ContainerInfo>> DockerSource::List() {
  uint64_t events_before;
  bool trusted;
  {
    absl::MutexLock l(&mu_);
    events_before = events_;
    trusted = connected_;
  }
  std::string path = "/v1.40/containers/json";
  if (!options_.label_filter.empty()) {
    path += "?filters=" + DockerFilters(options_.label_filter, "");
  }
  absl::StatusOr<std::string> body = DockerApiGet(options_.socket, path);
  if (!body.ok()) return body.status();
  json list = json::parse(*body, nullptr, /*allow_exceptions=*/false);
  if (!list.is_array()) {
    return absl::DataLossError(
        absl::StrCat("docker API ", options_.socket, ": container list not a list"));
  }
  std::vector<ContainerInfo> out;
  std::map<std::string, ContainerInfo> fresh;
  for (const json& summary : list) {
    const std::string id = Get(summary, "Id");
    if (trusted) {
      absl::MutexLock l(&mu_);
      if (auto it = cache_.find(id); it != cache_.end()) {
        out.push_back(it->second);
        continue;
      }
    }
    absl::StatusOr<ContainerInfo> c = Inspect(id);
    if (!c.ok()) continue;  // gone, or not networked yet: its start event comes later
    fresh[id] = *c;
    out.push_back(*std::move(c));
  }
  absl::MutexLock l(&mu_);
  // Keep listed containers whose entries no event dropped meanwhile; cache new
  // inspections unless an event came during this round (it may be about one of them,
  // inspected before the change).
  const bool quiet = events_ == events_before && connected_;
  std::map<std::string, ContainerInfo> cache;
  for (const ContainerInfo& c : out) {
    if (cache_.count(c.runtime_id) || (quiet && fresh.count(c.runtime_id))) {
      cache.emplace(c.runtime_id, c);
    }
  }
  cache_ = std::move(cache);
  std::erase_if(cgroups_, [&](const auto& entry) {
    return std::none_of(out.begin(), out.end(),
                        [&](const ContainerInfo& c) { return c.runtime_id == entry.first; });
  });
  return out;
}

absl::StatusOr<std::string> DockerSource::HostNetworkCgroup(const std::string& runtime_id) const {
  absl::MutexLock l(&mu_);
  auto it = cgroups_.find(runtime_id);
  if (it == cgroups_.end()) {
    return absl::NotFoundError(absl::StrCat(name(), ": no cgroup known for container ", runtime_id));
  }
  return it->second;
}

void DockerSource::OnEventBytes(const char* data, size_t n) {
  partial_.append(data, n);
  size_t nl;
  while ((nl = partial_.find('\n')) != std::string::npos) {
    json e = json::parse(partial_.substr(0, nl), nullptr, false);
    partial_.erase(0, nl + 1);
    if (!e.is_object()) continue;
    std::string action = Get(e, "Action");
    if (action.empty()) action = Get(e, "status");
    std::string id = Get(e, "id");
    if (id.empty()) id = e.value("/Actor/ID"_json_pointer, std::string());
    absl::MutexLock l(&mu_);
    ++events_;
    if (!Relevant(action)) continue;
    cache_.erase(id);
    changed_ = true;
  }
}

void DockerSource::FollowEvents() {
  const std::string url = "http://d/v1.40/events?filters=" +
                          DockerFilters(options_.label_filter, "container");
  while (!stop_) {
    CURL* curl = curl_easy_init();
    if (!curl) return;
    partial_.clear();
    curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, options_.socket.c_str());
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    // Headers mean the stream is up: from now on no event is missed, so the cache may be
    // trusted; what happened before is unknown, so start from an empty one and wake.
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION,
                     +[](char* data, size_t size, size_t n, void* self) -> size_t {
                       auto* source = static_cast<DockerSource*>(self);
                       const absl::string_view line(data, size * n);
                       if (!absl::StartsWith(line, "HTTP/") || !absl::StrContains(line, " 200")) {
                         return size * n;
                       }
                       absl::MutexLock l(&source->mu_);
                       if (!source->connected_) {
                         source->connected_ = true;
                         source->cache_.clear();
                         source->changed_ = true;
                       }
                       return size * n;
                     });
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, this);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION,
                     +[](char* data, size_t size, size_t n, void* self) -> size_t {
                       static_cast<DockerSource*>(self)->OnEventBytes(data, size * n);
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
    {
      absl::MutexLock l(&mu_);
      connected_ = false;
      cache_.clear();
    }
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
