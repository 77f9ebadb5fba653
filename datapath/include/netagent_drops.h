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

#define ND_MAX_KEYS 1024 /* default size of drop_counts; user space may change it */
#define ND_SLOT_BITS 9
#define ND_SLOTS (1 << ND_SLOT_BITS) /* slots of each CPU's table in drop_slots */
#define ND_PROBES 4                  /* slots tried for a key before it goes to drop_counts */

struct nd_key {
  __u32 reason;   /* enum skb_drop_reason of the running kernel */
  __u32 ifindex;  /* skb->dev's, else skb->skb_iif; 0: neither */
  __u16 l3_proto; /* ethertype, host byte order (0x0800, 0x86dd, 0x0806); 0: unknown */
  __u8 l4_proto;  /* IP protocol of an IPv4/IPv6 packet (first header only), else 0 */
  __u8 pad;
};

/* The slot of a CPU's table a key tries first; the next ND_PROBES - 1 follow
 * it (wrapping). The program holds a key as two words, `lo` its first 8 bytes
 * (reason, ifindex: little-endian) and `hi` the next 4 (the protocols), and
 * hashes them with one multiply, keeping the top bits. In this header so that
 * tests can tell which keys share a first slot. */
static inline __u32 nd_slot_home_words(__u64 lo, __u32 hi) {
  return (__u32)(((lo ^ (__u64)hi << 8) * 0x9e3779b97f4a7c15ull) >> (64 - ND_SLOT_BITS));
}

static inline __u32 nd_slot_home(const struct nd_key* k) {
  return nd_slot_home_words((__u64)k->ifindex << 32 | k->reason,
                            (__u32)k->l3_proto | (__u32)k->l4_proto << 16);
}

/* drop_slots: a PERCPU_ARRAY of one struct nd_slots, so each CPU has its own
 * open-addressed table of counts and no CPU ever writes another's (no atomic,
 * no lock, no hash-map call: ~40 ns less per drop than the hash here). A key
 * lives in the first free or matching slot of ND_PROBES from nd_slot_home; a
 * slot with count 0 is free. A key finding none goes to drop_counts, a
 * per-CPU hash of u64 counts. A key's total is the sum over every CPU's slot
 * holding it and its drop_counts values. The table also holds the CPU's
 * sampler state, so a drop looks up one map value. */
struct nd_slot {
  struct nd_key key;
  __u32 pad;
  __u64 count;
};

/* The flow sampler's token bucket (see the program); user space ignores it. */
struct nd_sampler {
  __u64 last_ns;
  __u64 tokens;        /* NSEC_PER_SEC per sample */
  __u64 empty_jiffies; /* the bucket was found empty in this jiffy (0: not) */
};

struct nd_slots {
  struct nd_sampler sampler;
  struct nd_slot slot[ND_SLOTS];
};

/* nd_events: per-CPU u64 counters of what is not a drop count. Drops the
 * sampler passed over are not counted here (that would cost every drop a
 * map update): they are the drops counted minus those sampled and lost. */
enum nd_event {
  ND_EV_SAMPLED = 0,     /* samples written to the ring buffer */
  ND_EV_SAMPLE_LOST = 1, /* ring buffer full */
  ND_EV_TABLE_FULL = 2,  /* drops not counted: drop_counts had no room for a new key */
  ND_EV_NO_NETNS = 3,    /* drops not counted: no device and no socket, so no namespace */
  ND_EV_MAX = 4,
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
