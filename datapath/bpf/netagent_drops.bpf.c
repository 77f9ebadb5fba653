// SPDX-License-Identifier: GPL-2.0
/* Kernel drops as evidence: on the skb:kfree_skb tracepoint (BTF-typed, so
 * the arguments are read straight from the context and the skb's fields
 * without helper calls), every freed skb whose reason is a drop is counted
 * per (reason, device, ethertype, IP protocol) in a per-CPU table (with a
 * per-CPU hash for keys it has no room for; see netagent_drops.h), and a few
 * of them per second per CPU are copied as flow samples into a ring buffer.
 *
 * The tracepoint's `reason` argument exists since 5.17; user space checks the
 * tracepoint's BTF prototype before loading. The values that mean "not a
 * drop" (SKB_NOT_DROPPED_YET, SKB_CONSUMED where the kernel has them) are
 * looked up in the running kernel's BTF and set before load; so is the
 * network namespace whose drops count (its inode; 0: every namespace) and the
 * sample rate. Nothing here is pinned: the collector lives with the agent.
 *
 * This runs for every dropped packet, so the count path is kept to loads and
 * stores into this CPU's own table: the IP protocol is read through bpf_rdonly_cast (6.2+; the
 * verifier turns it into a plain load) where the kernel has it, and through
 * bpf_probe_read_kernel (a helper call, ~35 ns more here) in the _compat
 * program otherwise; user space loads one of the two. The sampler looks at
 * its bucket (and reads the clock) only while it may hold a token: once found
 * empty, not again before the next jiffy, so a flood pays a jiffies load and
 * a compare per drop, and the clock at most HZ times a second per CPU. */
/* clang-format off */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "netagent_drops.h"
/* clang-format on */

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define NH_TCP 6
#define NH_UDP 17
#define NSEC_PER_SEC 1000000000ull
#define NO_HEADER 0xffff /* skb->network_header not set */

char LICENSE[] SEC("license") = "GPL";

/* Weak: absent before 6.2, when only the _compat program is loaded. */
extern void* bpf_rdonly_cast(const void* obj, __u32 btf_id) __ksym __weak;

/* Reasons that are not drops on the running kernel; ~0 when it has no such value. */
const volatile __u32 not_drop_a = ~0u;
const volatile __u32 not_drop_b = ~0u;
/* Count only drops in this network namespace (inode of its nsfs file); 0: all. */
const volatile __u32 netns_ino = 0;
/* Flow samples per second per CPU (a token bucket holding one second's worth); 0: none. */
const volatile __u32 sample_rate = 0;
/* Slots of the CPU's table tried per key (tests set 0: every key to drop_counts). */
const volatile __u32 slot_probes = ND_PROBES;

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct nd_slots);
} drop_slots SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
  __uint(max_entries, ND_MAX_KEYS);
  __type(key, struct nd_key);
  __type(value, __u64);
} drop_counts SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, ND_EV_MAX);
  __type(key, __u32);
  __type(value, __u64);
} nd_events SEC(".maps");

struct nd_bucket {
  __u64 last_ns;
  __u64 tokens;        /* NSEC_PER_SEC per sample */
  __u64 empty_jiffies; /* the bucket was found empty in this jiffy (0: not) */
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct nd_bucket);
} nd_bucket SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 256 * 1024);
} nd_samples SEC(".maps");

static __always_inline void bump(__u32 ev) {
  __u64* v = bpf_map_lookup_elem(&nd_events, &ev);
  if (v) *v += 1;
}

/* Per CPU, so no other CPU races on it. A bucket never used has last_ns 0
 * and starts full. */
static __always_inline int take_sample_token(struct nd_bucket* b, __u64 now) {
  __u64 cap = (__u64)sample_rate * NSEC_PER_SEC;
  __u64 dt = now - b->last_ns;
  __u64 tokens = dt >= NSEC_PER_SEC ? cap : b->tokens + dt * sample_rate;
  if (tokens > cap) tokens = cap;
  b->last_ns = now;
  if (tokens < NSEC_PER_SEC) {
    b->tokens = tokens;
    return 0;
  }
  b->tokens = tokens - NSEC_PER_SEC;
  return 1;
}

/* Addresses and ports from the network header; the first header only (no
 * IPv6 extension headers, no ports of a non-first IPv4 fragment). */
static __always_inline void sample_flow(struct sk_buff* skb, const struct nd_key* k, __u64 now) {
  struct nd_sample* s = bpf_ringbuf_reserve(&nd_samples, sizeof(*s), 0);
  if (!s) {
    bump(ND_EV_SAMPLE_LOST);
    return;
  }
  __builtin_memset(s, 0, sizeof(*s));
  s->ts_ns = now;
  s->reason = k->reason;
  s->ifindex = k->ifindex;
  s->len = skb->len;
  s->l3_proto = k->l3_proto;
  s->l4_proto = k->l4_proto;
  unsigned char* head = skb->head;
  __u16 nh = skb->network_header;
  __u32 l4 = 0;
  if (nh != NO_HEADER && k->l3_proto == ETH_P_IP) {
    __u8 ip[20];
    if (bpf_probe_read_kernel(ip, sizeof(ip), head + nh) == 0) {
      __builtin_memcpy(s->saddr, ip + 12, 4);
      __builtin_memcpy(s->daddr, ip + 16, 4);
      /* Fragment offset 0 (the first fragment or no fragment). */
      if ((ip[6] & 0x1f) == 0 && ip[7] == 0) l4 = nh + (ip[0] & 0x0f) * 4;
    }
  } else if (nh != NO_HEADER && k->l3_proto == ETH_P_IPV6) {
    __u8 ip6[40];
    if (bpf_probe_read_kernel(ip6, sizeof(ip6), head + nh) == 0) {
      __builtin_memcpy(s->saddr, ip6 + 8, 16);
      __builtin_memcpy(s->daddr, ip6 + 24, 16);
      l4 = nh + 40;
    }
  }
  if (l4 && (k->l4_proto == NH_TCP || k->l4_proto == NH_UDP)) {
    __u16 ports[2];
    if (bpf_probe_read_kernel(ports, sizeof(ports), head + l4) == 0) {
      s->sport = ports[0];
      s->dport = ports[1];
      s->has_ports = 1;
    }
  }
  /* No wakeup: user space drains the ring on a timer, so a drop never pays
   * for waking a reader. */
  bpf_ringbuf_submit(s, BPF_RB_NO_WAKEUP);
  bump(ND_EV_SAMPLED);
}

/* Every drop goes through here, and it keeps no count of the drops it does
 * not sample: user space derives them (drops counted - sampled - lost). */
static __always_inline void maybe_sample(struct sk_buff* skb, const struct nd_key* k) {
  __u32 zero = 0;
  struct nd_bucket* b = bpf_map_lookup_elem(&nd_bucket, &zero);
  if (!b) return;
  __u64 j = bpf_jiffies64(); /* inlined: a load */
  if (b->empty_jiffies == j) return;
  /* The coarse clock is refused to tracing programs. */
  __u64 now = bpf_ktime_get_ns();
  if (take_sample_token(b, now)) {
    b->empty_jiffies = 0;
    sample_flow(skb, k, now);
  } else {
    b->empty_jiffies = j;
  }
}

static __always_inline int same_key(const struct nd_key* a, const struct nd_key* b) {
  return a->reason == b->reason && a->ifindex == b->ifindex && a->l3_proto == b->l3_proto &&
         a->l4_proto == b->l4_proto;
}

static __always_inline void count_key(const struct nd_key* k) {
  __u32 zero = 0;
  struct nd_slots* t = bpf_map_lookup_elem(&drop_slots, &zero);
  if (t) {
    __u32 h = k->reason * 0x9e3779b1u ^ k->ifindex * 0x85ebca6bu ^
              (((__u32)k->l3_proto << 8) | k->l4_proto) * 0xc2b2ae35u;
    h ^= h >> 15;
#pragma unroll
    for (int i = 0; i < ND_PROBES; i++) {
      if (i >= slot_probes) break;
      struct nd_slot* s = &t->slot[(h + i) & (ND_SLOTS - 1)];
      if (s->count == 0) {
        s->key = *k;
        s->count = 1;
        return;
      }
      if (same_key(&s->key, k)) {
        s->count += 1;
        return;
      }
    }
  }
  __u64* count = bpf_map_lookup_elem(&drop_counts, k);
  if (count) {
    *count += 1;
    return;
  }
  __u64 one = 1;
  if (bpf_map_update_elem(&drop_counts, k, &one, BPF_NOEXIST) == 0) return;
  /* Another CPU inserted the key first, or the table is full. */
  count = bpf_map_lookup_elem(&drop_counts, k);
  if (count)
    *count += 1;
  else
    bump(ND_EV_TABLE_FULL);
}

/* The count; `cast`: the IP protocol through bpf_rdonly_cast, else through
 * bpf_probe_read_kernel. */
static __always_inline int count_drop(struct sk_buff* skb, __u32 r, const int cast) {
  if (r == not_drop_a || r == not_drop_b) return 0;

  struct net_device* dev = skb->dev;
  if (netns_ino) {
    __u32 ino;
    if (dev) {
      ino = dev->nd_net.net->ns.inum;
    } else {
      struct sock* sk = skb->sk;
      if (!sk) {
        bump(ND_EV_NO_NETNS);
        return 0;
      }
      ino = sk->__sk_common.skc_net.net->ns.inum;
    }
    if (ino != netns_ino) return 0;
  }

  struct nd_key k = {};
  k.reason = r;
  k.ifindex = dev ? dev->ifindex : skb->skb_iif;
  k.l3_proto = bpf_ntohs(skb->protocol);
  __u16 nh = skb->network_header;
  if (nh != NO_HEADER) {
    unsigned char* head = skb->head;
    if (k.l3_proto == 0) {
      /* Some paths free a packet before setting skb->protocol: the IP version. */
      __u8 b = 0;
      bpf_probe_read_kernel(&b, 1, head + nh);
      if ((b >> 4) == 4) k.l3_proto = ETH_P_IP;
      if ((b >> 4) == 6) k.l3_proto = ETH_P_IPV6;
    }
    if (cast) {
      if (k.l3_proto == ETH_P_IP) {
        struct iphdr* ip = bpf_rdonly_cast(head + nh, bpf_core_type_id_kernel(struct iphdr));
        k.l4_proto = ip->protocol;
      } else if (k.l3_proto == ETH_P_IPV6) {
        struct ipv6hdr* ip6 = bpf_rdonly_cast(head + nh, bpf_core_type_id_kernel(struct ipv6hdr));
        k.l4_proto = ip6->nexthdr;
      }
    } else {
      if (k.l3_proto == ETH_P_IP)
        bpf_probe_read_kernel(&k.l4_proto, 1, head + nh + 9);
      else if (k.l3_proto == ETH_P_IPV6)
        bpf_probe_read_kernel(&k.l4_proto, 1, head + nh + 6);
    }
  }

  count_key(&k);
  if (sample_rate) maybe_sample(skb, &k);
  return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(nd_kfree_skb, struct sk_buff* skb, void* location, enum skb_drop_reason reason) {
  return count_drop(skb, (__u32)reason, 1);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(nd_kfree_skb_compat, struct sk_buff* skb, void* location,
             enum skb_drop_reason reason) {
  return count_drop(skb, (__u32)reason, 0);
}
