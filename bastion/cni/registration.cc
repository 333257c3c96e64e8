#include "bastion/cni/registration.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"

namespace dctk::bastion {
namespace {

// Where BpfDatapath::Attach installs its filters (bastion/datapath/bpf_datapath.cc).
constexpr uint32_t kTcHandle = 1;
constexpr uint32_t kTcPriority = 1;
constexpr absl::Duration kPollInterval = absl::Milliseconds(20);

std::string StringField(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// Whether program `id` is one of Bastion's (its name starts with "bastion_").
absl::StatusOr<bool> IsBastionProgram(uint32_t id, const std::string& where) {
  const int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return false;  // replaced or removed meanwhile
  bpf_prog_info info{};
  __u32 len = sizeof(info);
  const int err = bpf_obj_get_info_by_fd(fd, &info, &len);
  close(fd);
  if (err) return absl::InternalError(absl::StrCat("reading program info on ", where));
  return absl::StartsWith(info.name, "bastion_");
}

// bpf_tc_query on a veth without a clsact qdisc (the usual answer while waiting) makes
// libbpf print the kernel's complaint; the answer is all this needs.
int QuietTcQuery(const bpf_tc_hook* hook, bpf_tc_opts* opts) {
  const libbpf_print_fn_t previous = libbpf_set_print(nullptr);
  const int err = bpf_tc_query(hook, opts);
  libbpf_set_print(previous);
  return err;
}

absl::StatusOr<bool> TcProgramsAttached(const std::string& ifname) {
  const int ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
  if (ifindex == 0) return absl::NotFoundError(absl::StrCat("interface ", ifname, ": not found"));
  for (bpf_tc_attach_point point : {BPF_TC_INGRESS, BPF_TC_EGRESS}) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = kTcPriority);
    const int err = QuietTcQuery(&hook, &opts);
    if (err == -ENOENT || err == -EINVAL) return false;  // no filter / no clsact qdisc
    if (err) {
      return absl::InternalError(
          absl::StrCat("querying tc filters on ", ifname, ": ", std::strerror(-err)));
    }
    absl::StatusOr<bool> bastion = IsBastionProgram(opts.prog_id, ifname);
    if (!bastion.ok() || !*bastion) return bastion;
  }
  return true;
}

absl::StatusOr<bool> CgroupProgramsAttached(const std::string& cgroup) {
  const int fd = open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(absl::StrCat("cgroup ", cgroup, ": not found"));
  bool all = true;
  for (bpf_attach_type type : {BPF_CGROUP_INET_EGRESS, BPF_CGROUP_INET_INGRESS}) {
    uint32_t ids[64];
    uint32_t count = 64;
    if (bpf_prog_query(fd, type, 0, nullptr, ids, &count) != 0) {
      const int e = errno;
      close(fd);
      return absl::InternalError(
          absl::StrCat("querying programs on cgroup ", cgroup, ": ", std::strerror(e)));
    }
    bool found = false;
    for (uint32_t i = 0; i < count && !found; ++i) {
      absl::StatusOr<bool> bastion = IsBastionProgram(ids[i], cgroup);
      if (!bastion.ok()) {
        close(fd);
        return bastion.status();
      }
      found = *bastion;
    }
    all &= found;
  }
  close(fd);
  return all;
}

std::string Where(const Registration& r) {
  return r.cgroup.empty() ? r.host_veth : "cgroup " + r.cgroup;
}

}  // namespace

std::string RegistrationJson(const Registration& r) {
  nlohmann::json j;
  if (!r.cgroup.empty()) {
    j = {{"name", r.name}, {"network", "host"}, {"cgroup", r.cgroup}, {"labels", r.labels}};
  } else {
    j = {{"name", r.name}, {"netns", r.netns}, {"host_veth", r.host_veth},
         {"ip", r.ip},     {"mac", r.mac},     {"labels", r.labels}};
    if (!r.gateway.empty()) j["gateway"] = r.gateway;
  }
  return j.dump() + "\n";
}

absl::StatusOr<Registration> ParseRegistration(absl::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return absl::DataLossError("label file: not a JSON object");
  Registration r;
  r.name = StringField(j, "name");
  r.netns = StringField(j, "netns");
  r.host_veth = StringField(j, "host_veth");
  r.ip = StringField(j, "ip");
  r.mac = StringField(j, "mac");
  r.gateway = StringField(j, "gateway");
  if (StringField(j, "network") == "host") r.cgroup = StringField(j, "cgroup");
  if (auto it = j.find("labels"); it != j.end() && it->is_object()) {
    for (const auto& [k, v] : it->items()) {
      if (v.is_string()) r.labels[k] = v.get<std::string>();
    }
  }
  return r;
}

absl::Status WriteRegistration(const std::string& dir, const Registration& r) {
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::InternalError(absl::StrCat("creating ", dir, ": ", std::strerror(errno)));
  }
  const std::string path = dir + "/" + r.file_name;
  const std::string tmp = absl::StrCat(dir, "/.", r.file_name, ".", getpid());
  {
    std::ofstream out(tmp);
    out << RegistrationJson(r);
    if (!out.flush()) return absl::InternalError(absl::StrCat("writing ", tmp));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    unlink(tmp.c_str());
    return absl::InternalError(
        absl::StrCat("renaming ", tmp, " to ", path, ": ", std::strerror(e)));
  }
  return absl::OkStatus();
}

absl::StatusOr<Registration> ReadRegistration(const std::string& dir,
                                              const std::string& file_name) {
  const std::string path = dir + "/" + file_name;
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  absl::StatusOr<Registration> r =
      ParseRegistration(std::string(std::istreambuf_iterator<char>(in), {}));
  if (!r.ok()) return absl::DataLossError(absl::StrCat(path, ": ", r.status().message()));
  r->file_name = file_name;
  return r;
}

absl::Status RemoveRegistration(const std::string& dir, const std::string& file_name) {
  const std::string path = dir + "/" + file_name;
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError(absl::StrCat("removing ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> RemoveStaleRegistrations(const std::string& dir,
                                                                  const Registration& r) {
  std::vector<std::string> removed;
  DIR* d = opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return removed;
    return absl::InternalError(absl::StrCat("reading ", dir, ": ", std::strerror(errno)));
  }
  std::vector<std::string> files;
  while (dirent* e = readdir(d)) {
    const std::string file = e->d_name;
    if (file[0] != '.' && absl::EndsWith(file, ".json") && file != r.file_name) {
      files.push_back(file);
    }
  }
  closedir(d);
  for (const std::string& file : files) {
    absl::StatusOr<Registration> other = ReadRegistration(dir, file);
    if (!other.ok()) continue;  // gone meanwhile, or not ours to judge
    const bool same = r.cgroup.empty() ? other->cgroup.empty() && other->host_veth == r.host_veth
                                       : other->cgroup == r.cgroup;
    if (!same) continue;
    if (absl::Status s = RemoveRegistration(dir, file); !s.ok()) return s;
    removed.push_back(file);
  }
  return removed;
}

bool IsBridgePort(const std::string& ifname) {
  struct stat st;
  return stat(("/sys/class/net/" + ifname + "/brport").c_str(), &st) == 0;
}

absl::StatusOr<bool> StackInstalled(const Registration& r) {
  return r.cgroup.empty() ? TcProgramsAttached(r.host_veth) : CgroupProgramsAttached(r.cgroup);
}

absl::Status WaitForStack(const Registration& r, bool installed, absl::Duration timeout,
                          const std::string& dir) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    absl::StatusOr<bool> now = StackInstalled(r);
    if (!now.ok() && absl::IsNotFound(now.status()) && !installed) return absl::OkStatus();
    if (!now.ok()) return now.status();
    if (*now == installed) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      return absl::UnavailableError(absl::StrCat(
          "bastiond did not ", installed ? "attach the Bastion programs to " : "detach them from ",
          Where(r), " within ", absl::FormatDuration(timeout),
          " (is bastiond running with --netns_dir=", dir, " in this network namespace?)"));
    }
    absl::SleepFor(kPollInterval);  // polling another process's work: nothing to wait on
  }
}

}  // namespace dctk::bastion
