// netctl tune show | plan | apply | confirm | rollback | history | journal [ack].
#include <google/protobuf/util/time_util.h>

#include <cmath>
#include <random>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/commands.h"
#include "client/rpc.h"
#include "netagent/v1/tuning.grpc.pb.h"

namespace netagent::client {
namespace v1 = ::netagent::v1;
namespace {

absl::Status Usage(const std::string& flag, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", what));
}

// Number with an optional unit suffix, case-insensitive; `units` maps
// suffixes to multipliers.
absl::StatusOr<uint64_t> ParseScaled(const std::string& text, const std::string& flag,
                                     const std::vector<std::pair<std::string, double>>& units,
                                     const std::string& example) {
  std::string t = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  size_t end = 0;
  while (end < t.size() && (std::isdigit(static_cast<unsigned char>(t[end])) || t[end] == '.'))
    ++end;
  double v;
  if (end == 0 || !absl::SimpleAtod(t.substr(0, end), &v)) {
    return Usage(flag, absl::StrCat("\"", text, "\" is not a number (like ", example, ")"));
  }
  const std::string unit = t.substr(end);
  double mult = 0;
  for (const auto& [suffix, m] : units) {
    if (unit == suffix) mult = m;
  }
  if (mult == 0)
    return Usage(flag, absl::StrCat("unknown unit in \"", text, "\" (like ", example, ")"));
  const double r = v * mult;
  if (!(r >= 1) || r > 1.8e19) return Usage(flag, absl::StrCat("\"", text, "\" is out of range"));
  return static_cast<uint64_t>(std::llround(r));
}

absl::StatusOr<v1::Setting> ParseSetting(const std::string& kv) {
  const size_t eq = kv.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Usage("--set", absl::StrCat("\"", kv, "\" is not name=value"));
  }
  v1::Setting s;
  s.set_name(kv.substr(0, eq));
  s.set_value(kv.substr(eq + 1));
  return s;
}

absl::StatusOr<v1::TuningIntent> BuildIntent(const TuneArgs& a) {
  v1::TuningIntent in;
  in.set_clamp(a.clamp);
  auto need_device = [&]() -> absl::Status {
    if (a.device.empty()) return Usage("--dev", absl::StrCat("required for ", a.intent));
    return absl::OkStatus();
  };
  if (a.intent == "bdp") {
    auto* b = in.mutable_bdp();
    if (a.observed) {
      if (!a.bandwidth.empty() || !a.rtt.empty()) {
        return Usage("--observed", "not with --bandwidth/--rtt");
      }
      b->set_observed(true);
    } else {
      if (a.bandwidth.empty() || a.rtt.empty()) {
        return Usage("--bandwidth", "give --bandwidth and --rtt, or --observed");
      }
      auto bw = ParseBitRate(a.bandwidth, "--bandwidth");
      if (!bw.ok()) return bw.status();
      b->set_bandwidth_bps(*bw);
      absl::Duration rtt;
      if (!absl::ParseDuration(a.rtt, &rtt) || rtt <= absl::ZeroDuration()) {
        return Usage("--rtt",
                     absl::StrCat("\"", a.rtt, "\" is not a positive duration (like 200ms)"));
      }
      b->mutable_rtt()->set_seconds(absl::IDivDuration(rtt, absl::Seconds(1), &rtt));
      b->mutable_rtt()->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(rtt)));
    }
    if (!a.ceiling.empty()) {
      auto c = ParseByteSize(a.ceiling, "--ceiling");
      if (!c.ok()) return c.status();
      b->set_ceiling_bytes(*c);
    }
  } else if (a.intent == "cc") {
    if (a.algorithm.empty()) return Usage("algorithm", "required (bbr, cubic, ...)");
    in.mutable_congestion()->set_algorithm(a.algorithm);
  } else if (a.intent == "rps" || a.intent == "xps") {
    if (auto st = need_device(); !st.ok()) return st;
    auto set = [&](auto* m) {
      m->set_device(a.device);
      m->set_cpus(a.cpus);
      m->set_disable(a.off);
    };
    if (a.intent == "rps")
      set(in.mutable_rps());
    else
      set(in.mutable_xps());
  } else if (a.intent == "rfs") {
    if (auto st = need_device(); !st.ok()) return st;
    in.mutable_rfs()->set_device(a.device);
    in.mutable_rfs()->set_flow_entries(a.entries);
    in.mutable_rfs()->set_disable(a.off);
  } else if (a.intent == "channels") {
    if (auto st = need_device(); !st.ok()) return st;
    auto* c = in.mutable_channels();
    c->set_device(a.device);
    if (a.combined) c->set_combined(*a.combined);
    if (a.rx) c->set_rx(*a.rx);
    if (a.tx) c->set_tx(*a.tx);
    if (a.other) c->set_other(*a.other);
  } else if (a.intent == "rss") {
    if (auto st = need_device(); !st.ok()) return st;
    in.mutable_rss()->set_device(a.device);
    in.mutable_rss()->set_queues(a.queues);
    for (uint32_t w : a.weights) in.mutable_rss()->add_weights(w);
  } else if (a.intent == "irq") {
    if (auto st = need_device(); !st.ok()) return st;
    in.mutable_irq_affinity()->set_device(a.device);
    in.mutable_irq_affinity()->set_cpus(a.cpus);
  } else if (a.intent == "coalesce") {
    if (auto st = need_device(); !st.ok()) return st;
    auto* c = in.mutable_coalesce();
    c->set_device(a.device);
    c->set_profile(a.profile);
    for (const auto& kv : a.set) {
      auto s = ParseSetting(kv);
      if (!s.ok()) return s.status();
      uint64_t v;
      if (!absl::SimpleAtoi(s->value(), &v))
        return Usage("--set", absl::StrCat(kv, ": not a number"));
      (*c->mutable_values())[s->name()] = v;
    }
  } else if (a.intent == "limits" || a.intent == "sysctl") {
    if (a.set.empty()) return Usage("--set", "at least one name=value");
    auto* list = a.intent == "limits" ? in.mutable_limits()->mutable_settings()
                                      : in.mutable_sysctl()->mutable_settings();
    for (const auto& kv : a.set) {
      auto s = ParseSetting(kv);
      if (!s.ok()) return s.status();
      *list->Add() = *s;
    }
  } else if (a.intent == "block") {
    if (auto st = need_device(); !st.ok()) return st;
    if (a.prefixes.empty()) return Usage("prefix", "at least one address or CIDR prefix");
    auto* b = in.mutable_datapath_block();
    b->set_device(a.device);
    for (const auto& p : a.prefixes) b->add_prefixes(p);
    b->set_remove(a.off);
  } else {
    return Usage("intent", absl::StrCat("unknown \"", a.intent, "\""));
  }
  return in;
}

std::string RiskName(v1::Risk r) {
  switch (r) {
    case v1::RISK_LOW:
      return "low";
    case v1::RISK_MEDIUM:
      return "medium";
    case v1::RISK_HIGH:
      return "HIGH";
    default:
      return "?";
  }
}

std::string StateName(v1::ChangeState s) {
  return absl::AsciiStrToLower(EnumSuffix(v1::ChangeState_Name(s), "CHANGE_STATE_", s));
}

std::string TimeText(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixSeconds(t.seconds()),
                          absl::UTCTimeZone());
}

void PrintPlan(const v1::TuningPlan& p, std::ostream& out) {
  out << "plan: " << p.intent() << "  (digest " << p.digest() << ")\n";
  if (p.changes_size() == 0) out << "  nothing to change\n";
  Table t({"KNOB", "OLD", "", "NEW", "RISK", "WHY"});
  for (const auto& c : p.changes()) {
    t.AddRow({c.knob(), c.old_value(), "->", c.new_value(), RiskName(c.risk()), c.reason()});
    for (const auto& w : c.warnings()) t.AddNote({""}, "  ! " + w);
  }
  if (p.changes_size() > 0) t.Render(out);
  for (const auto& w : p.warnings()) out << "warning: " << w << "\n";
  for (const auto& r : p.refusals()) out << "an apply would be refused here: " << r << "\n";
}

void PrintChange(const v1::ChangeRecord& r, std::ostream& out, bool events) {
  out << "change " << r.id() << ": " << StateName(r.state());
  if (r.state() == v1::CHANGE_STATE_PENDING_CONFIRM) {
    out << ", rolls back at " << TimeText(r.confirm_deadline())
        << " UTC unless confirmed: netctl tune confirm " << r.id();
  }
  out << "\n";
  for (const auto& d : r.drift()) {
    out << "  drift: " << d.knob() << " is \"" << d.observed() << "\", set \"" << d.expected()
        << "\" (since " << TimeText(d.since()) << ")\n";
  }
  if (events) {
    for (const auto& e : r.events()) out << "  " << TimeText(e.at()) << "  " << e.what() << "\n";
  }
}

// The host part stands; only the record of it is missing.
void PrintJournalError(const std::string& error, std::ostream& out) {
  if (error.empty()) return;
  out << "warning: done on the host, but the change journal could not record it: " << error
      << "\n  (the agent retries; netctl host shows the condition)\n";
}

void PrintQuarantine(const v1::JournalQuarantine& q, std::ostream& out) {
  out << "  could not be read: " << q.error() << "\n";
  if (!q.quarantined_path().empty()) {
    out << "  set aside as: " << q.quarantined_path() << "\n";
  } else {
    out << "  could not be set aside: " << q.move_error() << "\n";
  }
  if (q.changes_read() == 0) {
    out << "  nothing could be read from it: check the knobs by hand (netctl tune show)\n";
    return;
  }
  if (q.possibly_in_effect_size() == 0) {
    out << "  it names " << q.changes_read() << " change(s), none of them in effect\n";
    return;
  }
  out << "  possibly in effect (values may be left changed; the agent no longer expires or rolls "
         "them back):\n";
  Table t({"CHANGE", "STATE", "KNOB", "OLD", "", "NEW"});
  for (const auto& c : q.possibly_in_effect()) {
    std::string state =
        c.state() == v1::CHANGE_STATE_UNSPECIFIED ? "unreadable" : StateName(c.state());
    if (c.has_confirm_deadline()) {
      absl::StrAppend(&state, " (was to roll back at ", TimeText(c.confirm_deadline()), ")");
    }
    if (c.knobs_size() == 0) t.AddRow({c.id(), state, "(no knob readable)", "", "", ""});
    for (const auto& k : c.knobs()) {
      t.AddRow({c.id(), state, k.knob(), k.old_value(), "->", k.new_value()});
    }
  }
  t.Render(out);
}

void PrintJournal(const v1::JournalStatus& s, std::ostream& out) {
  const bool ok = !s.has_quarantine() && s.save_error().empty();
  out << "journal " << s.path() << ": " << (ok ? "ok" : "NEEDS ATTENTION") << "\n";
  if (s.has_quarantine()) {
    out << "QUARANTINED since " << TimeText(s.quarantine().since())
        << " UTC; applying is refused until acknowledged\n";
    PrintQuarantine(s.quarantine(), out);
    out << "  when those knobs are as they should be: netctl tune journal ack\n";
  }
  if (!s.save_error().empty()) {
    out << "WRITES FAILING since " << TimeText(s.save_failing_since())
        << " UTC (the file is behind; applying is refused): " << s.save_error() << "\n";
  }
  for (const auto& e : s.events()) out << "  " << TimeText(e.at()) << "  " << e.what() << "\n";
}

std::string NewChangeId() {
  std::random_device rd;
  return absl::StrCat(absl::FormatTime("%Y%m%d-%H%M%S", absl::Now(), absl::UTCTimeZone()), "-",
                      absl::StrFormat("%04x", rd() & 0xffff));
}

int RunIntent(const CommandContext& c, const TuneArgs& args, bool apply) {
  auto intent = BuildIntent(args);
  if (!intent.ok()) {
    *c.err << "netctl: " << TerminalText(intent.status().message()) << "\n";
    return 2;
  }
  if (!apply) {
    v1::PlanTuningRequest req;
    *req.mutable_intent() = *intent;
    auto outcomes =
        FanOut(c.targets, *c.dialer, [&](const Target&, grpc::Channel& ch, absl::Time d) {
          return Unary(ch, d, req, &v1::TuningService::Stub::PlanTuning);
        });
    View view;
    view.block = TypedBlock<v1::PlanTuningResponse>(
        [](const v1::PlanTuningResponse& m, std::ostream& out) { PrintPlan(m.plan(), out); });
    return PrintOutcomes(c, std::move(outcomes), view);
  }
  v1::ApplyTuningRequest req;
  *req.mutable_intent() = *intent;
  req.set_expected_digest(args.expect_digest);
  // One id for every target: one confirm or rollback addresses the fleet.
  req.set_change_id(args.change_id.empty() ? NewChangeId() : args.change_id);
  if (!args.confirm_within.empty()) {
    absl::Duration d;
    if (!absl::ParseDuration(args.confirm_within, &d) || d <= absl::ZeroDuration()) {
      *c.err << "netctl: --confirm-within: \"" << TerminalText(args.confirm_within)
             << "\" is not a positive duration (like 60s)\n";
      return 2;
    }
    req.mutable_confirm_within()->set_seconds(absl::ToInt64Seconds(d));
    req.mutable_confirm_within()->set_nanos(
        static_cast<int32_t>(absl::ToInt64Nanoseconds(d - absl::Seconds(absl::ToInt64Seconds(d)))));
  }
  auto outcomes = FanOut(c.targets, *c.dialer, [&](const Target&, grpc::Channel& ch, absl::Time d) {
    return Unary(ch, d, req, &v1::TuningService::Stub::ApplyTuning);
  });
  View view;
  view.block =
      TypedBlock<v1::ApplyTuningResponse>([](const v1::ApplyTuningResponse& r, std::ostream& out) {
        PrintPlan(r.plan(), out);
        if (r.has_change()) {
          PrintChange(r.change(), out, false);
        } else {
          out << "nothing applied\n";
        }
      });
  return PrintOutcomes(c, std::move(outcomes), view);
}

}  // namespace

absl::StatusOr<uint64_t> ParseBitRate(const std::string& text, const std::string& flag) {
  std::vector<std::pair<std::string, double>> units;
  for (const auto& [p, m] : std::vector<std::pair<std::string, double>>{
           {"", 1}, {"k", 1e3}, {"m", 1e6}, {"g", 1e9}, {"t", 1e12}}) {
    for (const char* s : {"", "bit", "bit/s", "bps", "b"}) {
      if (p.empty() && std::string(s) == "b") continue;
      units.emplace_back(p + s, m);
    }
  }
  return ParseScaled(text, flag, units, "1gbit, 500mbit, 10G");
}

absl::StatusOr<uint64_t> ParseByteSize(const std::string& text, const std::string& flag) {
  std::vector<std::pair<std::string, double>> units = {{"", 1}, {"b", 1}};
  double m = 1;
  for (const char* p : {"k", "m", "g"}) {
    m *= 1024;
    for (const char* s : {"", "b", "ib"}) units.emplace_back(absl::StrCat(p, s), m);
  }
  return ParseScaled(text, flag, units, "256M, 64MiB, 1G");
}

int RunTuneShow(const CommandContext& c, const TuneArgs& args) {
  v1::GetTunablesRequest req;
  req.set_device(args.device);
  req.set_filter(args.filter);
  auto outcomes = FanOut(c.targets, *c.dialer, [&](const Target&, grpc::Channel& ch, absl::Time d) {
    return Unary(ch, d, req, &v1::TuningService::Stub::GetTunables);
  });
  View view;
  view.header = {"KNOB", "VALUE", "DEFAULT", "FLOOR", "CEILING", "STEP", "SET-BY", "NOTE"};
  view.rows = TypedRows<v1::GetTunablesResponse>([](const v1::GetTunablesResponse& m, Rows& rows) {
    for (const auto& t : m.tunables()) {
      std::vector<std::string> notes;
      if (!t.exists())
        notes.push_back("absent here");
      else if (!t.writable())
        notes.push_back("read-only here");
      if (!t.per_netns()) notes.push_back("global");
      if (t.drifted()) notes.push_back("DRIFTED");
      if (absl::StartsWith(t.default_source(), "first seen"))
        notes.push_back("default as first seen");
      rows.push_back({t.knob(), t.exists() ? t.value() : "-",
                      t.kernel_default().empty() ? "-" : t.kernel_default(),
                      t.floor().empty() ? "-" : t.floor(), t.ceiling().empty() ? "-" : t.ceiling(),
                      t.max_step() > 0 ? absl::StrCat("x", t.max_step()) : "-",
                      t.set_by().empty() ? "-" : t.set_by(), absl::StrJoin(notes, ", ")});
    }
  });
  return PrintOutcomes(c, std::move(outcomes), view);
}

int RunTunePlan(const CommandContext& c, const TuneArgs& args) { return RunIntent(c, args, false); }
int RunTuneApply(const CommandContext& c, const TuneArgs& args) { return RunIntent(c, args, true); }

int RunTuneConfirm(const CommandContext& c, const TuneArgs& args) {
  v1::ConfirmChangeRequest req;
  req.set_change_id(args.change_id);
  auto outcomes = FanOut(c.targets, *c.dialer, [&](const Target&, grpc::Channel& ch, absl::Time d) {
    return Unary(ch, d, req, &v1::TuningService::Stub::ConfirmChange);
  });
  View view;
  view.block = TypedBlock<v1::ConfirmChangeResponse>(
      [](const v1::ConfirmChangeResponse& r, std::ostream& out) {
        PrintChange(r.change(), out, false);
        PrintJournalError(r.journal_error(), out);
      });
  return PrintOutcomes(c, std::move(outcomes), view);
}

int RunTuneRollback(const CommandContext& c, const TuneArgs& args) {
  v1::RollbackChangeRequest req;
  req.set_change_id(args.change_id);
  req.set_force(args.force);
  auto outcomes = FanOut(c.targets, *c.dialer, [&](const Target&, grpc::Channel& ch, absl::Time d) {
    return Unary(ch, d, req, &v1::TuningService::Stub::RollbackChange);
  });
  View view;
  view.block = TypedBlock<v1::RollbackChangeResponse>(
      [](const v1::RollbackChangeResponse& resp, std::ostream& out) {
        const auto& r = resp.change();
        PrintChange(r, out, false);
        for (const auto& k : r.knobs()) out << "  " << k.knob() << " = " << k.old_value() << "\n";
        PrintJournalError(resp.journal_error(), out);
      });
  return PrintOutcomes(c, std::move(outcomes), view);
}

int RunTuneHistory(const CommandContext& c, const TuneArgs& args) {
  v1::ListChangesRequest req;
  req.set_limit(args.limit);
  req.set_active_only(args.active_only);
  auto outcomes = FanOut(c.targets, *c.dialer, [&](const Target&, grpc::Channel& ch, absl::Time d) {
    return Unary(ch, d, req, &v1::TuningService::Stub::ListChanges);
  });
  View view;
  view.header = {"ID", "CREATED (UTC)", "STATE", "CALLER", "INTENT", "KNOBS", "LAST EVENT"};
  view.rows = TypedRows<v1::ListChangesResponse>([](const v1::ListChangesResponse& m, Rows& rows) {
    for (const auto& r : m.changes()) {
      std::string state = StateName(r.state());
      if (r.drift_size() > 0) absl::StrAppend(&state, " (drift: ", r.drift_size(), ")");
      rows.push_back({r.id(), TimeText(r.created()), state, r.caller(), r.intent(),
                      absl::StrCat(r.knobs_size()),
                      r.events_size() ? r.events(r.events_size() - 1).what() : ""});
    }
  });
  return PrintOutcomes(c, std::move(outcomes), view);
}

int RunTuneJournal(const CommandContext& c, const TuneArgs&) {
  v1::GetJournalStatusRequest req;
  auto outcomes = FanOut(c.targets, *c.dialer, [&](const Target&, grpc::Channel& ch, absl::Time d) {
    return Unary(ch, d, req, &v1::TuningService::Stub::GetJournalStatus);
  });
  View view;
  view.block = TypedBlock<v1::GetJournalStatusResponse>(
      [](const v1::GetJournalStatusResponse& m, std::ostream& out) {
        PrintJournal(m.status(), out);
      });
  return PrintOutcomes(c, std::move(outcomes), view);
}

int RunTuneJournalAck(const CommandContext& c, const TuneArgs& args) {
  v1::AcknowledgeJournalRequest req;
  req.set_quarantined_path(args.journal_file);
  auto outcomes = FanOut(c.targets, *c.dialer, [&](const Target&, grpc::Channel& ch, absl::Time d) {
    return Unary(ch, d, req, &v1::TuningService::Stub::AcknowledgeJournal);
  });
  View view;
  view.block = TypedBlock<v1::AcknowledgeJournalResponse>(
      [](const v1::AcknowledgeJournalResponse& r, std::ostream& out) {
        out << "acknowledged: " << r.acknowledged().quarantined_path()
            << " stays as it is; a fresh journal is started and applying is allowed again\n";
        PrintQuarantine(r.acknowledged(), out);
        PrintJournal(r.status(), out);
      });
  return PrintOutcomes(c, std::move(outcomes), view);
}

void AddTuneCommands(Commands& commands) {
  auto args = std::make_shared<TuneArgs>();
  auto* tune = commands.app().add_subcommand(
      "tune",
      "plan, apply, confirm and roll back tuning (apply/confirm/rollback need an operator)");
  tune->require_subcommand(1);
  auto* show =
      tune->add_subcommand("show", "every managed knob: value, default, bounds, who set it");
  show->add_option("--dev", args->device, "also this device's knobs");
  show->add_option("--filter", args->filter, "RE2 on knob names");
  commands.Runs(show, [args](CommandContext& c) { return RunTuneShow(c, *args); });
  auto* plan = tune->add_subcommand("plan", "what an intent would change (changes nothing)");
  auto* apply = tune->add_subcommand("apply", "apply an intent as one change set");
  apply->add_option("--confirm-within", args->confirm_within,
                    "roll back by itself unless confirmed within this time (like 60s)");
  apply->add_option("--expect-digest", args->expect_digest,
                    "apply only if the plan still has this digest (from tune plan)");
  for (CLI::App* parent : {plan, apply}) {
    parent->require_subcommand(1);
    const bool applies = parent == apply;
    // Each intent is a command of its own under plan and under apply.
    auto add = [&](const char* name, const char* what) {
      CLI::App* cmd = parent->add_subcommand(name, what);
      cmd->add_flag("--clamp", args->clamp, "clamp values outside bounds instead of refusing");
      if (applies) {
        cmd->add_option("--confirm-within", args->confirm_within,
                        "roll back by itself unless confirmed within this time (like 60s)");
        cmd->add_option("--expect-digest", args->expect_digest,
                        "apply only if the plan still has this digest (from tune plan)");
        cmd->add_option("--id", args->change_id,
                        "the change id (default: one generated id for every target)");
      }
      commands.Runs(cmd, [args, applies, intent = std::string(name)](CommandContext& c) {
        args->intent = intent;
        return applies ? RunTuneApply(c, *args) : RunTunePlan(c, *args);
      });
      return cmd;
    };
    auto* bdp = add("bdp", "TCP buffer maxima from bandwidth x RTT (or observed flows)");
    bdp->add_option("--bandwidth", args->bandwidth, "path bandwidth (like 1gbit, 500mbit)");
    bdp->add_option("--rtt", args->rtt, "path round-trip time (like 200ms)");
    bdp->add_flag("--observed", args->observed, "from the busiest current flows");
    bdp->add_option("--ceiling", args->ceiling, "largest buffer max (default 256M)");
    auto* cc = add("cc", "default congestion control");
    cc->add_option("algorithm", args->algorithm, "bbr, cubic, ...")->required();
    auto* rps = add("rps", "receive packet steering masks");
    auto* xps = add("xps", "transmit packet steering masks");
    auto* irq = add("irq", "IRQ affinity of the device's queues");
    for (CLI::App* q : {rps, xps, irq}) {
      q->add_option("--dev", args->device, "device")->required();
      q->add_option("--cpus", args->cpus, "CPU list (default: online, local, not isolated)");
      if (q != irq) q->add_flag("--off", args->off, "turn it off");
    }
    auto* rfs = add("rfs", "receive flow steering tables");
    rfs->add_option("--dev", args->device, "device")->required();
    rfs->add_option("--entries", args->entries, "global flow entries, a power of two (32768)");
    rfs->add_flag("--off", args->off, "turn it off");
    auto* ch = add("channels", "queue counts (ethtool -L)");
    ch->add_option("--dev", args->device, "device")->required();
    ch->add_option("--combined", args->combined, "combined channels");
    ch->add_option("--rx", args->rx, "receive-only channels");
    ch->add_option("--tx", args->tx, "transmit-only channels");
    ch->add_option("--other", args->other, "other channels");
    auto* rss = add("rss", "RSS indirection table (ethtool -X)");
    rss->add_option("--dev", args->device, "device")->required();
    rss->add_option("--queues", args->queues, "spread over the first N queues (default all)");
    rss->add_option("--weights", args->weights, "weight per queue")->delimiter(',');
    auto* co = add("coalesce", "interrupt coalescing (ethtool -C)");
    co->add_option("--dev", args->device, "device")->required();
    co->add_option("--profile", args->profile, "latency or throughput");
    co->add_option("--set", args->set, "parameter=value (rx-usecs=50)");
    auto* lim = add("limits", "listen, SYN, TIME_WAIT, port, backlog and conntrack limits");
    lim->add_option("--set", args->set, "name=value (somaxconn=8192)")->required();
    auto* sc = add("sysctl", "any managed sysctl, within its bounds");
    sc->add_option("--set", args->set, "name=value")->required();
    auto* block = add("block", "sources the fast path drops (netctl datapath attach first)");
    block->add_option("--dev", args->device, "the device the fast path is attached to")->required();
    block->add_option("prefix", args->prefixes, "addresses or CIDR prefixes")->required();
    block->add_flag("--remove", args->off, "lift these blocks instead");
  }
  auto* confirm = tune->add_subcommand("confirm", "keep a change applied with --confirm-within");
  confirm->add_option("id", args->change_id, "change id")->required();
  commands.Runs(confirm, [args](CommandContext& c) { return RunTuneConfirm(c, *args); });
  auto* rollback = tune->add_subcommand("rollback", "restore the values a change replaced");
  rollback->add_option("id", args->change_id, "change id")->required();
  rollback->add_flag("--force", args->force, "also over values someone else changed since");
  commands.Runs(rollback, [args](CommandContext& c) { return RunTuneRollback(c, *args); });
  auto* history =
      tune->add_subcommand("history", "changes, newest first: who, when, what, outcome");
  history->add_option("--limit", args->limit, "at most this many (default 50)");
  history->add_flag("--active", args->active_only, "only changes in effect");
  commands.Runs(history, [args](CommandContext& c) { return RunTuneHistory(c, *args); });
  auto* journal = tune->add_subcommand(
      "journal", "the change journal: set aside at start (and what it held), failing writes");
  commands.Runs(journal, [args](CommandContext& c) { return RunTuneJournal(c, *args); });
  auto* ack = journal->add_subcommand(
      "ack", "after checking what a journal set aside may have left: start a fresh one");
  ack->add_option("--file", args->journal_file,
                  "only if this is the file set aside (path or base name)");
  commands.Runs(ack, [args](CommandContext& c) { return RunTuneJournalAck(c, *args); });
}

}  // namespace netagent::client
