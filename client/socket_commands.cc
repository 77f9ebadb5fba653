// netctl sockets and netctl sockets summary.
#include <google/protobuf/struct.pb.h>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "client/rpc.h"
#include "netagent/v1/sockets.grpc.pb.h"

namespace netagent::client {
namespace v1 = ::netagent::v1;
namespace {

v1::SocketFilter Filter(const SocketsArgs& a) {
  v1::SocketFilter f;
  if (a.tcp) f.add_protocols(v1::SOCKET_PROTOCOL_TCP);
  if (a.udp) f.add_protocols(v1::SOCKET_PROTOCOL_UDP);
  if (a.ipv4) f.add_families(v1::ADDRESS_FAMILY_INET);
  if (a.ipv6) f.add_families(v1::ADDRESS_FAMILY_INET6);
  for (const auto& s : a.states) f.add_states(s);
  f.set_source(a.source);
  f.set_destination(a.destination);
  f.set_source_port(a.source_port);
  f.set_destination_port(a.destination_port);
  return f;
}

std::string Endpoint(const std::string& addr, uint32_t port, v1::AddressFamily family) {
  const std::string p = port == 0 ? "*" : absl::StrCat(port);
  return family == v1::ADDRESS_FAMILY_INET6 ? absl::StrCat("[", addr, "]:", p)
                                            : absl::StrCat(addr, ":", p);
}

std::string Ms(uint32_t us) { return Millis(us); }
std::string Bps(double bytes_per_second) { return BitsPerSecond(bytes_per_second); }

// The ss -i -m details of one socket, in ss's own spelling, appended with a
// space before each (tens of thousands of lines: one string, no pieces).
void AppendDetails(const v1::Socket& s, std::string* d) {
  const size_t start = d->size();
  auto sep = [&] {
    if (d->size() > start) *d += ' ';
  };
  auto field = [&](absl::string_view name, auto value) {
    sep();
    absl::StrAppend(d, name, value);
  };
  if (s.has_memory()) {
    const auto& m = s.memory();
    sep();
    absl::StrAppend(d, "skmem:(r", m.rmem_alloc(), ",rb", m.rcvbuf(), ",t", m.wmem_alloc(), ",tb",
                    m.sndbuf(), ",f", m.fwd_alloc(), ",w", m.wmem_queued(), ",o", m.optmem());
    absl::StrAppend(d, ",bl", m.backlog(), ",d", m.drops(), ")");
  }
  if (!s.congestion_control().empty()) field("", s.congestion_control());
  if (!s.has_tcp_info()) return;
  const auto& t = s.tcp_info();
  if (t.options() & 4) {
    sep();
    absl::StrAppend(d, "wscale:", t.snd_wscale(), ",", t.rcv_wscale());
  }
  if (t.rto_us() && t.rto_us() != 3000000) field("rto:", Ms(t.rto_us()));
  if (t.rtt_us()) {
    sep();
    absl::StrAppend(d, "rtt:", Ms(t.rtt_us()), "/", Ms(t.rttvar_us()));
  }
  if (t.ato_us()) field("ato:", Ms(t.ato_us()));
  if (t.snd_mss()) field("mss:", t.snd_mss());
  if (t.pmtu()) field("pmtu:", t.pmtu());
  if (t.rcv_mss()) field("rcvmss:", t.rcv_mss());
  if (t.advmss()) field("advmss:", t.advmss());
  field("cwnd:", t.snd_cwnd());
  if (t.snd_ssthresh() < 0xffff) field("ssthresh:", t.snd_ssthresh());
  if (t.bytes_sent()) field("bytes_sent:", t.bytes_sent());
  if (t.bytes_retrans()) field("bytes_retrans:", t.bytes_retrans());
  if (t.bytes_acked() > 1) field("bytes_acked:", t.bytes_acked());
  if (t.bytes_received()) field("bytes_received:", t.bytes_received());
  if (t.segs_out()) field("segs_out:", t.segs_out());
  if (t.segs_in()) field("segs_in:", t.segs_in());
  if (t.data_segs_out()) field("data_segs_out:", t.data_segs_out());
  if (t.data_segs_in()) field("data_segs_in:", t.data_segs_in());
  if (s.has_bbr()) {
    const auto& b = s.bbr();
    sep();
    absl::StrAppend(
        d, "bbr:(bw:", Bps(static_cast<double>(b.bandwidth())), ",mrtt:", Ms(b.min_rtt_us()),
        absl::StrFormat(",pacing_gain:%g,cwnd_gain:%g)", b.pacing_gain(), b.cwnd_gain()));
  }
  if (t.last_data_sent_ms()) field("lastsnd:", t.last_data_sent_ms());
  if (t.last_data_recv_ms()) field("lastrcv:", t.last_data_recv_ms());
  if (t.last_ack_recv_ms()) field("lastack:", t.last_ack_recv_ms());
  if (t.pacing_rate() && t.pacing_rate() != ~0ULL) {
    field("pacing_rate ", Bps(static_cast<double>(t.pacing_rate())));
  }
  if (t.delivery_rate()) field("delivery_rate ", Bps(static_cast<double>(t.delivery_rate())));
  if (t.delivered()) field("delivered:", t.delivered());
  if (t.delivery_rate_app_limited()) field("app_limited", "");
  if (t.busy_time_us()) {
    sep();
    absl::StrAppend(d, "busy:", t.busy_time_us() / 1000, "ms");
  }
  if (t.rwnd_limited_us()) {
    sep();
    absl::StrAppend(d, "rwnd_limited:", t.rwnd_limited_us() / 1000, "ms");
  }
  if (t.sndbuf_limited_us()) {
    sep();
    absl::StrAppend(d, "sndbuf_limited:", t.sndbuf_limited_us() / 1000, "ms");
  }
  if (t.unacked()) field("unacked:", t.unacked());
  if (t.retrans() || t.total_retrans()) {
    sep();
    absl::StrAppend(d, "retrans:", t.retrans(), "/", t.total_retrans());
  }
  if (t.lost()) field("lost:", t.lost());
  if (t.sacked()) field("sacked:", t.sacked());
  if (t.dsack_dups()) field("dsack_dups:", t.dsack_dups());
  if (t.reord_seen()) field("reord_seen:", t.reord_seen());
  if (t.rcv_rtt_us()) field("rcv_rtt:", Ms(t.rcv_rtt_us()));
  if (t.rcv_space()) field("rcv_space:", t.rcv_space());
  if (t.rcv_ssthresh()) field("rcv_ssthresh:", t.rcv_ssthresh());
  if (t.notsent_bytes()) field("notsent:", t.notsent_bytes());
  if (t.min_rtt_us()) field("minrtt:", Ms(t.min_rtt_us()));
  if (t.snd_wnd()) field("snd_wnd:", t.snd_wnd());
  if (t.rcv_wnd()) field("rcv_wnd:", t.rcv_wnd());
}

void SocketRows(const v1::ListSocketsResponse& r, std::vector<std::vector<std::string>>& rows) {
  rows.reserve(rows.size() + r.sockets_size());
  for (const auto& s : r.sockets()) {
    std::vector<std::string> row = {s.protocol() == v1::SOCKET_PROTOCOL_UDP ? "udp" : "tcp",
                                    s.state(),
                                    Num(s.recv_q()),
                                    Num(s.send_q()),
                                    Endpoint(s.local_address(), s.local_port(), s.family()),
                                    Endpoint(s.peer_address(), s.peer_port(), s.family())};
    std::string details;
    details.reserve(640);  // an -i -m line is about 450 bytes: one allocation, no regrowth
    AppendDetails(s, &details);
    if (!details.empty()) row.push_back(std::move(details));
    rows.push_back(std::move(row));
  }
}

}  // namespace

View SocketsView(const SocketsArgs& args) {
  View view;
  if (args.count) {
    view.header = {"SOCKETS"};
    view.rows =
        TypedRows<google::protobuf::Struct>([](const google::protobuf::Struct& s, Rows& rows) {
          rows.push_back({Num(static_cast<uint64_t>(s.fields().at("sockets").number_value()))});
        });
  } else {
    view.header = {"PROTO", "STATE", "RECV-Q", "SEND-Q", "LOCAL", "PEER"};
    if (args.info || args.memory) view.header.push_back("DETAILS");
    view.rows = TypedRows<v1::ListSocketsResponse>(
        [](const v1::ListSocketsResponse& m, Rows& rows) { SocketRows(m, rows); });
  }
  return view;
}

int RunSockets(const CommandContext& c, const SocketsArgs& args) {
  v1::ListSocketsRequest req;
  *req.mutable_filter() = Filter(args);
  req.set_tcp_info(args.info);
  req.set_memory(args.memory);
  req.set_page_size(args.page_size);
  req.set_page_token(args.page_token);
  const View view = SocketsView(args);
  // Sockets are printed batch by batch as they arrive (tables: widths from
  // the first page; JSON: a line per batch).
  return RunStreams(c, view, [&](size_t i, grpc::Channel& ch, Printer& printer) {
    auto stub = StubFor<v1::SocketService::Stub>(ch);
    CallContext call(absl::Now() + c.dialer->options().timeout);
    if (!call.started()) return absl::CancelledError("interrupted");
    auto reader = stub.ListSockets(&call.ctx, req);
    uint64_t count = 0;
    std::string more;
    ReadEachInArena<v1::ListSocketsResponse>(*reader, [&](const auto& batch) {
      count += batch.sockets_size();
      for (const auto& w : batch.warnings()) printer.Warning(i, w);
      if (!batch.next_page_token().empty()) more = batch.next_page_token();
      if (!args.count) printer.Part(i, batch);
    });
    absl::Status st = FromGrpc(reader->Finish());
    if (!st.ok()) return st;
    if (args.count) {
      google::protobuf::Struct s;
      (*s.mutable_fields())["sockets"].set_number_value(static_cast<double>(count));
      printer.Answer(i, s);
    }
    if (!more.empty()) printer.Warning(i, absl::StrCat("more sockets: --page-token ", more));
    return st;
  });
}

namespace {

void SummaryBlock(const v1::GetSocketSummaryResponse& s, std::ostream& out) {
  std::vector<std::string> states;
  for (const auto& st : s.states()) {
    states.push_back(absl::StrCat(st.protocol(), " ", st.state(), " ", st.count()));
  }
  out << "sockets     " << s.total() << ": " << absl::StrJoin(states, ", ") << "\n";
  const auto& tw = s.time_wait();
  out << "time-wait   " << tw.count();
  if (tw.busiest_peer_count() > 0) {
    out << absl::StrFormat("; busiest peer %s holds %d of %d ephemeral ports (%.1f%%, range %d-%d)",
                           tw.busiest_peer(), tw.busiest_peer_count(), tw.ephemeral_ports(),
                           tw.busiest_peer_fill_percent(), tw.ephemeral_low(), tw.ephemeral_high());
  }
  out << "\n";
  if (!s.walked_by().empty()) out << "walked by   " << s.walked_by() << "\n";
  for (const auto& w : s.warnings()) out << "warning     " << w << "\n";
  if (s.listeners_size() > 0) {
    out << "\n";
    Table t({"LISTENER", "ACCEPT-Q", "BACKLOG", "FILL%", "SYN-RECV"});
    for (const auto& l : s.listeners()) {
      t.AddRow(
          {Endpoint(l.local_address(), l.local_port(),
                    l.local_address().find(':') != std::string::npos ? v1::ADDRESS_FAMILY_INET6
                                                                     : v1::ADDRESS_FAMILY_INET),
           Num(l.accept_queue()), Num(l.backlog()),
           absl::StrFormat("%.1f", l.accept_queue_fill_percent()), Num(l.syn_recv())});
    }
    t.Render(out);
  }
  auto peers = [&](const char* title,
                   const google::protobuf::RepeatedPtrField<v1::PeerSummary>& list) {
    if (list.empty()) return;
    out << "\n";
    Table t({title, "CONNS", "RETRANS", "MEAN-RTT-ms", "MAX-RTT-ms"});
    for (const auto& p : list) {
      t.AddRow({p.address(), Num(p.connections()), Num(p.retransmitted_segments()),
                absl::StrFormat("%.3f", p.mean_rtt_ms()), absl::StrFormat("%.3f", p.max_rtt_ms())});
    }
    t.Render(out);
  };
  peers("TOP-RETRANSMITTING-PEER", s.top_retransmitting_peers());
  peers("TOP-RTT-PEER", s.top_rtt_peers());
}

}  // namespace

int RunSocketSummary(const CommandContext& c, const SocketsArgs& args) {
  v1::GetSocketSummaryRequest req;
  *req.mutable_filter() = Filter(args);
  req.set_top(args.top);
  View view;
  view.block = TypedBlock<v1::GetSocketSummaryResponse>(SummaryBlock);
  view.numbers_header = {"FIELD", "VALUE"};
  view.numbers = TypedRows<v1::GetSocketSummaryResponse>(
      [](const v1::GetSocketSummaryResponse& s, Rows& rows) {
        rows.push_back({"sockets", Num(s.total())});
        for (const auto& st : s.states())
          rows.push_back({absl::StrCat(st.protocol(), " ", st.state()), Num(st.count())});
        rows.push_back({"time-wait", Num(s.time_wait().count())});
        rows.push_back({"busiest-peer-port-fill%",
                        absl::StrFormat("%.1f", s.time_wait().busiest_peer_fill_percent())});
        double fill = 0;
        for (const auto& l : s.listeners()) fill = std::max(fill, l.accept_queue_fill_percent());
        rows.push_back({"fullest-accept-queue%", absl::StrFormat("%.1f", fill)});
      });
  view.keys = {0};
  view.by = "VALUE";
  return RunUnary(c, view, [&](const Target&, grpc::Channel& ch, absl::Time d) {
    return Unary(ch, d, req, &v1::SocketService::Stub::GetSocketSummary);
  });
}

void AddSocketCommands(Commands& commands) {
  auto args = std::make_shared<SocketsArgs>();
  auto* sockets =
      commands.app().add_subcommand("sockets", "sockets like ss -tuanim: filtered in the kernel");
  auto filters = [args](CLI::App* cmd) {
    cmd->add_flag("--tcp", args->tcp, "TCP sockets (the default)");
    cmd->add_flag("--udp", args->udp, "UDP sockets");
    cmd->add_flag("-4", args->ipv4, "IPv4 only");
    cmd->add_flag("-6", args->ipv6, "IPv6 only");
    cmd->add_option("--state", args->states,
                    "established, syn-sent, syn-recv, fin-wait-1, fin-wait-2, time-wait, closed, "
                    "close-wait, last-ack, listening, closing, connected, all (repeatable)")
        ->delimiter(',');
    cmd->add_option("--src", args->source, "local address or CIDR prefix");
    cmd->add_option("--dst", args->destination, "peer address or CIDR prefix");
    cmd->add_option("--sport", args->source_port, "local port or range (1024-65535)");
    cmd->add_option("--dport", args->destination_port, "peer port or range");
  };
  filters(sockets);
  sockets->add_flag("-i,--info", args->info, "tcp_info, congestion control, BBR");
  sockets->add_flag("-m,--memory", args->memory, "socket memory (skmem)");
  sockets->add_flag("--count", args->count, "print how many sockets match, not them");
  sockets->add_option("--page-size", args->page_size, "at most this many sockets");
  sockets->add_option("--page-token", args->page_token, "continue a previous page");
  commands.Runs(sockets, [args](CommandContext& c) { return RunSockets(c, *args); });
  auto* summary = sockets->add_subcommand(
      "summary", "states, listeners' accept queues, TIME_WAIT, worst peers");
  filters(summary);
  summary->add_option("--top", args->top, "peers per list (default 10)");
  commands.AddAggregate(summary, "--top-hosts");
  commands.Runs(summary, [args](CommandContext& c) { return RunSocketSummary(c, *args); });
}

}  // namespace netagent::client
