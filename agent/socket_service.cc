#include "agent/socket_service.h"

#include <linux/sock_diag.h>

#include "absl/hash/hash.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "agent/convert.h"
#include "collectors/socket_summary.h"
#include "kernel/errors.h"
#include "kernel/sysctl.h"

namespace netagent::agent {
namespace v1 = ::netagent::v1;
namespace {

constexpr uint32_t kDefaultBatch = 512;
constexpr uint32_t kMaxBatch = 4096;
// What one streamed message may hold, whatever batch_size says: with dozens
// of streams at once, each holds about this much (and its wire copy).
constexpr size_t kMaxBatchBytes = 256 * 1024;
constexpr uint32_t kDefaultTop = 10;
constexpr uint32_t kMaxTop = 1000;
constexpr int kSummaryAttempts = 3;

v1::AddressFamily FamilyToProto(int f) {
  return f == AF_INET ? v1::ADDRESS_FAMILY_INET : v1::ADDRESS_FAMILY_INET6;
}

v1::SocketProtocol ProtocolToProto(int p) {
  return p == IPPROTO_UDP ? v1::SOCKET_PROTOCOL_UDP : v1::SOCKET_PROTOCOL_TCP;
}

void TcpInfoToProto(const collectors::KernelTcpInfo& t, uint16_t length, v1::TcpInfo* o) {
  o->set_length(length);
  o->set_ca_state(t.ca_state);
  o->set_retransmits(t.retransmits);
  o->set_probes(t.probes);
  o->set_backoff(t.backoff);
  o->set_options(t.options);
  o->set_snd_wscale(t.wscale & 0xf);
  o->set_rcv_wscale(t.wscale >> 4);
  o->set_delivery_rate_app_limited(t.app_limited_fastopen & 1);
  o->set_fastopen_client_fail((t.app_limited_fastopen >> 1) & 3);
  o->set_rto_us(t.rto);
  o->set_ato_us(t.ato);
  o->set_snd_mss(t.snd_mss);
  o->set_rcv_mss(t.rcv_mss);
  o->set_unacked(t.unacked);
  o->set_sacked(t.sacked);
  o->set_lost(t.lost);
  o->set_retrans(t.retrans);
  o->set_fackets(t.fackets);
  o->set_last_data_sent_ms(t.last_data_sent);
  o->set_last_ack_sent_ms(t.last_ack_sent);
  o->set_last_data_recv_ms(t.last_data_recv);
  o->set_last_ack_recv_ms(t.last_ack_recv);
  o->set_pmtu(t.pmtu);
  o->set_rcv_ssthresh(t.rcv_ssthresh);
  o->set_rtt_us(t.rtt);
  o->set_rttvar_us(t.rttvar);
  o->set_snd_ssthresh(t.snd_ssthresh);
  o->set_snd_cwnd(t.snd_cwnd);
  o->set_advmss(t.advmss);
  o->set_reordering(t.reordering);
  o->set_rcv_rtt_us(t.rcv_rtt);
  o->set_rcv_space(t.rcv_space);
  o->set_total_retrans(t.total_retrans);
  o->set_pacing_rate(t.pacing_rate);
  o->set_max_pacing_rate(t.max_pacing_rate);
  o->set_bytes_acked(t.bytes_acked);
  o->set_bytes_received(t.bytes_received);
  o->set_segs_out(t.segs_out);
  o->set_segs_in(t.segs_in);
  o->set_notsent_bytes(t.notsent_bytes);
  o->set_min_rtt_us(t.min_rtt);
  o->set_data_segs_in(t.data_segs_in);
  o->set_data_segs_out(t.data_segs_out);
  o->set_delivery_rate(t.delivery_rate);
  o->set_busy_time_us(t.busy_time);
  o->set_rwnd_limited_us(t.rwnd_limited);
  o->set_sndbuf_limited_us(t.sndbuf_limited);
  o->set_delivered(t.delivered);
  o->set_delivered_ce(t.delivered_ce);
  o->set_bytes_sent(t.bytes_sent);
  o->set_bytes_retrans(t.bytes_retrans);
  o->set_dsack_dups(t.dsack_dups);
  o->set_reord_seen(t.reord_seen);
  o->set_rcv_ooopack(t.rcv_ooopack);
  o->set_snd_wnd(t.snd_wnd);
  o->set_rcv_wnd(t.rcv_wnd);
  o->set_rehash(t.rehash);
  o->set_total_rto(t.total_rto);
  o->set_total_rto_recoveries(t.total_rto_recoveries);
  o->set_total_rto_time_ms(t.total_rto_time);
}

uint64_t FilterFingerprint(const v1::SocketFilter& f) {
  std::string bytes;
  (void)f.SerializeToString(&bytes);
  return absl::HashOf(bytes) & 0xffffffffffffULL;
}

}  // namespace

absl::StatusOr<collectors::SocketQuery> SocketQueryFromProto(const v1::SocketFilter& f) {
  collectors::SocketQuery q;
  if (f.protocols_size() > 0) {
    q.protocols.clear();
    for (int p : f.protocols()) {
      int proto = p == v1::SOCKET_PROTOCOL_TCP   ? IPPROTO_TCP
                  : p == v1::SOCKET_PROTOCOL_UDP ? IPPROTO_UDP
                                                 : -1;
      if (proto < 0) return absl::InvalidArgumentError("filter.protocols: TCP or UDP");
      if (std::find(q.protocols.begin(), q.protocols.end(), proto) == q.protocols.end()) {
        q.protocols.push_back(proto);
      }
    }
  }
  if (f.families_size() > 0) {
    q.families.clear();
    for (int fam : f.families()) {
      int af = fam == v1::ADDRESS_FAMILY_INET    ? AF_INET
               : fam == v1::ADDRESS_FAMILY_INET6 ? AF_INET6
                                                 : -1;
      if (af < 0) return absl::InvalidArgumentError("filter.families: INET or INET6");
      if (std::find(q.families.begin(), q.families.end(), af) == q.families.end()) {
        q.families.push_back(af);
      }
    }
  }
  std::vector<std::string> states(f.states().begin(), f.states().end());
  NETAGENT_ASSIGN_OR_RETURN(q.states, collectors::ParseSocketStates(states, "filter.states"));
  if (!f.source().empty()) {
    NETAGENT_ASSIGN_OR_RETURN(q.source, collectors::ParsePrefix(f.source(), "filter.source"));
  }
  if (!f.destination().empty()) {
    NETAGENT_ASSIGN_OR_RETURN(q.destination,
                              collectors::ParsePrefix(f.destination(), "filter.destination"));
  }
  if (!f.source_port().empty()) {
    NETAGENT_ASSIGN_OR_RETURN(q.source_port,
                              collectors::ParsePortRange(f.source_port(), "filter.source_port"));
  }
  if (!f.destination_port().empty()) {
    NETAGENT_ASSIGN_OR_RETURN(
        q.destination_port,
        collectors::ParsePortRange(f.destination_port(), "filter.destination_port"));
  }
  // An IPv6 address filter can match only IPv6 sockets: dump that family
  // alone. An IPv4 one also matches dual-stack IPv6 sockets by their
  // v4-mapped addresses (the kernel's inet_diag_bc_run compares an AF_INET
  // condition with ::ffff:a.b.c.d), as ss finds them: both families stay.
  for (const auto* p : {&q.source, &q.destination}) {
    if (!p->has_value() || (*p)->address.family != AF_INET6) continue;
    if (f.families_size() > 0 &&
        std::find(q.families.begin(), q.families.end(), AF_INET6) == q.families.end()) {
      return absl::InvalidArgumentError(
          "filter.families: excludes the family of the source or destination address");
    }
    q.families = {AF_INET6};
  }
  if (q.source && q.destination && q.source->address.family != q.destination->address.family) {
    return absl::InvalidArgumentError(
        "filter.destination: not the address family of filter.source");
  }
  return q;
}

void ToProto(const collectors::SocketRecord& s, bool tcp_info, bool memory, v1::Socket* o) {
  o->set_protocol(ProtocolToProto(s.protocol));
  o->set_family(FamilyToProto(s.local.family));
  o->set_state(std::string(collectors::SocketStateName(s.state)));
  o->set_local_address(collectors::FormatAddress(s.local));
  o->set_local_port(s.local_port);
  o->set_peer_address(collectors::FormatAddress(s.peer));
  o->set_peer_port(s.peer_port);
  o->set_recv_q(s.rqueue);
  o->set_send_q(s.wqueue);
  o->set_uid(s.uid);
  o->set_inode(s.inode);
  o->set_cookie(s.cookie);
  o->set_interface_index(s.ifindex);
  if (s.mark) o->set_mark(*s.mark);
  if (s.cgroup_id) o->set_cgroup_id(*s.cgroup_id);
  o->set_timer(s.timer);
  o->set_timer_expires_ms(s.timer_expires_ms);
  o->set_timer_retransmits(s.timer_retransmits);
  if (s.shutdown) o->set_shutdown(*s.shutdown);
  if (tcp_info && s.has_tcp_info())
    TcpInfoToProto(s.tcp_info, s.tcp_info_length, o->mutable_tcp_info());
  if (tcp_info && s.congestion[0] != '\0') o->set_congestion_control(s.congestion);
  if (tcp_info && s.bbr) {
    auto* b = o->mutable_bbr();
    b->set_bandwidth(static_cast<uint64_t>(s.bbr->bw_hi) << 32 | s.bbr->bw_lo);
    b->set_min_rtt_us(s.bbr->min_rtt);
    b->set_pacing_gain(s.bbr->pacing_gain / 256.0);
    b->set_cwnd_gain(s.bbr->cwnd_gain / 256.0);
  }
  if (memory && s.memory.count > 0) {
    auto* m = o->mutable_memory();
    const uint32_t* v = s.memory.values;
    m->set_rmem_alloc(v[SK_MEMINFO_RMEM_ALLOC]);
    m->set_rcvbuf(v[SK_MEMINFO_RCVBUF]);
    m->set_wmem_alloc(v[SK_MEMINFO_WMEM_ALLOC]);
    m->set_sndbuf(v[SK_MEMINFO_SNDBUF]);
    m->set_fwd_alloc(v[SK_MEMINFO_FWD_ALLOC]);
    m->set_wmem_queued(v[SK_MEMINFO_WMEM_QUEUED]);
    m->set_optmem(v[SK_MEMINFO_OPTMEM]);
    if (s.memory.count > SK_MEMINFO_BACKLOG) m->set_backlog(v[SK_MEMINFO_BACKLOG]);
    if (s.memory.count > SK_MEMINFO_DROPS) m->set_drops(v[SK_MEMINFO_DROPS]);
  }
}

std::string EncodePageToken(const collectors::SocketCursor& c, const v1::SocketFilter& f) {
  return absl::StrFormat("s1.%d.%d.%x", c.pass, c.skip, FilterFingerprint(f));
}

absl::StatusOr<collectors::SocketCursor> DecodePageToken(absl::string_view token,
                                                         const v1::SocketFilter& f) {
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  collectors::SocketCursor c;
  uint64_t fingerprint;
  if (parts.size() != 4 || parts[0] != "s1" || !absl::SimpleAtoi(parts[1], &c.pass) ||
      !absl::SimpleAtoi(parts[2], &c.skip) || !absl::SimpleHexAtoi(parts[3], &fingerprint)) {
    return absl::InvalidArgumentError("page_token: not a token this agent issued");
  }
  if (fingerprint != FilterFingerprint(f)) {
    return absl::InvalidArgumentError("page_token: issued for a different filter");
  }
  return c;
}

grpc::Status SocketService::ListSockets(grpc::ServerContext* context,
                                        const v1::ListSocketsRequest* request,
                                        grpc::ServerWriter<v1::ListSocketsResponse>* writer) {
  if (grpc::Status s = Admit(*ctx_.auth, context); !s.ok()) return s;
  auto query = SocketQueryFromProto(request->filter());
  if (!query.ok()) return ToGrpc(query.status());
  query->tcp_info = request->tcp_info();
  query->memory = request->memory();
  const uint32_t batch = request->batch_size() == 0 ? kDefaultBatch : request->batch_size();
  if (batch > kMaxBatch) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("batch_size: at most ", kMaxBatch));
  }
  collectors::SocketCursor from;
  if (!request->page_token().empty()) {
    auto c = DecodePageToken(request->page_token(), request->filter());
    if (!c.ok()) return ToGrpc(c.status());
    from = *c;
  }
  auto slot = AcquireLongCall(ctx_, context);
  if (!slot.ok()) return ToGrpc(slot.status());
  CpuShares::Hold cpu(&ctx_.walks);

  v1::ListSocketsResponse msg;
  uint64_t in_page = 0;
  size_t bytes = 0;
  bool sent = false;
  auto flush = [&]() -> absl::Status {
    if (!cpu.Without([&] { return writer->Write(msg); }))
      return absl::CancelledError("caller went away");
    sent = true;
    msg.Clear();
    bytes = 0;
    return absl::OkStatus();
  };
  auto report = collectors::DumpSockets(
      *query,
      [&](const collectors::SocketRecord& s) -> absl::Status {
        v1::Socket* added = msg.add_sockets();
        ToProto(s, query->tcp_info, query->memory, added);
        bytes += added->ByteSizeLong();
        ++in_page;
        if (request->page_size() != 0 && in_page >= request->page_size()) {
          return collectors::StopDump();
        }
        if (static_cast<uint32_t>(msg.sockets_size()) >= batch || bytes >= kMaxBatchBytes)
          return flush();
        return absl::OkStatus();
      },
      from,
      [&] {
        cpu.Yield();
        return CallStillWanted(ctx_, context);
      });
  if (!report.ok()) return ToGrpc(report.status());
  const bool page_full = request->page_size() != 0 && in_page >= request->page_size();
  if (page_full) msg.set_next_page_token(EncodePageToken(report->stopped_at, request->filter()));
  for (const auto& w : report->warnings) msg.add_warnings(w);
  // At least one message, empty when nothing matched: a caller gets a result
  // (netctl -o json prints one) rather than a stream that says nothing.
  if (!sent || msg.sockets_size() > 0 || page_full || msg.warnings_size() > 0) {
    if (absl::Status st = flush(); !st.ok()) return ToGrpc(st);
  }
  return grpc::Status::OK;
}

grpc::Status SocketService::GetSocketSummary(grpc::ServerContext* context,
                                             const v1::GetSocketSummaryRequest* request,
                                             v1::GetSocketSummaryResponse* response) {
  if (grpc::Status s = Admit(*ctx_.auth, context); !s.ok()) return s;
  auto query = SocketQueryFromProto(request->filter());
  if (!query.ok()) return ToGrpc(query.status());
  query->tcp_info = true;  // retransmissions and RTT per peer
  const uint32_t top = request->top() == 0 ? kDefaultTop : request->top();
  if (top > kMaxTop) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat("top: at most ", kMaxTop));
  }
  const collectors::PortRange ephemeral = collectors::ReadEphemeralRange();
  auto slot = AcquireLongCall(ctx_, context);
  if (!slot.ok()) return ToGrpc(slot.status());
  CpuShares::Hold cpu(&ctx_.walks);
  auto walk = collectors::SummarizeSockets(
      *query, top, ephemeral, kSummaryAttempts,
      [&] {
        cpu.Yield();
        return CallStillWanted(ctx_, context);
      },
      ctx_.socket_iter ? ctx_.socket_iter->get() : nullptr);
  if (!walk.ok()) return ToGrpc(walk.status());
  const collectors::SocketSummary& sum = walk->summary;
  const std::vector<std::string>& warnings = walk->warnings;
  response->set_walked_by(walk->walked_by);
  for (const auto& [key, count] : sum.states) {
    auto* s = response->add_states();
    s->set_protocol(key.first == IPPROTO_UDP ? "udp" : "tcp");
    s->set_state(std::string(collectors::SocketStateName(key.second)));
    s->set_count(count);
  }
  for (const auto& l : sum.listeners) {
    auto* o = response->add_listeners();
    o->set_protocol(ProtocolToProto(l.protocol));
    o->set_local_address(collectors::FormatAddress(l.address));
    o->set_local_port(l.port);
    o->set_accept_queue(l.accept_queue);
    o->set_backlog(l.backlog);
    o->set_accept_queue_fill_percent(l.fill_percent);
    o->set_syn_recv(l.syn_recv);
  }
  auto* tw = response->mutable_time_wait();
  tw->set_count(sum.time_wait.count);
  tw->set_ephemeral_low(sum.time_wait.ephemeral.low);
  tw->set_ephemeral_high(sum.time_wait.ephemeral.high);
  tw->set_ephemeral_ports(sum.time_wait.ephemeral_ports);
  tw->set_busiest_peer(sum.time_wait.busiest_peer);
  tw->set_busiest_peer_count(sum.time_wait.busiest_peer_count);
  tw->set_busiest_peer_fill_percent(sum.time_wait.busiest_peer_fill_percent);
  auto peer = [](const collectors::PeerStats& p, v1::PeerSummary* o) {
    o->set_address(collectors::FormatAddress(p.address));
    o->set_connections(p.connections);
    o->set_retransmitted_segments(p.retransmitted);
    o->set_mean_rtt_ms(p.mean_rtt_ms());
    o->set_max_rtt_ms(p.rtt_max_ms);
  };
  for (const auto& p : sum.top_retransmitting) peer(p, response->add_top_retransmitting_peers());
  for (const auto& p : sum.top_rtt) peer(p, response->add_top_rtt_peers());
  response->set_total(sum.total);
  for (const auto& w : warnings) response->add_warnings(w);
  return grpc::Status::OK;
}

}  // namespace netagent::agent
