#include "bastion/manager/netns_containers.h"

#include <dirent.h>
#include <net/if.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bastion/datapath/cgroup.h"
#include "common/process/run_command.h"
#include "nlohmann/json.hpp"

namespace dctk::bastion {
namespace {

absl::StatusOr<uint32_t> ParseIpv4(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, '.');
  uint32_t ip = 0;
  for (absl::string_view p : parts) {
    uint32_t octet;
    if (parts.size() != 4 || !absl::SimpleAtoi(p, &octet) || octet > 255) {
      return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not an IPv4 address"));
    }
    ip = (ip << 8) | octet;
  }
  return ip;
}

absl::Status CheckName(const std::string& name) {
  if (name.empty() || name.size() > 12) {
    return absl::InvalidArgumentError(absl::StrCat("container name '", name, "': 1-12 characters"));
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_') {
      return absl::InvalidArgumentError(
          absl::StrCat("container name '", name, "': letters, digits, '-', '_' only"));
    }
  }
  return absl::OkStatus();
}

std::string In(const std::string& netns) { return netns.empty() ? "ip " : "ip -n " + netns + " "; }

// A container the directory describes, read from its label file; `cgroup` is set for a
// host-network one.
absl::StatusOr<ContainerInfo> ReadLabelFile(const std::string& path, std::string* cgroup) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": gone"));
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  }
  ContainerInfo c;
  auto text = [&](const char* key) -> std::string {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : "";
  };
  c.name = text("name");
  if (auto it = j.find("labels"); it != j.end() && it->is_object()) {
    for (const auto& [k, v] : it->items()) {
      if (v.is_string()) c.labels[k] = v.get<std::string>();
    }
  }
  if (text("network") == "host") {
    *cgroup = text("cgroup");
    if (c.name.empty() || cgroup->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": a host-network container needs name and cgroup"));
    }
    struct stat info;
    if (stat(cgroup->c_str(), &info) != 0) {
      return absl::NotFoundError(absl::StrCat(path, ": cgroup ", *cgroup, " not here"));
    }
    c.runtime_id = "host:" + c.name;
    c.network_mode = "host";
    return c;
  }
  c.runtime_id = text("netns");
  c.network_mode = "bridge";
  absl::StatusOr<uint32_t> ip = ParseIpv4(text("ip"));
  absl::StatusOr<MacAddress> mac = MacAddress::Parse(text("mac"));
  if (c.name.empty() || c.runtime_id.empty() || !ip.ok() || !mac.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": needs name, netns, ip and mac (see netns_containers.h)"));
  }
  c.ip = *ip;
  c.mac = *mac;
  if (absl::StatusOr<uint32_t> gw = ParseIpv4(text("gateway")); gw.ok()) c.gateway = *gw;
  const std::string veth = text("host_veth");
  c.host_ifindex = veth.empty() ? 0 : static_cast<int>(if_nametoindex(veth.c_str()));
  if (c.host_ifindex == 0) {
    return absl::NotFoundError(absl::StrCat(path, ": host veth '", veth, "' not here"));
  }
  return c;
}

// Writes the label file atomically (temp file + rename).
absl::Status WriteLabelFile(const std::string& dir, const std::string& name,
                            const nlohmann::json& j) {
  const std::string path = absl::StrCat(dir, "/", name, ".json");
  const std::string tmp = absl::StrCat(dir, "/.", name, ".tmp");
  mkdir(dir.c_str(), 0755);
  std::ofstream out(tmp);
  out << j.dump() << "\n";
  out.close();
  if (!out || rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("writing label file ", path));
  }
  return absl::OkStatus();
}

// Kills every process in the cgroup and removes it (waits, bounded, for them to exit).
absl::Status RemoveCgroup(const std::string& cgroup) {
  std::ofstream(cgroup + "/cgroup.kill") << "1" << std::endl;
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (rmdir(cgroup.c_str()) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    if (errno != EBUSY || absl::Now() > deadline) {
      return absl::ErrnoToStatus(errno, "removing cgroup " + cgroup);
    }
    absl::SleepFor(absl::Milliseconds(10));  // killed processes are still exiting
  }
  return absl::OkStatus();
}

absl::Status CreateHostNetworkContainer(const NamespaceContainerSpec& spec,
                                        const std::string& dir) {
  absl::StatusOr<std::string> cgroup = NamespaceContainerCgroup(spec.name);
  if (!cgroup.ok()) return cgroup.status();
  if (mkdir(cgroup->c_str(), 0755) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("creating host-network container '",
                                                   spec.name, "': cgroup ", *cgroup));
  }
  nlohmann::json j = {{"name", spec.name}, {"network", "host"}, {"cgroup", *cgroup},
                      {"labels", spec.labels}};
  if (absl::Status s = WriteLabelFile(dir, spec.name, j); !s.ok()) {
    rmdir(cgroup->c_str());
    return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> NamespaceContainerCgroup(const std::string& name) {
  absl::StatusOr<std::string> root = Cgroup2MountPoint();
  if (!root.ok()) return root.status();
  return absl::StrCat(*root, "/dctk-", name);
}

std::string NamespaceContainerNetns(const std::string& name) { return "dctk-" + name; }
std::string NamespaceContainerVeth(const std::string& name) { return "d" + name; }

absl::Status CreateBridge(const NamespaceNetwork& net) {
  const std::string ip = In(net.host_netns);
  return RunCommand(absl::StrCat(ip, "link add ", net.bridge, " type bridge && ", ip, "addr add ",
                                 net.prefix, ".1/24 dev ", net.bridge, " && ", ip, "link set ",
                                 net.bridge, " up"))
      .status();
}

absl::Status DeleteBridge(const NamespaceNetwork& net) {
  return RunCommand(absl::StrCat(In(net.host_netns), "link del ", net.bridge)).status();
}

absl::Status CreateNamespaceContainer(const NamespaceNetwork& net,
                                      const NamespaceContainerSpec& spec, const std::string& dir) {
  if (absl::Status s = CheckName(spec.name); !s.ok()) return s;
  if (spec.host_network) return CreateHostNetworkContainer(spec, dir);
  if (spec.index < 2 || spec.index > 254) {
    return absl::InvalidArgumentError(absl::StrCat("container '", spec.name, "': index ",
                                                   spec.index, " outside 2..254"));
  }
  absl::StatusOr<uint32_t> base = ParseIpv4(net.prefix + ".0");
  if (!base.ok()) return base.status();
  const std::string netns = NamespaceContainerNetns(spec.name);
  const std::string veth = NamespaceContainerVeth(spec.name);
  const std::string ip = absl::StrCat(net.prefix, ".", spec.index);
  MacAddress mac;
  mac.bytes = {0x02, 0x00, static_cast<uint8_t>(*base >> 24), static_cast<uint8_t>(*base >> 16),
               static_cast<uint8_t>(*base >> 8), static_cast<uint8_t>(spec.index)};
  const std::string host = In(net.host_netns);
  const std::string inside = In(netns);
  absl::Status s = RunCommand(absl::StrCat(
      "ip netns add ", netns, " && ",
      host, "link add ", veth, " type veth peer name eth0 netns ", netns, " && ",
      "ip netns exec ", netns, " sysctl -qw net.ipv6.conf.all.disable_ipv6=1 && ",
      inside, "link set eth0 address ", mac.ToString(), " && ",
      inside, "addr add ", ip, "/24 dev eth0 && ",
      inside, "link set eth0 up && ", inside, "link set lo up && ",
      inside, "route add default via ", net.prefix, ".1 && ",
      host, "link set ", veth, " master ", net.bridge, " && ",
      host, "link set ", veth, " up")).status();
  if (s.ok()) {
    nlohmann::json j = {{"name", spec.name},  {"netns", netns},         {"host_veth", veth},
                        {"ip", ip},           {"mac", mac.ToString()},  {"labels", spec.labels},
                        {"gateway", net.prefix + ".1"}};
    s = WriteLabelFile(dir, spec.name, j);
  }
  if (!s.ok()) {
    RunCommand("ip netns del " + netns).IgnoreError();  // takes the veth pair with it
    return absl::Status(s.code(), absl::StrCat("creating namespace container '", spec.name,
                                               "': ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status DeleteNamespaceContainer(const std::string& name, const std::string& dir) {
  unlink(absl::StrCat(dir, "/", name, ".json").c_str());
  absl::StatusOr<std::string> cgroup = NamespaceContainerCgroup(name);
  struct stat info;
  if (cgroup.ok() && stat(cgroup->c_str(), &info) == 0) return RemoveCgroup(*cgroup);
  return RunCommand("ip netns del " + NamespaceContainerNetns(name)).status();
}

NamespaceContainerSource::NamespaceContainerSource(std::string dir) : dir_(std::move(dir)) {
  mkdir(dir_.c_str(), 0755);
  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ >= 0) {
    inotify_add_watch(inotify_fd_, dir_.c_str(), IN_MOVED_TO | IN_DELETE | IN_CLOSE_WRITE);
  }
}

NamespaceContainerSource::~NamespaceContainerSource() {
  if (inotify_fd_ >= 0) close(inotify_fd_);
}

absl::StatusOr<std::vector<ContainerInfo>> NamespaceContainerSource::List() {
  std::vector<ContainerInfo> out;
  std::map<std::string, std::string> cgroups;
  DIR* d = opendir(dir_.c_str());
  if (!d) return absl::ErrnoToStatus(errno, absl::StrCat("reading ", dir_));
  while (dirent* e = readdir(d)) {
    const std::string file = e->d_name;
    if (file[0] == '.' || !absl::EndsWith(file, ".json")) continue;
    // Files vanish and veths go away while we read: such containers are simply not there.
    std::string cgroup;
    absl::StatusOr<ContainerInfo> c = ReadLabelFile(absl::StrCat(dir_, "/", file), &cgroup);
    if (!c.ok()) continue;
    if (!cgroup.empty()) cgroups[c->runtime_id] = cgroup;
    out.push_back(std::move(*c));
  }
  closedir(d);
  absl::MutexLock l(&mu_);
  cgroups_ = std::move(cgroups);
  return out;
}

absl::StatusOr<std::string> NamespaceContainerSource::HostNetworkCgroup(
    const std::string& runtime_id) const {
  absl::MutexLock l(&mu_);
  auto it = cgroups_.find(runtime_id);
  if (it == cgroups_.end()) {
    return absl::NotFoundError(absl::StrCat(name(), ": no cgroup known for ", runtime_id));
  }
  return it->second;
}

bool NamespaceContainerSource::WaitForChange(absl::Duration timeout) {
  if (inotify_fd_ < 0) {
    poll(nullptr, 0, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
    return false;
  }
  pollfd p{.fd = inotify_fd_, .events = POLLIN, .revents = 0};
  if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) <= 0) return false;
  char buf[4096];
  while (read(inotify_fd_, buf, sizeof(buf)) > 0) {
  }
  return true;
}

}  // namespace dctk::bastion
