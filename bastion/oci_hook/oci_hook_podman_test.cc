// bastion-oci-hook under podman (root, podman, runc): containers from a busybox image
// imported offline, on a podman network of the test's own, started with --hooks-dir
// naming the hook (createRuntime + poststop) and a bastiond that learns of containers
// only through the hook's registrations (--netns_dir, no Docker API).
//  * The very first thing a container's process does, a connection to a host port its
//    policy does not allow, is dropped (`DROP host_denied` from it in the monitor, the
//    test's listener on that port accepts nothing); its second action, a connection to
//    its dependency, gets the server's reply. A container started the same way without
//    the hook gets through to that listener (the start gap the hook closes).
//    Names come from podman (containers/storage), labels from bastion.label.* annotations;
//    poststop removes the registrations. A host-network container is registered by its
//    cgroup and its first connection to a non-dependency is dropped there.
//  * With no bastiond, a hooked container does not start, and podman reports the hook's
//    reason naming the container; no registration is left behind.
// Removes its containers, network, image, bastiond and files also when a check fails.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "bastion/datapath/testing/netns_lab.h"
#include "common/process/run_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dctk::bastion::oci_hook {
namespace {

using ::dctk::bastion::testing::StartChild;
using ::dctk::bastion::testing::ShellOutput;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPodman[] = "podman --runtime runc ";
constexpr char kUlimits[] = " --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 ";

std::string Absolute(const std::string& path) {
  char cwd[4096];
  return getcwd(cwd, sizeof(cwd)) ? absl::StrCat(cwd, "/", path) : path;
}

class OciHookPodmanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (podman, BPF)";
    if (!RunCommand("podman --version").ok()) GTEST_SKIP() << "podman is not installed";
    tag_ = absl::StrCat(getpid());
    const std::string tmp = ::testing::TempDir() + "/bho-" + tag_;
    containers_dir_ = tmp + "/containers";
    ctl_socket_ = "unix:/tmp/bho" + tag_ + ".sock";
    ASSERT_TRUE(RunCommand("mkdir -p " + containers_dir_ + " " + tmp + "/hooks " + tmp +
                      "/hooks-fast " + tmp + "/rootfs/bin")
                    .ok());
    tmp_ = tmp;
    // Two hooks directories: the normal wait, and a short one for the failure case.
    for (const auto& [dir, timeout_ms] : {std::pair{"hooks", 10000}, std::pair{"hooks-fast", 1000}}) {
      std::ofstream(absl::StrCat(tmp, "/", dir, "/bastion.json"))
          << R"({"version": "1.0.0", "hook": {"path": ")"
          << Absolute("bastion/oci_hook/bastion-oci-hook")
          << R"(", "args": ["bastion-oci-hook", "--containers_dir=)" << containers_dir_
          << R"(", "--timeout_ms=)" << timeout_ms
          << R"("], "timeout": 20}, "when": {"always": true}, "stages": ["createRuntime", "poststop"]})";
    }
    image_ = "localhost/bho-" + tag_;
    ASSERT_TRUE(RunCommand(absl::StrCat("cp /bin/busybox ", tmp, "/rootfs/bin/ && for t in sh nc sleep "
                                   "echo cat; do ln -sf busybox ", tmp, "/rootfs/bin/$t; done && tar -C ",
                                   tmp, "/rootfs -cf ", tmp, "/rootfs.tar . && podman import ", tmp,
                                   "/rootfs.tar ", image_))
                    .ok());
    made_image_ = true;
    network_ = "bho" + tag_;
    subnet_ = absl::StrCat("10.216.", getpid() % 250, ".");
    ASSERT_TRUE(RunCommand(absl::StrCat(kPodman, "network create --subnet ", subnet_, "0/24 ",
                                   network_))
                    .ok());
    made_network_ = true;
    policy_ = tmp + "/policy.yaml";
    std::ofstream(policy_) << "version: 1\nservices:\n"
                              "  - name: client\n    select: {labels: {role: client}}\n"
                              "    depends_on: [{service: server, ports: [tcp/8080]}]\n"
                              "  - name: server\n    select: {labels: {role: server}}\n";
  }

  void TearDown() override {
    monitor_.reset();
    for (const std::string& name : containers_) {
      RunCommand(absl::StrCat("podman rm -f -t 0 ", name)).IgnoreError();
    }
    bastiond_.reset();
    if (made_network_) RunCommand(absl::StrCat(kPodman, "network rm -f ", network_)).IgnoreError();
    if (made_image_) RunCommand("podman rmi -f " + image_).IgnoreError();
    if (!tmp_.empty()) RunCommand(absl::StrCat("rm -rf ", tmp_, " ", ctl_socket_.substr(5))).IgnoreError();
  }

  std::string Name(const std::string& role) { return absl::StrCat("bho-", role, "-", tag_); }

  // `podman run FLAGS` of the image on the test's network, up to the command; `hooks`
  // names the hooks directory ("" = none), `label` the role annotation.
  std::string Run(const std::string& role, const std::string& hooks, const std::string& label,
                  const std::string& flags = "", bool host_network = false) {
    containers_.push_back(Name(role));
    return absl::StrCat(kPodman, hooks.empty() ? "" : "--hooks-dir " + tmp_ + "/" + hooks + " ",
                        "run --name ", Name(role),
                        label.empty() ? "" : " --annotation bastion.label.role=" + label,
                        " --network ", host_network ? "host" : network_, kUlimits, flags, " ",
                        image_, " ");
  }

  std::unique_ptr<ChildProcess> StartBastiond() {
    return StartChild(absl::StrCat(
        "bastion/manager/bastiond --netns_dir=", containers_dir_,
        " --poll_interval=10m --pin_dir= --state_file= --cleanup_on_exit --listen=", ctl_socket_,
        " --policy=", policy_));
  }

  void WaitForLine(ChildProcess& child, const std::string& want) {
    for (;;) {
      absl::StatusOr<std::string> line = child.ReadLine(absl::Seconds(20));
      ASSERT_TRUE(line.ok()) << "waiting for '" << want << "': " << line.status();
      if (absl::StrContains(*line, want)) return;
    }
  }

  std::string Ctl(const std::string& command) {
    return ShellOutput(absl::StrCat("bastion/cli/bastionctl --server=", ctl_socket_, " ", command));
  }

  std::string Registrations() { return ShellOutput("ls -A " + containers_dir_); }

  std::string tag_, tmp_, containers_dir_, ctl_socket_, image_, network_, subnet_, policy_;
  bool made_image_ = false;
  bool made_network_ = false;
  std::vector<std::string> containers_;
  std::unique_ptr<ChildProcess> bastiond_, monitor_;
};

// A TCP listener of the test (the host) on the podman network's gateway address.
class HostListener {
 public:
  explicit HostListener(const std::string& ip)
      : fd_(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in a{.sin_family = AF_INET, .sin_port = 0, .sin_addr = {}};
    inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    socklen_t len = sizeof(a);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 && listen(fd_, 4) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      port_ = ntohs(a.sin_port);
    }
  }
  ~HostListener() { close(fd_); }
  int port() const { return port_; }
  // What the next connection (within `timeout`) sent, "connected" if nothing; "" if none.
  std::string Accept(absl::Duration timeout) {
    pollfd p{.fd = fd_, .events = POLLIN, .revents = 0};
    if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) <= 0) return "";
    const int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) return "";
    char buf[512];
    pollfd q{.fd = conn, .events = POLLIN, .revents = 0};
    const ssize_t n = poll(&q, 1, 5000) > 0 ? recv(conn, buf, sizeof(buf), 0) : 0;
    close(conn);
    return n > 0 ? std::string(buf, n) : "connected";
  }

 private:
  int fd_;
  int port_ = 0;
};

TEST_F(OciHookPodmanTest, FirstPacketsAreEnforcedFromProcessStart) {
  bastiond_ = StartBastiond();
  WaitForLine(*bastiond_, "bastiond: ready");
  monitor_ = StartChild(
      absl::StrCat("bastion/cli/bastionctl --server=", ctl_socket_, " monitor"));
  WaitForLine(*monitor_, "monitoring verdict events");

  const std::string server_ip = subnet_ + "10", gateway = subnet_ + "1";
  absl::StatusOr<std::string> started = RunCommand(
      Run("server", "hooks", "server", "-d --ip " + server_ip) + "nc -ll -p 8080 -e /bin/echo hello");
  ASSERT_TRUE(started.ok()) << started.status();
  // Registered under its podman name before it ran, so bastiond lists it now.
  EXPECT_THAT(Ctl("containers"), HasSubstr(Name("server")));
  EXPECT_THAT(Ctl("containers"), HasSubstr(server_ip));

  // The client's first action: a connection to a host port (no host access in its
  // policy); its second: its dependency's service.
  HostListener host(gateway);
  ASSERT_GT(host.port(), 0);
  const std::string first = ShellOutput(
      Run("first", "hooks", "client", "--rm") +
      absl::StrCat("sh -c 'echo boom | nc -w 1 ", gateway, " ", host.port(), "; nc -w 3 ",
                   server_ip, " 8080 </dev/null'"));
  EXPECT_THAT(first, HasSubstr("hello"));
  WaitForLine(*monitor_, absl::StrCat("DROP host_denied ", Name("first"), " -> "));
  EXPECT_EQ(host.Accept(absl::ZeroDuration()), "");
  WaitForLine(*bastiond_, "containers removed: " + Name("first"));  // poststop unregistered it

  // The same container without the hook: nobody enforces it at its start, its connection
  // to the host port gets through (busybox nc then waits for the host to close it).
  ASSERT_TRUE(RunCommand(Run("unhooked", "", "client", "-d") +
                    absl::StrCat("sh -c 'echo boom | nc -w 1 ", gateway, " ", host.port(), "'"))
                  .ok());
  EXPECT_EQ(host.Accept(absl::Seconds(20)), "boom\n");

  // A host-network container is registered by its cgroup: its first connection, to the
  // server (no dependency of its), is dropped by the programs on that cgroup.
  const std::string hostnet = ShellOutput(
      Run("hostnet", "hooks", "monitor", "--rm", /*host_network=*/true) +
      absl::StrCat("nc -w 2 ", server_ip, " 8080"));
  EXPECT_THAT(hostnet, Not(HasSubstr("hello")));
  WaitForLine(*monitor_, absl::StrCat("DROP no_dependency ", Name("hostnet"), " -> ",
                                      Name("server"), " tcp"));
  WaitForLine(*bastiond_, "containers removed: " + Name("hostnet"));

  // poststop: removing the server removes its registration, and bastiond lets it go.
  ASSERT_TRUE(RunCommand(absl::StrCat(kPodman, "--hooks-dir ", tmp_, "/hooks rm -f -t 0 ",
                                 Name("server")))
                  .ok());
  WaitForLine(*bastiond_, "containers removed: " + Name("server"));
  EXPECT_EQ(Registrations(), "");
}

TEST_F(OciHookPodmanTest, ContainerDoesNotStartWithoutBastiond) {
  const std::string out = ShellOutput(Run("orphan", "hooks-fast", "client", "--rm") +
                                      "sh -c 'echo the-$((1+1))-ran'");
  EXPECT_THAT(out, Not(HasSubstr("the-2-ran")));
  EXPECT_THAT(out, HasSubstr("bastion-oci-hook: container "));
  EXPECT_THAT(out, HasSubstr("(" + Name("orphan") + ", " + subnet_));
  EXPECT_THAT(out, HasSubstr("not started: bastiond did not attach the Bastion programs to "));
  EXPECT_THAT(out, HasSubstr("--netns_dir=" + containers_dir_));
  EXPECT_EQ(Registrations(), "");
  EXPECT_THAT(ShellOutput("podman ps -a --format '{{.Names}} {{.Status}}'"),
              Not(HasSubstr(Name("orphan") + " Up")));
}

}  // namespace
}  // namespace dctk::bastion::oci_hook
