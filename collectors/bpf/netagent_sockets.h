/* One TCP socket as the socket iterator (netagent_sockets.bpf.c) writes it
 * into its seq_file: plain fixed-width fields, the same struct on both sides.
 * The tcp_info figures are computed the way tcp_get_info() computes them,
 * from the socket's own fields, for full sockets in a connected state; a
 * listener's queues are its accept queue and backlog, as sock_diag gives
 * them. Durations the kernel keeps in jiffies stay in jiffies: user space
 * converts them with the HZ it measured from the footers of two walks (the
 * kernel's config, where libbpf would read CONFIG_HZ, is often not there). */
#ifndef NETAGENT_SOCKETS_H
#define NETAGENT_SOCKETS_H

#ifdef __cplusplus
#include <cstdint>
typedef uint8_t ns_u8;
typedef uint16_t ns_u16;
typedef uint32_t ns_u32;
typedef uint64_t ns_u64;
#else
typedef __u8 ns_u8;
typedef __u16 ns_u16;
typedef __u32 ns_u32;
typedef __u64 ns_u64;
#endif

#define NS_RECORD_MAGIC 0x4e53 /* "NS" at offset 92: a socket */
#define NS_FOOTER_MAGIC 0x4e45 /* "NE" at offset 92: the walk's end */
#define NS_HAS_INFO 0x1        /* the tcp_info fields are set */

struct ns_socket {
  ns_u64 cookie;
  ns_u64 bytes_acked, bytes_sent, delivery_rate; /* delivery_rate in bytes per second */
  ns_u64 busy_jiffies, rwnd_limited_jiffies, sndbuf_limited_jiffies;
  ns_u32 rqueue, wqueue;
  ns_u32 rtt_us, total_retrans, snd_mss, pmtu, unacked, last_ack_recv_jiffies, sndbuf;
  ns_u16 magic;
  ns_u16 local_port, peer_port; /* host order */
  ns_u8 family;                 /* AF_INET, AF_INET6 */
  ns_u8 state;       /* as sock_diag says: SYN_RECV for a request, a TIME_WAIT's substate */
  ns_u8 flags;       /* NS_HAS_INFO */
  ns_u8 retransmits; /* RTOs in a row (tcpi_retransmits) */
  ns_u8 pad[2];
  ns_u8 local[16], peer[16]; /* network order; IPv4 in the first four bytes */
};

/* The last record of every walk (the iterator's end call): the kernel's
 * jiffies and monotonic clock then. */
struct ns_footer {
  ns_u64 jiffies, ktime_ns;
  ns_u8 pad[76];
  ns_u16 magic;
  ns_u8 pad2[42];
};

#endif
