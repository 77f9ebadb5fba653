// netctl datapath: attach, detach, status, rules, stats, samples, test.
#include <arpa/inet.h>

#include <fstream>
#include <mutex>

#include "CLI/CLI.hpp"
#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "client/commands.h"
#include "client/rpc.h"
#include "netagent/v1/datapath.grpc.pb.h"

namespace netagent::client {
namespace v1 = ::netagent::v1;
namespace {

using Stub = v1::DatapathService::Stub;

std::string ModeName(v1::XdpMode m) {
  switch (m) {
    case v1::XDP_MODE_NATIVE:
      return "native";
    case v1::XDP_MODE_GENERIC:
      return "generic";
    case v1::XDP_MODE_TC:
      return "tc";
    default:
      return "auto";
  }
}

std::string FeaturesText(const v1::DatapathFeatures& f) {
  std::vector<std::string> on;
  if (f.allowlist()) on.push_back("allowlist");
  if (f.blocklist()) on.push_back("blocklist");
  const auto& g = f.syn_guard();
  if (g.enabled()) {
    std::string s = absl::StrCat("syn-guard ", g.rate(), "/s burst ", g.burst(), " per /",
                                 g.prefix4(), " /", g.prefix6());
    if (g.new_source_rate()) absl::StrAppend(&s, ", new sources ", g.new_source_rate(), "/s");
    if (g.listed_ports_only()) absl::StrAppend(&s, ", listed ports only");
    on.push_back(s);
  }
  on.push_back(f.drop_malformed() ? "malformed: drop" : "malformed: pass");
  on.push_back(f.drop_fragments() ? "fragments: drop" : "fragments: pass");
  if (f.sample_every())
    on.push_back(absl::StrCat("samples 1/", f.sample_every(),
                              f.sample_max_per_second()
                                  ? absl::StrCat(" max ", f.sample_max_per_second(), "/s/cpu")
                                  : ""));
  if (f.clamp_mss()) on.push_back(absl::StrCat("clamp-mss ", f.clamp_mss()));
  if (f.class_accounting()) on.push_back("class-accounting");
  return absl::StrJoin(on, ", ");
}

std::string RuleMatch(const v1::DatapathRule& r) {
  if (!r.prefix().empty()) return r.prefix();
  const auto& p = r.port();
  std::vector<std::string> what;
  if (p.block_tcp()) what.push_back("tcp");
  if (p.block_udp()) what.push_back("udp");
  if (p.syn_guard()) what.push_back("syn-guard");
  return absl::StrCat("port ", p.port(), " (", absl::StrJoin(what, ","), ")");
}

std::string ActionName(const v1::DatapathRule& r) {
  if (r.has_port()) return r.port().block_tcp() || r.port().block_udp() ? "block" : "guard";
  return r.action() == v1::RULE_ACTION_ALLOW ? "allow" : "block";
}

void PrintDevice(const v1::DeviceDatapath& d, std::ostream& out) {
  const bool tc = d.mode() == v1::XDP_MODE_TC;
  out << d.device() << " (ifindex " << d.ifindex()
      << "): " << (tc ? "TC guard" : absl::StrCat("XDP ", ModeName(d.mode())))
      << (d.requested_mode() != v1::XDP_MODE_UNSPECIFIED && d.requested_mode() != d.mode()
              ? absl::StrCat(" (asked ", ModeName(d.requested_mode()), ")")
              : "")
      << ", program " << (tc ? d.tc_prog_id() : d.xdp_prog_id())
      << (!tc && d.tc_prog_id() ? absl::StrCat(", TC program ", d.tc_prog_id()) : "") << ", rules "
      << d.rules() << " at revision " << d.rules_revision() << ", since " << Time(d.attached_at())
      << "\n";
  out << "  features: " << FeaturesText(d.features()) << "\n";
  out << "  pinned at " << d.pin_path() << "\n";
  if (!d.note().empty()) out << "  note: " << d.note() << "\n";
}

// The rules batch for one target: against --revision, or against the
// revision the target reports right now.
Outcome UpdateOne(grpc::Channel& ch, absl::Time deadline, v1::UpdateRulesRequest req,
                  std::optional<uint64_t> revision) {
  if (revision) {
    req.set_expected_revision(*revision);
  } else {
    v1::ListRulesRequest lr;
    lr.set_device(req.device());
    lr.set_limit(1);
    Outcome list = Unary(ch, deadline, lr, &Stub::ListRules);
    if (!list.status.ok()) return list;
    req.set_expected_revision(static_cast<v1::ListRulesResponse&>(*list.result).revision());
  }
  return Unary(ch, deadline, req, &Stub::UpdateRules);
}

int RunUpdate(const CommandContext& c, const DatapathArgs& a, const v1::UpdateRulesRequest& req) {
  auto outcomes = FanOut(c.targets, *c.dialer, [&](const Target&, grpc::Channel& ch, absl::Time d) {
    return UpdateOne(ch, d, req, a.revision);
  });
  View view;
  view.block =
      TypedBlock<v1::UpdateRulesResponse>([](const v1::UpdateRulesResponse& r, std::ostream& out) {
        out << "revision " << r.revision() << "\n";
        for (const auto& rule : r.added())
          out << "  added rule " << rule.id() << ": " << ActionName(rule) << " " << RuleMatch(rule)
              << (rule.comment().empty() ? "" : absl::StrCat("  # ", rule.comment())) << "\n";
      });
  return PrintOutcomes(c, std::move(outcomes), view);
}

void AddPrefixRule(v1::UpdateRulesRequest& req, v1::RuleAction action, const std::string& prefix,
                   const std::string& comment) {
  v1::DatapathRule* r = req.add_edits()->mutable_add();
  r->set_action(action);
  r->set_prefix(prefix);
  r->set_comment(comment);
}

// "block 10.0.0.0/8 a comment", "allow 2001:db8::/32"; '#' starts a comment line.
absl::Status ReadRulesFile(const std::string& path, v1::UpdateRulesRequest& req) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--file: cannot read ", path));
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    absl::string_view l = absl::StripAsciiWhitespace(line);
    if (l.empty() || l[0] == '#') continue;
    std::vector<absl::string_view> parts = absl::StrSplit(l, absl::MaxSplits(' ', 2));
    if (parts.size() < 2 || (parts[0] != "allow" && parts[0] != "block")) {
      return absl::InvalidArgumentError(
          absl::StrCat("--file ", path, ":", n, ": expected \"allow|block PREFIX [comment]\""));
    }
    AddPrefixRule(req, parts[0] == "allow" ? v1::RULE_ACTION_ALLOW : v1::RULE_ACTION_BLOCK,
                  std::string(parts[1]),
                  parts.size() > 2 ? std::string(absl::StripAsciiWhitespace(parts[2])) : "");
  }
  return absl::OkStatus();
}

void Put16(std::string& b, size_t at, uint16_t v) {
  b[at] = static_cast<char>(v >> 8);
  b[at + 1] = static_cast<char>(v & 0xff);
}

// An Ethernet frame from --src/--dst/--proto/--sport/--dport/--flags.
absl::StatusOr<std::string> BuildFrame(const DatapathArgs& a) {
  if (!a.hex.empty()) {
    std::string bytes;
    std::string clean = absl::StrReplaceAll(a.hex, {{" ", ""}, {":", ""}, {"\n", ""}});
    if (clean.size() % 2 != 0 || !absl::c_all_of(clean, absl::ascii_isxdigit))
      return absl::InvalidArgumentError("--hex: hexadecimal bytes of a frame");
    return absl::HexStringToBytes(clean);
  }
  if (a.src.empty()) return absl::InvalidArgumentError("--src: required (or --hex)");
  unsigned char s[16], d[16];
  int family = 0;
  if (inet_pton(AF_INET, a.src.c_str(), s) == 1) {
    family = 4;
  } else if (inet_pton(AF_INET6, a.src.c_str(), s) == 1) {
    family = 6;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("--src: \"", a.src, "\" is not an address"));
  }
  const std::string dst = a.dst.empty() ? (family == 4 ? "192.0.2.1" : "2001:db8::1") : a.dst;
  if (inet_pton(family == 4 ? AF_INET : AF_INET6, dst.c_str(), d) != 1)
    return absl::InvalidArgumentError(
        absl::StrCat("--dst: \"", dst, "\" is not an IPv", family, " address like --src"));
  uint8_t proto;
  std::string l4;
  if (a.proto == "tcp") {
    proto = 6;
    l4.assign(20, '\0');
    l4[12] = 0x50;
    uint8_t flags = 0;
    for (absl::string_view f : absl::StrSplit(a.flags, ',', absl::SkipEmpty())) {
      if (f == "syn")
        flags |= 0x02;
      else if (f == "ack")
        flags |= 0x10;
      else if (f == "fin")
        flags |= 0x01;
      else if (f == "rst")
        flags |= 0x04;
      else if (f == "psh")
        flags |= 0x08;
      else
        return absl::InvalidArgumentError(absl::StrCat("--flags: unknown flag \"", f, "\""));
    }
    l4[13] = static_cast<char>(flags);
    Put16(l4, 14, 65535);
  } else if (a.proto == "udp") {
    proto = 17;
    l4.assign(8, '\0');
    Put16(l4, 4, 8);
  } else if (a.proto == "icmp") {
    proto = family == 4 ? 1 : 58;
    l4.assign(8, '\0');
    l4[0] = family == 4 ? 8 : static_cast<char>(128);
  } else {
    return absl::InvalidArgumentError("--proto: tcp, udp or icmp");
  }
  if (proto == 6 || proto == 17) {
    Put16(l4, 0, a.sport);
    Put16(l4, 2, a.dport);
  }
  std::string f(12, '\x02');
  f.append(family == 4 ? std::string("\x08\x00", 2) : std::string("\x86\xdd", 2));
  if (family == 4) {
    std::string ip(20, '\0');
    ip[0] = 0x45;
    Put16(ip, 2, static_cast<uint16_t>(20 + l4.size()));
    ip[8] = 64;
    ip[9] = static_cast<char>(proto);
    std::memcpy(&ip[12], s, 4);
    std::memcpy(&ip[16], d, 4);
    f += ip;
  } else {
    std::string ip(40, '\0');
    ip[0] = 0x60;
    Put16(ip, 4, static_cast<uint16_t>(l4.size()));
    ip[6] = static_cast<char>(proto);
    ip[7] = 64;
    std::memcpy(&ip[8], s, 16);
    std::memcpy(&ip[24], d, 16);
    f += ip;
  }
  return f + l4;
}

}  // namespace

int RunDatapathAttach(const CommandContext& c, const DatapathArgs& a) {
  v1::AttachRequest req;
  req.set_device(a.device);
  req.set_force(a.force);
  if (a.mode == "auto") {
    req.set_mode(v1::XDP_MODE_UNSPECIFIED);
  } else if (a.mode == "native") {
    req.set_mode(v1::XDP_MODE_NATIVE);
  } else if (a.mode == "generic") {
    req.set_mode(v1::XDP_MODE_GENERIC);
  } else if (a.mode == "tc") {
    req.set_mode(v1::XDP_MODE_TC);
  } else {
    return UsageError(c, "--mode: auto, native, generic or tc");
  }
  v1::DatapathFeatures* f = req.mutable_features();
  f->set_allowlist(!a.no_allowlist);
  f->set_blocklist(!a.no_blocklist);
  if (a.syn_rate) {
    v1::SynGuardConfig* g = f->mutable_syn_guard();
    g->set_enabled(true);
    g->set_rate(a.syn_rate);
    g->set_burst(a.syn_burst ? a.syn_burst : a.syn_rate);
    g->set_prefix4(a.syn_prefix4);
    g->set_prefix6(a.syn_prefix6);
    g->set_new_source_rate(a.new_source_rate);
    g->set_new_source_burst(a.new_source_burst ? a.new_source_burst : a.new_source_rate);
    g->set_listed_ports_only(a.listed_ports_only);
  } else if (a.syn_burst || a.new_source_rate || a.listed_ports_only) {
    return UsageError(c, "--syn-rate: required to turn the SYN guard on");
  }
  f->set_drop_malformed(a.drop_malformed);
  f->set_drop_fragments(a.drop_fragments);
  f->set_sample_every(a.sample_every);
  f->set_sample_max_per_second(a.sample_max);
  f->set_clamp_mss(a.clamp_mss);
  f->set_class_accounting(a.class_accounting);
  auto outcomes = FanOut(c.targets, *c.dialer, [&](const Target&, grpc::Channel& ch, absl::Time d) {
    return Unary(ch, d, req, &Stub::Attach);
  });
  View view;
  view.block = TypedBlock<v1::AttachResponse>(
      [](const v1::AttachResponse& m, std::ostream& out) { PrintDevice(m.datapath(), out); });
  return PrintOutcomes(c, std::move(outcomes), view);
}

int RunDatapathDetach(const CommandContext& c, const DatapathArgs& a) {
  v1::DetachRequest req;
  req.set_device(a.device);
  auto outcomes = FanOut(c.targets, *c.dialer, [&](const Target&, grpc::Channel& ch, absl::Time d) {
    return Unary(ch, d, req, &Stub::Detach);
  });
  View view;
  const std::string dev = a.device;
  view.block = [dev](const google::protobuf::Message&, std::ostream& out) {
    out << dev << ": detached, pins removed\n";
  };
  return PrintOutcomes(c, std::move(outcomes), view);
}

int RunDatapathStatus(const CommandContext& c) {
  v1::GetDatapathStatusRequest req;
  View view;
  view.block = TypedBlock<v1::GetDatapathStatusResponse>(
      [](const v1::GetDatapathStatusResponse& r, std::ostream& out) {
        if (r.devices().empty()) out << "no device has the fast path attached\n";
        for (const auto& d : r.devices()) PrintDevice(d, out);
      });
  return RunUnary(c, view, [&](const Target&, grpc::Channel& ch, absl::Time d) {
    return Unary(ch, d, req, &Stub::GetStatus);
  });
}

int RunDatapathRulesAdd(const CommandContext& c, const DatapathArgs& a) {
  v1::UpdateRulesRequest req;
  req.set_device(a.device);
  for (const auto& p : a.allow) AddPrefixRule(req, v1::RULE_ACTION_ALLOW, p, a.comment);
  for (const auto& p : a.block) AddPrefixRule(req, v1::RULE_ACTION_BLOCK, p, a.comment);
  if (!a.file.empty()) {
    if (auto st = ReadRulesFile(a.file, req); !st.ok())
      return UsageError(c, std::string(st.message()));
  }
  for (uint32_t port : a.ports) {
    if (!a.port_tcp && !a.port_udp && !a.port_syn_guard)
      return UsageError(c, "--port: with --tcp, --udp and/or --syn-guard");
    v1::DatapathRule* r = req.add_edits()->mutable_add();
    r->set_action(v1::RULE_ACTION_BLOCK);
    r->mutable_port()->set_port(port);
    r->mutable_port()->set_block_tcp(a.port_tcp);
    r->mutable_port()->set_block_udp(a.port_udp);
    r->mutable_port()->set_syn_guard(a.port_syn_guard);
    r->set_comment(a.comment);
  }
  if (req.edits().empty()) return UsageError(c, "rules add: --block, --allow, --port or --file");
  return RunUpdate(c, a, req);
}

int RunDatapathRulesDel(const CommandContext& c, const DatapathArgs& a) {
  v1::UpdateRulesRequest req;
  req.set_device(a.device);
  for (uint32_t id : a.ids) req.add_edits()->set_delete_id(id);
  if (req.edits().empty()) return UsageError(c, "rules del: rule ids");
  return RunUpdate(c, a, req);
}

int RunDatapathRulesList(const CommandContext& c, const DatapathArgs& a) {
  // Every page, merged into one response per target.
  View view;
  view.header = {"ID", "ACTION", "MATCH", "PACKETS", "BYTES", "COMMENT"};
  view.rows = TypedRows<v1::ListRulesResponse>([](const v1::ListRulesResponse& m, Rows& rows) {
    for (const auto& r : m.rules())
      rows.push_back({absl::StrCat(r.id()), ActionName(r), RuleMatch(r), Num(r.hit_packets()),
                      Num(r.hit_bytes()), r.comment()});
  });
  return RunUnary(c, view, [&](const Target&, grpc::Channel& ch, absl::Time d) {
    v1::ListRulesRequest req;
    req.set_device(a.device);
    req.set_limit(10000);
    auto all = std::make_unique<v1::ListRulesResponse>();
    while (true) {
      Outcome o = Unary(ch, d, req, &Stub::ListRules);
      if (!o.status.ok()) return o;
      auto& page = static_cast<v1::ListRulesResponse&>(*o.result);
      all->set_revision(page.revision());
      for (auto& r : *page.mutable_rules()) *all->add_rules() = std::move(r);
      if (page.next_id() == 0) break;
      req.set_from_id(page.next_id());
    }
    Outcome out;
    out.result = std::move(all);
    return out;
  });
}

int RunDatapathStats(const CommandContext& c, const DatapathArgs& a) {
  v1::GetDatapathStatsRequest req;
  req.set_device(a.device);
  req.set_per_cpu(a.per_cpu);
  View view;
  view.header = {"CPU", "VERDICT", "REASON", "PACKETS", "BYTES"};
  view.keys = {0, 1, 2};
  view.by = "PACKETS";
  view.rows = TypedRows<v1::GetDatapathStatsResponse>(
      [](const v1::GetDatapathStatsResponse& r, Rows& rows) {
        for (const auto& v : r.total())
          rows.push_back({"all", v.verdict(), v.reason(), Num(v.packets()), Num(v.bytes())});
        for (const auto& cpu : r.cpus())
          for (const auto& v : cpu.counts())
            rows.push_back({absl::StrCat(cpu.cpu()), v.verdict(), v.reason(), Num(v.packets()),
                            Num(v.bytes())});
        for (const auto& e : r.events())
          if (e.value()) rows.push_back({"all", "event", e.name(), Num(e.value()), "-"});
        for (const auto& k : r.classes())
          rows.push_back(
              {"all", k.direction(),
               absl::StrCat(k.protocol(), k.port_class() ? absl::StrCat("/", k.port_class()) : ""),
               Num(k.packets()), Num(k.bytes())});
      });
  return RunUnary(c, view, [&](const Target&, grpc::Channel& ch, absl::Time d) {
    return Unary(ch, d, req, &Stub::GetStats);
  });
}

int RunDatapathSamples(const CommandContext& c, const DatapathArgs& a) {
  v1::StreamSamplesRequest req;
  req.set_device(a.device);
  req.set_live_only(a.live);
  const bool multi = c.label_targets || c.targets.size() > 1;
  return RunStreams(c, View(), [&](size_t i, grpc::Channel& ch, Printer& printer) {
    Stub stub = StubFor<Stub>(ch);
    CallContext call;
    if (!call.started()) return absl::CancelledError("interrupted");
    auto reader = stub.StreamSamples(&call.ctx, req);
    v1::StreamSamplesResponse msg;
    uint32_t seen = 0;
    std::string text;
    while (reader->Read(&msg)) {
      // Cancelled at --count: a batch still in flight is not printed.
      if (a.count && seen >= a.count) break;
      // --count is of samples: a batch may hold more than are left.
      if (a.count && static_cast<uint32_t>(msg.samples_size()) > a.count - seen) {
        const int left = static_cast<int>(a.count - seen);
        msg.mutable_samples()->DeleteSubrange(left, msg.samples_size() - left);
      }
      if (c.format == Format::kJson) {
        printer.Part(i, msg);
      } else {
        text.clear();
        for (const auto& s : msg.samples()) {
          absl::StrAppend(
              &text,
              TerminalText(absl::StrCat(
                  multi ? c.targets[i].display + "  " : "",
                  absl::FormatTime(
                      "%H:%M:%E3S",
                      absl::FromUnixSeconds(s.at().seconds()) + absl::Nanoseconds(s.at().nanos()),
                      absl::UTCTimeZone()),
                  "  ", s.reason(), s.rule_id() ? absl::StrCat(" (rule ", s.rule_id(), ")") : "",
                  "  ", s.summary(), "  len ", s.packet_length(), " rxq ", s.rx_queue())),
              "\n");
        }
        printer.Lines(i, text);
      }
      seen += static_cast<uint32_t>(msg.samples_size());
      if (a.count && seen >= a.count) call.ctx.TryCancel();
    }
    absl::Status st = FromGrpc(reader->Finish());
    // --count reached: the stream was ended here.
    if (a.count && seen >= a.count && absl::IsCancelled(st)) return absl::OkStatus();
    return st;
  });
}

int RunDatapathTest(const CommandContext& c, const DatapathArgs& a) {
  auto frame = BuildFrame(a);
  if (!frame.ok()) return UsageError(c, std::string(frame.status().message()));
  v1::TestPacketRequest req;
  req.set_device(a.device);
  req.set_packet(*frame);
  View view;
  view.block =
      TypedBlock<v1::TestPacketResponse>([](const v1::TestPacketResponse& r, std::ostream& out) {
        out << r.summary() << "\n  " << r.verdict() << " (" << r.reason() << ")";
        if (r.has_rule()) {
          out << " by rule " << r.rule().id() << ": " << ActionName(r.rule()) << " "
              << RuleMatch(r.rule())
              << (r.rule().comment().empty() ? "" : absl::StrCat("  # ", r.rule().comment()));
        }
        out << "\n";
      });
  return RunUnary(c, view, [&](const Target&, grpc::Channel& ch, absl::Time d) {
    return Unary(ch, d, req, &Stub::TestPacket);
  });
}

void AddDatapathCommands(Commands& commands) {
  auto a = std::make_shared<DatapathArgs>();
  auto* datapath =
      commands.app().add_subcommand("datapath", "the XDP/TC fast path: blocklists, SYN guard");
  datapath->require_subcommand(1);
  auto* attach = datapath->add_subcommand("attach", "attach the fast path to a device");
  attach->add_option("device", a->device, "interface")->required();
  attach->add_option("--mode", a->mode, "auto (native, else generic), native, generic, tc");
  attach->add_flag("--force", a->force, "replace another XDP program on the device");
  attach->add_flag("--no-allowlist", a->no_allowlist, "compile the allowlist out");
  attach->add_flag("--no-blocklist", a->no_blocklist, "compile the blocklist out");
  attach->add_option("--syn-rate", a->syn_rate, "SYN guard: SYNs per second per source prefix");
  attach->add_option("--syn-burst", a->syn_burst, "SYN guard: bucket size (default the rate)");
  attach->add_option("--syn-prefix4", a->syn_prefix4, "group IPv4 sources by /N (default 32)");
  attach->add_option("--syn-prefix6", a->syn_prefix6, "group IPv6 sources by /N (default 128)");
  attach->add_option("--new-source-rate", a->new_source_rate,
                     "SYN guard: new sources per second per CPU (spoofed floods)");
  attach->add_option("--new-source-burst", a->new_source_burst,
                     "bucket of new sources (default the rate)");
  attach->add_flag("--listed-ports-only", a->listed_ports_only,
                   "guard only ports marked by a --syn-guard port rule");
  attach->add_flag("--drop-malformed", a->drop_malformed, "drop malformed packets");
  attach->add_flag("--drop-fragments", a->drop_fragments, "drop IP fragments");
  attach->add_option("--sample-every", a->sample_every, "sample 1 drop in N (0: none; 100)");
  attach->add_option("--sample-max", a->sample_max, "samples per second per CPU (100)");
  attach->add_option("--clamp-mss", a->clamp_mss, "TC: clamp the MSS of SYNs to this");
  attach->add_flag("--class-accounting", a->class_accounting, "TC: count per protocol/port");
  commands.Runs(attach, [a](CommandContext& c) { return RunDatapathAttach(c, *a); });
  auto* detach = datapath->add_subcommand("detach", "detach and remove the pins");
  detach->add_option("device", a->device, "interface")->required();
  commands.Runs(detach, [a](CommandContext& c) { return RunDatapathDetach(c, *a); });
  auto* status = datapath->add_subcommand("status", "devices with the fast path attached");
  commands.Runs(status, [](CommandContext& c) { return RunDatapathStatus(c); });
  auto* rules = datapath->add_subcommand("rules", "allow/block rules");
  rules->require_subcommand(1);
  auto* add = rules->add_subcommand("add", "add rules as one batch (all or nothing)");
  add->add_option("device", a->device, "interface")->required();
  add->add_option("--block", a->block, "block this address or CIDR prefix (repeatable)");
  add->add_option("--allow", a->allow, "allow this address or prefix (beats block)");
  add->add_option("--port", a->ports, "a destination port rule (repeatable)");
  add->add_flag("--tcp", a->port_tcp, "--port: drop TCP");
  add->add_flag("--udp", a->port_udp, "--port: drop UDP");
  add->add_flag("--syn-guard", a->port_syn_guard, "--port: SYN-guarded (--listed-ports-only)");
  add->add_option("--file", a->file, "lines of \"allow|block PREFIX [comment]\"");
  add->add_option("--comment", a->comment, "comment on every rule added");
  commands.Runs(add, [a](CommandContext& c) { return RunDatapathRulesAdd(c, *a); });
  auto* del = rules->add_subcommand("del", "delete rules by id as one batch");
  del->add_option("device", a->device, "interface")->required();
  del->add_option("ids", a->ids, "rule ids")->required();
  commands.Runs(del, [a](CommandContext& c) { return RunDatapathRulesDel(c, *a); });
  for (CLI::App* cmd : {add, del}) {
    cmd->add_option("--revision", a->revision,
                    "apply only at this rules revision (default: the target's current one)");
  }
  auto* list = rules->add_subcommand("list", "rules with their hit counts");
  list->add_option("device", a->device, "interface")->required();
  commands.Runs(list, [a](CommandContext& c) { return RunDatapathRulesList(c, *a); });
  auto* stats = datapath->add_subcommand("stats", "packets and bytes per verdict and reason");
  stats->add_option("device", a->device, "interface")->required();
  stats->add_flag("--per-cpu", a->per_cpu, "also per CPU");
  commands.AddAggregate(stats, "--top");
  commands.Runs(stats, [a](CommandContext& c) { return RunDatapathStats(c, *a); });
  auto* samples = datapath->add_subcommand("samples", "stream drop samples until Ctrl-C");
  samples->add_option("device", a->device, "interface")->required();
  samples->add_flag("--live", a->live, "skip the agent's recent samples");
  samples->add_option("--count", a->count, "stop after this many samples per target");
  commands.Runs(samples, [a](CommandContext& c) {
    c.streaming = true;  // Ctrl-C ends the streams cleanly: exit status 0
    return RunDatapathSamples(c, *a);
  });
  auto* test = datapath->add_subcommand(
      "test", "would this packet be dropped? (runs a private copy of the program)");
  test->add_option("device", a->device, "interface")->required();
  test->add_option("--hex", a->hex, "the frame, from the Ethernet header, in hex");
  test->add_option("--src", a->src, "source address");
  test->add_option("--dst", a->dst, "destination address");
  test->add_option("--proto", a->proto, "tcp (default), udp or icmp");
  test->add_option("--sport", a->sport, "source port (40000)");
  test->add_option("--dport", a->dport, "destination port (80)");
  test->add_option("--flags", a->flags, "TCP flags, comma-separated (syn)");
  commands.Runs(test, [a](CommandContext& c) { return RunDatapathTest(c, *a); });
}

}  // namespace netagent::client
