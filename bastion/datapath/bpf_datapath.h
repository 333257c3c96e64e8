// BpfDatapath: the Datapath on the real kernel, through the libbpf skeleton of
// bastion/bpf/bastion_lxc.bpf.c.
//
// Create() opens the skeleton, sizes the maps, sets read-only config, optionally pins
// the maps under a bpffs directory (reusing maps already pinned there, so state survives
// a restart of the manager), and loads; every failure path destroys what was made.
// Attach() adds a clsact qdisc (if missing) and the two tc filters on a host-side veth;
// Detach() and the destructor remove exactly what this object attached.
//
// Example:
//   absl::StatusOr<std::unique_ptr<BpfDatapath>> dp =
//       BpfDatapath::Create({.pin_dir = "/sys/fs/bpf/bastion"});
//   if (!dp.ok()) return dp.status();
//   RETURN_IF_ERROR((*dp)->Attach(if_nametoindex("veth1234")));
#ifndef DCTK_BASTION_DATAPATH_BPF_DATAPATH_H_
#define DCTK_BASTION_DATAPATH_BPF_DATAPATH_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "bastion/datapath/datapath.h"
#include "bastion/datapath/port_ranges.h"

struct bastion_lxc;
struct bpf_map;
struct ring_buffer;

namespace dctk::bastion {

class BpfDatapath : public Datapath {
 public:
  struct Options {
    // bpffs directory for the maps; empty = no pinning. Must exist and be on bpffs.
    std::string pin_dir;
    // Replies are admitted while their connection saw a packet within this time.
    absl::Duration conntrack_lifetime = absl::Minutes(10);
    uint32_t max_endpoints = 16384;
    uint32_t max_bindings = 4096;
    // The policy maps hold both generations: twice the entries of one policy.
    uint32_t max_dependencies = 131072;
    uint32_t max_policies = 131072;        // exact-port entries
    uint32_t max_policy_ranges = 131072;   // edges {src, dst, proto} with port ranges
    uint32_t max_connections = 65536;
    uint32_t max_groups = 256;  // per generation
  };

  // The MomPacket type id the programs expect in sequenced groups' datagrams
  // (transport::TypeIdOf("dctk.mom.MomPacket")).
  static uint32_t MomPacketTypeId();
  // The last sequence number stamped for the group at `ip` (0: none yet).
  absl::StatusOr<uint64_t> GroupSequence(uint32_t ip);

  static absl::StatusOr<std::unique_ptr<BpfDatapath>> Create(const Options& options);
  ~BpfDatapath() override;
  BpfDatapath(const BpfDatapath&) = delete;
  BpfDatapath& operator=(const BpfDatapath&) = delete;

  absl::Status UpsertEndpoint(uint32_t ip, const ContainerEndpoint& endpoint) override;
  absl::Status RemoveEndpoint(uint32_t ip) override;
  absl::Status BindInterface(int host_ifindex, const Binding& binding) override;
  absl::Status UnbindInterface(int host_ifindex) override;
  absl::Status UpsertHost(uint32_t ip, uint32_t host_id) override;
  absl::Status RemoveHost(uint32_t ip) override;
  absl::Status UpsertGroup(uint32_t ip, const Group& group) override;
  absl::Status RemoveGroup(uint32_t ip) override;
  absl::Status AddDependency(uint32_t src_id, uint32_t dst_id, uint32_t generation) override;
  absl::Status RemoveDependency(uint32_t src_id, uint32_t dst_id) override;
  absl::Status UpsertPolicy(const PolicyRule& rule) override;
  absl::Status RemovePolicy(const PolicyRule& rule) override;
  absl::Status SetAuditMode(bool audit) override;
  uint32_t ActiveGeneration() const override { return config_.generation; }
  absl::Status ActivateGeneration(uint32_t generation) override;
  void SetWriteGeneration(uint32_t generation) override { write_generation_ = generation & 1; }
  absl::Status FlushConnections() override;
  absl::Status Attach(int host_ifindex) override;
  absl::Status Detach(int host_ifindex) override;
  absl::StatusOr<VerdictCounters> ReadCounters() override;
  absl::StatusOr<int> PollEvents(absl::Duration timeout,
                                 const std::function<void(const VerdictEvent&)>& fn) override;

  // Removes the pins under Options::pin_dir (the maps live on while referenced).
  absl::Status Unpin();

  // Leaves the programs attached when this object is destroyed (the tc filters keep
  // them and the maps alive), so enforcement outlives the manager; a later instance
  // over the same pinned maps re-attaches (replacing) and takes over.
  void LeaveAttachedOnDestroy() { attached_.clear(); }

  // Program fds, for BPF_PROG_TEST_RUN in tests and benchmarks.
  int from_container_fd() const;
  int to_container_fd() const;

  // The fd of the map called `name` (-1 if none), so other Bastion programs (the
  // host-network cgroup programs, BpfHostNetwork) share these maps.
  int MapFd(absl::string_view name) const;
  absl::Duration conntrack_lifetime() const;

 private:
  struct SkeletonDeleter {
    void operator()(bastion_lxc* skel) const;
  };
  struct RingBufferDeleter {
    void operator()(ring_buffer* rb) const;
  };

  BpfDatapath(std::unique_ptr<bastion_lxc, SkeletonDeleter> skel, std::string pin_dir);
  absl::Status WritePolicyEntries(const PolicyRule& rule, bool remove);
  absl::Status WriteRangeEntries(const PolicyRule& rule, const std::vector<PortPrefix>& prefixes,
                                 const bastion_policy& value, bool remove,
                                 absl::string_view what);
  absl::Status DetachHook(int host_ifindex, bool destroy_qdisc);

  std::unique_ptr<bastion_lxc, SkeletonDeleter> skel_;
  std::string pin_dir_;
  std::unique_ptr<ring_buffer, RingBufferDeleter> events_;
  const std::function<void(const VerdictEvent&)>* event_fn_ = nullptr;
  // bastion_config as last written (read back at Create: pinned maps keep it).
  struct {
    uint32_t flags = 0;
    uint32_t generation = 0;
  } config_;
  uint8_t write_generation_ = 0;
  // Attached host ifindex -> whether this object created its clsact qdisc.
  absl::flat_hash_map<int, bool> attached_;
};

}  // namespace dctk::bastion

#endif  // DCTK_BASTION_DATAPATH_BPF_DATAPATH_H_
