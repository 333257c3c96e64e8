/* Direct ARP handler: a container resolves only its peers, so a scan learns nothing else.
 *
 * A request for a container that is a dependency of the sender (or has the sender as a
 * dependency, so replies can be addressed) is answered here: the request is turned into
 * the reply in place and sent back out of the same veth. A request for a host/gateway
 * address goes to the stack (the host answers). Everything else is dropped.
 *   if (eth->h_proto == bpf_htons(ETH_P_ARP)) return bastion_arp_from_container(skb, &p, b);
 */
#ifndef BASTION_BPF_LIB_ARP_H_
#define BASTION_BPF_LIB_ARP_H_

#include "bastion/bpf/lib/policy.h"
#include "bastion/bpf/lib/source_verify.h"
#include "bastion/bpf/lib/verdict.h"

static __always_inline int bastion_arp_answer(struct __sk_buff *skb, struct bastion_arp *arp,
                                              const struct bastion_endpoint *target) {
  void *data = (void *)(long)skb->data;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > (void *)(long)skb->data_end) return TC_ACT_SHOT;
  __be32 requester_ip = arp->spa;
  __be32 target_ip = arp->tpa;
  bastion_mac_copy(eth->h_dest, eth->h_source);
  bastion_mac_copy(eth->h_source, target->mac);
  arp->op = bpf_htons(BASTION_ARPOP_REPLY);
  bastion_mac_copy(arp->tha, arp->sha);
  arp->tpa = requester_ip;
  bastion_mac_copy(arp->sha, target->mac);
  arp->spa = target_ip;
  bastion_count(BASTION_PASS_ARP_ANSWERED);
  return bpf_redirect(skb->ifindex, 0);
}

static __always_inline int bastion_arp_from_container(struct __sk_buff *skb,
                                                      struct bastion_pkt *p,
                                                      const struct bastion_binding *b) {
  struct bastion_arp *arp = bastion_arp_hdr(skb);
  if (!arp) return bastion_drop(p, BASTION_DROP_MALFORMED);
  p->saddr = arp->spa;
  p->daddr = arp->tpa;
  __u32 reason = bastion_verify_arp_source(arp, b);
  if (reason) return bastion_drop(p, reason);
  if (arp->op == bpf_htons(BASTION_ARPOP_REPLY)) return bastion_pass(BASTION_PASS_ARP, TC_ACT_OK);
  if (arp->op != bpf_htons(BASTION_ARPOP_REQUEST)) return bastion_drop(p, BASTION_DROP_MALFORMED);

  __be32 tpa = arp->tpa;
  struct bastion_endpoint *target = bpf_map_lookup_elem(&bastion_endpoints, &tpa);
  if (target && target->container_id != b->container_id &&
      (bastion_has_dependency(b->container_id, target->container_id, p->gen) ||
       bastion_has_dependency(target->container_id, b->container_id, p->gen)))
    return bastion_arp_answer(skb, arp, target);
  struct bastion_host_key hk = {.addr = tpa, .gen = p->gen};
  if (bpf_map_lookup_elem(&bastion_hosts, &hk))
    return bastion_pass(BASTION_PASS_ARP, TC_ACT_OK);
  return bastion_drop(p, BASTION_DROP_ARP_NO_DEPENDENCY);
}

/* ARP entering a container: only what is addressed to it (no broadcast leak of who asks
 * for whom). */
static __always_inline int bastion_arp_to_container(struct __sk_buff *skb,
                                                    struct bastion_pkt *p,
                                                    const struct bastion_binding *b) {
  struct bastion_arp *arp = bastion_arp_hdr(skb);
  if (!arp) return bastion_drop(p, BASTION_DROP_MALFORMED);
  p->saddr = arp->spa;
  p->daddr = arp->tpa;
  if (arp->tpa != b->ip) return bastion_drop(p, BASTION_DROP_NOT_FOR_CONTAINER);
  return bastion_pass(BASTION_PASS_ARP, TC_ACT_OK);
}

#endif /* BASTION_BPF_LIB_ARP_H_ */
