#include "bastion/datapath/testing/netns_lab.h"

#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace dctk::bastion::testing {

namespace {
// Tests run with a minimal PATH; ip, sysctl and tcpdump live in the sbin directories.
constexpr char kPath[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin ";
}  // namespace

absl::StatusOr<std::string> Shell(const std::string& command) {
  FILE* f = popen((std::string("export ") + kPath + "; " + command + " 2>&1").c_str(), "r");
  if (!f) return absl::ErrnoToStatus(errno, absl::StrCat("popen: ", command));
  std::string output;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) output.append(buf, n);
  int status = pclose(f);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat("`", command, "` exited with status ", status,
                                            ": ", output));
  }
  return output;
}

std::string ShellOutput(const std::string& command) {
  absl::StatusOr<std::string> out = Shell(command);
  return out.ok() ? *out : std::string(out.status().message());
}

absl::StatusOr<PortServer> StartPortServer(const std::string& command, absl::Duration timeout) {
  PortServer server{.child = std::make_unique<Child>(command)};
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
  auto run = [](const std::string& cmd) { return Shell(cmd).status(); };
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
        Shell("ip netns exec " + h + " cat /sys/class/net/" + ct.host_veth + "/ifindex");
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
    Shell("ip netns del " + *it).IgnoreError();
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

Child::Child(const std::string& command) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) return;
  pid_ = fork();
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(out[1], 1);
    dup2(err[1], 2);
    setpgid(0, 0);  // own group, so the kill reaches `ip netns exec`'s child too
    execl("/bin/sh", "sh", "-c", (std::string("export ") + kPath + "; exec " + command).c_str(),
          nullptr);
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  out_fd_ = out[0];
  err_fd_ = err[0];
}

Child::~Child() {
  if (pid_ > 0) {
    kill(-pid_, SIGKILL);
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (out_fd_ >= 0) close(out_fd_);
  if (err_fd_ >= 0) close(err_fd_);
}

absl::StatusOr<std::string> Child::Read(int fd, std::string& buf, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    size_t nl = buf.find('\n');
    if (nl != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      return line;
    }
    int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (ms <= 0) return absl::DeadlineExceededError("no line from child; have: " + buf);
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    if (poll(&p, 1, ms) <= 0) continue;
    char chunk[512];
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n <= 0) return absl::OutOfRangeError("child output ended; have: " + buf);
    buf.append(chunk, n);
  }
}

absl::StatusOr<int> Child::Wait(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    // Reaping has no fd to wait on; a short poll keeps the bounded wait cheap.
    poll(nullptr, 0, 10);
  }
  return absl::DeadlineExceededError("child did not exit in time");
}

}  // namespace dctk::bastion::testing
