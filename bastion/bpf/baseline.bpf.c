/* Benchmark baseline: the cheapest tc program (returns TC_ACT_OK), measured in the same
 * run as the Bastion programs to separate BPF_PROG_TEST_RUN overhead from policy cost. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tc")
int baseline_pass(struct __sk_buff *skb) { return TC_ACT_OK; }
