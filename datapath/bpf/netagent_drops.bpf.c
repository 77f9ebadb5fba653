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
 * stores into this CPU's own table, laid out for the common case (a key seen
 * before, in its first slot, on a device of the namespace): one map lookup
 * (the verifier inlines it), the namespace through the device alone, the IP
 * protocol read only for IPv4/IPv6, the key held in two registers and
 * compared with the slot's two words. The IP protocol is read through
 * bpf_rdonly_cast (6.2+; the verifier turns it into a plain load) where the
 * kernel has it, and through bpf_probe_read_kernel (a helper call, ~35 ns more
 * here) in the _compat program otherwise; user space loads one of the two.
 * The sampler looks at its bucket (and reads the clock) only while it may
 * hold a token: once found empty, not again before the next jiffy, so a
 * flood pays a jiffies load and a compare per drop, and the clock at most HZ
 * times a second per CPU. */
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

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

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

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 256 * 1024);
} nd_samples SEC(".maps");

/* struct nd_slot as the program uses it: the key as two words. */
struct nd_slot_words {
  __u64 lo; /* reason, ifindex */
  __u32 hi; /* l3_proto, l4_proto, pad */
  __u32 pad;
  __u64 count;
};
_Static_assert(sizeof(struct nd_slot_words) == sizeof(struct nd_slot), "slot layout");
_Static_assert(sizeof(struct nd_key) == 12, "key layout");

static __always_inline void bump(__u32 ev) {
  __u64* v = bpf_map_lookup_elem(&nd_events, &ev);
  if (v) *v += 1;
}

/* Per CPU, so no other CPU races on it. A bucket never used has last_ns 0
 * and starts full. */
static __always_inline int take_sample_token(struct nd_sampler* b, __u64 now) {
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

static __always_inline struct nd_key key_of(__u64 lo, __u32 hi) {
  struct nd_key k = {.reason = (__u32)lo,
                     .ifindex = (__u32)(lo >> 32),
                     .l3_proto = (__u16)hi,
                     .l4_proto = (__u8)(hi >> 16)};
  return k;
}

/* Every drop counted goes through here, and it keeps no count of the drops
 * it does not sample: user space derives them (drops counted - sampled -
 * lost). Kept out of line: the program's common path ends at the compare. */
static __noinline void sample_slow(struct sk_buff* skb, struct nd_sampler* b, __u64 j, __u64 lo,
                                   __u32 hi) {
  /* The coarse clock is refused to tracing programs. */
  __u64 now = bpf_ktime_get_ns();
  if (take_sample_token(b, now)) {
    b->empty_jiffies = 0;
    struct nd_key k = key_of(lo, hi);
    sample_flow(skb, &k, now);
  } else {
    b->empty_jiffies = j;
  }
}

/* A key no slot had room for: this CPU's value in drop_counts. */
static __noinline void count_in_hash(__u64 lo, __u32 hi) {
  struct nd_key k = key_of(lo, hi);
  __u64* count = bpf_map_lookup_elem(&drop_counts, &k);
  if (count) {
    *count += 1;
    return;
  }
  __u64 one = 1;
  if (bpf_map_update_elem(&drop_counts, &k, &one, BPF_NOEXIST) == 0) return;
  /* Another CPU inserted the key first, or the table is full. */
  count = bpf_map_lookup_elem(&drop_counts, &k);
  if (count)
    *count += 1;
  else
    bump(ND_EV_TABLE_FULL);
}

/* The key's first free or matching slot of the `probes` from its home,
 * the first already known to hold another key; 0 when none. */
static __always_inline struct nd_slot_words* probe(struct nd_slots* t, __u32 home, __u64 lo,
                                                   __u32 hi, __u32 probes) {
#pragma unroll
  for (int i = 1; i < ND_PROBES; i++) {
    if (i >= probes) break;
    struct nd_slot_words* s = (void*)&t->slot[(home + i) & (ND_SLOTS - 1)];
    if (s->count == 0) {
      s->lo = lo;
      s->hi = hi;
      return s;
    }
    if (s->lo == lo && s->hi == hi) return s;
  }
  return 0;
}

/* Whether a drop without a device is of the namespace, by its socket's. */
static __always_inline int sock_in_netns(struct sk_buff* skb, __u32 ns) {
  struct sock* sk = skb->sk;
  if (!sk) {
    bump(ND_EV_NO_NETNS);
    return 0;
  }
  return sk->__sk_common.skc_net.net->ns.inum == ns;
}

/* Bytes of the network header at `ip`; `cast`: through bpf_rdonly_cast (a
 * load), else through bpf_probe_read_kernel. */
static __always_inline __u8 ip_version(unsigned char* ip, const int cast) {
  __u8 b = 0;
  if (cast)
    return ((struct iphdr*)bpf_rdonly_cast(ip, bpf_core_type_id_kernel(struct iphdr)))->version;
  bpf_probe_read_kernel(&b, 1, ip);
  return b >> 4;
}

static __always_inline __u8 ip_protocol(unsigned char* ip, const int cast) {
  __u8 b = 0;
  if (cast)
    return ((struct iphdr*)bpf_rdonly_cast(ip, bpf_core_type_id_kernel(struct iphdr)))->protocol;
  bpf_probe_read_kernel(&b, 1, ip + 9);
  return b;
}

static __always_inline __u8 ip6_nexthdr(unsigned char* ip, const int cast) {
  __u8 b = 0;
  if (cast)
    return ((struct ipv6hdr*)bpf_rdonly_cast(ip, bpf_core_type_id_kernel(struct ipv6hdr)))->nexthdr;
  bpf_probe_read_kernel(&b, 1, ip + 6);
  return b;
}

/* The count; `cast`: headers read through bpf_rdonly_cast, else through
 * bpf_probe_read_kernel. */
static __always_inline int count_drop(struct sk_buff* skb, __u32 r, const int cast) {
  if (unlikely(r == not_drop_a || r == not_drop_b)) return 0;

  /* Each read of a setting is a load: one each. */
  const __u32 ns = netns_ino, probes = slot_probes;
  struct net_device* dev = skb->dev;
  __u32 ifindex;
  if (likely(dev)) {
    if (ns && dev->nd_net.net->ns.inum != ns) return 0;
    ifindex = dev->ifindex;
  } else {
    if (ns && !sock_in_netns(skb, ns)) return 0;
    ifindex = skb->skb_iif;
  }

  __u32 l3 = bpf_ntohs(skb->protocol);
  __u32 l4 = 0;
  __u16 nh = skb->network_header;
  if (likely(nh != NO_HEADER)) {
    unsigned char* ip = skb->head + nh;
    if (unlikely(l3 == 0)) {
      /* Some paths free a packet before setting skb->protocol: the IP version. */
      __u8 v = ip_version(ip, cast);
      if (v == 4) l3 = ETH_P_IP;
      if (v == 6) l3 = ETH_P_IPV6;
    }
    if (l3 == ETH_P_IP)
      l4 = ip_protocol(ip, cast);
    else if (l3 == ETH_P_IPV6)
      l4 = ip6_nexthdr(ip, cast);
  }

  /* The key as the slot holds it (struct nd_key, little-endian). */
  const __u64 lo = (__u64)ifindex << 32 | r;
  const __u32 hi = l3 | l4 << 16;
  __u32 zero = 0;
  struct nd_slots* t = bpf_map_lookup_elem(&drop_slots, &zero);
  if (unlikely(!t)) { /* never: index 0 of a one-element array */
    count_in_hash(lo, hi);
    return 0;
  }
  __u32 home = nd_slot_home_words(lo, hi);
  struct nd_slot_words* s = (void*)&t->slot[home & (ND_SLOTS - 1)];
  if (likely(probes && s->lo == lo && s->hi == hi)) {
    s->count += 1;
  } else if (probes && s->count == 0) {
    s->lo = lo;
    s->hi = hi;
    s->count = 1;
  } else if ((s = probe(t, home, lo, hi, probes))) {
    s->count += 1;
  } else {
    count_in_hash(lo, hi);
  }

  if (sample_rate) {
    __u64 j = bpf_jiffies64(); /* inlined: a load */
    if (likely(t->sampler.empty_jiffies == j)) return 0;
    sample_slow(skb, &t->sampler, j, lo, hi);
  }
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
