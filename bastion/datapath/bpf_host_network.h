// BpfHostNetwork: HostNetworkDatapath on the kernel, through the libbpf skeleton of
// bastion/bpf/bastion_host_network.bpf.c (cgroup_skb egress and ingress programs).
//
// The programs share every map of a BpfDatapath (the container map, policy, conntrack,
// counters, events), so one policy governs veth and host-network containers alike.
// AttachCgroup() writes the cgroup's id to `bastion_cgroups` and then attaches both
// programs to the cgroup (BPF_PROG_ATTACH, multi: the attachment belongs to the cgroup,
// so it survives this process, as a tc filter does). Programs of an earlier instance
// found there (same program names) are replaced in place (BPF_F_REPLACE: no moment
// without one). DetachCgroup() and the destructor detach first, then unbind, unless
// LeaveAttachedOnDestroy() (a manager whose maps are pinned keeps enforcing after exit).
// DetachUnclaimed() walks `bastion_cgroups` for bindings nobody claimed, reopens their
// cgroups by id (open_by_handle_at) and detaches what is still there.
//
// Example:
//   auto hn = BpfHostNetwork::Create(*datapath);   // datapath must outlive it
//   absl::StatusOr<uint64_t> id = CgroupId("/sys/fs/cgroup/unified/ctr-42");
#ifndef DCTK_BASTION_DATAPATH_BPF_HOST_NETWORK_H_
#define DCTK_BASTION_DATAPATH_BPF_HOST_NETWORK_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bastion/datapath/bpf_datapath.h"
#include "bastion/datapath/cgroup.h"  // CgroupId, Cgroup2MountPoint
#include "bastion/datapath/host_network.h"

struct bastion_host_network;
struct bpf_program;

namespace dctk::bastion {

class BpfHostNetwork : public HostNetworkDatapath {
 public:
  static absl::StatusOr<std::unique_ptr<BpfHostNetwork>> Create(const BpfDatapath& datapath);
  ~BpfHostNetwork() override;
  BpfHostNetwork(const BpfHostNetwork&) = delete;
  BpfHostNetwork& operator=(const BpfHostNetwork&) = delete;

  absl::Status AttachCgroup(const std::string& cgroup_path, uint32_t container_id) override;
  absl::Status DetachCgroup(const std::string& cgroup_path) override;
  absl::Status DetachUnclaimed() override;

  // The destructor then leaves every attachment and binding in place.
  void LeaveAttachedOnDestroy() { leave_attached_ = true; }

  // The cgroup paths attached by this instance.
  std::vector<std::string> AttachedCgroups() const;
  // Which of this object's programs are attached to the cgroup (ingress, egress), and how
  // many programs of an earlier instance (same names); for tests and checks.
  struct CgroupPrograms {
    bool egress = false;
    bool ingress = false;
    int stale = 0;
  };
  absl::StatusOr<CgroupPrograms> Inspect(const std::string& cgroup_path) const;

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

  struct Hook {
    bpf_program* prog;
    int type;  // enum bpf_attach_type
    const char* what;
  };

  explicit BpfHostNetwork(std::unique_ptr<bastion_host_network, SkeletonDeleter> skel);
  std::array<Hook, 2> Hooks() const;
  // Detaches this object's programs, and any of an earlier instance, from `cgroup_fd`.
  absl::Status DetachFrom(int cgroup_fd, const std::string& what) const;

  std::unique_ptr<bastion_host_network, SkeletonDeleter> skel_;
  absl::flat_hash_map<std::string, uint64_t> attached_;  // cgroup path -> cgroup id
  bool leave_attached_ = false;
};

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_DATAPATH_BPF_HOST_NETWORK_H_
