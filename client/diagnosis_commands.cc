// netctl doctor: findings per target, with the evidence, where, why, the
// exact netctl command of the remediation and its plan on that host; for
// several targets a fleet summary first. netctl doctor --explain RULE.
#include <cmath>
#include <map>
#include <mutex>
#include <set>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "client/rpc.h"
#include "netagent/v1/diagnosis.grpc.pb.h"

namespace netagent::client {
namespace v1 = ::netagent::v1;
namespace {

std::string SeverityLabel(v1::Severity s) {
  return absl::AsciiStrToUpper(EnumSuffix(v1::Severity_Name(s), "SEVERITY_", s));
}

std::string Number(double v) {
  if (!std::isfinite(v)) return absl::StrCat(v);
  if (std::fabs(v) < 9e15 && v == std::floor(v)) return absl::StrCat(static_cast<int64_t>(v));
  // Rates as people read them: 1940, 41.2, 0.125 (never 1.94e+03).
  if (std::fabs(v) >= 100 && std::fabs(v) < 9e15) return absl::StrFormat("%.0f", v);
  if (std::fabs(v) >= 10) return absl::StrFormat("%.1f", v);
  return absl::StrFormat("%.3g", v);
}

// `--set name=value` for each setting.
std::string SetFlags(const google::protobuf::RepeatedPtrField<v1::Setting>& settings) {
  std::vector<std::string> parts;
  for (const auto& s : settings) {
    const std::string kv = absl::StrCat(s.name(), "=", s.value());
    parts.push_back(absl::StrCat(
        "--set ", kv.find(' ') == std::string::npos ? kv : absl::StrCat("'", kv, "'")));
  }
  return absl::StrJoin(parts, " ");
}

}  // namespace

std::string IntentCommand(const v1::TuningIntent& intent, const std::string& verb) {
  const std::string head = absl::StrCat("netctl tune ", verb, " ");
  switch (intent.intent_case()) {
    case v1::TuningIntent::kLimits:
      return absl::StrCat(head, "limits ", SetFlags(intent.limits().settings()));
    case v1::TuningIntent::kSysctl:
      return absl::StrCat(head, "sysctl ", SetFlags(intent.sysctl().settings()));
    case v1::TuningIntent::kCongestion:
      return absl::StrCat(head, "cc ", intent.congestion().algorithm());
    case v1::TuningIntent::kIrqAffinity:
      return absl::StrCat(
          head, "irq --dev ", intent.irq_affinity().device(),
          intent.irq_affinity().cpus().empty() ? "" : " --cpus " + intent.irq_affinity().cpus());
    case v1::TuningIntent::kBdp:
      return intent.bdp().observed() ? absl::StrCat(head, "bdp --observed") : "";
    case v1::TuningIntent::kRps:
      return absl::StrCat(head, "rps --dev ", intent.rps().device(),
                          intent.rps().cpus().empty() ? "" : " --cpus " + intent.rps().cpus());
    case v1::TuningIntent::kDatapathBlock:
      return absl::StrCat(head, "block --dev ", intent.datapath_block().device(),
                          intent.datapath_block().remove() ? " --remove " : " ",
                          absl::StrJoin(intent.datapath_block().prefixes(), " "));
    default:
      return "";
  }
}

namespace {

void FindingBlock(const v1::Finding& f, std::ostream& out) {
  out << SeverityLabel(f.severity()) << " " << TerminalText(f.rule()) << ": "
      << TerminalText(f.summary());
  if (f.has_since()) out << "  (open since " << Time(f.since()) << ")";
  out << "\n";
  if (f.evidence_size() > 0) {
    Table t({"  EVIDENCE", "VALUE", "DELTA", "NOTE"});
    for (const auto& e : f.evidence()) {
      t.AddRow({absl::StrCat("  ", e.name()), absl::StrCat(Number(e.value()), " ", e.unit()),
                e.has_delta() ? SignedNum(e.delta()) : "", e.note()});
    }
    t.Render(out);
  }
  for (const auto& a : f.attribution()) {
    out << "  where: " << TerminalText(a.kind()) << " " << TerminalText(a.object()) << ": "
        << TerminalText(a.detail()) << "\n";
  }
  out << "  why: " << TerminalText(f.explanation()) << "\n";
  const auto& r = f.remediation();
  if (!r.summary().empty()) out << "  fix: " << TerminalText(r.summary()) << "\n";
  if (r.has_intent()) {
    out << "    " << TerminalText(IntentCommand(r.intent(), "plan")) << "\n";
    out << "    " << TerminalText(IntentCommand(r.intent(), "apply")) << " --confirm-within 5m\n";
    if (r.has_plan()) {
      for (const auto& c : r.plan().changes()) {
        out << "    plan: " << TerminalText(c.knob()) << " " << TerminalText(c.old_value())
            << " -> " << TerminalText(c.new_value()) << "\n";
        for (const auto& w : c.warnings()) out << "      warning: " << TerminalText(w) << "\n";
      }
      if (r.plan().changes_size() == 0) out << "    plan: nothing to change on this host\n";
      for (const auto& w : r.plan().warnings()) out << "    warning: " << TerminalText(w) << "\n";
      for (const auto& x : r.plan().refusals())
        out << "    an apply would be refused here: " << TerminalText(x) << "\n";
    }
    if (!r.plan_error().empty())
      out << "    plan refused here: " << TerminalText(r.plan_error()) << "\n";
  }
  for (const auto& l : r.limits()) out << "  cannot: " << TerminalText(l) << "\n";
  out << "  verify: " << TerminalText(f.verification().measurement()) << ": "
      << TerminalText(f.verification().condition()) << "\n";
}

}  // namespace

void PrintDiagnosis(const v1::DiagnoseResponse& r, std::ostream& out) {
  const double secs = static_cast<double>(r.window().seconds()) + r.window().nanos() / 1e9;
  if (r.findings_size() == 0) {
    out << "no findings (" << r.rules_run() << " rules over " << Number(secs) << " s)\n";
  }
  for (int i = 0; i < r.findings_size(); ++i) {
    if (i > 0) out << "\n";
    FindingBlock(r.findings(i), out);
  }
  for (const auto& u : r.unavailable()) out << "not measured: " << TerminalText(u) << "\n";
}

namespace {

// Which finding on how many hosts, the worst severity first.
void FleetSummary(const std::vector<Target>& targets, const std::vector<Outcome>& outcomes,
                  std::ostream& out) {
  struct Seen {
    int worst = 0;
    std::vector<std::string> hosts;
  };
  std::map<std::string, Seen> by_rule;
  size_t answered = 0, clean = 0;
  for (size_t i = 0; i < outcomes.size(); ++i) {
    if (!outcomes[i].status.ok() || !outcomes[i].result) continue;
    ++answered;
    const auto& r = static_cast<const v1::DiagnoseResponse&>(*outcomes[i].result);
    if (r.findings_size() == 0) ++clean;
    for (const auto& f : r.findings()) {
      Seen& s = by_rule[f.rule()];
      s.worst = std::max<int>(s.worst, f.severity());
      s.hosts.push_back(targets[i].display);
    }
  }
  std::vector<std::pair<std::string, Seen>> rows(by_rule.begin(), by_rule.end());
  std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return a.second.worst != b.second.worst ? a.second.worst > b.second.worst
                                            : a.second.hosts.size() > b.second.hosts.size();
  });
  out << "fleet: " << answered << " of " << targets.size() << " answered, " << clean
      << " without findings\n";
  if (!rows.empty()) {
    Table t({"FINDING", "WORST", "HOSTS", "SOME"});
    for (const auto& [rule, s] : rows) {
      std::vector<std::string> some(s.hosts.begin(),
                                    s.hosts.begin() + std::min<size_t>(3, s.hosts.size()));
      t.AddRow({rule, SeverityLabel(static_cast<v1::Severity>(s.worst)), Num(s.hosts.size()),
                absl::StrJoin(some, ", ")});
    }
    t.Render(out);
  }
  out << "\n";
}

void CatalogBlock(const v1::GetCatalogResponse& r, const std::string& rule, std::ostream& out) {
  for (const auto& d : r.rules()) {
    if (!rule.empty() && d.id() != rule) continue;
    out << d.id() << ": " << TerminalText(d.title()) << "\n";
    out << "  measures: " << TerminalText(d.measures()) << "\n";
    out << "  why: " << TerminalText(d.explanation()) << "\n";
    Table t({"  LEVEL", "WARNING", "CRITICAL", "WHAT"});
    for (const auto& l : d.levels()) {
      t.AddRow({absl::StrCat("  ", l.metric()), absl::StrCat(Number(l.warning()), " ", l.unit()),
                absl::StrCat(Number(l.critical()), " ", l.unit()), l.description()});
    }
    t.Render(out);
    out << "  thresholds from: " << TerminalText(d.sources()) << "\n";
  }
}

}  // namespace

namespace {

// netctl doctor --watch: one line per event (a block of evidence when a
// finding opens or worsens), until Ctrl-C.
int RunDoctorWatch(const CommandContext& c, const DoctorArgs& args) {
  v1::WatchFindingsRequest req;
  for (const auto& r : args.rules) req.add_rules(r);
  if (!args.min_severity.empty()) {
    v1::Severity s;
    if (!v1::Severity_Parse(absl::StrCat("SEVERITY_", absl::AsciiStrToUpper(args.min_severity)),
                            &s) ||
        s == v1::SEVERITY_UNSPECIFIED) {
      *c.err << "netctl: --min-severity: info, warning or critical\n";
      return 2;
    }
    req.set_min_severity(s);
  }
  const bool multi = c.label_targets || c.targets.size() > 1;
  return RunStreams(c, View(), [&](size_t i, grpc::Channel& ch, Printer& printer) {
    auto stub = StubFor<v1::DiagnosisService::Stub>(ch);
    CallContext call;
    if (!call.started()) return absl::CancelledError("interrupted");
    auto reader = stub.WatchFindings(&call.ctx, req);
    v1::FindingEvent e;
    while (reader->Read(&e)) {
      if (c.format == Format::kJson) {
        printer.Part(i, e);
        continue;
      }
      const std::string kind = absl::AsciiStrToUpper(
          EnumSuffix(v1::FindingEvent::Kind_Name(e.kind()), "KIND_", e.kind()));
      std::string line =
          absl::StrCat(multi ? c.targets[i].display + "  " : "", Time(e.at()), "  ",
                       e.initial() ? "OPEN" : kind, "  ", SeverityLabel(e.finding().severity()),
                       " ", e.finding().rule(), ": ", e.finding().summary());
      if (e.kind() == v1::FindingEvent::KIND_CHANGED)
        absl::StrAppend(&line, " (was ", SeverityLabel(e.previous_severity()), ")");
      absl::StrAppend(&line, "  since ", Time(e.finding().since()));
      if (e.lost_before()) absl::StrAppend(&line, "  [events were lost before this one]");
      printer.Lines(i, TerminalText(line) + "\n");
    }
    return FromGrpc(reader->Finish());
  });
}

}  // namespace

int RunDoctor(const CommandContext& c, const DoctorArgs& args) {
  if (args.watch) return RunDoctorWatch(c, args);
  if (!args.explain.empty() || args.list_rules) {
    auto outcomes =
        FanOut(c.targets, *c.dialer, [](const Target&, grpc::Channel& ch, absl::Time d) {
          return Unary(ch, d, v1::GetCatalogRequest(), &v1::DiagnosisService::Stub::GetCatalog);
        });
    const std::string rule = args.explain;
    for (const auto& o : outcomes) {
      if (!o.status.ok() || !o.result || rule.empty()) continue;
      bool known = false;
      for (const auto& d : static_cast<const v1::GetCatalogResponse&>(*o.result).rules())
        known |= d.id() == rule;
      if (!known) {
        *c.err << "netctl: doctor --explain: no rule \"" << TerminalText(rule)
               << "\" (netctl doctor --rules lists them)\n";
        return 2;
      }
      break;
    }
    View view;
    view.block = TypedBlock<v1::GetCatalogResponse>(
        [rule](const v1::GetCatalogResponse& m, std::ostream& out) { CatalogBlock(m, rule, out); });
    return PrintOutcomes(c, std::move(outcomes), view);
  }
  v1::DiagnoseRequest req;
  if (args.window) SetDuration(*args.window, req.mutable_window());
  for (const auto& r : args.rules) req.add_rules(r);
  if (!args.min_severity.empty()) {
    v1::Severity s;
    if (!v1::Severity_Parse(absl::StrCat("SEVERITY_", absl::AsciiStrToUpper(args.min_severity)),
                            &s) ||
        s == v1::SEVERITY_UNSPECIFIED) {
      *c.err << "netctl: --min-severity: info, warning or critical\n";
      return 2;
    }
    req.set_min_severity(s);
  }
  auto outcomes = FanOut(
      c.targets, *c.dialer,
      [&](const Target&, grpc::Channel& ch, absl::Time d) {
        return Unary(ch, d, req, &v1::DiagnosisService::Stub::Diagnose);
      },
      args.window.value_or(absl::Seconds(10)));
  if (c.format == Format::kTable && c.targets.size() > 1) FleetSummary(c.targets, outcomes, *c.out);
  View view;
  view.block = TypedBlock<v1::DiagnoseResponse>(
      [](const v1::DiagnoseResponse& m, std::ostream& out) { PrintDiagnosis(m, out); });
  return PrintOutcomes(c, std::move(outcomes), view);
}

void AddDoctorCommand(Commands& commands) {
  auto args = std::make_shared<DoctorArgs>();
  auto window = std::make_shared<std::string>();
  auto* doctor = commands.app().add_subcommand(
      "doctor", "what is wrong: findings with evidence, where, why, and the fix to apply");
  doctor->add_option("--window", *window, "how long to measure (default 10s, 1s to 5m)");
  doctor->add_option("--rule", args->rules, "only this rule (repeatable)");
  doctor->add_option("--min-severity", args->min_severity, "info (default), warning or critical");
  doctor->add_option("--explain", args->explain,
                     "print a rule: what it measures, its thresholds, why");
  doctor->add_flag("--rules", args->list_rules, "print every rule");
  doctor->add_flag("--watch", args->watch,
                   "findings as the agent's own evaluation opens, changes and clears them, "
                   "until Ctrl-C");
  commands.Runs(doctor, [args, window](CommandContext& c) {
    auto w = ParseDurationFlag(*window, "--window");
    if (!w.ok()) return UsageError(c, std::string(w.status().message()));
    args->window = *w;
    if (args->watch) {
      if (args->window) return UsageError(c, "doctor --watch: --window is the agent's interval");
      c.streaming = true;  // Ctrl-C ends the streams cleanly: exit status 0
    }
    return RunDoctor(c, *args);
  });
}

}  // namespace netagent::client
