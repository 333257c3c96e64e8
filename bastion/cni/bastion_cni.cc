// bastion-cni: a chained CNI plugin (after the bridge plugin) that registers each
// container with bastiond as a dctk namespace container and waits until bastiond has
// installed the Bastion stack on its host-side veth. See bastion/README.md, "CNI plugin".
//
// ADD: writes <containersDir>/<CNI_CONTAINERID>.json (atomically), waits until both tc
//      programs are attached on the host veth, prints prevResult.
// DEL: removes the file (fine if absent) and waits until the programs are gone from the
//      veth (if the veth still exists); succeeds if everything is already gone.
// CHECK: the file says what ADD would write and the programs are attached now.
// VERSION: prints the supported versions.
// Errors: CNI error JSON on stdout, exit code 1.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bastion/cni/cni.h"

namespace dctk::bastion::cni {
namespace {

// Where BpfDatapath::Attach installs its filters (bastion/datapath/bpf_datapath.cc).
constexpr uint32_t kTcHandle = 1;
constexpr uint32_t kTcPriority = 1;
constexpr absl::Duration kPollInterval = absl::Milliseconds(20);

bool IsBridgePort(const std::string& name) {
  struct stat st;
  return stat(("/sys/class/net/" + name + "/brport").c_str(), &st) == 0;
}

// Whether a Bastion program (name "bastion_*") is on both tc hooks of `ifname`.
// NotFound if the interface does not exist.
absl::StatusOr<bool> ProgramsAttached(const std::string& ifname) {
  const int ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
  if (ifindex == 0) return absl::NotFoundError(absl::StrCat("interface ", ifname, ": not found"));
  for (bpf_tc_attach_point point : {BPF_TC_INGRESS, BPF_TC_EGRESS}) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = kTcPriority);
    int err = bpf_tc_query(&hook, &opts);
    if (err == -ENOENT || err == -EINVAL) return false;  // no filter / no clsact qdisc
    if (err) {
      return absl::InternalError(
          absl::StrCat("querying tc filters on ", ifname, ": ", std::strerror(-err)));
    }
    int fd = bpf_prog_get_fd_by_id(opts.prog_id);
    if (fd < 0) return false;  // replaced or removed meanwhile
    bpf_prog_info info{};
    __u32 len = sizeof(info);
    err = bpf_obj_get_info_by_fd(fd, &info, &len);
    close(fd);
    if (err) return absl::InternalError(absl::StrCat("reading program info on ", ifname));
    if (!absl::StartsWith(info.name, "bastion_")) return false;
  }
  return true;
}

// Waits until ProgramsAttached(ifname) == want; a vanished interface counts as detached.
absl::Status WaitAttached(const std::string& ifname, bool want, absl::Duration timeout,
                          const std::string& dir) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    absl::StatusOr<bool> attached = ProgramsAttached(ifname);
    if (!attached.ok() && absl::IsNotFound(attached.status()) && !want) return absl::OkStatus();
    if (!attached.ok()) return attached.status();
    if (*attached == want) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      return absl::UnavailableError(absl::StrCat(
          "bastiond did not ", want ? "attach the Bastion programs to " : "detach them from ",
          ifname, " within ", absl::FormatDuration(timeout),
          " (is bastiond running with --netns_dir=", dir, " in this network namespace?)"));
    }
    absl::SleepFor(kPollInterval);  // polling another process's work: nothing to wait on
  }
}

absl::Status WriteAtomically(const std::string& dir, const std::string& file,
                             const std::string& text) {
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::InternalError(absl::StrCat("creating ", dir, ": ", std::strerror(errno)));
  }
  const std::string path = dir + "/" + file;
  const std::string tmp = absl::StrCat(dir, "/.", file, ".", getpid());
  {
    std::ofstream out(tmp);
    out << text;
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

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string ResultJson(const CniConfig& config) {
  nlohmann::json result = config.prev_result;
  result["cniVersion"] = config.cni_version;
  return result.dump() + "\n";
}

absl::StatusOr<std::string> Add(const CniEnv& env, const CniConfig& config) {
  absl::StatusOr<Attachment> a = FindAttachment(env, config, IsBridgePort);
  if (!a.ok()) return a.status();
  absl::Status s = WriteAtomically(config.containers_dir, a->file_name, LabelFileJson(*a));
  if (!s.ok()) return s;
  s = WaitAttached(a->host_veth, true, config.timeout, config.containers_dir);
  if (!s.ok()) return s;
  return ResultJson(config);
}

absl::Status Del(const CniEnv& env, const CniConfig& config) {
  const std::string path = config.containers_dir + "/" + env.container_id + ".json";
  std::string host_veth;
  if (absl::StatusOr<std::string> text = ReadFile(path); text.ok()) {
    if (absl::StatusOr<Attachment> a = ParseLabelFile(*text); a.ok()) host_veth = a->host_veth;
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError(absl::StrCat("removing ", path, ": ", std::strerror(errno)));
  }
  if (host_veth.empty()) return absl::OkStatus();
  absl::Status s = WaitAttached(host_veth, false, config.timeout, config.containers_dir);
  if (!s.ok()) {
    // The registration is gone; the bridge plugin's DEL deletes the veth (and its
    // filters) next, so DEL still succeeds.
    std::cerr << "bastion-cni: DEL " << env.container_id << ": " << s.message() << "\n";
  }
  return absl::OkStatus();
}

absl::Status Check(const CniEnv& env, const CniConfig& config) {
  absl::StatusOr<Attachment> want = FindAttachment(env, config, IsBridgePort);
  if (!want.ok()) return want.status();
  const std::string path = config.containers_dir + "/" + want->file_name;
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok())
    return absl::NotFoundError(absl::StrCat("container not registered: ", text.status().message()));
  absl::StatusOr<Attachment> have = ParseLabelFile(*text);
  if (!have.ok()) return absl::DataLossError(absl::StrCat(path, ": ", have.status().message()));
  if (LabelFileJson(*have) != LabelFileJson(*want)) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " says ", LabelFileJson(*have), " but prevResult gives ", LabelFileJson(*want)));
  }
  absl::StatusOr<bool> attached = ProgramsAttached(want->host_veth);
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
