/* Packet parsing for the Bastion datapath: Ethernet, then IPv4 (+TCP/UDP ports) or ARP.
 *
 *   struct bastion_pkt p = {};
 *   if (bastion_parse_eth(skb, &p) < 0) return bastion_drop(&p, BASTION_DROP_MALFORMED);
 *
 * Headers are read with direct packet access; when they are not in the linear part,
 * the skb is pulled once and the pointers re-derived.
 */
#ifndef BASTION_BPF_LIB_PACKET_H_
#define BASTION_BPF_LIB_PACKET_H_

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* linux/if_arp.h pulls in libc headers, which do not build for -target bpf. */
#define BASTION_ARPHRD_ETHER 1
#define BASTION_ARPOP_REQUEST 1
#define BASTION_ARPOP_REPLY 2

/* ARP for Ethernet/IPv4, as it is on the wire (struct arphdr + addresses). */
struct bastion_arp {
  __be16 htype;
  __be16 ptype;
  __u8 hlen;
  __u8 plen;
  __be16 op;
  __u8 sha[ETH_ALEN];
  __be32 spa;
  __u8 tha[ETH_ALEN];
  __be32 tpa;
} __attribute__((packed));

/* What the verdict code needs to know about a packet (and to report in events). */
struct bastion_pkt {
  __u32 ifindex;
  __u32 container_id;
  __u32 to_container;
  __u8 host_network; /* seen by a host-network container's cgroup program */
  __u8 gen;          /* policy generation this packet is judged by (read once) */
  __u16 l3_proto; /* host order */
  __u8 proto;
  __be32 saddr;
  __be32 daddr;
  __be16 sport;
  __be16 dport;
  /* ICMP destination-unreachable / time-exceeded: the tuple of the packet it answers. */
  __u8 related;
  __u8 inner_proto;
  __be32 inner_saddr;
  __be32 inner_daddr;
  __be16 inner_sport;
  __be16 inner_dport;
  /* IPv4 fragments: identification, and whether this is the first (offset 0, MF set)
   * or a later one (offset > 0). */
  __be16 ip_id;
  __u8 first_fragment;
  __u16 l4; /* offset of the TCP/UDP header in the frame (0 for other protocols) */
};

#define BASTION_ICMP_DEST_UNREACH 3
#define BASTION_ICMP_TIME_EXCEEDED 11

#define BASTION_IP_FRAG_OFFSET 0x1fff
#define BASTION_IP_MORE_FRAGMENTS 0x2000

static __always_inline int bastion_pull(struct __sk_buff *skb, __u32 len) {
  if ((long)skb->data + len <= (long)skb->data_end) return 0;
  if (skb->len < len) return -1;
  return bpf_skb_pull_data(skb, len) == 0 &&
                 (long)skb->data + len <= (long)skb->data_end
             ? 0
             : -1;
}

static __always_inline struct ethhdr *bastion_eth(struct __sk_buff *skb) {
  void *data = (void *)(long)skb->data;
  if (data + sizeof(struct ethhdr) > (void *)(long)skb->data_end) return 0;
  return data;
}

static __always_inline struct bastion_arp *bastion_arp_hdr(struct __sk_buff *skb) {
  if (bastion_pull(skb, ETH_HLEN + sizeof(struct bastion_arp)) < 0) return 0;
  void *data = (void *)(long)skb->data;
  struct bastion_arp *arp = data + ETH_HLEN;
  if ((void *)(arp + 1) > (void *)(long)skb->data_end) return 0;
  if (arp->htype != bpf_htons(BASTION_ARPHRD_ETHER) || arp->ptype != bpf_htons(ETH_P_IP) ||
      arp->hlen != ETH_ALEN || arp->plen != 4)
    return 0;
  return arp;
}

/* For ICMP errors, records the embedded tuple (IPv4 header + 8 bytes of the original)
 * so the error can pass as related to a tracked connection. Other ICMP: no ports. */
static __always_inline int bastion_parse_icmp_error(struct __sk_buff *skb, __u32 l4,
                                                    struct bastion_pkt *p) {
  if (bastion_pull(skb, l4 + 8 + sizeof(struct iphdr) + 4) < 0) return 0;
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  __u8 *icmp = data + l4;
  if ((void *)(icmp + 8) > end) return 0;
  if (icmp[0] != BASTION_ICMP_DEST_UNREACH && icmp[0] != BASTION_ICMP_TIME_EXCEEDED) return 0;
  struct iphdr *inner = (void *)(icmp + 8);
  if ((void *)(inner + 1) > end || inner->ihl != 5) return 0;
  __be16 *ports = (void *)(inner + 1);
  if ((void *)(ports + 2) > end) return 0;
  p->related = 1;
  p->inner_proto = inner->protocol;
  p->inner_saddr = inner->saddr;
  p->inner_daddr = inner->daddr;
  if (inner->protocol == IPPROTO_TCP || inner->protocol == IPPROTO_UDP) {
    p->inner_sport = ports[0];
    p->inner_dport = ports[1];
  }
  return 0;
}

/* Fills the IPv4 part of `p`. Returns 0, -1 if malformed, -2 for a non-first fragment
 * (then only addresses, protocol and ip_id are set: it has no L4 header). */
static __always_inline int bastion_parse_ipv4(struct __sk_buff *skb, struct bastion_pkt *p) {
  if (bastion_pull(skb, ETH_HLEN + sizeof(struct iphdr)) < 0) return -1;
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  struct iphdr *ip = data + ETH_HLEN;
  if ((void *)(ip + 1) > end || ip->ihl < 5) return -1;
  p->saddr = ip->saddr;
  p->daddr = ip->daddr;
  p->proto = ip->protocol;
  p->ip_id = ip->id;
  if (ip->frag_off & bpf_htons(BASTION_IP_FRAG_OFFSET)) return -2;
  p->first_fragment = (ip->frag_off & bpf_htons(BASTION_IP_MORE_FRAGMENTS)) != 0;
  __u32 l4 = ETH_HLEN + ((__u32)ip->ihl & 0xf) * 4;
  if (ip->protocol == IPPROTO_ICMP) return bastion_parse_icmp_error(skb, l4, p);
  if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP) return 0;
  if (bastion_pull(skb, l4 + 4) < 0) return -1;
  p->l4 = (__u16)l4;
  data = (void *)(long)skb->data;
  end = (void *)(long)skb->data_end;
  __be16 *ports = data + l4;
  if ((void *)(ports + 2) > end) return -1;
  p->sport = ports[0];
  p->dport = ports[1];
  return 0;
}

static __always_inline int bastion_mac_equal(const __u8 *a, const __u8 *b) {
  return *(const __u32 *)a == *(const __u32 *)b &&
         *(const __u16 *)(a + 4) == *(const __u16 *)(b + 4);
}

static __always_inline void bastion_mac_copy(__u8 *dst, const __u8 *src) {
  *(__u32 *)dst = *(const __u32 *)src;
  *(__u16 *)(dst + 4) = *(const __u16 *)(src + 4);
}

#endif /* BASTION_BPF_LIB_PACKET_H_ */
