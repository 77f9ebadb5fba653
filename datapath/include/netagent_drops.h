/* Shared between the kernel-drop collector (datapath/bpf/netagent_drops.bpf.c)
 * and user space (datapath/drop_collector.cc): the count key, the flow sample
 * and the event counters. Plain fixed-width types, no padding holes, the same
 * layout for clang -target bpf and g++. Reason values are the running
 * kernel's enum skb_drop_reason: they differ between kernels, so user space
 * names them from BTF and never compares them with constants. */
#ifndef NETAGENT_DROPS_H
#define NETAGENT_DROPS_H

#ifdef __bpf__
/* vmlinux.h already defined __u8..__u64. */
#else
#include <linux/types.h>
#endif

#define ND_MAX_KEYS 4096 /* default size of drop_counts; user space may change it */

/* drop_counts: a per-CPU u64 per key. */
struct nd_key {
  __u32 reason;    /* enum skb_drop_reason of the running kernel */
  __u32 ifindex;   /* skb->dev's, else skb->skb_iif; 0: neither */
  __u16 l3_proto;  /* ethertype, host byte order (0x0800, 0x86dd, 0x0806); 0: unknown */
  __u8 l4_proto;   /* IP protocol of an IPv4/IPv6 packet (first header only), else 0 */
  __u8 pad;
};

/* nd_events: per-CPU u64 counters of what is not a drop count. */
enum nd_event {
  ND_EV_SAMPLED = 0,        /* samples written to the ring buffer */
  ND_EV_SAMPLE_CAPPED = 1,  /* drops not sampled: the per-CPU bucket was empty */
  ND_EV_SAMPLE_LOST = 2,    /* ring buffer full */
  ND_EV_TABLE_FULL = 3,     /* drops not counted: drop_counts had no room for a new key */
  ND_EV_NO_NETNS = 4,       /* drops not counted: no device and no socket, so no namespace */
  ND_EV_MAX = 5,
};

/* One sampled drop. Addresses and ports in network byte order as in the
 * packet; IPv4 addresses in the first 4 bytes. */
struct nd_sample {
  __u64 ts_ns; /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
  __u32 reason;
  __u32 ifindex;
  __u32 len; /* skb->len */
  __u16 l3_proto;
  __u8 l4_proto;
  __u8 has_ports;
  __u8 saddr[16];
  __u8 daddr[16];
  __u16 sport;
  __u16 dport;
  __u32 pad;
};

#endif /* NETAGENT_DROPS_H */
