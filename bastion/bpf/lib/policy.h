/* Container-aware least privilege: who is the peer, is it a dependency, is the port allowed.
 *
 *   p.gen = bastion_active_generation();   (once per packet, at the start)
 *   struct bastion_peer dst = bastion_classify(p.daddr, p.gen);
 *   __u32 reason = bastion_policy_check(binding->container_id, dst.id, &p);
 *   if (reason && !bastion_ct_is_reply(&p)) return bastion_drop(&p, reason);
 *
 * Cost is a fixed number of hash/LPM lookups whatever the number of policies: the
 * dependency hash, the exact-port hash, and only on its miss the edge's own port-range
 * trie (a hash of {src, dst, proto} to a small LPM trie: it holds that edge's ranges only).
 * Every policy lookup uses the packet's generation (types.h), so a packet is judged by
 * exactly one policy even while user space switches to another.
 * Replies: an allowed packet records its tuple in an LRU conntrack map; a packet whose
 * reversed tuple is there (and fresh) is a reply and passes even without a policy.
 */
#ifndef BASTION_BPF_LIB_POLICY_H_
#define BASTION_BPF_LIB_POLICY_H_

#include "bastion/bpf/lib/maps.h"
#include "bastion/bpf/lib/packet.h"

/* Conntrack entries older than this (no packet in either direction) stop admitting
 * replies. Set by the loader before load. */
const volatile __u64 bastion_ct_lifetime_ns = 600ull * 1000 * 1000 * 1000;

struct bastion_peer {
  __u32 id;
  const struct bastion_endpoint *endpoint; /* set for containers */
};

/* The active policy generation (bastion_config.generation). */
static __always_inline __u8 bastion_active_generation(void) {
  __u32 zero = 0;
  struct bastion_config *c = bpf_map_lookup_elem(&bastion_config, &zero);
  return c ? (__u8)(c->generation & 1) : 0;
}

static __always_inline struct bastion_peer bastion_classify(__be32 addr, __u8 gen) {
  struct bastion_peer peer = {.id = BASTION_ID_WORLD, .endpoint = 0};
  struct bastion_endpoint *ep = bpf_map_lookup_elem(&bastion_endpoints, &addr);
  if (ep) {
    peer.id = ep->container_id;
    peer.endpoint = ep;
    return peer;
  }
  struct bastion_host_key hk = {.addr = addr, .gen = gen};
  struct bastion_host *host = bpf_map_lookup_elem(&bastion_hosts, &hk);
  if (host) peer.id = host->id;
  return peer;
}

static __always_inline int bastion_is_host(__u32 id) {
  return id >= BASTION_ID_HOST_FIRST && id != BASTION_ID_WORLD;
}

static __always_inline int bastion_is_container(__u32 id) {
  return id != BASTION_ID_NONE && id < BASTION_ID_GROUP_FIRST;
}

static __always_inline int bastion_has_dependency(__u32 src, __u32 dst, __u8 gen) {
  struct bastion_dependency_key k = {.src_id = src, .dst_id = dst, .gen = gen};
  return bpf_map_lookup_elem(&bastion_dependencies, &k) != 0;
}

/* Verdict of the edge's own port-range trie for `proto` (0: the any-protocol trie). */
static __always_inline __u32 bastion_range_verdict(__u32 src, __u32 dst, __u8 proto,
                                                   __be16 dport, __u8 gen) {
  struct bastion_edge_key edge = {.src_id = src, .dst_id = dst, .proto = proto, .gen = gen};
  void *trie = bpf_map_lookup_elem(&bastion_policy_ranges, &edge);
  if (!trie) return 0;
  struct bastion_port_lpm_key k = {.prefixlen = 16};
  __builtin_memcpy(k.dport, &dport, 2);
  struct bastion_policy *v = bpf_map_lookup_elem(trie, &k);
  return v ? v->verdict : 0;
}

/* Exact port first, then the protocol's ranges, then any-protocol rules. */
static __always_inline __u32 bastion_port_verdict(__u32 src, __u32 dst, __u8 proto,
                                                  __be16 dport, __u8 gen) {
  struct bastion_policy_key k = {
      .src_id = src, .dst_id = dst, .proto = proto, .gen = gen, .dport = dport};
  struct bastion_policy *v = bpf_map_lookup_elem(&bastion_policy, &k);
  if (v) return v->verdict;
  __u32 verdict = bastion_range_verdict(src, dst, proto, dport, gen);
  if (verdict) return verdict;
  return bastion_range_verdict(src, dst, 0, 0, gen);
}

/* 0 if the policy allows src -> dst for this packet, else the drop reason. Container
 * peers must be dependencies; host and world peers only need a port policy. */
static __always_inline __u32 bastion_policy_check(__u32 src, __u32 dst,
                                                  const struct bastion_pkt *p) {
  __u32 denied = BASTION_DROP_POLICY_DENIED;
  if (bastion_is_host(src) || bastion_is_host(dst)) {
    denied = BASTION_DROP_HOST_DENIED;
  } else if (src == BASTION_ID_WORLD || dst == BASTION_ID_WORLD) {
    denied = BASTION_DROP_WORLD_DENIED;
  } else if (!bastion_has_dependency(src, dst, p->gen)) {
    return BASTION_DROP_NO_DEPENDENCY;
  }
  return bastion_port_verdict(src, dst, p->proto, p->dport, p->gen) == BASTION_POLICY_ALLOW
             ? 0
             : denied;
}

static __always_inline void bastion_ct_track(const struct bastion_pkt *p) {
  struct bastion_ct_key k = {.saddr = p->saddr,
                             .daddr = p->daddr,
                             .sport = p->sport,
                             .dport = p->dport,
                             .proto = p->proto};
  __u64 now = bpf_ktime_get_ns();
  struct bastion_ct_entry *e = bpf_map_lookup_elem(&bastion_conntrack, &k);
  if (e) {
    if (e->last_seen_ns != now) e->last_seen_ns = now;
    return;
  }
  struct bastion_ct_entry fresh = {.last_seen_ns = now};
  bpf_map_update_elem(&bastion_conntrack, &k, &fresh, BPF_ANY);
}

static __always_inline int bastion_ct_fresh(struct bastion_ct_key *k) {
  struct bastion_ct_entry *e = bpf_map_lookup_elem(&bastion_conntrack, k);
  if (!e) return 0;
  __u64 now = bpf_ktime_get_ns();
  if (now - e->last_seen_ns > bastion_ct_lifetime_ns) return 0;
  e->last_seen_ns = now;
  return 1;
}

/* True if `p` answers a tracked allowed packet: its reversed tuple is in conntrack, or it
 * is an ICMP error about a tracked packet (port unreachable, fragmentation needed). */
static __always_inline int bastion_ct_is_reply(const struct bastion_pkt *p) {
  struct bastion_ct_key k = {.saddr = p->daddr,
                             .daddr = p->saddr,
                             .sport = p->dport,
                             .dport = p->sport,
                             .proto = p->proto};
  if (bastion_ct_fresh(&k)) return 1;
  if (!p->related || p->inner_saddr != p->daddr) return 0;
  struct bastion_ct_key orig = {.saddr = p->inner_saddr,
                                .daddr = p->inner_daddr,
                                .sport = p->inner_sport,
                                .dport = p->inner_dport,
                                .proto = p->inner_proto};
  return bastion_ct_fresh(&orig);
}

#endif /* BASTION_BPF_LIB_POLICY_H_ */
