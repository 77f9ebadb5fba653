// netctl sockets and netctl sockets summary.
#include <google/protobuf/struct.pb.h>

#include <mutex>

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

std::string Ms(uint32_t us) { return absl::StrFormat("%.3g", us / 1000.0); }

std::string Bps(double bytes_per_second) {
  return absl::StrFormat("%.0fbps", bytes_per_second * 8);
}

// The ss -i -m details of one socket, in ss's own spelling.
std::string Details(const v1::Socket& s) {
  std::vector<std::string> d;
  if (s.has_memory()) {
    const auto& m = s.memory();
    d.push_back(absl::StrFormat("skmem:(r%u,rb%u,t%u,tb%u,f%u,w%u,o%u,bl%u,d%u)", m.rmem_alloc(),
                                m.rcvbuf(), m.wmem_alloc(), m.sndbuf(), m.fwd_alloc(),
                                m.wmem_queued(), m.optmem(), m.backlog(), m.drops()));
  }
  if (!s.congestion_control().empty()) d.push_back(s.congestion_control());
  if (s.has_tcp_info()) {
    const auto& t = s.tcp_info();
    if (t.options() & 4) d.push_back(absl::StrCat("wscale:", t.snd_wscale(), ",", t.rcv_wscale()));
    if (t.rto_us() && t.rto_us() != 3000000) d.push_back(absl::StrCat("rto:", Ms(t.rto_us())));
    if (t.rtt_us()) d.push_back(absl::StrCat("rtt:", Ms(t.rtt_us()), "/", Ms(t.rttvar_us())));
    if (t.ato_us()) d.push_back(absl::StrCat("ato:", Ms(t.ato_us())));
    if (t.snd_mss()) d.push_back(absl::StrCat("mss:", t.snd_mss()));
    if (t.pmtu()) d.push_back(absl::StrCat("pmtu:", t.pmtu()));
    if (t.rcv_mss()) d.push_back(absl::StrCat("rcvmss:", t.rcv_mss()));
    if (t.advmss()) d.push_back(absl::StrCat("advmss:", t.advmss()));
    d.push_back(absl::StrCat("cwnd:", t.snd_cwnd()));
    if (t.snd_ssthresh() < 0xffff) d.push_back(absl::StrCat("ssthresh:", t.snd_ssthresh()));
    if (t.bytes_sent()) d.push_back(absl::StrCat("bytes_sent:", t.bytes_sent()));
    if (t.bytes_retrans()) d.push_back(absl::StrCat("bytes_retrans:", t.bytes_retrans()));
    if (t.bytes_acked() > 1) d.push_back(absl::StrCat("bytes_acked:", t.bytes_acked()));
    if (t.bytes_received()) d.push_back(absl::StrCat("bytes_received:", t.bytes_received()));
    if (t.segs_out()) d.push_back(absl::StrCat("segs_out:", t.segs_out()));
    if (t.segs_in()) d.push_back(absl::StrCat("segs_in:", t.segs_in()));
    if (t.data_segs_out()) d.push_back(absl::StrCat("data_segs_out:", t.data_segs_out()));
    if (t.data_segs_in()) d.push_back(absl::StrCat("data_segs_in:", t.data_segs_in()));
    if (s.has_bbr()) {
      const auto& b = s.bbr();
      d.push_back(absl::StrFormat("bbr:(bw:%s,mrtt:%s,pacing_gain:%g,cwnd_gain:%g)",
                                  Bps(static_cast<double>(b.bandwidth())), Ms(b.min_rtt_us()),
                                  b.pacing_gain(), b.cwnd_gain()));
    }
    if (t.last_data_sent_ms()) d.push_back(absl::StrCat("lastsnd:", t.last_data_sent_ms()));
    if (t.last_data_recv_ms()) d.push_back(absl::StrCat("lastrcv:", t.last_data_recv_ms()));
    if (t.last_ack_recv_ms()) d.push_back(absl::StrCat("lastack:", t.last_ack_recv_ms()));
    if (t.pacing_rate() && t.pacing_rate() != ~0ULL) {
      d.push_back(absl::StrCat("pacing_rate ", Bps(static_cast<double>(t.pacing_rate()))));
    }
    if (t.delivery_rate()) {
      d.push_back(absl::StrCat("delivery_rate ", Bps(static_cast<double>(t.delivery_rate()))));
    }
    if (t.delivered()) d.push_back(absl::StrCat("delivered:", t.delivered()));
    if (t.delivery_rate_app_limited()) d.push_back("app_limited");
    if (t.busy_time_us()) d.push_back(absl::StrCat("busy:", t.busy_time_us() / 1000, "ms"));
    if (t.rwnd_limited_us())
      d.push_back(absl::StrCat("rwnd_limited:", t.rwnd_limited_us() / 1000, "ms"));
    if (t.sndbuf_limited_us()) {
      d.push_back(absl::StrCat("sndbuf_limited:", t.sndbuf_limited_us() / 1000, "ms"));
    }
    if (t.unacked()) d.push_back(absl::StrCat("unacked:", t.unacked()));
    if (t.retrans() || t.total_retrans()) {
      d.push_back(absl::StrCat("retrans:", t.retrans(), "/", t.total_retrans()));
    }
    if (t.lost()) d.push_back(absl::StrCat("lost:", t.lost()));
    if (t.sacked()) d.push_back(absl::StrCat("sacked:", t.sacked()));
    if (t.dsack_dups()) d.push_back(absl::StrCat("dsack_dups:", t.dsack_dups()));
    if (t.reord_seen()) d.push_back(absl::StrCat("reord_seen:", t.reord_seen()));
    if (t.rcv_rtt_us()) d.push_back(absl::StrCat("rcv_rtt:", Ms(t.rcv_rtt_us())));
    if (t.rcv_space()) d.push_back(absl::StrCat("rcv_space:", t.rcv_space()));
    if (t.rcv_ssthresh()) d.push_back(absl::StrCat("rcv_ssthresh:", t.rcv_ssthresh()));
    if (t.notsent_bytes()) d.push_back(absl::StrCat("notsent:", t.notsent_bytes()));
    if (t.min_rtt_us()) d.push_back(absl::StrCat("minrtt:", Ms(t.min_rtt_us())));
    if (t.snd_wnd()) d.push_back(absl::StrCat("snd_wnd:", t.snd_wnd()));
    if (t.rcv_wnd()) d.push_back(absl::StrCat("rcv_wnd:", t.rcv_wnd()));
  }
  return absl::StrJoin(d, " ");
}

void SocketRows(const v1::ListSocketsResponse& r, std::vector<std::vector<std::string>>& rows) {
  for (const auto& s : r.sockets()) {
    std::vector<std::string> row = {s.protocol() == v1::SOCKET_PROTOCOL_UDP ? "udp" : "tcp",
                                    s.state(),
                                    Num(s.recv_q()),
                                    Num(s.send_q()),
                                    Endpoint(s.local_address(), s.local_port(), s.family()),
                                    Endpoint(s.peer_address(), s.peer_port(), s.family())};
    std::string details = Details(s);
    if (!details.empty()) row.push_back(std::move(details));
    rows.push_back(std::move(row));
  }
}

}  // namespace

int RunSockets(const CommandContext& c, const SocketsArgs& args) {
  v1::ListSocketsRequest req;
  *req.mutable_filter() = Filter(args);
  req.set_tcp_info(args.info);
  req.set_memory(args.memory);
  req.set_page_size(args.page_size);
  req.set_page_token(args.page_token);
  std::mutex print_mu;
  const bool stream_json = c.format == Format::kJson && !args.count;
  auto outcomes =
      FanOut(c.targets, *c.dialer, [&](const Target& t, grpc::Channel& ch, absl::Time deadline) {
        auto stub = StubFor<v1::SocketService::Stub>(ch);
        grpc::ClientContext ctx;
        ctx.set_deadline(absl::ToChronoTime(deadline));
        auto reader = stub.ListSockets(&ctx, req);
        v1::ListSocketsResponse batch;
        auto all = std::make_unique<v1::ListSocketsResponse>();
        uint64_t count = 0;
        while (reader->Read(&batch)) {
          count += batch.sockets_size();
          if (stream_json) {
            std::lock_guard<std::mutex> lock(print_mu);
            *c.out << JsonLine(t, absl::OkStatus(), &batch) << "\n";
          } else if (!args.count) {
            all->mutable_sockets()->MergeFrom(batch.sockets());
            all->set_next_page_token(batch.next_page_token());
            all->mutable_warnings()->MergeFrom(batch.warnings());
          }
        }
        Outcome o;
        o.status = FromGrpc(reader->Finish());
        if (!o.status.ok()) return o;
        if (args.count) {
          auto s = std::make_unique<google::protobuf::Struct>();
          (*s->mutable_fields())["sockets"].set_number_value(static_cast<double>(count));
          o.result = std::move(s);
        } else if (!stream_json) {
          o.result = std::move(all);
        }
        return o;
      });
  if (stream_json) {
    // Batches went out as they came; what is left to say is who failed.
    int failed = 0;
    for (size_t i = 0; i < outcomes.size(); ++i) {
      if (outcomes[i].status.ok()) continue;
      ++failed;
      *c.out << JsonLine(c.targets[i], outcomes[i].status, nullptr) << "\n";
    }
    return failed ? 1 : 0;
  }
  View view;
  if (args.count) {
    view.header = {"SOCKETS"};
    view.rows = [](const google::protobuf::Message& m,
                   std::vector<std::vector<std::string>>& rows) {
      const auto& s = static_cast<const google::protobuf::Struct&>(m);
      rows.push_back({Num(static_cast<uint64_t>(s.fields().at("sockets").number_value()))});
    };
  } else {
    view.header = {"PROTO", "STATE", "RECV-Q", "SEND-Q", "LOCAL", "PEER"};
    if (args.info || args.memory) view.header.push_back("DETAILS");
    view.rows = [](const google::protobuf::Message& m,
                   std::vector<std::vector<std::string>>& rows) {
      SocketRows(static_cast<const v1::ListSocketsResponse&>(m), rows);
    };
  }
  int rc = PrintOutcomes(c.targets, outcomes, c.format, view, c.label_targets, *c.out, *c.err);
  for (size_t i = 0; i < outcomes.size() && !args.count; ++i) {
    if (!outcomes[i].status.ok()) continue;
    const auto& r = static_cast<const v1::ListSocketsResponse&>(*outcomes[i].result);
    for (const auto& w : r.warnings())
      *c.err << TerminalText(absl::StrCat("netctl: ", c.targets[i].display, ": ", w)) << "\n";
    if (!r.next_page_token().empty()) {
      *c.err << "netctl: more sockets: --page-token " << TerminalText(r.next_page_token()) << "\n";
    }
  }
  return rc;
}

namespace {

void SummaryBlock(const google::protobuf::Message& m, std::ostream& out) {
  const auto& s = static_cast<const v1::GetSocketSummaryResponse&>(m);
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
  auto outcomes = FanOut(c.targets, *c.dialer, [&](const Target&, grpc::Channel& ch, absl::Time d) {
    return Unary(ch, d, req, &v1::SocketService::Stub::GetSocketSummary);
  });
  View view;
  view.block = SummaryBlock;
  return PrintOutcomes(c.targets, outcomes, c.format, view, c.label_targets, *c.out, *c.err);
}

}  // namespace netagent::client
