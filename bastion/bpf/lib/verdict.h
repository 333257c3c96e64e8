/* Verdicts: one counter per packet, an event per drop, audit mode.
 *
 *   return bastion_drop(&pkt, BASTION_DROP_SPOOFED_IP);   // TC_ACT_SHOT, or TC_ACT_OK in audit
 *   return bastion_pass(BASTION_PASS_STACK, TC_ACT_OK);
 */
#ifndef BASTION_BPF_LIB_VERDICT_H_
#define BASTION_BPF_LIB_VERDICT_H_

#include <linux/pkt_cls.h>

#include "bastion/bpf/lib/maps.h"
#include "bastion/bpf/lib/packet.h"

static __always_inline void bastion_count(__u32 verdict) {
  __u64 *n = bpf_map_lookup_elem(&bastion_counters, &verdict);
  if (n) *n += 1; /* per-CPU slot: no atomics needed */
}

static __always_inline int bastion_pass(__u32 verdict, int action) {
  bastion_count(verdict);
  return action;
}

static __always_inline int bastion_reason_auditable(__u32 reason) {
#define BASTION_AUDITABLE_(code, value, name, help, auditable) \
  if (reason == code) return auditable;
  BASTION_FOR_EACH_DROP_REASON(BASTION_AUDITABLE_)
#undef BASTION_AUDITABLE_
  return 0;
}

static __always_inline int bastion_audit_mode(void) {
  __u32 zero = 0;
  struct bastion_config *c = bpf_map_lookup_elem(&bastion_config, &zero);
  return c && (c->flags & BASTION_CONFIG_AUDIT);
}

static __always_inline void bastion_emit(const struct bastion_pkt *p, __u32 reason,
                                         __u32 flags) {
  struct bastion_event *e = bpf_ringbuf_reserve(&bastion_events, sizeof(*e), 0);
  if (!e) {
    bastion_count(BASTION_EVENT_LOST);
    return;
  }
  e->timestamp_ns = bpf_ktime_get_ns();
  e->ifindex = p->ifindex;
  e->container_id = p->container_id;
  e->saddr = p->saddr;
  e->daddr = p->daddr;
  e->sport = p->sport;
  e->dport = p->dport;
  e->l3_proto = p->l3_proto;
  e->proto = p->proto;
  e->reason = reason;
  e->flags = flags | (p->to_container ? BASTION_EVENT_TO_CONTAINER : 0) |
             (p->host_network ? BASTION_EVENT_HOST_NETWORK : 0);
  bpf_ringbuf_submit(e, 0);
}

/* Drops with `reason`, or in audit mode lets an auditable packet through to the stack
 * (never to direct forwarding: the policy said no). Either way counted and recorded. */
static __always_inline int bastion_drop(const struct bastion_pkt *p, __u32 reason) {
  bastion_count(reason);
  if (bastion_reason_auditable(reason) && bastion_audit_mode()) {
    bastion_emit(p, reason, BASTION_EVENT_AUDIT);
    return bastion_pass(BASTION_PASS_AUDIT, TC_ACT_OK);
  }
  bastion_emit(p, reason, 0);
  return TC_ACT_SHOT;
}

#endif /* BASTION_BPF_LIB_VERDICT_H_ */
