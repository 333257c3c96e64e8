/* Multicast groups (MOM through Bastion): a datagram a container sends to a group is
 * sequenced and copied to each member's veth by the datapath; nothing reaches the bridge.
 *
 *   if (bastion_is_multicast(p.daddr)) {
 *     int r = bastion_group_send(skb, &p, binding);   // from the container (tc ingress)
 *     if (r != BASTION_GROUP_NONE) return r;
 *   }
 *   ... bastion_group_receive(skb, &p, binding) ...     // into a member (tc egress)
 *
 * A group is {address in 224.0.0.0/4, generation} -> struct bastion_group (id, UDP port,
 * up to BASTION_GROUP_MAX_MEMBERS members with their host veth and MAC). Sending:
 *   1. the sender must depend on the group (bastion_dependencies {sender, group id}),
 *      else `no_dependency`; the datagram must be UDP to the group's port, else
 *      `policy_denied`; a fragmented datagram drops (`fragment`: copies of fragments are
 *      not tracked, a group datagram must fit in one frame);
 *   2. in a sequenced group (BASTION_GROUP_STAMP) the payload must be a dctk transport
 *      frame (common/transport/framing.h: magic 0xDC7C at 0, type id at 4-7) carrying a
 *      MomPacket (type id bastion_mom_type_id, set by the loader) that starts with its
 *      group_seq field (tag 0x09 at payload offset 12), else `group_not_mom`; the program
 *      takes the next number of the group's counter (one atomic add, bastion_group_seq)
 *      and writes it little-endian at payload offsets 13-20, exactly where the MOM switch
 *      stamps it (mom/switch/packet.h kGroupSeqOffset), fixing the UDP checksum
 *      incrementally (a zero checksum, "none" in IPv4, stays zero);
 *   3. for each member on this host other than the sender (which gets its own copy by
 *      the kernel's multicast loopback), the destination MAC becomes the member's and
 *      bpf_clone_redirect sends a copy out of the member's host veth (through its
 *      bastion_to_container); the original drops. The IP destination stays the group
 *      address, so the member's socket that joined the group receives it.
 * Receiving (bastion_to_container): a group datagram enters only a member, from a sender
 * that depends on the group, UDP to the group port (else `not_for_container`,
 * `no_dependency`, `policy_denied`).
 * Cost: two hash lookups and one atomic add per datagram, plus one clone per member.
 */
#ifndef BASTION_BPF_LIB_GROUP_H_
#define BASTION_BPF_LIB_GROUP_H_

#include "bastion/bpf/lib/host_network.h"
#include "bastion/bpf/lib/maps.h"
#include "bastion/bpf/lib/packet.h"
#include "bastion/bpf/lib/policy.h"
#include "bastion/bpf/lib/verdict.h"

/* transport::TypeIdOf("dctk.mom.MomPacket"), set by the loader before load. */
const volatile __u32 bastion_mom_type_id = 0;

#define BASTION_GROUP_NONE (-1000) /* not a group address: judge like any packet */
#define BASTION_FRAME_MAGIC 0xDC7C
#define BASTION_MOM_SEQ_TAG 0x09 /* MomPacket field 1, wire type fixed64 */
#define BASTION_MOM_SEQ_OFFSET 13 /* UDP payload offset of the group_seq value */
/* The checksum is fixed over the 16-bit words (even offsets from the UDP header) that
 * cover the 8 stamped bytes: UDP offsets 20..29. */
#define BASTION_MOM_CSUM_FIRST 20
#define BASTION_MOM_CSUM_WORDS 5
#define BASTION_MOM_MIN_UDP_LEN (BASTION_MOM_CSUM_FIRST + 2 * BASTION_MOM_CSUM_WORDS)

static __always_inline int bastion_is_multicast(__be32 addr) {
  return (bpf_ntohl(addr) & 0xf0000000u) == 0xe0000000u;
}

static __always_inline struct bastion_group *bastion_group_lookup(const struct bastion_pkt *p) {
  struct bastion_group_key k = {.addr = p->daddr, .gen = p->gen};
  return bpf_map_lookup_elem(&bastion_groups, &k);
}

/* The next sequence number of the group at `addr` (1, 2, ...), 0 if the counter cannot
 * be made (map full). */
static __always_inline __u64 bastion_group_next_seq(__be32 addr) {
  __u64 *seq = bpf_map_lookup_elem(&bastion_group_seq, &addr);
  if (!seq) {
    __u64 zero = 0;
    bpf_map_update_elem(&bastion_group_seq, &addr, &zero, BPF_NOEXIST);
    seq = bpf_map_lookup_elem(&bastion_group_seq, &addr);
    if (!seq) return 0;
  }
  return __sync_fetch_and_add(seq, 1) + 1;
}

/* Stamps the group's next sequence number into a MomPacket; 0 or a drop reason. */
static __always_inline __u32 bastion_group_stamp(struct __sk_buff *skb,
                                                 const struct bastion_pkt *p) {
  __u32 udp = p->l4;
  __u8 hdr[8 + BASTION_MOM_SEQ_OFFSET]; /* UDP header + the frame up to the value */
  if (bpf_skb_load_bytes(skb, udp, hdr, sizeof(hdr)) < 0) return BASTION_DROP_GROUP_NOT_MOM;
  __u16 udp_len = ((__u16)hdr[4] << 8) | hdr[5];
  __u8 *frame = hdr + 8;
  __u32 type = ((__u32)frame[4] << 24) | ((__u32)frame[5] << 16) | ((__u32)frame[6] << 8) |
               frame[7];
  if (udp_len < BASTION_MOM_MIN_UDP_LEN || frame[0] != (BASTION_FRAME_MAGIC >> 8) ||
      frame[1] != (BASTION_FRAME_MAGIC & 0xff) || type != bastion_mom_type_id ||
      frame[12] != BASTION_MOM_SEQ_TAG)
    return BASTION_DROP_GROUP_NOT_MOM;
  __u64 seq = bastion_group_next_seq(p->daddr);
  if (!seq) return BASTION_DROP_GROUP_NOT_MOM;

  __u32 first = udp + BASTION_MOM_CSUM_FIRST;
  __u16 old_words[BASTION_MOM_CSUM_WORDS], new_words[BASTION_MOM_CSUM_WORDS];
  if (bpf_skb_load_bytes(skb, first, old_words, sizeof(old_words)) < 0)
    return BASTION_DROP_GROUP_NOT_MOM;
  __builtin_memcpy(new_words, old_words, sizeof(new_words));
  __u8 *bytes = (__u8 *)new_words; /* UDP offset 21 = payload offset 13 is bytes[1] */
#pragma unroll
  for (int i = 0; i < 8; i++) bytes[1 + i] = (__u8)(seq >> (8 * i));
  int csum = hdr[6] | hdr[7]; /* UDP checksum present (0 = none) */
  if (bpf_skb_store_bytes(skb, first, new_words, sizeof(new_words),
                          csum ? 0 : BPF_F_RECOMPUTE_CSUM) < 0)
    return BASTION_DROP_MALFORMED;
  if (csum) {
#pragma unroll
    for (int i = 0; i < BASTION_MOM_CSUM_WORDS; i++) {
      if (old_words[i] == new_words[i]) continue;
      if (bpf_l4_csum_replace(skb, udp + 6, old_words[i], new_words[i],
                              BPF_F_MARK_MANGLED_0 | sizeof(__u16)) < 0)
        return BASTION_DROP_MALFORMED;
    }
  }
  return 0;
}

/* From a container: the group verdict and delivery of a datagram to a multicast address,
 * or BASTION_GROUP_NONE if the address is no group (the caller judges it as the world). */
static __always_inline int bastion_group_send(struct __sk_buff *skb, struct bastion_pkt *p,
                                              const struct bastion_binding *b) {
  struct bastion_group *g = bastion_group_lookup(p);
  if (!g) return BASTION_GROUP_NONE;
  if (!bastion_has_dependency(b->container_id, g->id, p->gen))
    return bastion_drop(p, BASTION_DROP_NO_DEPENDENCY);
  if (p->proto != IPPROTO_UDP || p->dport != g->port)
    return bastion_drop(p, BASTION_DROP_POLICY_DENIED);
  if (p->first_fragment) return bastion_drop(p, BASTION_DROP_FRAGMENT);
  if (g->flags & BASTION_GROUP_STAMP) {
    __u32 reason = bastion_group_stamp(skb, p);
    if (reason) return bastion_drop(p, reason);
  }
  __u32 n = g->n_members;
  for (__u32 i = 0; i < BASTION_GROUP_MAX_MEMBERS; i++) {
    if (i >= n) break;
    struct bastion_group_member *m = &g->members[i];
    if (!m->ifindex || m->ifindex == p->ifindex) continue;
    if (bpf_skb_store_bytes(skb, 0, m->mac, ETH_ALEN, 0) < 0 ||
        bpf_clone_redirect(skb, m->ifindex, 0) < 0)
      bastion_count(BASTION_GROUP_COPY_FAILED);
  }
  return bastion_pass(BASTION_PASS_GROUP, TC_ACT_SHOT);
}

/* Into a container: a datagram addressed to a multicast group. `parsed` is
 * bastion_parse_ipv4's result. */
static __always_inline int bastion_group_receive(struct __sk_buff *skb, struct bastion_pkt *p,
                                                 const struct bastion_binding *b, int parsed) {
  struct bastion_group *g = bastion_group_lookup(p);
  if (!g) return bastion_drop(p, BASTION_DROP_NOT_FOR_CONTAINER);
  int member = 0;
  __u32 n = g->n_members;
  for (__u32 i = 0; i < BASTION_GROUP_MAX_MEMBERS; i++) {
    if (i >= n) break;
    if (g->members[i].container_id == b->container_id) {
      member = 1;
      break;
    }
  }
  if (!member) return bastion_drop(p, BASTION_DROP_NOT_FOR_CONTAINER);
  __u32 sender = bastion_cgroup_container(skb);
  struct bastion_peer src = bastion_classify(p->saddr, p->gen);
  if (sender) {
    if (bastion_is_container(src.id)) return bastion_drop(p, BASTION_DROP_SPOOFED_IP);
    src.id = sender;
  }
  if (!bastion_has_dependency(src.id, g->id, p->gen))
    return bastion_drop(p, BASTION_DROP_NO_DEPENDENCY);
  if (parsed == -2 || p->first_fragment) return bastion_drop(p, BASTION_DROP_FRAGMENT);
  if (p->proto != IPPROTO_UDP || p->dport != g->port)
    return bastion_drop(p, BASTION_DROP_POLICY_DENIED);
  return bastion_pass(BASTION_PASS_STACK, TC_ACT_OK);
}

#endif /* BASTION_BPF_LIB_GROUP_H_ */
