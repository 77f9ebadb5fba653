/* Shared between the XDP program (datapath/bpf/netagent_xdp.bpf.c) and user
 * space: map keys and values, the runtime configuration, counter indices and
 * the drop-sample record. Plain fixed-width types only, no padding holes, so
 * the layout is the same for clang -target bpf and g++. Addresses and ports
 * are kept in network byte order, exactly as they appear in the packet. */
#ifndef NETAGENT_DP_H
#define NETAGENT_DP_H

#ifdef __bpf__
/* vmlinux.h already defined __u8..__u64. */
#else
#include <linux/types.h>
#endif

#define NA_SAMPLE_SNAP 128  /* bytes of packet copied into a sample */
#define NA_MAX_RULES 131072 /* rule ids index rule_hits; id 0 means "no rule" */
#define NA_MAX_EXACT 131072 /* entries per exact-address table (per family) */
#define NA_MAX_CIDR 65536   /* CIDR rules per family (both lists) */
#define NA_MAX_VLAN_TAGS 2  /* a third tag is malformed */
#define NA_MAX_IP6_EXT 6    /* IPv6 extension headers walked before giving up */

/* Why the program decided what it decided. Each reason is counted separately
 * for passed and dropped packets (NA_CNT_IDX). */
enum na_reason {
  NA_R_PASS = 0,       /* went through the whole pipeline */
  NA_R_NON_IP = 1,     /* neither IPv4 nor IPv6 (ARP, LLDP...): passed */
  NA_R_ALLOW = 2,      /* source on the allowlist: passed, nothing else checked */
  NA_R_BLOCK = 3,      /* source on the blocklist: dropped (before its IPv6 extension
                          headers and transport header are checked) */
  NA_R_BLOCK_PORT = 4, /* destination port on the port blocklist: dropped */
  NA_R_SYN_OK = 5,     /* a SYN that the guard let through */
  NA_R_SYN_RATE = 6,   /* a SYN over its source (prefix) token bucket: dropped */
  NA_R_SYN_GLOBAL = 7, /* a SYN from an untracked source while the global new-SYN
                          bucket is empty: dropped, not inserted */
  NA_R_FRAGMENT = 8,   /* an IP fragment: verdict from cfg.frag_drop */
  /* Malformed packets: verdict from cfg.malformed_drop. */
  NA_R_BAD_ETH = 9,      /* shorter than an Ethernet header */
  NA_R_BAD_VLAN = 10,    /* truncated VLAN tag or more than NA_MAX_VLAN_TAGS tags */
  NA_R_BAD_IP4 = 11,     /* truncated header/options, version, IHL < 5, total length */
  NA_R_BAD_IP6 = 12,     /* truncated header, version, payload length */
  NA_R_BAD_IP6_EXT = 13, /* truncated extension header or too many of them */
  NA_R_BAD_L4 = 14,      /* truncated TCP/UDP/ICMP header or bad TCP data offset */
  NA_R_MAX = 15,
};
#define NA_R_FIRST_MALFORMED NA_R_BAD_ETH

/* counters: one {packets, bytes} per (reason, verdict). */
#define NA_CNT_IDX(reason, dropped) ((reason)*2 + ((dropped) ? 1 : 0))
#define NA_CNT_MAX (NA_R_MAX * 2)

/* events: per-CPU u64 counters of things that are not a packet verdict. */
enum na_event {
  NA_EV_SAMPLED = 0,        /* drop samples written to the ring buffer */
  NA_EV_SAMPLE_CAPPED = 1,  /* samples skipped by the per-CPU rate cap */
  NA_EV_SAMPLE_LOST = 2,    /* ring buffer full */
  NA_EV_SYN_NEW_SOURCE = 3, /* sources inserted into the SYN table */
  NA_EV_MAX = 4,
};

struct na_counter {
  __u64 packets;
  __u64 bytes;
};

/* Value of every address table. The exact tables (exact4, exact6) hold both
 * lists, so an address is either allowed or blocked there: user space keeps
 * the allow entry when both lists name the same address (allow beats block).
 * The CIDR tables: see cidr4_dir below (IPv4) and allow6_lpm/block6_lpm. */
#define NA_ACT_ALLOW 1
#define NA_ACT_BLOCK 2
struct na_rule {
  __u32 rule_id; /* index into rule_hits; 0: not counted */
  __u32 action;  /* NA_ACT_*: exact tables only, 0 in the CIDR tables */
};

struct na_in6 {
  __u8 addr[16];
};

/* LPM_TRIE key (IPv6): prefix length in bits, then the address. */
struct na_lpm6_key {
  __u32 prefixlen;
  __u8 addr[16];
};

/* IPv4 CIDR rules are not in an LPM trie (a miss walks ~15 nodes with 10k
 * prefixes): they are split at /16.
 *  - cidr4_dir: an ARRAY indexed by the top 16 bits of the address (host
 *    order). Per list it holds the rule of the longest prefix of length <= 16
 *    that covers the whole /16 (flags says whether there is one) and a bitmap
 *    of the lengths 17..32 (bit i: length 17 + i) present inside the /16.
 *  - cidr4_long: a HASH of the prefixes longer than /16, keyed by list,
 *    length and masked address.
 * A lookup tries the present lengths longest first (usually one or none),
 * then the /16's short rule. User space derives the directory from its rule
 * set (datapath/cidr4_index.h). IPv6 prefixes stay in LPM tries. */
#define NA_LIST_ALLOW 0
#define NA_LIST_BLOCK 1
struct na_dir4_list {
  __u32 short_rule; /* rule id of the longest covering prefix <= /16 */
  __u16 has_short;  /* 1 if there is one */
  __u16 long_lens;  /* bit i: a prefix of length 17 + i inside this /16 */
};
struct na_dir4 {
  struct na_dir4_list list[2]; /* NA_LIST_ALLOW, NA_LIST_BLOCK */
};
struct na_cidr4_key {
  __u8 list;  /* NA_LIST_* */
  __u8 plen;  /* 17..32 */
  __u16 pad;  /* 0 */
  __u32 addr; /* network order, masked to plen */
};

/* ports: an ARRAY indexed by the destination port in host order. */
#define NA_PORT_BLOCK_TCP (1u << 0) /* drop TCP to this port */
#define NA_PORT_BLOCK_UDP (1u << 1) /* drop UDP to this port */
#define NA_PORT_SYN_GUARD (1u << 2) /* SYN guard applies (when syn_ports_only) */
struct na_port_rule {
  __u32 rule_id;
  __u32 flags;
};

/* syn_src4 / syn_src6: LRU_HASH maps of na_bucket keyed by the source
 * masked to the aggregation prefix (__u32 / na_in6, network order). */

/* A token bucket. Tokens are kept in units of 1e-9 token so that refill is
 * elapsed_ns * rate without a division. */
#define NA_TOKEN 1000000000ull
struct na_bucket {
  __u64 last_ns;
  __u64 tokens;
};

/* sample_state: per-CPU sampling state. */
struct na_sample_state {
  __u64 countdown;    /* drops left before the next sample */
  __u64 window_start; /* ns, start of the current one-second cap window */
  __u64 in_window;    /* samples taken in that window */
};

/* na_config: an ARRAY with one entry, read on every packet; values that may
 * change while the program runs. Zero is a safe default for every field. */
struct na_config {
  __u32 malformed_drop;     /* 1: drop malformed packets, 0: pass them */
  __u32 frag_drop;          /* 1: drop IP fragments (after allow/block), 0: pass */
  __u64 syn_rate;           /* SYN tokens per second per source prefix (< 2^32) */
  __u64 syn_burst;          /* bucket size, in SYNs (< 9e9) */
  __u32 syn_prefix4;        /* aggregation prefix for IPv4 sources, 0..32 */
  __u32 syn_prefix6;        /* aggregation prefix for IPv6 sources, 0..128 */
  __u64 global_rate;        /* new-source SYN tokens per second, per CPU (< 2^32) */
  __u64 global_burst;       /* global bucket size (< 9e9); rate and burst 0: no guard */
  __u32 sample_every;       /* 1-in-N drops sampled; 0: none */
  __u32 sample_max_per_sec; /* per-CPU cap on samples per second; 0: no cap */
  __u64 test_clock_ns;      /* the clock when use_test_clock is set */
};

/* A drop sample in the ring buffer. */
struct na_sample {
  __u64 ts_ns;
  __u32 reason;
  __u32 rule_id;
  __u32 pkt_len; /* length of the packet */
  __u32 cap_len; /* bytes valid in data */
  __u32 ifindex;
  __u32 rx_queue;
  __u8 data[NA_SAMPLE_SNAP];
};

/* ---- TC program (netagent_tc.bpf.c) ---- */
#define NA_TC_INGRESS 0
#define NA_TC_EGRESS 1
enum na_tc_proto {
  NA_TC_PROTO_OTHER = 0, /* not IP, later fragments, IPv6 extension headers */
  NA_TC_PROTO_TCP = 1,
  NA_TC_PROTO_UDP = 2,
  NA_TC_PROTO_ICMP = 3,
};
#define NA_TC_MAX_CLASS 16 /* tc_port_class values 0..15; 0: unclassified */
/* tc_counters: {packets, bytes} per (direction, protocol, port class). */
#define NA_TC_CNT_IDX(dir, proto, cls) ((((dir)*4) + (proto)) * NA_TC_MAX_CLASS + (cls))
#define NA_TC_CNT_MAX (2 * 4 * NA_TC_MAX_CLASS)

enum na_tc_event {
  NA_TC_EV_MSS_CLAMPED = 0,  /* SYN / SYN-ACK whose MSS was lowered */
  NA_TC_EV_BAD_OPTIONS = 1,  /* option length < 2, or an MSS option not 4 long */
  NA_TC_EV_CLAMP_FAILED = 2, /* store or checksum update refused */
  NA_TC_EV_MAX = 3,
};

/* tc_config: an ARRAY with one entry. */
struct na_tc_config {
  __u16 mss4; /* clamp the MSS of IPv4 SYNs to this; 0: off */
  __u16 mss6; /* same for IPv6 */
  __u32 pad;
};

#endif /* NETAGENT_DP_H */
