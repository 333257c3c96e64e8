/* Verdict codes of the Bastion datapath, shared by the eBPF programs and user space.
 *
 * Every packet a Bastion program sees ends in exactly one verdict counter: a pass
 * verdict (BASTION_PASS_*) or a drop reason (BASTION_DROP_*). Drop reasons are also the
 * `reason` of ring-buffer events. The lists are declared once and expanded, so user
 * space gets names and descriptions from the same source as the kernel:
 *
 *   #define NAME(code, value, name, help) case code: return name;
 *   switch (reason) { BASTION_FOR_EACH_DROP_REASON(NAME) }
 *
 * Auditable reasons (policy decisions) are let through in audit mode and recorded;
 * the others (spoofing, malformed packets) always drop.
 */
#ifndef BASTION_BPF_LIB_DROP_REASONS_H_
#define BASTION_BPF_LIB_DROP_REASONS_H_

/* X(code, value, name, description) */
#define BASTION_FOR_EACH_PASS_VERDICT(X)                                              \
  X(BASTION_PASS_FORWARDED, 0, "forwarded",                                           \
    "allowed by policy, redirected straight to the peer container")                   \
  X(BASTION_PASS_STACK, 1, "passed", "allowed by policy, handed to the stack/bridge") \
  X(BASTION_PASS_REPLY, 2, "reply", "reply of a tracked allowed connection")          \
  X(BASTION_PASS_ARP_ANSWERED, 3, "arp_answered",                                     \
    "ARP request for a dependency answered by the datapath")                          \
  X(BASTION_PASS_ARP, 4, "arp_passed", "ARP for a host/gateway or to this container") \
  X(BASTION_PASS_AUDIT, 5, "audit_passed",                                            \
    "would have dropped, let through in audit mode")                                  \
  X(BASTION_EVENT_LOST, 6, "events_lost", "verdict event lost: ring buffer full")     \
  X(BASTION_PASS_GROUP, 7, "group_forwarded",                                         \
    "datagram to a multicast group: copied to each member's veth, original dropped")  \
  X(BASTION_GROUP_COPY_FAILED, 8, "group_copy_failed",                                \
    "one member's copy of a group datagram could not be redirected")

/* X(code, value, name, description, auditable) */
#define BASTION_FOR_EACH_DROP_REASON(X)                                               \
  X(BASTION_DROP_MALFORMED, 16, "malformed", "truncated or unparsable header", 0)     \
  X(BASTION_DROP_UNBOUND, 17, "unbound",                                              \
    "interface has no bound container", 0)                                            \
  X(BASTION_DROP_SPOOFED_MAC, 18, "spoofed_mac",                                      \
    "source MAC is not the bound container's", 0)                                     \
  X(BASTION_DROP_SPOOFED_IP, 19, "spoofed_ip",                                        \
    "source IPv4 is not the bound container's", 0)                                    \
  X(BASTION_DROP_ARP_SPOOFED, 20, "arp_spoofed",                                      \
    "ARP sender MAC/IP is not the container's own", 0)                                \
  X(BASTION_DROP_ARP_NO_DEPENDENCY, 21, "arp_no_dependency",                          \
    "ARP request for an address that is not a dependency", 1)                         \
  X(BASTION_DROP_NOT_FOR_CONTAINER, 22, "not_for_container",                          \
    "packet entering a container not addressed to it", 1)                             \
  X(BASTION_DROP_NO_DEPENDENCY, 23, "no_dependency",                                  \
    "destination container is not a dependency of the source", 1)                     \
  X(BASTION_DROP_POLICY_DENIED, 24, "policy_denied",                                  \
    "protocol/port not allowed between the two containers", 1)                        \
  X(BASTION_DROP_HOST_DENIED, 25, "host_denied",                                      \
    "host/gateway service not in the container's policy", 1)                          \
  X(BASTION_DROP_WORLD_DENIED, 26, "world_denied",                                    \
    "address outside the container network not in policy", 1)                         \
  X(BASTION_DROP_UNSUPPORTED_L3, 27, "unsupported_l3",                                \
    "neither IPv4 nor ARP (IPv6 is not enforced yet, so it is dropped)", 0)           \
  X(BASTION_DROP_FRAGMENT, 28, "fragment",                                            \
    "IPv4 later fragment whose first fragment was not allowed (or not seen)", 0)      \
  X(BASTION_DROP_GROUP_NOT_MOM, 29, "group_not_mom",                                  \
    "datagram to a sequenced group without a MomPacket group_seq slot", 0)             \
  X(BASTION_DROP_IGMP, 30, "igmp",                                                     \
    "IGMP from a container (group membership is policy, not IGMP)", 0)

#define BASTION_PASS_ENUM_(code, value, name, help) code = value,
#define BASTION_DROP_ENUM_(code, value, name, help, auditable) code = value,
enum bastion_verdict {
  BASTION_FOR_EACH_PASS_VERDICT(BASTION_PASS_ENUM_)
  BASTION_FOR_EACH_DROP_REASON(BASTION_DROP_ENUM_)
  BASTION_COUNTER_MAX = 32,
};
#undef BASTION_PASS_ENUM_
#undef BASTION_DROP_ENUM_

#define BASTION_DROP_FIRST BASTION_DROP_MALFORMED

#endif /* BASTION_BPF_LIB_DROP_REASONS_H_ */
