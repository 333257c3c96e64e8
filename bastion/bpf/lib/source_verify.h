/* Source verification: a container may only send with the MAC and IPv4 it was given.
 *
 * The binding map says which container owns a host-side veth (kernel metadata: the
 * ifindex the packet arrived on), so a container cannot claim someone else's address.
 *   int r = bastion_verify_ipv4_source(&p, binding);   // 0 or a BASTION_DROP_* reason
 */
#ifndef BASTION_BPF_LIB_SOURCE_VERIFY_H_
#define BASTION_BPF_LIB_SOURCE_VERIFY_H_

#include "bastion/bpf/lib/packet.h"
#include "bastion/bpf/lib/types.h"

static __always_inline __u32 bastion_verify_mac_source(const struct ethhdr *eth,
                                                       const struct bastion_binding *b) {
  return bastion_mac_equal(eth->h_source, b->mac) ? 0 : BASTION_DROP_SPOOFED_MAC;
}

static __always_inline __u32 bastion_verify_ipv4_source(const struct bastion_pkt *p,
                                                        const struct bastion_binding *b) {
  return p->saddr == b->ip ? 0 : BASTION_DROP_SPOOFED_IP;
}

/* Gratuitous or forged ARP (request or reply) must carry the sender's own addresses. */
static __always_inline __u32 bastion_verify_arp_source(const struct bastion_arp *arp,
                                                       const struct bastion_binding *b) {
  return bastion_mac_equal(arp->sha, b->mac) && arp->spa == b->ip
             ? 0
             : BASTION_DROP_ARP_SPOOFED;
}

#endif /* BASTION_BPF_LIB_SOURCE_VERIFY_H_ */
