/* Map keys and values of the Bastion datapath, shared by the eBPF programs and user space.
 *
 * A policy compiler fills these from the policy and the discovered containers:
 *   endpoints     IPv4 -> struct bastion_endpoint   every container on the network
 *   bindings      host veth ifindex -> struct bastion_binding   who may send on a veth
 *   cgroups       cgroup v2 id -> struct bastion_cgroup_binding  host-network containers
 *   hosts         {IPv4, gen} -> struct bastion_host   host/gateway addresses (pseudo ids)
 *   dependencies  {src id, dst id, gen} -> generation    "dst is a dependency of src"
 *   policy        {src, dst, proto, gen, port} -> verdict         exact ports (hash)
 *   policy_ranges {src, dst, proto, gen} -> LPM trie {port/prefix} -> verdict   port ranges
 *   groups        {IPv4 224.0.0.0/4, gen} -> struct bastion_group   multicast groups
 *                 (senders depend on the group id in `dependencies`; lib/group.h)
 *   group_seq     group IPv4 -> __u64   last stamped group sequence number
 * Policy generations: the policy maps (hosts, dependencies, policy, policy_ranges) hold
 * two copies, generation 0 and 1, in the `gen` field of their keys; a packet reads the
 * active generation once (bastion_config.generation) and looks up only that copy. User
 * space writes a change into the inactive copy, switches bastion_config.generation (one
 * map write: the instant the whole change takes effect), then repeats the change on the
 * old copy, so both copies are equal again between changes.
 * Example (allow container 1 to reach container 2 on TCP 8000-8003): in the trie of
 * edge {.src_id = 1, .dst_id = 2, .proto = IPPROTO_TCP} put
 *   struct bastion_port_lpm_key k = {.prefixlen = 14, .dport = {8000 >> 8, 8000 & 0xff}};
 * All multi-byte addresses and ports are in network byte order; ids in host order.
 */
#ifndef BASTION_BPF_LIB_TYPES_H_
#define BASTION_BPF_LIB_TYPES_H_

#include <linux/types.h>

/* Identity space: containers 1..BASTION_ID_GROUP_FIRST-1, multicast groups from
 * BASTION_ID_GROUP_FIRST, hosts/gateways from BASTION_ID_HOST_FIRST, and
 * BASTION_ID_WORLD for every address the maps do not know. */
#define BASTION_ID_NONE 0u
#define BASTION_ID_GROUP_FIRST 0xfff00000u
#define BASTION_ID_HOST_FIRST 0xffff0000u
#define BASTION_ID_WORLD 0xffffffffu

struct bastion_endpoint {
  __u32 container_id;
  __u32 ifindex; /* host-side veth on this host; 0 = elsewhere (pass to the stack) */
  __u8 mac[6];
  __u8 pad[2];
};

struct bastion_binding {
  __u32 container_id;
  __be32 ip;
  __u8 mac[6];
  __u8 pad[2];
};

#define BASTION_GENERATIONS 2

struct bastion_host_key {
  __be32 addr;
  __u8 gen;
  __u8 pad[3];
};

struct bastion_host {
  __u32 id; /* in [BASTION_ID_HOST_FIRST, BASTION_ID_WORLD) */
};

/* A network-privileged (host network mode) container: its cgroup (v2 id) speaks for it,
 * since it has no veth and shares the host's addresses. */
struct bastion_cgroup_binding {
  __u32 container_id;
  __u32 pad;
};

struct bastion_dependency_key {
  __u32 src_id;
  __u32 dst_id;
  __u8 gen;
  __u8 pad[3];
};

/* Exact-port policy on dependency and host/world edges. */
struct bastion_policy_key {
  __u32 src_id;
  __u32 dst_id;
  __u8 proto;
  __u8 gen;
  __be16 dport;
};

/* Port ranges: {src_id, dst_id, proto} selects the edge's own small LPM trie of
 * destination-port prefixes (map in map), so a lookup walks only that edge's ranges
 * whatever the total number of policies. prefixlen 0 = any port, 16 = one port. */
struct bastion_edge_key {
  __u32 src_id;
  __u32 dst_id;
  __u8 proto; /* 0 = any protocol (then the trie holds only prefix 0) */
  __u8 gen;
  __u8 pad[2];
};

#define BASTION_PORT_TRIE_MAX 1024 /* prefixes per edge and protocol */

struct bastion_port_lpm_key {
  __u32 prefixlen;
  __u8 dport[2]; /* network byte order */
};

enum bastion_policy_verdict {
  BASTION_POLICY_ALLOW = 1,
  BASTION_POLICY_DENY = 2, /* carve-outs inside a wider allowed range */
};

struct bastion_policy {
  __u32 verdict;    /* enum bastion_policy_verdict */
  __u32 generation; /* written by the compiler to sweep stale entries; unused here */
};

/* Connection tracking: the tuple of an allowed packet, in its own direction. */
struct bastion_ct_key {
  __be32 saddr;
  __be32 daddr;
  __be16 sport; /* 0 for protocols without ports */
  __be16 dport;
  __u8 proto;
  __u8 pad[3];
};

struct bastion_ct_entry {
  __u64 last_seen_ns;
};

/* IPv4 fragments: the first fragment's verdict, for the later fragments of the same
 * datagram (lib/fragment.h). One direction per program: to_container is 1 for
 * bastion_to_container. */
struct bastion_frag_key {
  __be32 saddr;
  __be32 daddr;
  __be16 id; /* IPv4 identification */
  __u8 proto;
  __u8 to_container;
};

struct bastion_frag_entry {
  __u64 first_seen_ns;
  __u32 verdict; /* BASTION_PASS_* of the first fragment */
  __u32 ifindex; /* direct-forward target (peer's host veth), 0 = to the stack */
  __u8 mac[6];   /* the peer's MAC, for direct forwarding */
  __u8 pad[2];
};

/* A multicast group on this host (lib/group.h): a datagram a dependent container sends
 * to {addr, port} is copied to each member's host veth (members elsewhere, ifindex 0,
 * get nothing from this host). */
#define BASTION_GROUP_MAX_MEMBERS 16
#define BASTION_GROUP_STAMP 1u /* flags: stamp MomPacket.group_seq (MOM serialization) */

struct bastion_group_key {
  __be32 addr; /* in 224.0.0.0/4 */
  __u8 gen;
  __u8 pad[3];
};

struct bastion_group_member {
  __u32 container_id;
  __u32 ifindex; /* host-side veth; 0 = elsewhere (skipped) */
  __u8 mac[6];
  __u8 pad[2];
};

struct bastion_group {
  __u32 id; /* in [BASTION_ID_GROUP_FIRST, BASTION_ID_HOST_FIRST) */
  __be16 port; /* UDP destination port */
  __u8 flags;  /* BASTION_GROUP_* */
  __u8 n_members;
  struct bastion_group_member members[BASTION_GROUP_MAX_MEMBERS];
};

#define BASTION_CONFIG_AUDIT 1u /* flags: record would-drops, let them through */
struct bastion_config {
  __u32 flags;
  __u32 generation; /* active policy generation, 0 or 1 */
};

#define BASTION_EVENT_AUDIT 1u       /* the packet was let through (audit mode) */
#define BASTION_EVENT_TO_CONTAINER 2u /* seen entering the container (tc egress) */
#define BASTION_EVENT_HOST_NETWORK 4u /* a host-network container's cgroup program */
struct bastion_event {
  __u64 timestamp_ns;
  __u32 ifindex;
  __u32 container_id; /* bound to ifindex, 0 if none */
  __be32 saddr;
  __be32 daddr;
  __be16 sport;
  __be16 dport;
  __u16 l3_proto; /* ethertype, host order */
  __u8 proto;
  __u8 reason; /* enum bastion_verdict, a BASTION_DROP_* */
  __u32 flags; /* BASTION_EVENT_* */
};

#endif /* BASTION_BPF_LIB_TYPES_H_ */
