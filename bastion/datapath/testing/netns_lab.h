// A throwaway lab for privileged Bastion tests: a "host" network namespace with a bridge,
// and containers as network namespaces on veths to it, all named after the test's pid;
// plus StartChild, a subprocess with line-wise stdout/stderr for tools run in those namespaces.
// The destructor deletes every namespace (and with them the bridge, veths and tc filters).
//
// Example:
//   absl::StatusOr<std::unique_ptr<NetnsLab>> lab = NetnsLab::Create("10.213.0", {"a", "b"});
//   (*lab)->EnterHost();                 // this thread now sees the bridge and host veths
//   int ifindex = (*lab)->container("a").host_ifindex;
//   std::unique_ptr<ChildProcess> server =
//       StartChild("ip netns exec " + (*lab)->container("b").netns + " python3 ...");
#ifndef DCTK_BASTION_DATAPATH_TESTING_NETNS_LAB_H_
#define DCTK_BASTION_DATAPATH_TESTING_NETNS_LAB_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bastion/datapath/datapath.h"
#include "common/process/child_process.h"

namespace dctk::bastion::testing {

// RunCommand's output (common/process), or its error (which carries the output) as text: what a
// client printed, whether or not it exited 0.
std::string ShellOutput(const std::string& command);

class NetnsLab {
 public:
  struct Container {
    std::string name;
    std::string netns;
    uint32_t ip = 0;  // prefix.N, N = 2, 3, ... in creation order
    MacAddress mac;   // 02:00:00:00:00:0N
    std::string host_veth;
    int host_ifindex = 0;  // in the host namespace
  };

  // `prefix` is the first three octets of a /24; the bridge (gateway) gets prefix.1.
  static absl::StatusOr<std::unique_ptr<NetnsLab>> Create(const std::string& prefix,
                                                          const std::vector<std::string>& names);
  ~NetnsLab();

  // Moves the calling thread into the host namespace, and back.
  absl::Status EnterHost();
  absl::Status LeaveHost();

  // A socket made in container `name`'s namespace (it stays there; the calling thread
  // returns to its own namespace). The caller closes it.
  absl::StatusOr<int> SocketIn(const std::string& name, int domain, int type) const;

  const Container& container(const std::string& name) const { return containers_.at(name); }
  const std::string& host_netns() const { return host_netns_; }
  uint32_t gateway_ip() const { return gateway_ip_; }
  std::string Exec(const std::string& netns) const { return "ip netns exec " + netns + " "; }

 private:
  NetnsLab() = default;
  std::string host_netns_;
  uint32_t gateway_ip_ = 0;
  std::map<std::string, Container> containers_;
  std::vector<std::string> made_;  // namespaces to delete
  int saved_netns_fd_ = -1;
};

// `sh -c command` (PATH set) as a child process in its own process group (so
// signals reach what `ip netns exec` starts), stdout and stderr piped and read
// line by line; the group is SIGKILLed and reaped on destruction and when the
// test dies.
std::unique_ptr<ChildProcess> StartChild(const std::string& command);

// A server started with `command` that announces its port as its first line ("port N").
struct PortServer {
  std::unique_ptr<ChildProcess> child;
  uint16_t port = 0;
};
// Starts it and reads the port; an error if the line does not come within `timeout`.
absl::StatusOr<PortServer> StartPortServer(const std::string& command, absl::Duration timeout);

}  // namespace dctk::bastion::testing

#endif  // DCTK_BASTION_DATAPATH_TESTING_NETNS_LAB_H_
