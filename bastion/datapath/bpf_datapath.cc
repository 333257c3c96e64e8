#include "bastion/datapath/bpf_datapath.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "bastion/bpf/bastion_lxc.skel.h"
#include "bastion/datapath/port_ranges.h"
#include "common/transport/transport.h"

namespace dctk::bastion {
namespace {

// Both programs sit at this tc handle/priority, so re-attaching replaces, not stacks.
constexpr uint32_t kTcHandle = 1;
constexpr uint32_t kTcPriority = 1;

absl::Status Errno(int err, absl::string_view what) {
  err = err < 0 ? -err : err;
  return absl::ErrnoToStatus(err, absl::StrCat("bastion datapath: ", what));
}

template <typename K, typename V>
absl::Status Update(bpf_map* map, const K& key, const V& value, absl::string_view what) {
  int err = bpf_map__update_elem(map, &key, sizeof(key), &value, sizeof(value), BPF_ANY);
  if (err) return Errno(err, absl::StrCat("writing ", what, " to map ", bpf_map__name(map)));
  return absl::OkStatus();
}

template <typename K>
absl::Status Delete(bpf_map* map, const K& key, absl::string_view what) {
  int err = bpf_map__delete_elem(map, &key, sizeof(key), 0);
  if (err == -ENOENT) return absl::NotFoundError(
      absl::StrCat("bastion datapath: ", what, " not in map ", bpf_map__name(map)));
  if (err) return Errno(err, absl::StrCat("deleting ", what, " from map ", bpf_map__name(map)));
  return absl::OkStatus();
}

void CopyMac(const MacAddress& mac, __u8* out) { std::memcpy(out, mac.bytes.data(), 6); }

int HandleEvent(void* ctx, void* data, size_t size) {
  if (size < sizeof(bastion_event)) return 0;
  const auto* e = static_cast<const bastion_event*>(data);
  VerdictEvent event;
  event.timestamp_ns = e->timestamp_ns;
  event.ifindex = static_cast<int>(e->ifindex);
  event.container_id = e->container_id;
  event.saddr = ntohl(e->saddr);
  event.daddr = ntohl(e->daddr);
  event.sport = ntohs(e->sport);
  event.dport = ntohs(e->dport);
  event.l3_proto = e->l3_proto;
  event.proto = e->proto;
  event.reason = e->reason;
  event.audit = e->flags & BASTION_EVENT_AUDIT;
  event.to_container = e->flags & BASTION_EVENT_TO_CONTAINER;
  event.host_network = e->flags & BASTION_EVENT_HOST_NETWORK;
  using Fn = std::function<void(const VerdictEvent&)>;
  const Fn* fn = *static_cast<const Fn* const*>(ctx);
  if (fn) (*fn)(event);
  return 0;
}

}  // namespace

void BpfDatapath::SkeletonDeleter::operator()(bastion_lxc* skel) const {
  bastion_lxc__destroy(skel);
}

void BpfDatapath::RingBufferDeleter::operator()(ring_buffer* rb) const { ring_buffer__free(rb); }

absl::StatusOr<std::unique_ptr<BpfDatapath>> BpfDatapath::Create(const Options& options) {
  std::unique_ptr<bastion_lxc, SkeletonDeleter> skel(bastion_lxc__open());
  if (!skel) return Errno(errno, "opening the bastion_lxc skeleton");

  skel->rodata->bastion_ct_lifetime_ns = absl::ToInt64Nanoseconds(options.conntrack_lifetime);
  skel->rodata->bastion_mom_type_id = MomPacketTypeId();
  const std::pair<bpf_map*, uint32_t> sizes[] = {
      {skel->maps.bastion_endpoints, options.max_endpoints},
      {skel->maps.bastion_bindings, options.max_bindings},
      {skel->maps.bastion_dependencies, options.max_dependencies},
      {skel->maps.bastion_policy, options.max_policies},
      {skel->maps.bastion_policy_ranges, options.max_policy_ranges},
      {skel->maps.bastion_conntrack, options.max_connections},
      {skel->maps.bastion_groups, 2 * options.max_groups},
      {skel->maps.bastion_group_seq, options.max_groups},
  };
  for (const auto& [map, size] : sizes) {
    if (int err = bpf_map__set_max_entries(map, size)) {
      return Errno(err, absl::StrCat("sizing map ", bpf_map__name(map), " to ", size));
    }
  }
  if (!options.pin_dir.empty()) {
    bpf_map* map;
    bpf_object__for_each_map(map, skel->obj) {
      // .rodata is frozen (read-only config): reopening its pin for reuse fails with
      // EPERM, and it is set anew at every load anyway.
      if (bpf_map__is_internal(map)) continue;
      std::string path = absl::StrCat(options.pin_dir, "/", bpf_map__name(map));
      if (int err = bpf_map__set_pin_path(map, path.c_str())) {
        return Errno(err, absl::StrCat("setting pin path ", path));
      }
    }
  }
  if (int err = bastion_lxc__load(skel.get())) {
    return Errno(err, absl::StrCat("loading the bastion_lxc programs",
                                   options.pin_dir.empty() ? "" : " (pinned maps under ",
                                   options.pin_dir, options.pin_dir.empty() ? "" : ")"));
  }
  std::unique_ptr<BpfDatapath> dp(new BpfDatapath(std::move(skel), options.pin_dir));
  // Reused pinned maps keep the audit flag and the active generation.
  __u32 zero = 0;
  bastion_config config{};
  if (int err = bpf_map__lookup_elem(dp->skel_->maps.bastion_config, &zero, sizeof(zero), &config,
                                     sizeof(config), 0)) {
    return Errno(err, "reading map bastion_config");
  }
  dp->config_.flags = config.flags;
  dp->config_.generation = config.generation & 1;
  dp->write_generation_ = static_cast<uint8_t>(dp->config_.generation);
  return dp;
}

BpfDatapath::BpfDatapath(std::unique_ptr<bastion_lxc, SkeletonDeleter> skel, std::string pin_dir)
    : skel_(std::move(skel)), pin_dir_(std::move(pin_dir)) {}

BpfDatapath::~BpfDatapath() {
  std::vector<int> ifindexes;
  for (const auto& [ifindex, created] : attached_) ifindexes.push_back(ifindex);
  for (int ifindex : ifindexes) Detach(ifindex).IgnoreError();  // veth may be gone already
}

int BpfDatapath::from_container_fd() const {
  return bpf_program__fd(skel_->progs.bastion_from_container);
}

int BpfDatapath::to_container_fd() const {
  return bpf_program__fd(skel_->progs.bastion_to_container);
}

int BpfDatapath::MapFd(absl::string_view name) const {
  bpf_map* map = bpf_object__find_map_by_name(skel_->obj, std::string(name).c_str());
  return map ? bpf_map__fd(map) : -1;
}

absl::Duration BpfDatapath::conntrack_lifetime() const {
  return absl::Nanoseconds(skel_->rodata->bastion_ct_lifetime_ns);
}

absl::Status BpfDatapath::UpsertEndpoint(uint32_t ip, const ContainerEndpoint& endpoint) {
  if (endpoint.container_id == BASTION_ID_NONE || endpoint.container_id >= kGroupIdFirst) {
    return absl::InvalidArgumentError(absl::StrCat(
        "endpoint ", Ipv4ToString(ip), ": container id ", endpoint.container_id,
        " outside 1..", kGroupIdFirst - 1));
  }
  bastion_endpoint value{};
  value.container_id = endpoint.container_id;
  value.ifindex = static_cast<__u32>(endpoint.host_ifindex);
  CopyMac(endpoint.mac, value.mac);
  return Update(skel_->maps.bastion_endpoints, htonl(ip), value,
                absl::StrCat("endpoint ", Ipv4ToString(ip)));
}

absl::Status BpfDatapath::RemoveEndpoint(uint32_t ip) {
  return Delete(skel_->maps.bastion_endpoints, htonl(ip),
                absl::StrCat("endpoint ", Ipv4ToString(ip)));
}

absl::Status BpfDatapath::BindInterface(int host_ifindex, const Binding& binding) {
  bastion_binding value{};
  value.container_id = binding.container_id;
  value.ip = htonl(binding.ip);
  CopyMac(binding.mac, value.mac);
  return Update(skel_->maps.bastion_bindings, static_cast<__u32>(host_ifindex), value,
                absl::StrCat("binding of ifindex ", host_ifindex));
}

absl::Status BpfDatapath::UnbindInterface(int host_ifindex) {
  return Delete(skel_->maps.bastion_bindings, static_cast<__u32>(host_ifindex),
                absl::StrCat("binding of ifindex ", host_ifindex));
}

absl::Status BpfDatapath::UpsertHost(uint32_t ip, uint32_t host_id) {
  if (host_id < kHostIdFirst || host_id == kWorldId) {
    return absl::InvalidArgumentError(absl::StrCat("host ", Ipv4ToString(ip), ": id ", host_id,
                                                   " outside the host id range"));
  }
  bastion_host value{.id = host_id};
  bastion_host_key key{.addr = htonl(ip), .gen = write_generation_, .pad = {}};
  return Update(skel_->maps.bastion_hosts, key, value, absl::StrCat("host ", Ipv4ToString(ip)));
}

absl::Status BpfDatapath::RemoveHost(uint32_t ip) {
  bastion_host_key key{.addr = htonl(ip), .gen = write_generation_, .pad = {}};
  return Delete(skel_->maps.bastion_hosts, key, absl::StrCat("host ", Ipv4ToString(ip)));
}

uint32_t BpfDatapath::MomPacketTypeId() { return transport::TypeIdOf("dctk.mom.MomPacket"); }

absl::Status BpfDatapath::UpsertGroup(uint32_t ip, const Group& group) {
  const std::string what = absl::StrCat("group ", Ipv4ToString(ip), ":", group.port);
  if (!IsMulticast(ip)) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": not a multicast address"));
  }
  if (group.id < kGroupIdFirst || group.id >= kHostIdFirst) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": id ", group.id, " outside the group id range"));
  }
  if (group.members.size() > kMaxGroupMembers) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", group.members.size(),
                                                   " members, at most ", kMaxGroupMembers));
  }
  bastion_group value{};
  value.id = group.id;
  value.port = htons(group.port);
  value.flags = group.sequenced ? BASTION_GROUP_STAMP : 0;
  value.n_members = static_cast<__u8>(group.members.size());
  for (size_t i = 0; i < group.members.size(); ++i) {
    value.members[i].container_id = group.members[i].container_id;
    value.members[i].ifindex = static_cast<__u32>(group.members[i].host_ifindex);
    CopyMac(group.members[i].mac, value.members[i].mac);
  }
  bastion_group_key key{.addr = htonl(ip), .gen = write_generation_, .pad = {}};
  return Update(skel_->maps.bastion_groups, key, value, what);
}

absl::Status BpfDatapath::RemoveGroup(uint32_t ip) {
  bastion_group_key key{.addr = htonl(ip), .gen = write_generation_, .pad = {}};
  return Delete(skel_->maps.bastion_groups, key, absl::StrCat("group ", Ipv4ToString(ip)));
}

absl::StatusOr<uint64_t> BpfDatapath::GroupSequence(uint32_t ip) {
  __be32 key = htonl(ip);
  __u64 seq = 0;
  int err = bpf_map__lookup_elem(skel_->maps.bastion_group_seq, &key, sizeof(key), &seq,
                                 sizeof(seq), 0);
  if (err == -ENOENT) return 0;
  if (err) return Errno(err, absl::StrCat("reading the sequence of group ", Ipv4ToString(ip)));
  return seq;
}

absl::Status BpfDatapath::AddDependency(uint32_t src_id, uint32_t dst_id, uint32_t generation) {
  bastion_dependency_key key{
      .src_id = src_id, .dst_id = dst_id, .gen = write_generation_, .pad = {}};
  __u32 value = generation;
  return Update(skel_->maps.bastion_dependencies, key, value,
                absl::StrCat("dependency ", src_id, "->", dst_id));
}

absl::Status BpfDatapath::RemoveDependency(uint32_t src_id, uint32_t dst_id) {
  bastion_dependency_key key{
      .src_id = src_id, .dst_id = dst_id, .gen = write_generation_, .pad = {}};
  return Delete(skel_->maps.bastion_dependencies, key,
                absl::StrCat("dependency ", src_id, "->", dst_id));
}

absl::Status BpfDatapath::UpsertPolicy(const PolicyRule& rule) {
  return WritePolicyEntries(rule, /*remove=*/false);
}

absl::Status BpfDatapath::RemovePolicy(const PolicyRule& rule) {
  return WritePolicyEntries(rule, /*remove=*/true);
}

absl::Status BpfDatapath::WritePolicyEntries(const PolicyRule& rule, bool remove) {
  std::string what = absl::StrCat("policy ", rule.src_id, "->", rule.dst_id, " proto ",
                                  rule.proto, " ports ", rule.first_port, "-", rule.last_port);
  if (rule.src_id == BASTION_ID_NONE || rule.dst_id == BASTION_ID_NONE) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": id 0 is not an identity"));
  }
  if (rule.first_port > rule.last_port) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": first port above last port"));
  }
  const bool all_ports = rule.first_port == 0 && rule.last_port == 65535;
  if (rule.proto == kAnyProtocol && !all_ports) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": any protocol needs all ports"));
  }
  bastion_policy value{.verdict = static_cast<__u32>(rule.verdict),
                       .generation = rule.generation};
  if (rule.first_port == rule.last_port) {
    bastion_policy_key key{.src_id = rule.src_id,
                           .dst_id = rule.dst_id,
                           .proto = rule.proto,
                           .gen = write_generation_,
                           .dport = htons(rule.first_port)};
    return remove ? Delete(skel_->maps.bastion_policy, key, what)
                  : Update(skel_->maps.bastion_policy, key, value, what);
  }
  std::vector<PortPrefix> prefixes;
  if (all_ports) {
    prefixes.push_back({0, 0});
  } else {
    prefixes = PortRangeToPrefixes(rule.first_port, rule.last_port);
  }
  return WriteRangeEntries(rule, prefixes, value, remove, what);
}

absl::Status BpfDatapath::WriteRangeEntries(const PolicyRule& rule,
                                            const std::vector<PortPrefix>& prefixes,
                                            const bastion_policy& value, bool remove,
                                            absl::string_view what) {
  bpf_map* outer = skel_->maps.bastion_policy_ranges;
  bastion_edge_key edge{.src_id = rule.src_id,
                        .dst_id = rule.dst_id,
                        .proto = rule.proto,
                        .gen = write_generation_,
                        .pad = {}};
  __u32 trie_id = 0;
  int trie_fd = -1;
  if (bpf_map__lookup_elem(outer, &edge, sizeof(edge), &trie_id, sizeof(trie_id), 0) == 0) {
    trie_fd = bpf_map_get_fd_by_id(trie_id);
    if (trie_fd < 0) return Errno(errno, absl::StrCat(what, ": opening the edge's port trie"));
  } else if (remove) {
    return absl::NotFoundError(absl::StrCat("bastion datapath: ", what, " not installed"));
  } else {
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
    trie_fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "bastion_ports",
                             sizeof(bastion_port_lpm_key), sizeof(bastion_policy),
                             BASTION_PORT_TRIE_MAX, &opts);
    if (trie_fd < 0) return Errno(errno, absl::StrCat(what, ": creating the edge's port trie"));
  }
  absl::Cleanup close_trie = [trie_fd] { close(trie_fd); };

  for (const PortPrefix& prefix : prefixes) {
    bastion_port_lpm_key key{};
    key.prefixlen = prefix.prefix_bits;
    key.dport[0] = static_cast<__u8>(prefix.port >> 8);
    key.dport[1] = static_cast<__u8>(prefix.port & 0xff);
    int err = remove ? bpf_map_delete_elem(trie_fd, &key)
                     : bpf_map_update_elem(trie_fd, &key, &value, BPF_ANY);
    if (err && !(remove && err == -ENOENT)) {
      return Errno(err, absl::StrCat(what, ": port prefix ", prefix.port, "/",
                                     int{prefix.prefix_bits}));
    }
  }
  if (remove) {
    bastion_port_lpm_key first{};
    if (bpf_map_get_next_key(trie_fd, nullptr, &first) == -ENOENT) {
      return Delete(outer, edge, what);  // the edge has no ranges left
    }
    return absl::OkStatus();
  }
  if (trie_id == 0) {
    __u32 fd_value = static_cast<__u32>(trie_fd);
    return Update(outer, edge, fd_value, what);
  }
  return absl::OkStatus();
}

absl::Status BpfDatapath::SetAuditMode(bool audit) {
  __u32 zero = 0;
  bastion_config config{.flags = audit ? BASTION_CONFIG_AUDIT : 0u,
                        .generation = config_.generation};
  if (absl::Status s = Update(skel_->maps.bastion_config, zero, config, "audit mode"); !s.ok()) {
    return s;
  }
  config_.flags = config.flags;
  return absl::OkStatus();
}

absl::Status BpfDatapath::ActivateGeneration(uint32_t generation) {
  if (generation >= BASTION_GENERATIONS) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy generation ", generation, ": only 0 and 1 exist"));
  }
  __u32 zero = 0;
  bastion_config config{.flags = config_.flags, .generation = generation};
  if (absl::Status s = Update(skel_->maps.bastion_config, zero, config,
                              absl::StrCat("active generation ", generation));
      !s.ok()) {
    return s;
  }
  config_.generation = generation;
  return absl::OkStatus();
}

absl::Status BpfDatapath::FlushConnections() {
  bpf_map* map = skel_->maps.bastion_conntrack;
  bastion_ct_key key{};
  bastion_ct_key next{};
  // Deleting the current key while iterating restarts at the first key, so always
  // ask for the first one until the map is empty.
  while (bpf_map__get_next_key(map, nullptr, &next, sizeof(next)) == 0) {
    key = next;
    int err = bpf_map__delete_elem(map, &key, sizeof(key), 0);
    if (err && err != -ENOENT) return Errno(err, "flushing the conntrack map");
  }
  return absl::OkStatus();
}

absl::Status BpfDatapath::Attach(int host_ifindex) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = host_ifindex,
              .attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
  int err = bpf_tc_hook_create(&hook);
  if (err && err != -EEXIST) {
    return Errno(err, absl::StrCat("creating the clsact qdisc on ifindex ", host_ifindex));
  }
  const bool created = err == 0;
  const std::pair<bpf_tc_attach_point, int> filters[] = {
      {BPF_TC_INGRESS, from_container_fd()}, {BPF_TC_EGRESS, to_container_fd()}};
  for (const auto& [point, fd] : filters) {
    hook.attach_point = point;
    LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = fd, .flags = BPF_TC_F_REPLACE,
                .handle = kTcHandle, .priority = kTcPriority);
    if (int attach_err = bpf_tc_attach(&hook, &opts)) {
      attached_[host_ifindex] = created;
      DetachHook(host_ifindex, created).IgnoreError();  // best effort; the error below wins
      attached_.erase(host_ifindex);
      return Errno(attach_err, absl::StrCat("attaching tc ",
                                            point == BPF_TC_INGRESS ? "ingress" : "egress",
                                            " on ifindex ", host_ifindex));
    }
  }
  attached_.try_emplace(host_ifindex, created);
  return absl::OkStatus();
}

absl::Status BpfDatapath::DetachHook(int host_ifindex, bool destroy_qdisc) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = host_ifindex);
  absl::Status status = absl::OkStatus();
  for (bpf_tc_attach_point point : {BPF_TC_INGRESS, BPF_TC_EGRESS}) {
    hook.attach_point = point;
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = kTcPriority);
    int err = bpf_tc_detach(&hook, &opts);
    if (err && err != -ENOENT && err != -ENODEV && status.ok()) {
      status = Errno(err, absl::StrCat("detaching tc filter on ifindex ", host_ifindex));
    }
  }
  if (destroy_qdisc) {
    hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
    int err = bpf_tc_hook_destroy(&hook);
    if (err && err != -ENOENT && err != -ENODEV && status.ok()) {
      status = Errno(err, absl::StrCat("removing the clsact qdisc on ifindex ", host_ifindex));
    }
  }
  return status;
}

absl::Status BpfDatapath::Detach(int host_ifindex) {
  auto it = attached_.find(host_ifindex);
  if (it == attached_.end()) {
    return absl::NotFoundError(
        absl::StrCat("bastion datapath: ifindex ", host_ifindex, " is not attached"));
  }
  const bool created = it->second;
  attached_.erase(it);
  return DetachHook(host_ifindex, created);
}

absl::StatusOr<VerdictCounters> BpfDatapath::ReadCounters() {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return Errno(cpus, "counting possible CPUs");
  std::vector<__u64> per_cpu(cpus);
  VerdictCounters totals{};
  for (__u32 i = 0; i < totals.size(); ++i) {
    int err = bpf_map__lookup_elem(skel_->maps.bastion_counters, &i, sizeof(i), per_cpu.data(),
                                   per_cpu.size() * sizeof(__u64), 0);
    if (err) return Errno(err, absl::StrCat("reading counter ", i));
    for (__u64 v : per_cpu) totals[i] += v;
  }
  return totals;
}

absl::StatusOr<int> BpfDatapath::PollEvents(absl::Duration timeout,
                                            const std::function<void(const VerdictEvent&)>& fn) {
  if (!events_) {
    ring_buffer* rb = ring_buffer__new(bpf_map__fd(skel_->maps.bastion_events), HandleEvent,
                                       &event_fn_, nullptr);
    if (!rb) return Errno(errno, "opening the verdict event ring buffer");
    events_.reset(rb);
  }
  event_fn_ = &fn;
  int n = ring_buffer__poll(events_.get(), static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  event_fn_ = nullptr;
  if (n < 0 && n != -EINTR) return Errno(n, "polling verdict events");
  return n < 0 ? 0 : n;
}

absl::Status BpfDatapath::Unpin() {
  if (pin_dir_.empty()) return absl::OkStatus();
  bpf_map* map;
  bpf_object__for_each_map(map, skel_->obj) {
    if (bpf_map__is_internal(map)) continue;
    if (int err = bpf_map__unpin(map, nullptr); err && err != -ENOENT) {
      return Errno(err, absl::StrCat("unpinning map ", bpf_map__name(map)));
    }
  }
  return absl::OkStatus();
}

}  // namespace dctk::bastion
