/* Network-privileged (host network mode) containers: identity by cgroup, not by veth.
 *
 * A host-network container shares the host's interfaces and addresses, so no veth and no
 * address says which container sent a packet. The kernel knows: every socket belongs to
 * the cgroup (v2) of the process that made it, and an skb keeps its socket up to the tc
 * egress of the veth it leaves on. `bastion_cgroups` maps a container's cgroup id to its
 * container id; a socket in that cgroup or in one below it speaks for the container.
 *
 *   __u32 sender = bastion_cgroup_container(skb);   // 0: not a host-network container's
 *
 * Used by the cgroup programs of bastion_host_network.bpf.c (enforcement at the source,
 * for every destination including containers on other hosts) and by
 * bastion_to_container (the destination's own check, which also catches frames that
 * bypass the IP stack, e.g. AF_PACKET on the bridge).
 *
 * The cgroup programs see the skb from the IPv4 header on (no Ethernet header) and may
 * not pull it, so they read headers with bpf_skb_load_bytes (bastion_load_ipv4).
 */
#ifndef BASTION_BPF_LIB_HOST_NETWORK_H_
#define BASTION_BPF_LIB_HOST_NETWORK_H_

#include "bastion/bpf/lib/maps.h"
#include "bastion/bpf/lib/packet.h"

/* Cgroup levels below the root searched for a registered container cgroup. */
#define BASTION_CGROUP_MAX_LEVEL 8

static __always_inline __u32 bastion_cgroup_container(struct __sk_buff *skb) {
  __u64 id = bpf_skb_cgroup_id(skb);
  if (!id) return 0; /* no socket (forwarded traffic) */
  struct bastion_cgroup_binding *c = bpf_map_lookup_elem(&bastion_cgroups, &id);
  if (c) return c->container_id;
  /* A process may sit in a sub-cgroup of the container's: walk its ancestors. */
  for (int level = 1; level <= BASTION_CGROUP_MAX_LEVEL; level++) {
    __u64 ancestor = bpf_skb_ancestor_cgroup_id(skb, level);
    if (!ancestor || ancestor == id) break;
    c = bpf_map_lookup_elem(&bastion_cgroups, &ancestor);
    if (c) return c->container_id;
  }
  return 0;
}

/* Like bastion_parse_ipv4, for an skb that starts at the IPv4 header. 0, -1 (malformed)
 * or -2 (non-first fragment). */
static __always_inline int bastion_load_ipv4(struct __sk_buff *skb, struct bastion_pkt *p) {
  struct iphdr ip;
  if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0 || ip.version != 4 || ip.ihl < 5)
    return -1;
  p->saddr = ip.saddr;
  p->daddr = ip.daddr;
  p->proto = ip.protocol;
  if (ip.frag_off & bpf_htons(BASTION_IP_FRAG_OFFSET)) return -2;
  __u32 l4 = ((__u32)ip.ihl & 0xf) * 4;
  if (ip.protocol == IPPROTO_TCP || ip.protocol == IPPROTO_UDP) {
    __be16 ports[2];
    if (bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)) < 0) return -1;
    p->sport = ports[0];
    p->dport = ports[1];
    return 0;
  }
  if (ip.protocol != IPPROTO_ICMP) return 0;
  /* ICMP errors: the tuple of the packet they answer, for the conntrack "related" check. */
  struct {
    __u8 icmp[8];
    struct iphdr inner;
    __be16 ports[2];
  } err;
  if (bpf_skb_load_bytes(skb, l4, &err, sizeof(err)) < 0) return 0;
  if (err.icmp[0] != BASTION_ICMP_DEST_UNREACH && err.icmp[0] != BASTION_ICMP_TIME_EXCEEDED)
    return 0;
  if (err.inner.ihl != 5) return 0;
  p->related = 1;
  p->inner_proto = err.inner.protocol;
  p->inner_saddr = err.inner.saddr;
  p->inner_daddr = err.inner.daddr;
  p->inner_sport = err.ports[0];
  p->inner_dport = err.ports[1];
  return 0;
}

/* cgroup_skb programs return 1 to let a packet through and 0 to drop it. */
static __always_inline int bastion_cgroup_action(int tc_action) {
  return tc_action == TC_ACT_OK ? 1 : 0;
}

#endif /* BASTION_BPF_LIB_HOST_NETWORK_H_ */
