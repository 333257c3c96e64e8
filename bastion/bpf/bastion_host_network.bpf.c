/* Bastion programs for network-privileged (host network mode) containers, attached to the
 * container's cgroup (v2) with cgroup_skb; they share every map with bastion_lxc.
 *
 *   bastion_from_host_network  cgroup_skb/egress:  what the container's sockets send
 *   bastion_to_host_network    cgroup_skb/ingress: what is delivered to its sockets
 *
 * Identity comes from the socket's cgroup (lib/host_network.h). Only traffic with a
 * container on the other end is judged, with the same dependency/port policy and
 * conntrack as veth containers; traffic with the host or the world passes (the container
 * shares the host's network by design). From the container: a source address that is a
 * container's is spoofed; a container destination must be a dependency with a port
 * policy, else dropped at the source (the sender gets EPERM), replies by conntrack.
 * Into the container: a container source must have it as a dependency, or be a reply.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "bastion/bpf/lib/host_network.h"
#include "bastion/bpf/lib/policy.h"
#include "bastion/bpf/lib/verdict.h"

char LICENSE[] SEC("license") = "GPL";

/* Binding and parse shared by both directions: the container id, or a finished verdict
 * (tc action) in *done. parsed is bastion_load_ipv4's result. */
static __always_inline __u32 bastion_host_network_start(struct __sk_buff *skb,
                                                        struct bastion_pkt *p, int *parsed,
                                                        int *done) {
  __u32 id = bastion_cgroup_container(skb);
  if (!id) {
    *done = bastion_drop(p, BASTION_DROP_UNBOUND);
    return 0;
  }
  p->container_id = id;
  /* IPv6 is not enforced; no container has an IPv6 address to reach. */
  if (skb->protocol != bpf_htons(ETH_P_IP)) {
    *done = bastion_pass(BASTION_PASS_STACK, TC_ACT_OK);
    return 0;
  }
  *parsed = bastion_load_ipv4(skb, p);
  if (*parsed == -1) {
    *done = bastion_drop(p, BASTION_DROP_MALFORMED);
    return 0;
  }
  return id;
}

/* The policy verdict for a packet between src and dst, one of them a container. */
static __always_inline int bastion_host_network_judge(struct bastion_pkt *p, int parsed,
                                                      __u32 src, __u32 dst) {
  if (parsed == -2) return bastion_drop(p, BASTION_DROP_FRAGMENT);
  __u32 reason = bastion_policy_check(src, dst, p);
  if (reason == 0) {
    bastion_ct_track(p);
    return bastion_pass(BASTION_PASS_STACK, TC_ACT_OK);
  }
  if (bastion_ct_is_reply(p)) return bastion_pass(BASTION_PASS_REPLY, TC_ACT_OK);
  return bastion_drop(p, reason);
}

SEC("cgroup_skb/egress")
int bastion_from_host_network(struct __sk_buff *skb) {
  struct bastion_pkt p = {.ifindex = skb->ifindex,
                          .host_network = 1,
                          .gen = bastion_active_generation(),
                          .l3_proto = bpf_ntohs(skb->protocol)};
  int parsed = 0, done = TC_ACT_OK;
  __u32 id = bastion_host_network_start(skb, &p, &parsed, &done);
  if (!id) return bastion_cgroup_action(done);
  if (bastion_is_container(bastion_classify(p.saddr, p.gen).id))
    return bastion_cgroup_action(bastion_drop(&p, BASTION_DROP_SPOOFED_IP));
  struct bastion_peer dst = bastion_classify(p.daddr, p.gen);
  if (!bastion_is_container(dst.id))
    return bastion_cgroup_action(bastion_pass(BASTION_PASS_STACK, TC_ACT_OK));
  return bastion_cgroup_action(bastion_host_network_judge(&p, parsed, id, dst.id));
}

SEC("cgroup_skb/ingress")
int bastion_to_host_network(struct __sk_buff *skb) {
  struct bastion_pkt p = {.ifindex = skb->ifindex,
                          .to_container = 1,
                          .host_network = 1,
                          .gen = bastion_active_generation(),
                          .l3_proto = bpf_ntohs(skb->protocol)};
  int parsed = 0, done = TC_ACT_OK;
  __u32 id = bastion_host_network_start(skb, &p, &parsed, &done);
  if (!id) return bastion_cgroup_action(done);
  struct bastion_peer src = bastion_classify(p.saddr, p.gen);
  if (!bastion_is_container(src.id))
    return bastion_cgroup_action(bastion_pass(BASTION_PASS_STACK, TC_ACT_OK));
  return bastion_cgroup_action(bastion_host_network_judge(&p, parsed, src.id, id));
}
