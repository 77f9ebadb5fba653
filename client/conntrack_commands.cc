// netctl conntrack stats | list | summary.
#include <google/protobuf/struct.pb.h>

#include <mutex>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "client/rpc.h"
#include "netagent/v1/conntrack.grpc.pb.h"

namespace netagent::client {
namespace v1 = ::netagent::v1;
namespace {

v1::ConntrackFilter Filter(const ConntrackArgs& a) {
  v1::ConntrackFilter f;
  // -4 -6 together: both families, as with netctl sockets (the filter's
  // unspecified family).
  if (a.ipv4 != a.ipv6) f.set_family(a.ipv4 ? v1::ADDRESS_FAMILY_INET : v1::ADDRESS_FAMILY_INET6);
  if (a.zone) f.set_zone(*a.zone);
  if (a.mark) f.set_mark(*a.mark);
  if (a.mark_mask) f.set_mark_mask(*a.mark_mask);
  f.set_protocol(a.protocol);
  for (const auto& s : a.tcp_states) f.add_tcp_states(s);
  f.set_source(a.source);
  f.set_destination(a.destination);
  f.set_source_port(a.source_port);
  f.set_destination_port(a.destination_port);
  return f;
}

// A tuple as conntrack -L prints it, the agent's strings through
// TerminalText.
void AppendTuple(std::string* out, const v1::ConntrackTuple& t, bool icmp) {
  out->append("src=");
  AppendTerminalText(out, t.source());
  out->append(" dst=");
  AppendTerminalText(out, t.destination());
  if (icmp) {
    absl::StrAppend(out, " type=", t.icmp_type(), " code=", t.icmp_code(), " id=", t.icmp_id());
  } else if (t.source_port() || t.destination_port()) {
    absl::StrAppend(out, " sport=", t.source_port(), " dport=", t.destination_port());
  }
}

// One entry as conntrack -L prints it, appended to *out with its newline:
// no string of its own (a table has hundreds of thousands of lines).
void AppendEntryLine(std::string* out, const v1::ConntrackEntry& e) {
  const size_t start = out->size();
  AppendTerminalText(out, e.protocol());
  if (out->size() - start < 8) out->append(8 - (out->size() - start), ' ');  // %-8s
  absl::StrAppend(out, " ", e.protocol_number(), " ", e.timeout(), " ");
  if (!e.tcp_state().empty()) {
    AppendTerminalText(out, e.tcp_state());
    out->push_back(' ');
  }
  const bool icmp = e.protocol() == "icmp" || e.protocol() == "icmpv6";
  AppendTuple(out, e.original(), icmp);
  if (e.has_original_packets()) {
    absl::StrAppend(out, " packets=", e.original_packets(), " bytes=", e.original_bytes());
  }
  for (const auto& f : e.flags()) {
    if (f == "UNREPLIED") out->append(" [UNREPLIED]");
  }
  out->push_back(' ');
  AppendTuple(out, e.reply(), icmp);
  if (e.has_reply_packets()) {
    absl::StrAppend(out, " packets=", e.reply_packets(), " bytes=", e.reply_bytes());
  }
  for (const auto& f : e.flags()) {
    if (f == "UNREPLIED") continue;
    out->append(" [");
    AppendTerminalText(out, f);
    out->push_back(']');
  }
  absl::StrAppend(out, " mark=", e.mark());
  if (e.zone()) absl::StrAppend(out, " zone=", e.zone());
  absl::StrAppend(out, " use=", e.use(), "\n");
}

void StatsBlock(const v1::GetConntrackStatsResponse& s, std::ostream& out) {
  out << "entries " << (s.has_count() ? Num(s.count()) : "?") << " of "
      << (s.has_max() ? Num(s.max()) : "?")
      << (s.has_fill_percent() ? absl::StrFormat(" (%.1f%%)", s.fill_percent()) : "") << ", from "
      << s.source() << "\n";
  std::vector<std::string> header = {"CPU"};
  for (const auto& v : s.total()) header.push_back(v.name());
  Table t(header);
  for (const auto& c : s.cpus()) {
    std::vector<std::string> row = {Num(c.cpu())};
    for (const auto& v : c.values()) row.push_back(Num(v.value()));
    t.AddRow(row);
  }
  std::vector<std::string> total = {"all"};
  for (const auto& v : s.total()) total.push_back(Num(v.value()));
  t.AddRow(total);
  t.Render(out);
}

void SummaryBlock(const v1::GetConntrackSummaryResponse& s, std::ostream& out) {
  out << "matched " << s.matched() << "; table " << (s.has_count() ? Num(s.count()) : "?") << " of "
      << (s.has_max() ? Num(s.max()) : "?")
      << (s.has_fill_percent() ? absl::StrFormat(" (%.1f%% full)", s.fill_percent()) : "") << "\n";
  for (const auto& w : s.warnings()) out << "warning " << w << "\n";
  out << "\n";
  Table counts({"PROTOCOL", "STATE", "ENTRIES"});
  for (const auto& c : s.counts())
    counts.AddRow({c.protocol(), c.state().empty() ? "-" : c.state(), Num(c.count())});
  counts.Render(out);
  if (s.top_sources_size() > 0) {
    out << "\n";
    Table top({"TOP-SOURCE", "ENTRIES"});
    for (const auto& t : s.top_sources()) top.AddRow({t.address(), Num(t.count())});
    top.Render(out);
  }
}

}  // namespace

View ConntrackStatsView() {
  View view;
  view.block = TypedBlock<v1::GetConntrackStatsResponse>(StatsBlock);
  view.numbers_header = {"FIELD", "VALUE"};
  view.numbers = TypedRows<v1::GetConntrackStatsResponse>(
      [](const v1::GetConntrackStatsResponse& s, Rows& rows) {
        rows.push_back({"entries", s.has_count() ? Num(s.count()) : "-"});
        rows.push_back({"max", s.has_max() ? Num(s.max()) : "-"});
        rows.push_back(
            {"fill%", s.has_fill_percent() ? absl::StrFormat("%.1f", s.fill_percent()) : "-"});
        for (const auto& v : s.total()) rows.push_back({v.name(), Num(v.value())});
      });
  view.keys = {0};
  view.by = "VALUE";
  return view;
}

int RunConntrackStats(const CommandContext& c) {
  return RunUnary(c, ConntrackStatsView(), [](const Target&, grpc::Channel& ch, absl::Time d) {
    return Unary(ch, d, v1::GetConntrackStatsRequest(),
                 &v1::ConntrackService::Stub::GetConntrackStats);
  });
}

int RunConntrackSummary(const CommandContext& c, const ConntrackArgs& args) {
  v1::GetConntrackSummaryRequest req;
  *req.mutable_filter() = Filter(args);
  req.set_top(args.top);
  View view;
  view.block = TypedBlock<v1::GetConntrackSummaryResponse>(SummaryBlock);
  return RunUnary(c, view, [&](const Target&, grpc::Channel& ch, absl::Time d) {
    return Unary(ch, d, req, &v1::ConntrackService::Stub::GetConntrackSummary);
  });
}

int RunConntrackList(const CommandContext& c, const ConntrackArgs& args) {
  v1::ListConntrackRequest req;
  *req.mutable_filter() = Filter(args);
  const bool multi = c.label_targets || c.targets.size() > 1;
  View view;
  if (args.count) {  // a table of counts; else lines, and no header after them
    view.header = {"ENTRIES"};
    view.rows =
        TypedRows<google::protobuf::Struct>([](const google::protobuf::Struct& m, Rows& rows) {
          rows.push_back({Num(static_cast<uint64_t>(m.fields().at("entries").number_value()))});
        });
  }
  // Entries stream out as they come (a table may be large), a batch at a
  // time so that targets' lines do not interleave mid-batch.
  return RunStreams(c, view, [&](size_t i, grpc::Channel& ch, Printer& printer) {
    auto stub = StubFor<v1::ConntrackService::Stub>(ch);
    CallContext call(absl::Now() + c.dialer->options().timeout);
    if (!call.started()) return absl::CancelledError("interrupted");
    auto reader = stub.ListConntrack(&call.ctx, req);
    uint64_t count = 0;
    std::string text;
    const std::string prefix = multi ? TerminalText(c.targets[i].display) + "  " : "";
    ReadEachInArena<v1::ListConntrackResponse>(*reader, [&](const auto& batch) {
      count += batch.entries_size();
      for (const auto& w : batch.warnings()) printer.Warning(i, w);
      if (args.count) return;
      if (c.format == Format::kJson) {
        printer.Part(i, batch);
        return;
      }
      text.clear();
      for (const auto& e : batch.entries()) {
        text += prefix;
        AppendEntryLine(&text, e);
      }
      printer.Lines(i, text);
    });
    absl::Status st = FromGrpc(reader->Finish());
    if (st.ok() && args.count) {
      google::protobuf::Struct s;
      (*s.mutable_fields())["entries"].set_number_value(static_cast<double>(count));
      printer.Answer(i, s);
    }
    return st;
  });
}

void AddConntrackCommands(Commands& commands) {
  auto args = std::make_shared<ConntrackArgs>();
  auto* conntrack =
      commands.app().add_subcommand("conntrack", "connection tracking: stats, list, summary");
  conntrack->require_subcommand(1);
  auto* stats = conntrack->add_subcommand("stats", "entries, limit and per-CPU statistics (cheap)");
  commands.AddAggregate(stats, "--top");
  commands.Runs(stats, [](CommandContext& c) { return RunConntrackStats(c); });
  auto* list = conntrack->add_subcommand("list", "the entries, like conntrack -L");
  auto* summary =
      conntrack->add_subcommand("summary", "counts per protocol and state, top sources");
  for (CLI::App* cmd : {list, summary}) {
    cmd->add_flag("-4", args->ipv4, "IPv4 only (with -6: both)");
    cmd->add_flag("-6", args->ipv6, "IPv6 only (with -4: both)");
    cmd->add_option("-p,--protocol", args->protocol, "tcp, udp, icmp, ... or a number");
    cmd->add_option("--state", args->tcp_states, "TCP state (ESTABLISHED, TIME_WAIT, ...)")
        ->delimiter(',');
    cmd->add_option("-s,--src", args->source, "original source address or CIDR prefix");
    cmd->add_option("-d,--dst", args->destination, "original destination address or prefix");
    cmd->add_option("--sport", args->source_port, "original source port or range");
    cmd->add_option("--dport", args->destination_port, "original destination port or range");
    cmd->add_option("--zone", args->zone, "conntrack zone");
    cmd->add_option("--mark", args->mark, "connection mark (with --mark-mask: mark/mask)");
    cmd->add_option("--mark-mask", args->mark_mask, "mask for --mark");
  }
  list->add_flag("--count", args->count, "print how many entries match, not them");
  summary->add_option("--top", args->top, "sources in the top list (default 10)");
  commands.Runs(list, [args](CommandContext& c) { return RunConntrackList(c, *args); });
  commands.Runs(summary, [args](CommandContext& c) { return RunConntrackSummary(c, *args); });
}

}  // namespace netagent::client
