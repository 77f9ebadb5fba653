// SPDX-License-Identifier: GPL-2.0
/* netagent's TC (clsact) program, one object for ingress and egress:
 *  - per-class accounting: {packets, bytes} per (direction, protocol, port
 *    class); the class of a TCP/UDP packet is tc_port_class[port], where the
 *    port is the destination on ingress and the source on egress (the local
 *    service's port either way);
 *  - TCP MSS clamping: on SYN and SYN-ACK, an MSS option above
 *    tc_config.mss4 / mss6 is lowered to it and the TCP checksum updated
 *    incrementally (the fix for MTU black holes behind tunnels).
 * It never drops: every packet leaves with TC_ACT_OK. Parsing follows the
 * XDP program's (VLAN tags are already stripped into the skb on most devices;
 * one in-band tag is followed). */
/* vmlinux.h first: the helper headers need its types. */
/* clang-format off */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "netagent_dp.h"
/* clang-format on */

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define TC_ACT_OK 0

#define TCP_FLAG_SYN 0x02
#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_MSS 2

char LICENSE[] SEC("license") = "GPL";

const volatile __u8 en_mss_clamp = 1;
const volatile __u8 en_class_stats = 1;

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct na_tc_config);
} tc_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 65536);
  __type(key, __u32);
  __type(value, __u32);
} tc_port_class SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, NA_TC_CNT_MAX);
  __type(key, __u32);
  __type(value, struct na_counter);
} tc_counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, NA_TC_EV_MAX);
  __type(key, __u32);
  __type(value, __u64);
} tc_events SEC(".maps");

static __always_inline void tc_event(__u32 ev) {
  __u64* v = bpf_map_lookup_elem(&tc_events, &ev);
  if (v) *v += 1;
}

/* Lowers the MSS option of the TCP header at `l4` to `mss` when above it. */
static __always_inline void clamp_mss(struct __sk_buff* skb, __u32 l4, __u32 doff, __u16 mss) {
  __u8 opts[64]; /* indices are masked to 63 below */
  __u32 olen = doff * 4 - 20;
  asm volatile("" : "+r"(olen)); /* check the register the helper gets */
  if (olen < 4 || olen > 40) return;
  /* One copy of the options instead of per-byte packet bounds checks at
   * variable offsets. */
  __builtin_memset(opts, 0, sizeof(opts));
  if (bpf_skb_load_bytes(skb, l4 + 20, opts, olen)) return;
  __u32 i = 0;
#pragma unroll
  for (int n = 0; n < 20; n++) { /* at most 20 options in 40 bytes (NOPs aside) */
    if (i >= olen || i > 36) break;
    __u8 kind = opts[i & 0x3f];
    if (kind == TCPOPT_EOL) break;
    if (kind == TCPOPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= olen) break;
    __u8 len = opts[(i + 1) & 0x3f];
    if (len < 2) {
      tc_event(NA_TC_EV_BAD_OPTIONS);
      return;
    }
    if (kind == TCPOPT_MSS) {
      if (len != 4 || i + 4 > olen) {
        tc_event(NA_TC_EV_BAD_OPTIONS);
        return;
      }
      __u16 old = ((__u16)opts[(i + 2) & 0x3f] << 8) | opts[(i + 3) & 0x3f];
      if (old <= mss) return;
      __be16 from = bpf_htons(old), to = bpf_htons(mss);
      __u32 at = l4 + 20 + i + 2;
      if (bpf_skb_store_bytes(skb, at, &to, 2, 0) ||
          bpf_l4_csum_replace(skb, l4 + 16, from, to, sizeof(__u16))) {
        tc_event(NA_TC_EV_CLAMP_FAILED);
        return;
      }
      tc_event(NA_TC_EV_MSS_CLAMPED);
      return;
    }
    i += len;
  }
}

static __always_inline int tc_main(struct __sk_buff* skb, __u32 dir) {
  void* data = (void*)(long)skb->data;
  void* data_end = (void*)(long)skb->data_end;
  __u32 zero = 0;
  const struct na_tc_config* cfg = bpf_map_lookup_elem(&tc_config, &zero);
  if (!cfg) return TC_ACT_OK;

  __u32 proto_idx = NA_TC_PROTO_OTHER, cls = 0, off = sizeof(struct ethhdr);
  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) goto count;
  __be16 proto = eth->h_proto;
  if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
    __be16* inner = data + off + 2;
    if ((void*)(inner + 1) > data_end) goto count;
    proto = *inner;
    off += 4;
  }
  __u8 l4proto;
  __u16 mss;
  if (proto == bpf_htons(ETH_P_IP)) {
    struct iphdr* ip = data + off;
    if ((void*)(ip + 1) > data_end || ip->ihl < 5) goto count;
    if (ip->frag_off & bpf_htons(0x1fff)) goto count; /* later fragment: no ports */
    l4proto = ip->protocol;
    off += ip->ihl * 4;
    mss = cfg->mss4;
  } else if (proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr* ip6 = data + off;
    if ((void*)(ip6 + 1) > data_end) goto count;
    l4proto = ip6->nexthdr; /* extension headers: counted as "other" */
    off += sizeof(*ip6);
    mss = cfg->mss6;
  } else {
    goto count;
  }

  if (l4proto == IPPROTO_TCP) {
    struct tcphdr* t = data + off;
    if ((void*)(t + 1) > data_end) goto count;
    proto_idx = NA_TC_PROTO_TCP;
    __u16 port = bpf_ntohs(dir == NA_TC_INGRESS ? t->dest : t->source);
    if (en_class_stats) {
      __u32 k = port;
      __u32* c = bpf_map_lookup_elem(&tc_port_class, &k);
      if (c && *c < NA_TC_MAX_CLASS) cls = *c;
    }
    __u8 flags = ((__u8*)t)[13];
    __u32 doff = t->doff;
    if (en_mss_clamp && mss && (flags & TCP_FLAG_SYN) && doff > 5) clamp_mss(skb, off, doff, mss);
  } else if (l4proto == IPPROTO_UDP) {
    struct udphdr* u = data + off;
    if ((void*)(u + 1) > data_end) goto count;
    proto_idx = NA_TC_PROTO_UDP;
    if (en_class_stats) {
      __u32 k = bpf_ntohs(dir == NA_TC_INGRESS ? u->dest : u->source);
      __u32* c = bpf_map_lookup_elem(&tc_port_class, &k);
      if (c && *c < NA_TC_MAX_CLASS) cls = *c;
    }
  } else if (l4proto == IPPROTO_ICMP || l4proto == 58 /* ICMPv6 */) {
    proto_idx = NA_TC_PROTO_ICMP;
  }

count:
  if (en_class_stats) {
    __u32 idx = NA_TC_CNT_IDX(dir, proto_idx, cls);
    struct na_counter* c = bpf_map_lookup_elem(&tc_counters, &idx);
    if (c) {
      c->packets++;
      c->bytes += skb->len;
    }
  }
  return TC_ACT_OK;
}

SEC("tc")
int netagent_tc_ingress(struct __sk_buff* skb) { return tc_main(skb, NA_TC_INGRESS); }

SEC("tc")
int netagent_tc_egress(struct __sk_buff* skb) { return tc_main(skb, NA_TC_EGRESS); }
