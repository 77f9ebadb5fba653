// What a socket table says at a glance, computed while the dump streams by:
// counts per state, listeners with their accept queue fill and handshakes in
// progress, TIME_WAIT against the ephemeral port range, and the remote peers
// that retransmit most or answer slowest.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "collectors/socket_iter.h"
#include "collectors/sockets.h"

namespace netagent::collectors {

struct ListenerStats {
  uint8_t protocol = IPPROTO_TCP;
  IpAddress address;
  uint16_t port = 0;
  uint32_t accept_queue = 0;
  uint32_t backlog = 0;
  double fill_percent = 0;
  uint64_t syn_recv = 0;
};

struct PeerStats {
  IpAddress address;
  uint64_t connections = 0;
  uint64_t retransmitted = 0;
  double rtt_sum_ms = 0;
  double rtt_max_ms = 0;
  uint64_t rtt_samples = 0;

  double mean_rtt_ms() const { return rtt_samples ? rtt_sum_ms / rtt_samples : 0; }
};

struct TimeWaitStats {
  uint64_t count = 0;
  PortRange ephemeral;
  uint32_t ephemeral_ports = 0;
  std::string busiest_peer;  // "addr:port"
  uint64_t busiest_peer_count = 0;
  double busiest_peer_fill_percent = 0;
};

// The time a busy established flow spent limited by its buffers (tcp_info,
// microseconds since the connection began), to be compared across two
// summaries by cookie.
struct FlowLimits {
  uint64_t cookie = 0;
  std::string local, peer;  // "addr:port"
  uint64_t busy_us = 0, rwnd_limited_us = 0, sndbuf_limited_us = 0;
  uint32_t rtt_us = 0;
  uint64_t delivery_rate = 0;  // bytes per second
  uint32_t sndbuf = 0;         // SK_MEMINFO_SNDBUF, when memory was asked
};

// An established TCP connection that keeps timing out without progress:
// several RTOs in a row with data outstanding (tcp_info).
struct StalledFlow {
  std::string local, peer;  // "addr:port"
  uint8_t retransmits = 0;  // RTOs in a row
  uint32_t snd_mss = 0, pmtu = 0, unacked = 0;
  uint64_t bytes_acked = 0, bytes_sent = 0;  // bytes_sent: 0 before 4.19
  uint32_t last_ack_recv_ms = 0;
};

struct SocketSummary {
  // (protocol, state) -> count
  std::map<std::pair<uint8_t, uint8_t>, uint64_t> states;
  std::vector<ListenerStats> listeners;
  TimeWaitStats time_wait;
  std::vector<PeerStats> top_retransmitting;
  std::vector<PeerStats> top_rtt;
  // Remote prefixes (/24, /64: a spoofed flood spreads over addresses) with
  // the most half-open (SYN_RECV) connections, as the prefix's address.
  std::vector<std::pair<IpAddress, uint64_t>> top_syn_recv_sources;
  // Established TCP flows with the most busy time (at most 64).
  std::vector<FlowLimits> busiest_flows;
  // Connections with 2 or more RTOs in a row and data unacknowledged (at most
  // 64, the most retransmitting first).
  std::vector<StalledFlow> stalled;
  uint64_t total = 0;
};

class SocketSummarizer {
 public:
  void Add(const SocketRecord& s);
  SocketSummary Finish(size_t top, PortRange ephemeral) const;

 private:
  using Endpoint = std::tuple<int, std::array<uint8_t, 16>, uint16_t>;  // family, addr, port
  SocketSummary base_;
  std::map<Endpoint, uint64_t> syn_recv_;   // by local endpoint
  std::map<Endpoint, uint64_t> time_wait_;  // by peer endpoint
  std::map<IpAddress, uint64_t> syn_sources_;
  std::vector<FlowLimits> flows_;  // a heap on busy time, at most kBusiestFlows
  std::vector<StalledFlow> stalled_;
  std::map<IpAddress, PeerStats> peers_;
};

// net.ipv4.ip_local_port_range as "LOW HIGH"; the kernel's default
// (32768-60999) when the text is not a range.
PortRange ParseEphemeralRange(absl::string_view text);
// The same, read from this namespace's sysctl now.
PortRange ReadEphemeralRange();

// Walks the sockets `q` asks for into a summary. A dump the kernel marks
// inconsistent (a table that changed under it) is walked again, up to
// `attempts` times; the last one's warnings are returned with it.
// `keep_going` is asked every few hundred sockets (non-OK ends the walk).
// With `iter`, a query it can answer (TCP, no filters, not listeners alone)
// is walked by the BPF iterator; sock_diag otherwise. `walked_by` says which.
struct SummaryWalk {
  SocketSummary summary;
  std::vector<std::string> warnings;
  const char* walked_by = "sock_diag";  // or "bpf_iter"
};
absl::StatusOr<SummaryWalk> SummarizeSockets(const SocketQuery& q, size_t top, PortRange ephemeral,
                                             int attempts,
                                             absl::FunctionRef<absl::Status()> keep_going,
                                             const TcpSocketIterator* iter = nullptr);

}  // namespace netagent::collectors
