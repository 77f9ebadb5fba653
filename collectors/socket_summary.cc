#include "collectors/socket_summary.h"

#include <linux/sock_diag.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>

#include "kernel/sysctl.h"

namespace netagent::collectors {
namespace {

constexpr uint8_t kEstablished = 1;
constexpr uint8_t kSynRecv = 3;
constexpr uint8_t kTimeWait = 6;
constexpr uint8_t kListen = 10;
constexpr size_t kBusiestFlows = 64;

bool IsAny(const IpAddress& a) {
  return std::all_of(a.bytes.begin(), a.bytes.begin() + a.size(), [](uint8_t b) { return b == 0; });
}

}  // namespace

void SocketSummarizer::Add(const SocketRecord& s) {
  ++base_.total;
  ++base_.states[{s.protocol, s.state}];
  if (s.protocol != IPPROTO_TCP) return;
  switch (s.state) {
    case kListen: {
      ListenerStats l;
      l.protocol = s.protocol;
      l.address = s.local;
      l.port = s.local_port;
      l.accept_queue = s.rqueue;
      l.backlog = s.wqueue;
      l.fill_percent = s.wqueue ? 100.0 * s.rqueue / s.wqueue : 0;
      base_.listeners.push_back(l);
      break;
    }
    case kSynRecv:
      ++syn_recv_[{s.local.family, s.local.bytes, s.local_port}];
      {
        IpAddress prefix = UnmapV4(s.peer);
        const size_t keep = prefix.family == AF_INET ? 3 : 8;  // /24, /64
        std::fill(prefix.bytes.begin() + keep, prefix.bytes.end(), 0);
        ++syn_sources_[prefix];
      }
      break;
    case kTimeWait:
      ++base_.time_wait.count;
      ++time_wait_[{s.peer.family, s.peer.bytes, s.peer_port}];
      break;
    case kEstablished: {
      PeerStats& p = peers_[s.peer];
      p.address = s.peer;
      ++p.connections;
      if (s.tcp_info_length >= offsetof(KernelTcpInfo, sndbuf_limited) + 8 &&
          s.tcp_info.busy_time > 0) {
        FlowLimits f;
        f.busy_us = s.tcp_info.busy_time;
        f.rwnd_limited_us = s.tcp_info.rwnd_limited;
        f.sndbuf_limited_us = s.tcp_info.sndbuf_limited;
        auto by_busy = [](const FlowLimits& a, const FlowLimits& b) {
          return a.busy_us > b.busy_us;
        };
        if (flows_.size() < kBusiestFlows || f.busy_us > flows_.front().busy_us) {
          f.cookie = s.cookie;
          f.local = FormatEndpoint(s.local, s.local_port);
          f.peer = FormatEndpoint(s.peer, s.peer_port);
          f.rtt_us = s.tcp_info.rtt;
          f.delivery_rate = s.tcp_info.delivery_rate;
          if (s.memory.count > SK_MEMINFO_SNDBUF) f.sndbuf = s.memory.values[SK_MEMINFO_SNDBUF];
          if (flows_.size() == kBusiestFlows) {
            std::pop_heap(flows_.begin(), flows_.end(), by_busy);
            flows_.pop_back();
          }
          flows_.push_back(std::move(f));
          std::push_heap(flows_.begin(), flows_.end(), by_busy);
        }
      }
      if (s.has_tcp_info() && s.tcp_info.retransmits >= 2 && s.tcp_info.unacked > 0 &&
          stalled_.size() < 4 * kBusiestFlows) {
        StalledFlow st;
        st.local = FormatEndpoint(s.local, s.local_port);
        st.peer = FormatEndpoint(s.peer, s.peer_port);
        st.retransmits = s.tcp_info.retransmits;
        st.snd_mss = s.tcp_info.snd_mss;
        st.pmtu = s.tcp_info.pmtu;
        st.unacked = s.tcp_info.unacked;
        if (s.tcp_info_length >= offsetof(KernelTcpInfo, bytes_acked) + 8)
          st.bytes_acked = s.tcp_info.bytes_acked;
        if (s.tcp_info_length >= offsetof(KernelTcpInfo, bytes_sent) + 8)
          st.bytes_sent = s.tcp_info.bytes_sent;
        st.last_ack_recv_ms = s.tcp_info.last_ack_recv;
        stalled_.push_back(std::move(st));
      }
      if (s.has_tcp_info()) {
        p.retransmitted += s.tcp_info.total_retrans;
        const double rtt_ms = s.tcp_info.rtt / 1000.0;
        p.rtt_sum_ms += rtt_ms;
        p.rtt_max_ms = std::max(p.rtt_max_ms, rtt_ms);
        ++p.rtt_samples;
      }
      break;
    }
  }
}

SocketSummary SocketSummarizer::Finish(size_t top, PortRange ephemeral) const {
  SocketSummary out = base_;
  for (ListenerStats& l : out.listeners) {
    for (const auto& [ep, n] : syn_recv_) {
      const auto& [family, bytes, port] = ep;
      if (port != l.port || family != l.address.family) continue;
      if (IsAny(l.address) || bytes == l.address.bytes) l.syn_recv += n;
    }
  }
  std::sort(out.listeners.begin(), out.listeners.end(),
            [](const ListenerStats& a, const ListenerStats& b) {
              return std::tie(a.port, a.address) < std::tie(b.port, b.address);
            });

  TimeWaitStats& tw = out.time_wait;
  tw.ephemeral = ephemeral;
  tw.ephemeral_ports = ephemeral.high >= ephemeral.low ? ephemeral.high - ephemeral.low + 1u : 0;
  for (const auto& [ep, n] : time_wait_) {
    if (n > tw.busiest_peer_count) {
      const auto& [family, bytes, port] = ep;
      IpAddress a;
      a.family = family;
      a.bytes = bytes;
      tw.busiest_peer = FormatEndpoint(a, port);
      tw.busiest_peer_count = n;
    }
  }
  if (tw.ephemeral_ports)
    tw.busiest_peer_fill_percent = 100.0 * tw.busiest_peer_count / tw.ephemeral_ports;

  std::vector<PeerStats> peers;
  peers.reserve(peers_.size());
  for (const auto& [addr, p] : peers_) peers.push_back(p);
  auto by_retrans = peers;
  by_retrans.erase(std::remove_if(by_retrans.begin(), by_retrans.end(),
                                  [](const PeerStats& p) { return p.retransmitted == 0; }),
                   by_retrans.end());
  std::sort(by_retrans.begin(), by_retrans.end(), [](const PeerStats& a, const PeerStats& b) {
    return a.retransmitted != b.retransmitted ? a.retransmitted > b.retransmitted
                                              : a.address < b.address;
  });
  if (by_retrans.size() > top) by_retrans.resize(top);
  out.top_retransmitting = std::move(by_retrans);
  auto by_rtt = std::move(peers);
  by_rtt.erase(std::remove_if(by_rtt.begin(), by_rtt.end(),
                              [](const PeerStats& p) { return p.rtt_samples == 0; }),
               by_rtt.end());
  std::sort(by_rtt.begin(), by_rtt.end(), [](const PeerStats& a, const PeerStats& b) {
    return a.mean_rtt_ms() != b.mean_rtt_ms() ? a.mean_rtt_ms() > b.mean_rtt_ms()
                                              : a.address < b.address;
  });
  if (by_rtt.size() > top) by_rtt.resize(top);
  out.top_rtt = std::move(by_rtt);
  out.top_syn_recv_sources.assign(syn_sources_.begin(), syn_sources_.end());
  std::sort(out.top_syn_recv_sources.begin(), out.top_syn_recv_sources.end(),
            [](const auto& a, const auto& b) {
              return a.second != b.second ? a.second > b.second : a.first < b.first;
            });
  if (out.top_syn_recv_sources.size() > top) out.top_syn_recv_sources.resize(top);
  out.stalled = stalled_;
  std::stable_sort(
      out.stalled.begin(), out.stalled.end(),
      [](const StalledFlow& a, const StalledFlow& b) { return a.retransmits > b.retransmits; });
  if (out.stalled.size() > kBusiestFlows) out.stalled.resize(kBusiestFlows);
  out.busiest_flows = flows_;
  std::sort(out.busiest_flows.begin(), out.busiest_flows.end(),
            [](const FlowLimits& a, const FlowLimits& b) { return a.busy_us > b.busy_us; });
  return out;
}

PortRange ParseEphemeralRange(absl::string_view text) {
  unsigned lo = 0, hi = 0;
  char extra = 0;
  const std::string t(text);
  if (std::sscanf(t.c_str(), "%u %u %c", &lo, &hi, &extra) == 2 && lo <= hi && hi <= 65535) {
    return {static_cast<uint16_t>(lo), static_cast<uint16_t>(hi)};
  }
  return {32768, 60999};
}

PortRange ReadEphemeralRange() {
  auto text = kernel::ReadSysctl("net.ipv4.ip_local_port_range");
  return ParseEphemeralRange(text.ok() ? *text : "");
}

absl::StatusOr<SummaryWalk> SummarizeSockets(const SocketQuery& q, size_t top, PortRange ephemeral,
                                             int attempts,
                                             absl::FunctionRef<absl::Status()> keep_going,
                                             const TcpSocketIterator* iter) {
  std::vector<std::string> notes;
  if (iter != nullptr && TcpSocketIterator::CanWalk(q)) {
    SocketSummarizer summarizer;
    bool stopped = false;
    auto walked = iter->Walk(
        q,
        [&](const SocketRecord& s) {
          summarizer.Add(s);
          return absl::OkStatus();
        },
        [&] {
          absl::Status st = keep_going();
          stopped = !st.ok();
          return st;
        },
        IterDetail::kSummary);
    if (walked.ok()) return SummaryWalk{summarizer.Finish(top, ephemeral), {}, "bpf_iter"};
    if (stopped) return walked.status();
    // The iterator failed on its own: sock_diag answers, and says so.
    notes.push_back(absl::StrCat("the BPF socket iterator failed (", walked.status().message(),
                                 "): walked with sock_diag"));
  }
  for (int attempt = 1;; ++attempt) {
    SocketSummarizer summarizer;
    auto report = DumpSockets(
        q,
        [&](const SocketRecord& s) {
          summarizer.Add(s);
          return absl::OkStatus();
        },
        {}, keep_going);
    if (!report.ok()) return report.status();
    if (report->warnings.empty() || attempt >= attempts) {
      notes.insert(notes.end(), report->warnings.begin(), report->warnings.end());
      return SummaryWalk{summarizer.Finish(top, ephemeral), std::move(notes)};
    }
  }
}

}  // namespace netagent::collectors
