/* Bastion programs for the host-side veth of a container (tc clsact).
 *
 *   bastion_from_container  tc ingress: traffic the container sends
 *   bastion_to_container    tc egress:  traffic entering the container through the bridge
 *
 * Verdict flow from a container: binding (who owns this veth) -> source MAC -> ARP handler
 * or IPv4 source IP -> classify destination (container/host/world) -> dependency and port
 * policy, else conntrack reply -> direct forward to a local peer or pass to the stack.
 * Allowed traffic to a local peer never reaches the bridge, so the egress program sees
 * what comes from the host, the world, remote containers, and audit-mode leftovers; a
 * packet from a host-network container's socket is judged as that container
 * (lib/host_network.h). IPv4 fragments: the first is judged like any packet, the later
 * ones follow its verdict (lib/fragment.h); source checks apply to every fragment.
 * A datagram to a multicast group (lib/group.h) is sequenced and copied by the program
 * to each member's veth (never to the bridge); entering a member it is checked again.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "bastion/bpf/lib/arp.h"
#include "bastion/bpf/lib/forward.h"
#include "bastion/bpf/lib/fragment.h"
#include "bastion/bpf/lib/group.h"
#include "bastion/bpf/lib/host_network.h"
#include "bastion/bpf/lib/policy.h"
#include "bastion/bpf/lib/source_verify.h"
#include "bastion/bpf/lib/verdict.h"

char LICENSE[] SEC("license") = "GPL";

SEC("tc")
int bastion_from_container(struct __sk_buff *skb) {
  struct bastion_pkt p = {.ifindex = skb->ifindex,
                          .gen = bastion_active_generation(),
                          .l3_proto = bpf_ntohs(skb->protocol)};
  __u32 ifindex = skb->ifindex;
  struct bastion_binding *b = bpf_map_lookup_elem(&bastion_bindings, &ifindex);
  if (!b) return bastion_drop(&p, BASTION_DROP_UNBOUND);
  p.container_id = b->container_id;
  struct ethhdr *eth = bastion_eth(skb);
  if (!eth) return bastion_drop(&p, BASTION_DROP_MALFORMED);
  __u32 reason = bastion_verify_mac_source(eth, b);
  if (reason) return bastion_drop(&p, reason);
  if (eth->h_proto == bpf_htons(ETH_P_ARP)) return bastion_arp_from_container(skb, &p, b);
  if (eth->h_proto != bpf_htons(ETH_P_IP)) return bastion_drop(&p, BASTION_DROP_UNSUPPORTED_L3);

  int parsed = bastion_parse_ipv4(skb, &p);
  if (parsed == -1) return bastion_drop(&p, BASTION_DROP_MALFORMED);
  reason = bastion_verify_ipv4_source(&p, b);
  if (reason) return bastion_drop(&p, reason);
  if (parsed == -2) return bastion_fragment_follow(skb, &p);
  if (bastion_is_multicast(p.daddr)) {
    /* Joining a group is the container's own business; delivery follows the policy. */
    if (p.proto == IPPROTO_IGMP) return bastion_drop(&p, BASTION_DROP_IGMP);
    int r = bastion_group_send(skb, &p, b);
    if (r != BASTION_GROUP_NONE) return r;
  }

  struct bastion_peer dst = bastion_classify(p.daddr, p.gen);
  __u32 verdict = BASTION_PASS_FORWARDED;
  reason = bastion_policy_check(b->container_id, dst.id, &p);
  if (reason == 0) {
    bastion_ct_track(&p);
  } else if (bastion_ct_is_reply(&p)) {
    verdict = BASTION_PASS_REPLY;
  } else {
    bastion_fragment_forget(&p);
    return bastion_drop(&p, reason);
  }
  if (dst.endpoint && dst.endpoint->ifindex) {
    bastion_fragment_record(&p, verdict, dst.endpoint);
    return bastion_forward_peer(skb, dst.endpoint, verdict);
  }
  if (verdict == BASTION_PASS_FORWARDED) verdict = BASTION_PASS_STACK;
  bastion_fragment_record(&p, verdict, 0);
  return bastion_pass(verdict, TC_ACT_OK);
}

SEC("tc")
int bastion_to_container(struct __sk_buff *skb) {
  struct bastion_pkt p = {.ifindex = skb->ifindex,
                          .to_container = 1,
                          .gen = bastion_active_generation(),
                          .l3_proto = bpf_ntohs(skb->protocol)};
  __u32 ifindex = skb->ifindex;
  struct bastion_binding *b = bpf_map_lookup_elem(&bastion_bindings, &ifindex);
  if (!b) return bastion_drop(&p, BASTION_DROP_UNBOUND);
  p.container_id = b->container_id;
  struct ethhdr *eth = bastion_eth(skb);
  if (!eth) return bastion_drop(&p, BASTION_DROP_MALFORMED);
  if (eth->h_proto == bpf_htons(ETH_P_ARP)) return bastion_arp_to_container(skb, &p, b);
  if (eth->h_proto != bpf_htons(ETH_P_IP)) return bastion_drop(&p, BASTION_DROP_UNSUPPORTED_L3);

  int parsed = bastion_parse_ipv4(skb, &p);
  if (parsed == -1) return bastion_drop(&p, BASTION_DROP_MALFORMED);
  if (bastion_is_multicast(p.daddr)) return bastion_group_receive(skb, &p, b, parsed);
  if (p.daddr != b->ip) return bastion_drop(&p, BASTION_DROP_NOT_FOR_CONTAINER);

  struct bastion_peer src = bastion_classify(p.saddr, p.gen);
  /* Sent by a host-network container's socket (or AF_PACKET): judged as that container,
   * and it may not claim a container's address. */
  __u32 sender = bastion_cgroup_container(skb);
  if (sender) {
    if (bastion_is_container(src.id)) return bastion_drop(&p, BASTION_DROP_SPOOFED_IP);
    src.id = sender;
  }
  if (parsed == -2) return bastion_fragment_follow(skb, &p);
  __u32 verdict = BASTION_PASS_STACK;
  __u32 reason = bastion_policy_check(src.id, b->container_id, &p);
  if (reason == 0) {
    bastion_ct_track(&p);
  } else if (bastion_ct_is_reply(&p)) {
    verdict = BASTION_PASS_REPLY;
  } else {
    bastion_fragment_forget(&p);
    return bastion_drop(&p, reason);
  }
  bastion_fragment_record(&p, verdict, 0);
  return bastion_pass(verdict, TC_ACT_OK);
}
