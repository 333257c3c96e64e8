/* BPF maps of the Bastion datapath (kernel side only; layouts in types.h).
 *
 * Sizes are defaults; the loader resizes them (bpf_map__set_max_entries) before load.
 * All lookups are hash, LRU or LPM: cost does not grow with the number of entries.
 *   struct bastion_binding *b = bpf_map_lookup_elem(&bastion_bindings, &ifindex);
 */
#ifndef BASTION_BPF_LIB_MAPS_H_
#define BASTION_BPF_LIB_MAPS_H_

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bastion/bpf/lib/drop_reasons.h"
#include "bastion/bpf/lib/types.h"

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, __be32);
  __type(value, struct bastion_endpoint);
} bastion_endpoints SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u32);
  __type(value, struct bastion_binding);
} bastion_bindings SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 512);
  __type(key, struct bastion_host_key);
  __type(value, struct bastion_host);
} bastion_hosts SEC(".maps");

/* Host-network containers by cgroup v2 id (see lib/host_network.h). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, __u64);
  __type(value, struct bastion_cgroup_binding);
} bastion_cgroups SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 131072);
  __type(key, struct bastion_dependency_key);
  __type(value, __u32);
} bastion_dependencies SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 131072);
  __type(key, struct bastion_policy_key);
  __type(value, struct bastion_policy);
} bastion_policy SEC(".maps");

/* Inner maps of bastion_policy_ranges: one per edge and protocol, made by user space
 * with this layout. */
struct bastion_port_trie {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, BASTION_PORT_TRIE_MAX);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  /* Sizes, not BTF types: clang emits the key only as a forward declaration here. */
  __uint(key_size, sizeof(struct bastion_port_lpm_key));
  __uint(value_size, sizeof(struct bastion_policy));
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
  __uint(max_entries, 131072);
  __type(key, struct bastion_edge_key);
  __array(values, struct bastion_port_trie);
} bastion_policy_ranges SEC(".maps");

/* Multicast groups, both policy generations (lib/group.h). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 512);
  __type(key, struct bastion_group_key);
  __type(value, struct bastion_group);
} bastion_groups SEC(".maps");

/* Per group address: the last group sequence number stamped (not per generation: a
 * policy change must not restart the sequence). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 256);
  __type(key, __be32);
  __type(value, __u64);
} bastion_group_seq SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct bastion_ct_key);
  __type(value, struct bastion_ct_entry);
} bastion_conntrack SEC(".maps");

/* First-fragment verdicts of allowed IPv4 datagrams (lib/fragment.h). */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 16384);
  __type(key, struct bastion_frag_key);
  __type(value, struct bastion_frag_entry);
} bastion_fragments SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct bastion_config);
} bastion_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, BASTION_COUNTER_MAX);
  __type(key, __u32);
  __type(value, __u64);
} bastion_counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 256 * 1024);
} bastion_events SEC(".maps");

#endif /* BASTION_BPF_LIB_MAPS_H_ */
