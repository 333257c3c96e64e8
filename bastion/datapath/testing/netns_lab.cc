#include "bastion/datapath/testing/netns_lab.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/process/run_command.h"

namespace dctk::bastion::testing {

namespace {
// Tests run with a minimal PATH; ip, sysctl and tcpdump live in the sbin directories.
constexpr char kPath[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin ";
}  // namespace

std::string ShellOutput(const std::string& command) {
  absl::StatusOr<std::string> out = RunCommand(command);
  return out.ok() ? *out : std::string(out.status().message());
}

absl::StatusOr<PortServer> StartPortServer(const std::string& command, absl::Duration timeout) {
  PortServer server{.child = StartChild(command)};
  absl::StatusOr<std::string> line = server.child->ReadLine(timeout);
  if (!line.ok()) return line.status();
  uint32_t port = 0;
  if (!absl::StartsWith(*line, "port ") || !absl::SimpleAtoi(line->substr(5), &port) || port == 0 ||
      port > 65535) {
    return absl::InternalError(
        absl::StrCat("`", command, "`: first line is not \"port N\": ", *line));
  }
  server.port = static_cast<uint16_t>(port);
  return server;
}

absl::StatusOr<std::unique_ptr<NetnsLab>> NetnsLab::Create(const std::string& prefix,
                                                           const std::vector<std::string>& names) {
  std::unique_ptr<NetnsLab> lab(new NetnsLab());
  const std::string tag = absl::StrCat("bst", getpid());
  lab->host_netns_ = tag + "h";
  lab->gateway_ip_ = 0;
  auto run = [](const std::string& cmd) { return RunCommand(cmd).status(); };
  const std::string h = lab->host_netns_;
  absl::Status s = run("ip netns add " + h);
  if (!s.ok()) return s;
  lab->made_.push_back(h);
  const std::string in_h = "ip -n " + h + " ";
  for (const std::string& cmd :
       {in_h + "link add br0 type bridge", in_h + "addr add " + prefix + ".1/24 dev br0",
        in_h + "link set br0 up", in_h + "link set lo up",
        "ip netns exec " + h + " sysctl -qw net.ipv6.conf.all.disable_ipv6=1"}) {
    if (s = run(cmd); !s.ok()) return s;
  }
  unsigned a, b, c;
  if (sscanf(prefix.c_str(), "%u.%u.%u", &a, &b, &c) != 3) {
    return absl::InvalidArgumentError("lab prefix '" + prefix + "' is not a.b.c");
  }
  lab->gateway_ip_ = Ipv4(a, b, c, 1);
  uint8_t n = 2;
  for (const std::string& name : names) {
    Container ct;
    ct.name = name;
    ct.netns = tag + name;
    ct.ip = Ipv4(a, b, c, n);
    ct.mac.bytes = {0x02, 0, 0, 0, 0, n};
    ct.host_veth = "v" + name;
    if (s = run("ip netns add " + ct.netns); !s.ok()) return s;
    lab->made_.push_back(ct.netns);
    const std::string in_c = "ip -n " + ct.netns + " ";
    for (const std::string& cmd :
         {in_h + "link add " + ct.host_veth + " type veth peer name eth0 netns " + ct.netns,
          in_c + "link set eth0 address " + ct.mac.ToString(),
          "ip netns exec " + ct.netns + " sysctl -qw net.ipv6.conf.all.disable_ipv6=1",
          in_c + "addr add " + Ipv4ToString(ct.ip) + "/24 dev eth0",
          in_c + "link set eth0 up", in_c + "link set lo up",
          in_c + "route add default via " + prefix + ".1",
          in_h + "link set " + ct.host_veth + " master br0",
          in_h + "link set " + ct.host_veth + " up"}) {
      if (s = run(cmd); !s.ok()) return s;
    }
    absl::StatusOr<std::string> index =
        RunCommand("ip netns exec " + h + " cat /sys/class/net/" + ct.host_veth + "/ifindex");
    if (!index.ok()) return index.status();
    ct.host_ifindex = std::stoi(*index);
    lab->containers_.emplace(name, ct);
    ++n;
  }
  return lab;
}

NetnsLab::~NetnsLab() {
  LeaveHost().IgnoreError();
  for (auto it = made_.rbegin(); it != made_.rend(); ++it) {
    RunCommand("ip netns del " + *it).IgnoreError();
  }
}

absl::Status NetnsLab::EnterHost() {
  if (saved_netns_fd_ < 0) saved_netns_fd_ = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  int fd = open(("/run/netns/" + host_netns_).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, "opening netns " + host_netns_);
  int rc = setns(fd, CLONE_NEWNET);
  int err = errno;
  close(fd);
  if (rc != 0) return absl::ErrnoToStatus(err, "entering netns " + host_netns_);
  return absl::OkStatus();
}

absl::StatusOr<int> NetnsLab::SocketIn(const std::string& name, int domain, int type) const {
  const std::string& netns = container(name).netns;
  int back = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (back < 0) return absl::ErrnoToStatus(errno, "opening this thread's netns");
  int fd = open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    close(back);
    return absl::ErrnoToStatus(err, "opening netns " + netns);
  }
  int rc = setns(fd, CLONE_NEWNET);
  int err = errno;
  close(fd);
  if (rc != 0) {
    close(back);
    return absl::ErrnoToStatus(err, "entering netns " + netns);
  }
  int sock = socket(domain, type | SOCK_CLOEXEC, 0);
  err = errno;
  rc = setns(back, CLONE_NEWNET);
  close(back);
  if (rc != 0) {
    // The thread is stranded in the container's namespace: nothing after this is sound.
    std::perror("bastion netns lab: returning from a container namespace");
    std::abort();
  }
  if (sock < 0) return absl::ErrnoToStatus(err, "socket in netns " + netns);
  return sock;
}

absl::Status NetnsLab::LeaveHost() {
  if (saved_netns_fd_ < 0) return absl::OkStatus();
  int rc = setns(saved_netns_fd_, CLONE_NEWNET);
  int err = errno;
  close(saved_netns_fd_);
  saved_netns_fd_ = -1;
  if (rc != 0) return absl::ErrnoToStatus(err, "returning to the original netns");
  return absl::OkStatus();
}

std::unique_ptr<ChildProcess> StartChild(const std::string& command) {
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Start(
      {"/bin/sh", "-c", absl::StrCat("export ", kPath, "; exec ", command)},
      {.out = ChildOutput::Pipe(), .err = ChildOutput::Pipe(), .own_process_group = true});
  if (!child.ok()) {  // /bin/sh did not start: the machine, not the test, is broken
    fprintf(stderr, "%s: %s\n", command.c_str(), child.status().ToString().c_str());
    abort();
  }
  return *std::move(child);
}

}  // namespace dctk::bastion::testing
