// BpfHostNetwork: HostNetworkDatapath on the kernel, through the libbpf skeleton of
// bastion/bpf/bastion_host_network.bpf.c (cgroup_skb egress and ingress programs).
//
// The programs share every map of a BpfDatapath (the container map, policy, conntrack,
// counters, events), so one policy governs veth and host-network containers alike.
// AttachCgroup() writes the cgroup's id to `bastion_cgroups` and then links both
// programs to the cgroup (bpf_link: they go away with this object); DetachCgroup() and
// the destructor unlink first, then unbind.
//
// Example:
//   auto hn = BpfHostNetwork::Create(*datapath);   // datapath must outlive it
//   absl::StatusOr<uint64_t> id = CgroupId("/sys/fs/cgroup/unified/ctr-42");
#ifndef DCTK_BASTION_DATAPATH_BPF_HOST_NETWORK_H_
#define DCTK_BASTION_DATAPATH_BPF_HOST_NETWORK_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "bastion/datapath/bpf_datapath.h"
#include "bastion/datapath/host_network.h"

struct bastion_host_network;
struct bpf_link;

namespace dctk::bastion {

// The cgroup v2 id of a cgroup directory (what bpf_skb_cgroup_id() returns).
absl::StatusOr<uint64_t> CgroupId(const std::string& cgroup_path);
// Where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or .../unified in hybrid mode).
absl::StatusOr<std::string> Cgroup2MountPoint();

class BpfHostNetwork : public HostNetworkDatapath {
 public:
  static absl::StatusOr<std::unique_ptr<BpfHostNetwork>> Create(const BpfDatapath& datapath);
  ~BpfHostNetwork() override;
  BpfHostNetwork(const BpfHostNetwork&) = delete;
  BpfHostNetwork& operator=(const BpfHostNetwork&) = delete;

  absl::Status AttachCgroup(const std::string& cgroup_path, uint32_t container_id) override;
  absl::Status DetachCgroup(const std::string& cgroup_path) override;

  // The identity half alone: packets from sockets in cgroup `cgroup_id` (or below) speak
  // for `container_id` wherever a Bastion program looks, without programs on the cgroup.
  absl::Status BindCgroup(uint64_t cgroup_id, uint32_t container_id);
  absl::Status UnbindCgroup(uint64_t cgroup_id);

  // Program fds, for BPF_PROG_TEST_RUN in tests.
  int from_host_network_fd() const;
  int to_host_network_fd() const;

 private:
  struct SkeletonDeleter {
    void operator()(bastion_host_network* skel) const;
  };
  struct LinkDeleter {
    void operator()(bpf_link* link) const;
  };
  struct Attachment {
    uint64_t cgroup_id = 0;
    std::unique_ptr<bpf_link, LinkDeleter> egress;
    std::unique_ptr<bpf_link, LinkDeleter> ingress;
  };

  explicit BpfHostNetwork(std::unique_ptr<bastion_host_network, SkeletonDeleter> skel);

  std::unique_ptr<bastion_host_network, SkeletonDeleter> skel_;
  absl::flat_hash_map<std::string, Attachment> attached_;  // by cgroup path
};

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_DATAPATH_BPF_HOST_NETWORK_H_
