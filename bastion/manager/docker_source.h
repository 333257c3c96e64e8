// DockerSource: containers from the Docker Engine API on a unix socket, as Docker or
// `podman system service` serve it (libcurl, CURLOPT_UNIX_SOCKET_PATH).
//
// List() asks GET /containers/json for the running containers (filtered server-side by
// `label_filter`, so a run manages only its own) and GET /containers/{id}/json for a
// container's pid, network mode, IP, MAC and gateway; the host-side veth is found from
// inside the container's network namespace (`nsenter --net=/proc/PID/ns/net ip -o link
// show eth0` names the peer as eth0@ifN), which works for any bridge network (netavark or
// CNI). Host-network containers (NetworkMode "host") are listed with network_mode "host"
// and no IP (they share the host's); their cgroup v2 directory, read from
// /proc/PID/cgroup when they are inspected, is what HostNetworkCgroup() returns.
//
// Events drive discovery: a background thread follows GET /events (container events,
// same label filter); create/start/die/stop/remove/... wake WaitForChange and forget
// that container's cached inspection. While the stream is connected, a round inspects
// only containers it has not seen (cost: one list call plus the new containers); while
// it is not (podman restarting, an old API), every round inspects everything, so the
// poll alone stays correct.
//
// Example:
//   auto source = std::make_unique<DockerSource>(DockerSource::Options{
//       .socket = "/run/podman/podman.sock", .label_filter = {"dctk=1a2b"}});
//   absl::StatusOr<std::vector<ContainerInfo>> now = source->List();
#ifndef DCTK_BASTION_MANAGER_DOCKER_SOURCE_H_
#define DCTK_BASTION_MANAGER_DOCKER_SOURCE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "bastion/manager/container_source.h"

namespace dctk::bastion {

// GET `path` on the API socket; the body, or an error naming the socket and path.
absl::StatusOr<std::string> DockerApiGet(const std::string& socket, const std::string& path);

// The Docker API `filters` query value (URL-encoded JSON) for these labels ("KEY=VALUE"
// or "KEY") plus, if not empty, an event type.
std::string DockerFilters(const std::vector<std::string>& labels, const std::string& type);

class DockerSource : public ContainerSource {
 public:
  struct Options {
    std::string socket;
    // Only containers carrying all of these labels ("KEY=VALUE" or "KEY").
    std::vector<std::string> label_filter;
  };

  explicit DockerSource(Options options);
  ~DockerSource() override;
  std::string name() const override { return "docker:" + options_.socket; }
  absl::StatusOr<std::vector<ContainerInfo>> List() override;
  bool WaitForChange(absl::Duration timeout) override;
  absl::StatusOr<std::string> HostNetworkCgroup(const std::string& runtime_id) const override;

  // Runtime events seen since start, and inspections done (for tests and the log).
  uint64_t events_seen() const;
  uint64_t inspections() const;

 private:
  void FollowEvents();
  void OnEventBytes(const char* data, size_t n);
  // The container from its inspection; an error if it is gone or not networked yet.
  absl::StatusOr<ContainerInfo> Inspect(const std::string& id);

  const Options options_;
  std::atomic<bool> stop_{false};
  mutable absl::Mutex mu_;
  bool changed_ ABSL_GUARDED_BY(mu_) = false;
  bool connected_ ABSL_GUARDED_BY(mu_) = false;  // event stream up: the cache is trusted
  uint64_t events_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t inspections_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, ContainerInfo> cache_ ABSL_GUARDED_BY(mu_);  // id -> inspected
  // Host-network containers' cgroup directories, by id, as last inspected.
  std::map<std::string, std::string> cgroups_ ABSL_GUARDED_BY(mu_);
  std::string partial_;  // event stream bytes after the last newline (events thread)
  std::thread events_thread_;
};

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_MANAGER_DOCKER_SOURCE_H_
