/* The verdict pipeline shared by the XDP program (netagent_xdp.bpf.c) and the
 * TC guard (netagent_tc_guard.bpf.c), so a device without native XDP gets the
 * same guard: maps (same names and layouts, so user space writes rules the
 * same way), switches, parser, rules, SYN guard, counters, samples.
 *
 * parse L2/L3 (Ethernet, up to two VLAN tags, the IPv4 or IPv6 header) -> allowlist (exact,
 * CIDR) -> blocklist (exact, CIDR) -> parse L4 (IPv6 extension headers, TCP/UDP/ICMP) ->
 * fragment policy -> destination-port blocklist -> SYN guard (per-source-prefix token bucket
 * behind a global new-source bucket) -> pass. A blocked source is dropped before its transport
 * header is read; an allowed one still needs a valid one. Exact entries of both lists share one
 * hash per family; IPv4 CIDR rules go through a /16 directory and a long-prefix hash, IPv6 ones
 * through LPM tries.
 *
 * Every packet ends in finish(): one per-CPU {packets, bytes} counter per
 * (reason, verdict), a per-CPU hit counter per rule, and 1-in-N drop samples
 * into a ring buffer under a per-CPU rate cap. Features are switched by
 * `const volatile` values set before load (the verifier removes what is off);
 * values that change at run time live in the one-entry na_config map.
 *
 * The including file defines the context, then calls na_pipeline():
 *   NA_CTX                    struct xdp_md or struct __sk_buff
 *   NA_DROP, NA_PASS          its verdicts; NA_RETRY: a value it never returns
 *   NA_LEN(ctx)               the packet's length (counted bytes, length checks)
 *   NA_SHORT(ctx)             headers may lie past the directly readable data
 *                             (na_pipeline returns NA_RETRY instead of malformed)
 *   NA_LOAD_BYTES(ctx, off, to, n), NA_RX_QUEUE(ctx)   for samples */
#ifndef NETAGENT_GUARD_H
#define NETAGENT_GUARD_H

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

#define NH_HOPOPTS 0
#define NH_TCP 6
#define NH_UDP 17
#define NH_ROUTING 43
#define NH_FRAGMENT 44
#define NH_AH 51
#define NH_ICMPV6 58
#define NH_DSTOPTS 60
#define NH_ICMP 1

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10

/* The furthest offset the parser follows (XDP buffers are one page). */
#define NA_MAX_OFF 0x3fff

/* Feature switches, fixed at load. */
const volatile __u8 en_allow_exact = 1;
const volatile __u8 en_allow_cidr = 1;
const volatile __u8 en_block_exact = 1;
const volatile __u8 en_block_cidr = 1;
const volatile __u8 en_ports = 1;
const volatile __u8 en_syn_guard = 1;
const volatile __u8 en_global_guard = 1;
const volatile __u8 syn_ports_only = 0; /* guard only ports flagged NA_PORT_SYN_GUARD */
const volatile __u8 en_rule_hits = 1;
const volatile __u8 en_samples = 1;
const volatile __u8 use_test_clock = 0; /* clock from na_config.test_clock_ns */

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct na_config);
} na_config SEC(".maps");

#define EXACT_MAP(name, key_t)         \
  struct {                             \
    __uint(type, BPF_MAP_TYPE_HASH);   \
    __uint(max_entries, NA_MAX_EXACT); \
    __type(key, key_t);                \
    __type(value, struct na_rule);     \
  } name SEC(".maps")
#define LPM_MAP(name, key_t)              \
  struct {                                \
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);  \
    __uint(max_entries, NA_MAX_CIDR);     \
    __uint(map_flags, BPF_F_NO_PREALLOC); \
    __type(key, key_t);                   \
    __type(value, struct na_rule);        \
  } name SEC(".maps")

/* One exact table per family serves both lists (the value says which): one
 * hash lookup per packet instead of two. */
EXACT_MAP(exact4, __u32);
EXACT_MAP(exact6, struct na_in6);
LPM_MAP(allow6_lpm, struct na_lpm6_key);
LPM_MAP(block6_lpm, struct na_lpm6_key);

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, NA_MAX_CIDR);
  __type(key, struct na_cidr4_key);
  __type(value, struct na_rule);
} cidr4_long SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 65536);
  __type(key, __u32);
  __type(value, struct na_port_rule);
} ports SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 65536);
  __type(key, __u32);
  __type(value, struct na_dir4);
} cidr4_dir SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, NA_MAX_RULES);
  __type(key, __u32);
  __type(value, struct na_counter);
} rule_hits SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, NA_CNT_MAX);
  __type(key, __u32);
  __type(value, struct na_counter);
} counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, NA_EV_MAX);
  __type(key, __u32);
  __type(value, __u64);
} events SEC(".maps");

/* Per-source SYN buckets, keyed by the source masked to the aggregation
 * prefix; one map per family so an IPv4 key hashes one word, not five. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, __u32);
  __type(value, struct na_bucket);
} syn_src4 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct na_in6);
  __type(value, struct na_bucket);
} syn_src6 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct na_bucket);
} syn_global SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct na_sample_state);
} sample_state SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 256 * 1024);
} samples SEC(".maps");

struct na_vlan {
  __be16 tci;
  __be16 proto;
};

struct na_ext {
  __u8 nexthdr;
  __u8 len;
  __be16 frag_off; /* the fragment header's offset and M flag */
};

/* What the parser found. */
struct na_pkt {
  __u32 l4_off;
  __u8 family; /* 4 or 6 */
  __u8 l4;     /* final next-header / protocol */
  __u8 frag;   /* 0: not a fragment, 1: first fragment, 2: later fragment */
  __u8 tcp_flags;
  __be16 dport;
  __be32 saddr4;
  __u8 saddr6[16];
};

static __always_inline void bump_event(__u32 ev) {
  __u64* v = bpf_map_lookup_elem(&events, &ev);
  if (v) *v += 1;
}

static __always_inline __u64 now_ns(const struct na_config* cfg) {
  if (use_test_clock) return cfg->test_clock_ns;
  /* At most one clock read per packet; the coarse clock costs half of
   * bpf_ktime_get_ns and a bucket only needs the elapsed time. */
  return bpf_ktime_get_coarse_ns();
}

/* Refill by elapsed time, then take one token. Updates are not atomic: two
 * CPUs racing on one bucket may both pass; the error is bounded by the
 * number of CPUs and is accepted for a lock-free fast path. */
static __always_inline int bucket_take(struct na_bucket* b, __u64 now, __u64 rate, __u64 burst) {
  __u64 cap = burst * NA_TOKEN;
  __u64 tokens = b->tokens;
  if (b->last_ns == 0) { /* a bucket never used starts full */
    tokens = cap;
    b->last_ns = now;
  } else if (now > b->last_ns && rate) {
    __u64 dt = now - b->last_ns;
    if (dt >= cap) /* rate >= 1: at least a full bucket's worth */
      tokens = cap;
    else if (!(dt >> 32) && !(rate >> 32)) /* the usual case: no overflow, no division */
      tokens += dt * rate;
    else
      tokens = dt >= cap / rate ? cap : tokens + dt * rate;
    if (tokens > cap) tokens = cap;
    b->last_ns = now;
  }
  if (tokens < NA_TOKEN) {
    b->tokens = tokens;
    return 0;
  }
  b->tokens = tokens - NA_TOKEN;
  return 1;
}

static __always_inline void sample_drop(NA_CTX* ctx, const struct na_config* cfg, __u32 reason,
                                        __u32 rule_id, __u64 len) {
  __u32 zero = 0;
  __u32 every = cfg->sample_every;
  if (!every) return;
  struct na_sample_state* st = bpf_map_lookup_elem(&sample_state, &zero);
  if (!st) return;
  if (st->countdown > 1) {
    st->countdown--;
    return;
  }
  st->countdown = every;
  __u64 now = now_ns(cfg); /* one drop in N pays for the clock */
  __u32 max = cfg->sample_max_per_sec;
  if (max) {
    if (now - st->window_start >= 1000000000ull) {
      st->window_start = now;
      st->in_window = 0;
    }
    if (st->in_window >= max) {
      bump_event(NA_EV_SAMPLE_CAPPED);
      return;
    }
    st->in_window++;
  }
  struct na_sample* s = bpf_ringbuf_reserve(&samples, sizeof(*s), 0);
  if (!s) {
    bump_event(NA_EV_SAMPLE_LOST);
    return;
  }
  __u32 cap = len > NA_SAMPLE_SNAP ? NA_SAMPLE_SNAP : len;
  asm volatile("" : "+r"(cap)); /* keep the clamped value for the verifier */
  cap &= 0xff;
  if (cap > NA_SAMPLE_SNAP || cap < 1 || NA_LOAD_BYTES(ctx, 0, s->data, cap) < 0) cap = 0;
  s->ts_ns = now;
  s->reason = reason;
  s->rule_id = rule_id;
  s->pkt_len = len;
  s->cap_len = cap;
  s->ifindex = ctx->ingress_ifindex;
  s->rx_queue = NA_RX_QUEUE(ctx);
  bpf_ringbuf_submit(s, 0);
  bump_event(NA_EV_SAMPLED);
}

/* A hot-path switch as the pipeline sees it: the constant 1 in the preset
 * copy (see netagent_xdp), the loaded value otherwise. */
#define ON(sw) (preset || (sw))

static __always_inline int finish(NA_CTX* ctx, const struct na_config* cfg, __u32 reason, int drop,
                                  __u32 rule_id, __u64 len, const int preset) {
  __u32 idx = NA_CNT_IDX(reason, drop);
  struct na_counter* c = bpf_map_lookup_elem(&counters, &idx);
  if (c) {
    c->packets++;
    c->bytes += len;
  }
  if (ON(en_rule_hits) && rule_id) {
    struct na_counter* h = bpf_map_lookup_elem(&rule_hits, &rule_id);
    if (h) {
      h->packets++;
      h->bytes += len;
    }
  }
  if (drop) {
    if (ON(en_samples)) sample_drop(ctx, cfg, reason, rule_id, len);
    return NA_DROP;
  }
  return NA_PASS;
}

static __always_inline int ip6_ext(__u8 nh) {
  return nh == NH_HOPOPTS || nh == NH_ROUTING || nh == NH_DSTOPTS || nh == NH_FRAGMENT ||
         nh == NH_AH;
}

/* Ethernet, VLAN tags and the fixed IP header: what the address rules need.
 * Returns 0 (family 0: not IP) or the malformed reason. */
static __always_inline __u32 parse_l3(void* data, void* data_end, __u64 len, struct na_pkt* p) {
  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) return NA_R_BAD_ETH;
  __be16 proto = eth->h_proto;
  __u32 off = sizeof(*eth);

  if (proto != bpf_htons(ETH_P_IP)) { /* untagged IPv4 skips the tag checks */
#pragma unroll
    for (int i = 0; i < NA_MAX_VLAN_TAGS; i++) {
      if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD)) break;
      struct na_vlan* v = data + off;
      if ((void*)(v + 1) > data_end) return NA_R_BAD_VLAN;
      proto = v->proto;
      off += sizeof(*v);
    }
    if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) return NA_R_BAD_VLAN;
  }

  if (proto == bpf_htons(ETH_P_IP)) {
    struct iphdr* ip = data + off;
    if ((void*)(ip + 1) > data_end) return NA_R_BAD_IP4;
    __u8 vihl = *(__u8*)ip; /* version 4 and IHL >= 5: one load, one compare */
    if ((__u8)(vihl - 0x45) > 0x0a) return NA_R_BAD_IP4;
    __u32 hl = (vihl & 0xf) * 4;
    __u32 tot = bpf_ntohs(ip->tot_len);
    if (tot < hl || off + tot > len) return NA_R_BAD_IP4;
    p->family = 4;
    p->saddr4 = ip->saddr;
    p->l4 = ip->protocol;
    __u16 fo = bpf_ntohs(ip->frag_off);
    if (fo & 0x3fff) p->frag = (fo & 0x1fff) ? 2 : 1;
    p->l4_off = off + hl;
  } else if (proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr* ip6 = data + off;
    if ((void*)(ip6 + 1) > data_end) return NA_R_BAD_IP6;
    if (ip6->version != 6) return NA_R_BAD_IP6;
    if (off + sizeof(*ip6) + bpf_ntohs(ip6->payload_len) > len) return NA_R_BAD_IP6;
    p->family = 6;
    __builtin_memcpy(p->saddr6, &ip6->saddr, 16);
    p->l4 = ip6->nexthdr; /* the first extension header, if any: parse_l4 walks them */
    p->l4_off = off + sizeof(*ip6);
  }
  return 0;
}

/* IPv6 extension headers, then the transport header. After the address
 * rules: a packet they decide is not parsed further. */
static __always_inline __u32 parse_l4(void* data, void* data_end, __u64 len, struct na_pkt* p) {
  __u32 off = p->l4_off;
  if (p->family == 6) {
    __u8 nh = p->l4;
#pragma unroll
    for (int i = 0; i < NA_MAX_IP6_EXT; i++) {
      if (!ip6_ext(nh)) break;
      if (off > NA_MAX_OFF) return NA_R_BAD_IP6_EXT;
      asm volatile("%0 &= 0x3fff" : "+r"(off));
      struct na_ext* e = data + off;
      if ((void*)(e + 1) > data_end) return NA_R_BAD_IP6_EXT;
      __u32 hl;
      if (nh == NH_FRAGMENT) {
        __u16 fo = bpf_ntohs(e->frag_off);
        hl = 8;
        /* An atomic fragment (offset 0, no M) is a whole packet. */
        if (fo & 0xfff9) p->frag = (fo & 0xfff8) ? 2 : 1;
      } else if (nh == NH_AH) {
        hl = ((__u32)e->len + 2) * 4;
      } else {
        hl = ((__u32)e->len + 1) * 8;
      }
      if (off + hl > len) return NA_R_BAD_IP6_EXT;
      nh = e->nexthdr;
      off += hl;
      if (p->frag == 2) break;
    }
    if (p->frag != 2 && ip6_ext(nh)) return NA_R_BAD_IP6_EXT; /* too many */
    if (off > NA_MAX_OFF) return NA_R_BAD_IP6_EXT;
    p->l4 = nh;
    p->l4_off = off;
  }

  if (p->frag == 2) return 0; /* no transport header in a later fragment */
  if (off > NA_MAX_OFF) return NA_R_BAD_L4;
  asm volatile("%0 &= 0x3fff" : "+r"(off)); /* the bound, on the register used below */
  if (p->l4 == NH_TCP) {
    struct tcphdr* t = data + off;
    if ((void*)(t + 1) > data_end) return NA_R_BAD_L4;
    __u32 doff = (((__u8*)t)[12] >> 2) & 0x3c; /* data offset in bytes, one load */
    if (doff < 20 || off + doff > len) return NA_R_BAD_L4;
    p->dport = t->dest;
    p->tcp_flags = ((__u8*)t)[13];
  } else if (p->l4 == NH_UDP) {
    struct udphdr* u = data + off;
    if ((void*)(u + 1) > data_end) return NA_R_BAD_L4;
    p->dport = u->dest;
  } else if (p->l4 == NH_ICMP || p->l4 == NH_ICMPV6) {
    if (data + off + 4 > data_end) return NA_R_BAD_L4;
  }
  return 0;
}

/* IPv4 CIDR: the longest present length inside the /16 first, then the /16's
 * covering short rule. On a match: 1, and the rule id in *rule. */
static __always_inline int lookup_cidr4(const struct na_dir4_list* d, __u8 list, __be32 saddr,
                                        __u32* rule) {
  __u32 any; /* has_short and long_lens in one load: most slots hold nothing */
  __builtin_memcpy(&any, &d->has_short, sizeof(any));
  if (!any) return 0;
  __u32 lens = d->long_lens;
  if (lens) {
    __u32 host = bpf_ntohl(saddr);
#pragma unroll
    for (int i = 15; i >= 0; i--) {
      if (lens & (1u << i)) {
        struct na_cidr4_key k = {.list = list, .plen = 17 + i};
        k.addr = bpf_htonl(host & (0xffffffffu << (15 - i)));
        struct na_rule* r = bpf_map_lookup_elem(&cidr4_long, &k);
        if (r) {
          *rule = r->rule_id;
          return 1;
        }
      }
    }
  }
  if (d->has_short) {
    *rule = d->short_rule;
    return 1;
  }
  return 0;
}

static __always_inline struct na_rule* lookup_cidr6(void* m6, const struct na_pkt* p) {
  struct na_lpm6_key k = {.prefixlen = 128};
  __builtin_memcpy(k.addr, p->saddr6, 16);
  return bpf_map_lookup_elem(m6, &k);
}

static __always_inline __be32 prefix_mask(__s32 bits) {
  if (bits <= 0) return 0;
  if (bits >= 32) return 0xffffffff;
  return bpf_htonl(~(0xffffffffu >> bits));
}

/* Returns 0 to pass, else the drop reason. */
static __always_inline __u32 syn_guard(const struct na_config* cfg, const struct na_pkt* p) {
  __be32 k4 = 0;
  struct na_in6 k6;
  struct na_bucket* b;
  /* One lookup call site per map: the verifier inlines each. */
  if (p->family == 4) {
    k4 = p->saddr4 & prefix_mask(cfg->syn_prefix4);
    b = bpf_map_lookup_elem(&syn_src4, &k4);
    asm volatile("" : "+r"(b));
  } else {
    __s32 bits = cfg->syn_prefix6;
    __u32* w = (__u32*)k6.addr;
    __builtin_memcpy(k6.addr, p->saddr6, 16);
    w[0] &= prefix_mask(bits);
    w[1] &= prefix_mask(bits - 32);
    w[2] &= prefix_mask(bits - 64);
    w[3] &= prefix_mask(bits - 96);
    b = bpf_map_lookup_elem(&syn_src6, &k6);
  }
  __u64 now = now_ns(cfg);
  if (b) return bucket_take(b, now, cfg->syn_rate, cfg->syn_burst) ? 0 : NA_R_SYN_RATE;

  /* A source not seen (or evicted): it costs a table slot, which the global
   * new-source bucket rations so a spoofed flood cannot churn the table. */
  if (en_global_guard && (cfg->global_rate || cfg->global_burst)) {
    __u32 zero = 0;
    struct na_bucket* g = bpf_map_lookup_elem(&syn_global, &zero);
    if (g && !bucket_take(g, now, cfg->global_rate, cfg->global_burst)) return NA_R_SYN_GLOBAL;
  }
  struct na_bucket nb = {.last_ns = now, .tokens = cfg->syn_burst * NA_TOKEN};
  int ok = nb.tokens >= NA_TOKEN;
  if (ok) nb.tokens -= NA_TOKEN;
  if (p->family == 4)
    bpf_map_update_elem(&syn_src4, &k4, &nb, BPF_ANY);
  else
    bpf_map_update_elem(&syn_src6, &k6, &nb, BPF_ANY);
  bump_event(NA_EV_SYN_NEW_SOURCE);
  return ok ? 0 : NA_R_SYN_RATE;
}

#define NA_ADDR_NONE 0
#define NA_ADDR_ALLOW 1
#define NA_ADDR_BLOCK 2

/* The source against both lists (allow first): NA_ADDR_*, the rule in *rule. */
static __always_inline int address_rules(const struct na_pkt* p, __u32* rule, const int preset) {
  struct na_rule *r, *exact = 0;
  if (ON(en_allow_exact) || ON(en_block_exact)) {
    /* One call site per map: the verifier inlines each lookup. */
    if (p->family == 4) {
      exact = bpf_map_lookup_elem(&exact4, &p->saddr4);
      asm volatile("" : "+r"(exact));
    } else {
      exact = bpf_map_lookup_elem(&exact6, p->saddr6);
    }
    if (exact && ON(en_allow_exact) && exact->action == NA_ACT_ALLOW) {
      *rule = exact->rule_id;
      return NA_ADDR_ALLOW;
    }
  }
  /* CIDR rules: IPv4 through the /16 directory, IPv6 through LPM tries. */
  struct na_dir4* dir = 0;
  if ((ON(en_allow_cidr) || ON(en_block_cidr)) && p->family == 4) {
    __u32 slot = bpf_ntohl(p->saddr4) >> 16;
    dir = bpf_map_lookup_elem(&cidr4_dir, &slot);
  }
  if (ON(en_allow_cidr)) {
    if (p->family == 4) {
      if (dir && lookup_cidr4(&dir->list[NA_LIST_ALLOW], NA_LIST_ALLOW, p->saddr4, rule))
        return NA_ADDR_ALLOW;
    } else if ((r = lookup_cidr6(&allow6_lpm, p))) {
      *rule = r->rule_id;
      return NA_ADDR_ALLOW;
    }
  }
  if (ON(en_block_exact) && exact && exact->action == NA_ACT_BLOCK) {
    *rule = exact->rule_id;
    return NA_ADDR_BLOCK;
  }
  if (ON(en_block_cidr)) {
    if (p->family == 4) {
      if (dir && lookup_cidr4(&dir->list[NA_LIST_BLOCK], NA_LIST_BLOCK, p->saddr4, rule))
        return NA_ADDR_BLOCK;
    } else if ((r = lookup_cidr6(&block6_lpm, p))) {
      *rule = r->rule_id;
      return NA_ADDR_BLOCK;
    }
  }
  return NA_ADDR_NONE;
}

/* The pipeline; `preset` (a constant) set means every hot-path switch is on
 * and tested at compile time (ON()). `retried` (a constant): NA_SHORT() is
 * not asked again. */
static __always_inline int na_pipeline(NA_CTX* ctx, const int preset, const int retried) {
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;
  __u64 len = NA_LEN(ctx);
  __u32 zero = 0;
  const struct na_config* cfg = bpf_map_lookup_elem(&na_config, &zero);
  if (!cfg) return NA_PASS;

  struct na_pkt p; /* saddr6 is written only for IPv6 */
  p.l4_off = 0;
  p.family = 0;
  p.l4 = 0;
  p.frag = 0;
  p.tcp_flags = 0;
  p.dport = 0;
  p.saddr4 = 0;
  __u32 bad = parse_l3(data, data_end, len, &p);
  if (bad) {
    if (!retried && NA_SHORT(ctx)) return NA_RETRY;
    return finish(ctx, cfg, bad, cfg->malformed_drop, 0, len, preset);
  }
  if (!p.family) return finish(ctx, cfg, NA_R_NON_IP, 0, 0, len, preset);

  __u32 rule = 0;
  int addr = address_rules(&p, &rule, preset);
  if (addr == NA_ADDR_BLOCK) return finish(ctx, cfg, NA_R_BLOCK, 1, rule, len, preset);
  bad = parse_l4(data, data_end, len, &p);
  if (bad) {
    if (!retried && NA_SHORT(ctx)) return NA_RETRY;
    return finish(ctx, cfg, bad, cfg->malformed_drop, 0, len, preset);
  }
  if (addr == NA_ADDR_ALLOW) return finish(ctx, cfg, NA_R_ALLOW, 0, rule, len, preset);
  if (p.frag && (cfg->frag_drop || p.frag == 2))
    return finish(ctx, cfg, NA_R_FRAGMENT, cfg->frag_drop, 0, len, preset);

  struct na_port_rule* pr = 0;
  if ((ON(en_ports) || (en_syn_guard && syn_ports_only)) && (p.l4 == NH_TCP || p.l4 == NH_UDP)) {
    __u32 port = bpf_ntohs(p.dport);
    pr = bpf_map_lookup_elem(&ports, &port);
    if (ON(en_ports) && pr &&
        (pr->flags & (p.l4 == NH_TCP ? NA_PORT_BLOCK_TCP : NA_PORT_BLOCK_UDP)))
      return finish(ctx, cfg, NA_R_BLOCK_PORT, 1, pr->rule_id, len, preset);
  }

  if (en_syn_guard && p.l4 == NH_TCP &&
      (p.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN && cfg->syn_rate) {
    if (!syn_ports_only || (pr && (pr->flags & NA_PORT_SYN_GUARD))) {
      __u32 why = syn_guard(cfg, &p);
      if (why) return finish(ctx, cfg, why, 1, 0, len, preset);
      return finish(ctx, cfg, NA_R_SYN_OK, 0, 0, len, preset);
    }
  }
  return finish(ctx, cfg, NA_R_PASS, 0, 0, len, preset);
}

/* The usual switches all on: the pipeline copy with them as constants. The
 * verifier resolves the switches but keeps every load and test (~3 ns of a
 * 40 ns drop); with this test at the entry it keeps only the copy selected. */
#define NA_PRESET                                                                    \
  (en_allow_exact && en_allow_cidr && en_block_exact && en_block_cidr && en_ports && \
   en_rule_hits && en_samples)

#endif /* NETAGENT_GUARD_H */
