// bastiond: the Bastion manager daemon.
//
// Discovers containers (dctk namespace containers from --netns_dir, podman/Docker
// containers from --docker_socket), installs the eBPF stack on their host veths (and
// the cgroup programs on host-network containers' cgroups), enforces --policy, and serves the gRPC API (bastionctl) and Prometheus metrics.
// With --pin_dir and --state_file (the defaults), maps are pinned on bpffs and the
// applied state saved, so enforcement outlives bastiond (kill -9 changes nothing on the
// datapath) and a restarted bastiond adopts and reconciles it.
//
//   bastiond --policy=bastion/manager/testdata/demo_policy.yaml
//            --docker_socket=/run/podman/podman.sock --label_filter=dctk=1a2b
//            --metrics=127.0.0.1:9470
//
// It prints "bastiond: serving on <address>" once the API is up and
// "bastiond: ready" after the first discovery round, for scripts to wait on.
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <atomic>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <iostream>
#include <memory>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bastion/datapath/bpf_datapath.h"
#include "bastion/datapath/bpf_host_network.h"
#include "bastion/manager/docker_source.h"
#include "bastion/manager/label_filter.h"
#include "bastion/manager/manager.h"
#include "bastion/manager/netns_containers.h"
#include "common/process/run_command.h"
#include "bastion/manager/service.h"
#include "common/metrics/metrics_server.h"
#include "grpcpp/grpcpp.h"

ABSL_FLAG(std::string, listen, "unix:/run/bastion/bastiond.sock",
          "gRPC address (unix:PATH or HOST:PORT; port 0 picks one)");
ABSL_FLAG(std::string, policy, "", "policy file to enforce at start (else the saved one)");
ABSL_FLAG(std::string, netns_dir, dctk::bastion::kDefaultNamespaceContainerDir,
          "directory of dctk namespace-container label files; empty = off");
ABSL_FLAG(std::string, docker_socket, "",
          "Docker Engine API unix socket (podman system service); empty = off");
ABSL_FLAG(std::vector<std::string>, label_filter, {},
          "manage only containers with all of these labels (KEY=VALUE or KEY, comma-separated), "
          "e.g. dctk=1a2b so a run manages only its own; applies to every source");
ABSL_FLAG(std::string, pin_dir, "/sys/fs/bpf/bastion", "bpffs directory for the maps; empty = no pinning");
ABSL_FLAG(std::string, state_file, "/run/bastion/state.json",
          "saved applied state, for restarts over pinned maps; empty = none");
ABSL_FLAG(std::string, metrics, "", "Prometheus /metrics address (HOST:PORT); empty = off");
ABSL_FLAG(absl::Duration, poll_interval, absl::Milliseconds(500),
          "discovery poll interval, also the shutdown latency (runtime events and inotify "
          "wake a round sooner)");
ABSL_FLAG(std::string, netns, "",
          "run in this named network namespace (/run/netns/NAME), the one holding the "
          "containers' bridge and host veths; unlike `ip netns exec` it keeps the host's "
          "mounts, so pins on /sys/fs/bpf outlive bastiond");
ABSL_FLAG(bool, static_fdb, true,
          "add a static bridge FDB entry for each container's MAC on its veth (if the veth "
          "is a bridge port), so frames to it are never flooded to other ports");
ABSL_FLAG(bool, cleanup_on_exit, false,
          "on SIGTERM/SIGINT detach every program, unpin the maps and delete the state file "
          "(default: leave enforcement in place)");

namespace dctk::bastion {
namespace {

constexpr long kBpfFsMagic = 0xcafe4a11;

absl::Status EnsureDirectory(const std::string& path) {
  std::string prefix;
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      prefix = path.substr(0, i);
      if (mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
        return absl::ErrnoToStatus(errno, "creating " + prefix);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status EnsureBpfFs(const std::string& pin_dir) {
  struct statfs fs;
  if (statfs("/sys/fs/bpf", &fs) == 0 && fs.f_type == kBpfFsMagic) return EnsureDirectory(pin_dir);
  if (mount("bpf", "/sys/fs/bpf", "bpf", 0, nullptr) != 0) {
    return absl::ErrnoToStatus(errno, "mounting bpffs on /sys/fs/bpf");
  }
  return EnsureDirectory(pin_dir);
}

std::string Dir(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos || slash == 0 ? "/" : path.substr(0, slash);
}

void Log(const std::string& line) {
  std::cout << "bastiond: " << line << std::endl;
}

// `bridge fdb replace MAC dev VETH master static` if the veth is a bridge port.
absl::Status AddStaticFdb(const ContainerInfo& c) {
  char name[IF_NAMESIZE] = {};
  if (!if_indextoname(c.host_ifindex, name)) {
    return absl::NotFoundError(absl::StrCat("static fdb for ", c.name, ": no ifindex ",
                                            c.host_ifindex));
  }
  const std::string path = "PATH=\"$PATH:/usr/sbin:/sbin\" ";
  absl::StatusOr<std::string> link =
      RunCommand(absl::StrCat(path, "ip -o link show dev ", name));
  if (!link.ok()) return link.status();
  if (link->find(" master ") == std::string::npos) return absl::OkStatus();  // not bridged
  absl::StatusOr<std::string> out = RunCommand(absl::StrCat(
      path, "bridge fdb replace ", c.mac.ToString(), " dev ", name, " master static"));
  if (!out.ok()) {
    return absl::Status(out.status().code(), absl::StrCat("static fdb for ", c.name, " on ",
                                                          name, ": ", out.status().message()));
  }
  return absl::OkStatus();
}

int Run() {
  // Signals are taken by one thread with sigwait; block them everywhere else.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (const std::string netns = absl::GetFlag(FLAGS_netns); !netns.empty()) {
    // Before any thread starts: threads inherit the namespace of the one creating them.
    const int fd = open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
      Log(absl::StrCat("error: entering network namespace ", netns, ": ", strerror(errno)));
      return 1;
    }
    close(fd);
  }
  const std::string pin_dir = absl::GetFlag(FLAGS_pin_dir);
  const std::string state_file = absl::GetFlag(FLAGS_state_file);
  if (!pin_dir.empty()) {
    if (absl::Status s = EnsureBpfFs(pin_dir); !s.ok()) {
      Log(absl::StrCat("error: ", s.message()));
      return 1;
    }
  }
  if (!state_file.empty()) EnsureDirectory(Dir(state_file)).IgnoreError();
  absl::StatusOr<std::unique_ptr<BpfDatapath>> datapath = BpfDatapath::Create({.pin_dir = pin_dir});
  if (!datapath.ok()) {
    Log(absl::StrCat("error: ", datapath.status().message()));
    return 1;
  }

  // Host-network containers are enforced through their cgroups (cgroup v2 needed).
  std::unique_ptr<BpfHostNetwork> host_network;
  if (absl::StatusOr<std::string> cgroup2 = Cgroup2MountPoint(); !cgroup2.ok()) {
    Log(absl::StrCat("host-network containers will not be enforced: ", cgroup2.status().message()));
  } else if (absl::StatusOr<std::unique_ptr<BpfHostNetwork>> hn = BpfHostNetwork::Create(**datapath);
             !hn.ok()) {
    Log(absl::StrCat("error: ", hn.status().message()));
    return 1;
  } else {
    host_network = std::move(*hn);
  }

  auto registry = std::make_shared<metrics::Registry>();
  metrics::Scope scope(*registry, "bastiond");
  ManagerMetrics manager_metrics = ManagerMetrics::Create(scope);
  const bool cleanup = absl::GetFlag(FLAGS_cleanup_on_exit);
  auto manager = std::make_unique<Manager>(
      datapath->get(),
      Manager::Options{.state_file = state_file,
                       .detach_on_exit = cleanup,
                       .on_attach = absl::GetFlag(FLAGS_static_fdb)
                                        ? std::function<absl::Status(const ContainerInfo&)>(
                                              AddStaticFdb)
                                        : nullptr,
                       .host_network = host_network.get()},
      &manager_metrics);
  absl::StatusOr<LabelFilter> filter = LabelFilter::Parse(absl::GetFlag(FLAGS_label_filter));
  if (!filter.ok()) {
    Log(absl::StrCat("error: --label_filter: ", filter.status().message()));
    return 1;
  }
  if (const std::string dir = absl::GetFlag(FLAGS_netns_dir); !dir.empty()) {
    EnsureDirectory(dir).IgnoreError();
    manager->AddSource(std::make_unique<LabelFilterSource>(
        std::make_unique<NamespaceContainerSource>(dir), *filter));
  }
  if (const std::string socket = absl::GetFlag(FLAGS_docker_socket); !socket.empty()) {
    // Filtered by the runtime, and again here (same filter) for any API that ignores it.
    manager->AddSource(std::make_unique<LabelFilterSource>(
        std::make_unique<DockerSource>(
            DockerSource::Options{.socket = socket, .label_filter = filter->terms()}),
        *filter));
  }
  absl::StatusOr<std::string> started = manager->Start();
  if (!started.ok()) {
    Log(absl::StrCat("error: ", started.status().message()));
    return 1;
  }
  Log(*started);
  if (const std::string file = absl::GetFlag(FLAGS_policy); !file.empty()) {
    absl::StatusOr<Policy> policy = LoadPolicyFile(file);
    if (!policy.ok()) {
      Log(absl::StrCat("error: ", policy.status().message()));
      return 1;
    }
    std::ifstream in(file);
    std::stringstream text;
    text << in.rdbuf();
    if (absl::Status s = manager->SetPolicy(*policy, text.str()); !s.ok()) {
      Log(absl::StrCat("error: ", s.message()));
      return 1;
    }
    Log(absl::StrCat("policy ", file, ": ", policy->services.size(), " services"));
  }

  std::unique_ptr<metrics::MetricsServer> metrics_server;
  if (const std::string address = absl::GetFlag(FLAGS_metrics); !address.empty()) {
    absl::StatusOr<std::unique_ptr<metrics::MetricsServer>> m =
        metrics::MetricsServer::Start(registry, address);
    if (!m.ok()) {
      Log(absl::StrCat("error: ", m.status().message()));
      return 1;
    }
    metrics_server = std::move(*m);
    Log(absl::StrCat("metrics on port ", metrics_server->port()));
  }
  // Per-verdict packet counts, refreshed with every discovery round.
  std::vector<std::pair<uint32_t, prometheus::Gauge*>> verdict_gauges;
  for (uint32_t code = 0; code < BASTION_COUNTER_MAX; ++code) {
    absl::string_view name = VerdictName(code);
    if (name == "unknown") continue;
    metrics::Scope s(*registry, "bastiond", {{"verdict", std::string(name)}});
    verdict_gauges.push_back({code, &s.AddGauge("verdict_packets", "Packets by datapath verdict")});
  }

  BastionService service(manager.get(), datapath->get());
  std::string listen = absl::GetFlag(FLAGS_listen);
  if (listen.rfind("unix:", 0) == 0) {
    EnsureDirectory(Dir(listen.substr(5))).IgnoreError();
    unlink(listen.substr(5).c_str());
  }
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    Log("error: cannot serve gRPC on " + listen);
    return 1;
  }
  if (listen.rfind("unix:", 0) != 0) listen = absl::StrCat(listen.substr(0, listen.rfind(':')), ":", port);
  Log("serving on " + listen);

  std::atomic<bool> stop{false};
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    stop = true;
  });
  std::thread events([&] {
    while (!stop) manager->PumpEvents(absl::Milliseconds(200));
  });

  auto report = [&](const ReconcileReport& r) {
    if (!r.added.empty()) Log("containers added: " + absl::StrJoin(r.added, " "));
    if (!r.removed.empty()) Log("containers removed: " + absl::StrJoin(r.removed, " "));
    for (const std::string& e : r.errors) Log("discovery error: " + e);
    if (absl::StatusOr<VerdictCounters> c = (*datapath)->ReadCounters(); c.ok()) {
      for (auto& [code, gauge] : verdict_gauges) gauge->Set((*c)[code]);
    }
  };
  report(manager->Reconcile());
  Log("ready");
  const absl::Duration interval = absl::GetFlag(FLAGS_poll_interval);
  while (!stop) {
    report(manager->WaitAndReconcile(interval));
  }
  Log("stopping");
  signal_thread.join();
  events.join();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  manager.reset();
  if (cleanup) {
    (*datapath)->Unpin().IgnoreError();
    if (!state_file.empty()) unlink(state_file.c_str());
  } else {
    (*datapath)->LeaveAttachedOnDestroy();
    if (host_network) host_network->LeaveAttachedOnDestroy();
  }
  return 0;
}

}  // namespace
}  // namespace dctk::bastion

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return dctk::bastion::Run();
}
