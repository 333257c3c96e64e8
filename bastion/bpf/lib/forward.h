/* End-to-end direct forwarding: allowed traffic to a container on this host skips the
 * bridge and lands straight in the peer container's namespace.
 *
 * From tc ingress of the sender's host veth, bpf_redirect_peer(dst host veth) delivers to
 * the ingress of that veth's peer (the container side), so neither the bridge nor any
 * other port of it (nor a sniffer there) sees the packet. The destination MAC is set to
 * the peer's, so traffic routed via the gateway MAC arrives addressed correctly.
 *   if (dst.endpoint && dst.endpoint->ifindex) return bastion_forward_peer(skb, dst.endpoint);
 */
#ifndef BASTION_BPF_LIB_FORWARD_H_
#define BASTION_BPF_LIB_FORWARD_H_

#include "bastion/bpf/lib/packet.h"
#include "bastion/bpf/lib/verdict.h"

static __always_inline int bastion_forward_peer(struct __sk_buff *skb,
                                                const struct bastion_endpoint *dst,
                                                __u32 verdict) {
  void *data = (void *)(long)skb->data;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > (void *)(long)skb->data_end) return TC_ACT_SHOT;
  if (!bastion_mac_equal(eth->h_dest, dst->mac)) bastion_mac_copy(eth->h_dest, dst->mac);
  bastion_count(verdict);
  return bpf_redirect_peer(dst->ifindex, 0);
}

#endif /* BASTION_BPF_LIB_FORWARD_H_ */
