// SPDX-License-Identifier: GPL-2.0
/* A walk of this network namespace's TCP sockets as an iterator (iter/tcp,
 * kernel 5.12+): one fixed-size record per socket (netagent_sockets.h) written
 * into the iterator's seq_file, with the handful of tcp_info figures the
 * socket summary uses computed from the socket itself. A sock_diag dump
 * builds a netlink message with every attribute for each socket (and a full
 * tcp_info); this writes 136 bytes and reads only what is asked for.
 *
 * The namespace is the one the reader was in when it created the iterator.
 * Durations the kernel keeps in jiffies are written in jiffies, and every
 * walk ends with a footer (jiffies and the monotonic clock) from which user
 * space measures HZ once, at load. Needs 5.12+ (bpf_get_socket_cookie on a
 * socket pointer in an iterator). */
/* clang-format off */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "netagent_sockets.h"
/* clang-format on */

char LICENSE[] SEC("license") = "GPL";

/* Set while user space calibrates: only the footer is written. */
__u32 footer_only = 0;

#define NS_AF_INET6 10
#define NS_TCP_SYN_RECV 3
#define NS_TCP_TIME_WAIT 6
#define NS_TCP_LISTEN 10
#define NS_TCP_NEW_SYN_RECV 12
#define NS_USEC_PER_SEC 1000000ull

static __always_inline void copy_addr(ns_u8* out, const struct in6_addr* a) {
  __builtin_memcpy(out, a, 16);
}

static __always_inline void fill_info(struct ns_socket* r, struct tcp_sock* tp) {
  const struct inet_connection_sock* icsk = &tp->inet_conn;
  const __u32 now = (__u32)bpf_jiffies64();
  __u64 running;
  __u8 type;

  r->flags |= NS_HAS_INFO;
  r->retransmits = icsk->icsk_retransmits;
  r->rtt_us = tp->srtt_us >> 3;
  r->total_retrans = tp->total_retrans;
  r->snd_mss = tp->mss_cache;
  r->pmtu = icsk->icsk_pmtu_cookie;
  r->unacked = tp->packets_out;
  r->bytes_acked = tp->bytes_acked;
  r->bytes_sent = bpf_core_field_exists(tp->bytes_sent) ? tp->bytes_sent : 0;
  r->sndbuf = icsk->icsk_inet.sk.sk_sndbuf;
  r->last_ack_recv_jiffies = now - tp->rcv_tstamp;

  {
    const __u32 rate = tp->rate_delivered;
    const __u32 interval = tp->rate_interval_us;
    if (rate && interval)
      r->delivery_rate = (__u64)rate * tp->mss_cache * NS_USEC_PER_SEC / interval;
  }

  /* tcp_get_info_chrono_stats(): the running chrono's time so far is added
   * to its total. */
  type = BPF_CORE_READ_BITFIELD(tp, chrono_type);
  running = (__u32)(now - tp->chrono_start);
  r->busy_jiffies = (__u64)tp->chrono_stat[0] + (type == 1 ? running : 0);
  r->rwnd_limited_jiffies = (__u64)tp->chrono_stat[1] + (type == 2 ? running : 0);
  r->sndbuf_limited_jiffies = (__u64)tp->chrono_stat[2] + (type == 3 ? running : 0);
}

/* One socket's record. `info` false is a summary's walk without tcp_info
 * (the metrics'): the state and the addresses of every socket, and a
 * listener's queues; nothing else of a connection is read, no cookie, no
 * queues, no tcp_info: fewer cache lines of each socket touched. */
static __always_inline int walk_one(struct bpf_iter__tcp* ctx, const int info) {
  struct sock_common* skc = ctx->sk_common;
  struct ns_socket r = {};
  struct tcp_sock* tp;

  if (!skc) {
    /* The end of the walk. */
    struct ns_footer f = {};
    f.jiffies = bpf_jiffies64();
    f.ktime_ns = bpf_ktime_get_ns();
    f.magic = NS_FOOTER_MAGIC;
    bpf_seq_write(ctx->meta->seq, &f, sizeof(f));
    return 0;
  }
  if (footer_only) return 0;
  r.magic = NS_RECORD_MAGIC;
  r.family = skc->skc_family;
  r.state = skc->skc_state;
  r.local_port = skc->skc_num;
  r.peer_port = __builtin_bswap16(skc->skc_dport);
  if (r.family == NS_AF_INET6) {
    copy_addr(r.local, &skc->skc_v6_rcv_saddr);
    copy_addr(r.peer, &skc->skc_v6_daddr);
  } else {
    __builtin_memcpy(r.local, &skc->skc_rcv_saddr, 4);
    __builtin_memcpy(r.peer, &skc->skc_daddr, 4);
  }

  if (r.state == NS_TCP_NEW_SYN_RECV) {
    r.state = NS_TCP_SYN_RECV;
  } else if (r.state == NS_TCP_TIME_WAIT) {
    /* Read through a plain cast (bpf_skc_to_tcp_timewait_sock does not
     * know IPv6 TIME_WAIT sockets when IPv6 is a module). */
    r.state = BPF_CORE_READ((struct inet_timewait_sock*)skc, tw_substate);
  } else if (info || r.state == NS_TCP_LISTEN) {
    tp = bpf_skc_to_tcp_sock(skc);
    if (!tp) return 0;
    r.cookie = bpf_get_socket_cookie(tp);
    if (r.state == NS_TCP_LISTEN) {
      r.rqueue = tp->inet_conn.icsk_inet.sk.sk_ack_backlog;
      r.wqueue = tp->inet_conn.icsk_inet.sk.sk_max_ack_backlog;
    } else {
      const int unread = (int)(tp->rcv_nxt - tp->copied_seq);
      r.rqueue = unread > 0 ? unread : 0;
      r.wqueue = tp->write_seq - tp->snd_una;
      fill_info(&r, tp);
    }
  }
  bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
  return 0;
}

SEC("iter/tcp")
int netagent_sockets(struct bpf_iter__tcp* ctx) { return walk_one(ctx, 1); }

SEC("iter/tcp")
int netagent_socket_states(struct bpf_iter__tcp* ctx) { return walk_one(ctx, 0); }
