// The kernel's struct tcp_info through 6.18 (248 bytes), mirrored here so the
// agent reads the fields of a newer kernel than the UAPI headers it was built
// with. An older kernel sends a shorter struct: it is copied into a zeroed
// KernelTcpInfo and `length` says how much was real.
#pragma once

#include <cstddef>
#include <cstdint>

namespace netagent::collectors {

struct KernelTcpInfo {
  uint8_t state;
  uint8_t ca_state;
  uint8_t retransmits;
  uint8_t probes;
  uint8_t backoff;
  uint8_t options;
  uint8_t wscale;                // snd in the low nibble, rcv in the high one
  uint8_t app_limited_fastopen;  // bit 0 delivery_rate_app_limited, bits 1-2 fastopen_client_fail
  uint32_t rto;
  uint32_t ato;
  uint32_t snd_mss;
  uint32_t rcv_mss;
  uint32_t unacked;
  uint32_t sacked;
  uint32_t lost;
  uint32_t retrans;
  uint32_t fackets;
  uint32_t last_data_sent;
  uint32_t last_ack_sent;
  uint32_t last_data_recv;
  uint32_t last_ack_recv;
  uint32_t pmtu;
  uint32_t rcv_ssthresh;
  uint32_t rtt;
  uint32_t rttvar;
  uint32_t snd_ssthresh;
  uint32_t snd_cwnd;
  uint32_t advmss;
  uint32_t reordering;
  uint32_t rcv_rtt;
  uint32_t rcv_space;
  uint32_t total_retrans;
  uint64_t pacing_rate;
  uint64_t max_pacing_rate;
  uint64_t bytes_acked;
  uint64_t bytes_received;
  uint32_t segs_out;
  uint32_t segs_in;
  uint32_t notsent_bytes;
  uint32_t min_rtt;
  uint32_t data_segs_in;
  uint32_t data_segs_out;
  uint64_t delivery_rate;
  uint64_t busy_time;
  uint64_t rwnd_limited;
  uint64_t sndbuf_limited;
  uint32_t delivered;
  uint32_t delivered_ce;
  uint64_t bytes_sent;
  uint64_t bytes_retrans;
  uint32_t dsack_dups;
  uint32_t reord_seen;
  uint32_t rcv_ooopack;
  uint32_t snd_wnd;
  uint32_t rcv_wnd;
  uint32_t rehash;
  uint16_t total_rto;
  uint16_t total_rto_recoveries;
  uint32_t total_rto_time;
};

static_assert(offsetof(KernelTcpInfo, rto) == 8);
static_assert(offsetof(KernelTcpInfo, total_retrans) == 100);
static_assert(offsetof(KernelTcpInfo, pacing_rate) == 104);
static_assert(offsetof(KernelTcpInfo, delivery_rate) == 160);
static_assert(offsetof(KernelTcpInfo, bytes_sent) == 200);
static_assert(offsetof(KernelTcpInfo, snd_wnd) == 228);
static_assert(offsetof(KernelTcpInfo, total_rto) == 240);
static_assert(sizeof(KernelTcpInfo) == 248);

// struct tcp_bbr_info: bandwidth in bytes/s split in two u32, gains << 8.
struct KernelBbrInfo {
  uint32_t bw_lo;
  uint32_t bw_hi;
  uint32_t min_rtt;
  uint32_t pacing_gain;
  uint32_t cwnd_gain;
};
static_assert(sizeof(KernelBbrInfo) == 20);

}  // namespace netagent::collectors
