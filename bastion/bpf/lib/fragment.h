/* IPv4 fragments: the later fragments of a datagram get its first fragment's verdict.
 *
 * Only the first fragment (offset 0, MF set) carries the L4 header, so only it can be
 * judged by policy. When it passes (by policy or as a conntrack reply), its verdict and
 * forwarding target are recorded under {saddr, daddr, IP id, protocol, direction} in the
 * LRU map bastion_fragments; a later fragment (offset > 0) looks that key up (one hash
 * lookup) and gets the same verdict and the same forwarding. A denied first fragment
 * removes any stale record of its key.
 *   if (parsed == -2) return bastion_fragment_follow(skb, &p);      // later fragment
 *   bastion_fragment_record(&p, verdict, dst.endpoint);             // first, allowed
 * Limits: a later fragment that arrives before its first fragment has no record and
 * drops (`fragment`); the datagram is then lost and the application retransmits (UDP) or
 * TCP does. Records expire after BASTION_FRAG_LIFETIME_NS (Linux's ipfrag_time), so a
 * reused IP id cannot ride on an old datagram's verdict for long. Source verification is
 * done by the caller on every fragment, before this.
 */
#ifndef BASTION_BPF_LIB_FRAGMENT_H_
#define BASTION_BPF_LIB_FRAGMENT_H_

#include "bastion/bpf/lib/forward.h"
#include "bastion/bpf/lib/maps.h"
#include "bastion/bpf/lib/packet.h"
#include "bastion/bpf/lib/verdict.h"

#define BASTION_FRAG_LIFETIME_NS (30ull * 1000 * 1000 * 1000)

static __always_inline struct bastion_frag_key bastion_frag_key_of(const struct bastion_pkt *p) {
  struct bastion_frag_key k = {.saddr = p->saddr,
                               .daddr = p->daddr,
                               .id = p->ip_id,
                               .proto = p->proto,
                               .to_container = (__u8)(p->to_container ? 1 : 0)};
  return k;
}

/* After the first fragment passed with `verdict`: lets its later fragments follow it,
 * redirected to `peer` if it is set (direct forwarding), else to the stack. No-op for
 * unfragmented packets. */
static __always_inline void bastion_fragment_record(const struct bastion_pkt *p, __u32 verdict,
                                                    const struct bastion_endpoint *peer) {
  if (!p->first_fragment) return;
  struct bastion_frag_key k = bastion_frag_key_of(p);
  struct bastion_frag_entry e = {.first_seen_ns = bpf_ktime_get_ns(), .verdict = verdict};
  if (peer) {
    e.ifindex = peer->ifindex;
    bastion_mac_copy(e.mac, peer->mac);
  }
  bpf_map_update_elem(&bastion_fragments, &k, &e, BPF_ANY);
}

/* After the first fragment was denied: its later fragments must not pass on an older
 * datagram's record of the same key. */
static __always_inline void bastion_fragment_forget(const struct bastion_pkt *p) {
  if (!p->first_fragment) return;
  struct bastion_frag_key k = bastion_frag_key_of(p);
  bpf_map_delete_elem(&bastion_fragments, &k);
}

/* The verdict of a later fragment (parse result -2): its first fragment's, or a
 * `fragment` drop if none was recorded (or the record expired). */
static __always_inline int bastion_fragment_follow(struct __sk_buff *skb,
                                                   const struct bastion_pkt *p) {
  struct bastion_frag_key k = bastion_frag_key_of(p);
  struct bastion_frag_entry *e = bpf_map_lookup_elem(&bastion_fragments, &k);
  if (!e || bpf_ktime_get_ns() - e->first_seen_ns > BASTION_FRAG_LIFETIME_NS)
    return bastion_drop(p, BASTION_DROP_FRAGMENT);
  if (e->ifindex) {
    struct bastion_endpoint peer = {.ifindex = e->ifindex};
    bastion_mac_copy(peer.mac, e->mac);
    return bastion_forward_peer(skb, &peer, e->verdict);
  }
  return bastion_pass(e->verdict, TC_ACT_OK);
}

#endif /* BASTION_BPF_LIB_FRAGMENT_H_ */
