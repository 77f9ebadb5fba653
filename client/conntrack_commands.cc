// netctl conntrack stats | list | summary.
#include <google/protobuf/struct.pb.h>

#include <mutex>

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

std::string Tuple(const v1::ConntrackTuple& t, const std::string& protocol) {
  std::string s = absl::StrCat("src=", t.source(), " dst=", t.destination());
  if (protocol == "icmp" || protocol == "icmpv6") {
    absl::StrAppend(&s, " type=", t.icmp_type(), " code=", t.icmp_code(), " id=", t.icmp_id());
  } else if (t.source_port() || t.destination_port()) {
    absl::StrAppend(&s, " sport=", t.source_port(), " dport=", t.destination_port());
  }
  return s;
}

// One entry as conntrack -L prints it.
std::string EntryLine(const v1::ConntrackEntry& e) {
  std::string line = absl::StrFormat("%-8s %u %u ", e.protocol(), e.protocol_number(), e.timeout());
  if (!e.tcp_state().empty()) absl::StrAppend(&line, e.tcp_state(), " ");
  absl::StrAppend(&line, Tuple(e.original(), e.protocol()));
  if (e.has_original_packets()) {
    absl::StrAppend(&line, " packets=", e.original_packets(), " bytes=", e.original_bytes());
  }
  for (const auto& f : e.flags()) {
    if (f == "UNREPLIED") absl::StrAppend(&line, " [UNREPLIED]");
  }
  absl::StrAppend(&line, " ", Tuple(e.reply(), e.protocol()));
  if (e.has_reply_packets()) {
    absl::StrAppend(&line, " packets=", e.reply_packets(), " bytes=", e.reply_bytes());
  }
  for (const auto& f : e.flags()) {
    if (f != "UNREPLIED") absl::StrAppend(&line, " [", f, "]");
  }
  absl::StrAppend(&line, " mark=", e.mark());
  if (e.zone()) absl::StrAppend(&line, " zone=", e.zone());
  absl::StrAppend(&line, " use=", e.use());
  return line;
}

void StatsBlock(const google::protobuf::Message& m, std::ostream& out) {
  const auto& s = static_cast<const v1::GetConntrackStatsResponse&>(m);
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

void SummaryBlock(const google::protobuf::Message& m, std::ostream& out) {
  const auto& s = static_cast<const v1::GetConntrackSummaryResponse&>(m);
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

int RunConntrackStats(const CommandContext& c) {
  auto outcomes = FanOut(c.targets, *c.dialer, [](const Target&, grpc::Channel& ch, absl::Time d) {
    return Unary(ch, d, v1::GetConntrackStatsRequest(),
                 &v1::ConntrackService::Stub::GetConntrackStats);
  });
  View view;
  view.block = StatsBlock;
  return PrintOutcomes(c.targets, outcomes, c.format, view, c.label_targets, *c.out, *c.err);
}

int RunConntrackSummary(const CommandContext& c, const ConntrackArgs& args) {
  v1::GetConntrackSummaryRequest req;
  *req.mutable_filter() = Filter(args);
  req.set_top(args.top);
  auto outcomes = FanOut(c.targets, *c.dialer, [&](const Target&, grpc::Channel& ch, absl::Time d) {
    return Unary(ch, d, req, &v1::ConntrackService::Stub::GetConntrackSummary);
  });
  View view;
  view.block = SummaryBlock;
  return PrintOutcomes(c.targets, outcomes, c.format, view, c.label_targets, *c.out, *c.err);
}

int RunConntrackList(const CommandContext& c, const ConntrackArgs& args) {
  v1::ListConntrackRequest req;
  *req.mutable_filter() = Filter(args);
  std::mutex print_mu;
  const bool multi = c.label_targets || c.targets.size() > 1;
  auto outcomes =
      FanOut(c.targets, *c.dialer, [&](const Target& t, grpc::Channel& ch, absl::Time deadline) {
        auto stub = StubFor<v1::ConntrackService::Stub>(ch);
        grpc::ClientContext ctx;
        ctx.set_deadline(absl::ToChronoTime(deadline));
        auto reader = stub.ListConntrack(&ctx, req);
        v1::ListConntrackResponse batch;
        uint64_t count = 0;
        std::string text;
        while (reader->Read(&batch)) {
          count += batch.entries_size();
          if (args.count) continue;
          // Entries stream out as they come (a table may be large): each batch
          // is printed whole, so targets' lines do not interleave mid-batch.
          std::lock_guard<std::mutex> lock(print_mu);
          if (c.format == Format::kJson) {
            *c.out << JsonLine(t, absl::OkStatus(), &batch) << "\n";
            continue;
          }
          text.clear();
          for (const auto& e : batch.entries()) {
            absl::StrAppend(&text,
                            TerminalText(absl::StrCat(multi ? t.display + "  " : "", EntryLine(e))),
                            "\n");
          }
          *c.out << text;
          for (const auto& w : batch.warnings())
            *c.err << TerminalText(absl::StrCat("netctl: ", t.display, ": ", w)) << "\n";
        }
        Outcome o;
        o.status = FromGrpc(reader->Finish());
        if (o.status.ok() && args.count) {
          auto s = std::make_unique<google::protobuf::Struct>();
          (*s->mutable_fields())["entries"].set_number_value(static_cast<double>(count));
          o.result = std::move(s);
        }
        return o;
      });
  if (args.count) {
    View view;
    view.header = {"ENTRIES"};
    view.rows = [](const google::protobuf::Message& m,
                   std::vector<std::vector<std::string>>& rows) {
      rows.push_back({Num(static_cast<uint64_t>(
          static_cast<const google::protobuf::Struct&>(m).fields().at("entries").number_value()))});
    };
    return PrintOutcomes(c.targets, outcomes, c.format, view, c.label_targets, *c.out, *c.err);
  }
  int failed = 0;
  for (size_t i = 0; i < outcomes.size(); ++i) {
    if (outcomes[i].status.ok()) continue;
    ++failed;
    if (c.format == Format::kJson) {
      *c.out << JsonLine(c.targets[i], outcomes[i].status, nullptr) << "\n";
    } else {
      *c.err << "netctl: " << (multi ? TerminalText(c.targets[i].display) + ": " : "")
             << DescribeError(outcomes[i].status) << "\n";
    }
  }
  return failed ? 1 : 0;
}

}  // namespace netagent::client
