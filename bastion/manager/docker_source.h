// DockerSource: containers from the Docker Engine API on a unix socket, as Docker or
// `podman system service` serve it (libcurl, CURLOPT_UNIX_SOCKET_PATH).
//
// List() asks GET /containers/json for running containers and GET /containers/{id}/json
// for each one's pid, network mode, IP, MAC and gateway; the host-side veth is found
// from inside the container's network namespace (`nsenter --net=/proc/PID/ns/net ip -o
// link show eth0` names the peer as eth0@ifN). Host-network containers are listed with
// no IP (they share the host's) and get no veth stack. A background thread follows
// GET /events (container events) and wakes WaitForChange; if the stream fails it is
// retried, and the manager's poll covers the gap.
//
// Example:
//   auto source = std::make_unique<DockerSource>("/run/podman/podman.sock");
//   absl::StatusOr<std::vector<ContainerInfo>> now = source->List();
#ifndef DCTK_BASTION_MANAGER_DOCKER_SOURCE_H_
#define DCTK_BASTION_MANAGER_DOCKER_SOURCE_H_

#include <atomic>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "bastion/manager/container_source.h"

namespace dctk::bastion {

// GET `path` on the API socket; the body, or an error naming the socket and path.
absl::StatusOr<std::string> DockerApiGet(const std::string& socket, const std::string& path);

class DockerSource : public ContainerSource {
 public:
  explicit DockerSource(std::string socket);
  ~DockerSource() override;
  std::string name() const override { return "docker:" + socket_; }
  absl::StatusOr<std::vector<ContainerInfo>> List() override;
  bool WaitForChange(absl::Duration timeout) override;

 private:
  void FollowEvents();

  const std::string socket_;
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  bool changed_ ABSL_GUARDED_BY(mu_) = false;
  std::thread events_;
};

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_MANAGER_DOCKER_SOURCE_H_
