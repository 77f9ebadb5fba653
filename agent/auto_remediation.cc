#include "agent/auto_remediation.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/diagnosis_service.h"
#include "diagnosis/rules.h"
#include "diagnosis/snapshot.h"

namespace netagent::agent {
namespace {

std::string AutoCaller(const playbook::Playbook& p) {
  return absl::StrCat("auto-playbook:", p.name);
}

std::string ConditionId(const playbook::Playbook& p) {
  return absl::StrCat("auto-playbook-", p.name, "-stopped");
}

}  // namespace

AutoRemediation::AutoRemediation(std::vector<playbook::Playbook> playbooks,
                                 diagnosis::Monitor* monitor, tuners::TuningManager* tuning,
                                 diagnosis::LevelOverrides overrides, AgentContext& ctx)
    : monitor_(monitor), tuning_(tuning), overrides_(std::move(overrides)), ctx_(ctx) {
  for (auto& p : playbooks) {
    const uint32_t per_hour = p.auto_max_per_hour;
    const absl::Duration cooldown = p.auto_cooldown;
    spdlog::info(
        "auto playbook {} ({}): acts on {} at {} or above, at most {} change(s) an hour, "
        "{} cool-down after a rollback",
        p.name, p.file, p.finding,
        p.min_severity == netagent::v1::SEVERITY_CRITICAL ? "critical" : "warning", per_hour,
        absl::FormatDuration(cooldown));
    entries_.push_back(Entry{std::move(p), playbook::AutoGate(per_hour, cooldown), {}, {}});
    Restore(entries_.back());
  }
  thread_ = std::thread([this] { Loop(); });
}

AutoRemediation::~AutoRemediation() { Stop(); }

void AutoRemediation::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void AutoRemediation::Restore(Entry& e) {
  const std::string caller = AutoCaller(e.playbook);
  auto records = tuning_->List(1000, /*active_only=*/false);
  std::sort(records.begin(), records.end(),
            [](const auto& a, const auto& b) { return a.created < b.created; });
  const absl::Time now = absl::Now();
  size_t seen = 0;
  for (const auto& r : records) {
    if (r.caller != caller) continue;
    ++seen;
    e.gate.Started(r.created);
    if (r.state == tuners::ChangeState::kConfirmed) {
      e.gate.Kept();
      e.kept.push_back(r.id);
    } else {
      // Rolled back, expired, failed, or still pending from before the
      // restart (nobody will verify it now: it rolls back at its deadline).
      absl::Time ended = r.events.empty() ? r.created : r.events.back().at;
      if (r.state == tuners::ChangeState::kPending && r.confirm_deadline) {
        ended = *r.confirm_deadline;
      }
      e.gate.RolledBack(ended);
    }
  }
  if (seen > 0) {
    spdlog::info("auto playbook {}: {} earlier change(s) in the journal; {}", e.playbook.name, seen,
                 e.gate.Refusal(now).value_or("it may act now"));
  }
}

void AutoRemediation::Note(Entry& e, const std::string& line) {
  if (line == e.last_refusal) return;
  spdlog::info("auto playbook {}: {}", e.playbook.name, line);
  e.last_refusal = line;
}

void AutoRemediation::Loop() {
  auto sub = monitor_->Subscribe();
  while (!stop_ && !ctx_.lifecycle.stopping()) {
    auto event = sub->Next(absl::Seconds(1));
    if (sub->TakeLost()) {
      // Events were dropped: what is open now is the truth.
      spdlog::warn("auto playbooks: fell behind the diagnosis; reading what is open now");
      for (Entry& e : entries_) {
        e.armed = monitor_->Current(e.playbook.finding);
        if (e.armed &&
            static_cast<int>(e.armed->severity) < static_cast<int>(e.playbook.min_severity)) {
          e.armed.reset();
        }
      }
    }
    // The tuning manager's drift pass runs every 30 s; an operator's
    // rollback is seen within 5 s. Each look copies the journal's records.
    if (absl::Now() - last_drift_check_ >= absl::Seconds(5)) {
      last_drift_check_ = absl::Now();
      for (Entry& e : entries_) CheckDrift(e);
    }
    if (event) {
      using Kind = diagnosis::FindingEvent::Kind;
      for (Entry& e : entries_) {
        if (e.playbook.finding != event->finding.rule) continue;
        if (event->kind == Kind::kCleared ||
            static_cast<int>(event->finding.severity) < static_cast<int>(e.playbook.min_severity)) {
          e.armed.reset();
        } else {
          e.armed = event->finding;
        }
      }
    }
    for (Entry& e : entries_) {
      if (!e.armed || stop_) continue;
      // Act on the finding as the last evaluation saw it: after a cool-down
      // the armed one may be an hour old, and its remediation with it.
      std::optional<diagnosis::Finding> now = monitor_->Current(e.playbook.finding);
      if (!now || static_cast<int>(now->severity) < static_cast<int>(e.playbook.min_severity)) {
        e.armed.reset();
        continue;
      }
      e.armed = now;
      Handle(e, *now);
    }
  }
}

void AutoRemediation::StopPlaybook(Entry& e, const std::string& why) {
  e.gate.Stop(why);
  e.armed.reset();
  spdlog::warn("auto playbook {}: {}", e.playbook.name, why);
  ctx_.conditions.Set({ConditionId(e.playbook), ConditionSeverity::kWarning,
                       absl::StrCat("auto playbook ", e.playbook.name, " stopped: ", why),
                       "check who changed it and why; restart the agent to let the playbook act "
                       "again",
                       absl::Now()});
}

void AutoRemediation::CheckDrift(Entry& e) {
  if (e.kept.empty() || !e.gate.stopped().empty()) return;
  for (const auto& r : tuning_->List(1000, /*active_only=*/false)) {
    if (std::find(e.kept.begin(), e.kept.end(), r.id) == e.kept.end()) continue;
    if (r.state != tuners::ChangeState::kConfirmed) {
      // An operator undid what the playbook kept: doing it again would
      // overrule them.
      const std::string by =
          r.events.empty() ? std::string(tuners::ChangeStateName(r.state)) : r.events.back().what;
      StopPlaybook(e, absl::StrCat("its change ", r.id, " was undone (", by, "); playbook ",
                                   e.playbook.name, " stops rather than redo it"));
      return;
    }
    if (r.drift.empty()) continue;
    const auto& d = r.drift.front();
    StopPlaybook(e, absl::StrCat(d.knob, " is ", d.observed, ", not the ", d.expected, " change ",
                                 r.id, " set: someone else changed it; playbook ", e.playbook.name,
                                 " stops rather than fight"));
    return;
  }
}

bool AutoRemediation::UndoneMeanwhile(Entry& e, const std::string& id) {
  for (const auto& r : tuning_->List(1000, /*active_only=*/false)) {
    if (r.id != id) continue;
    if (r.state == tuners::ChangeState::kPending) return false;
    const std::string what =
        r.events.empty() ? std::string(tuners::ChangeStateName(r.state)) : r.events.back().what;
    if (r.state == tuners::ChangeState::kRolledBack) {
      // An operator undid it while it was being verified: the next time the
      // finding opened the playbook would apply it again and overrule them.
      StopPlaybook(e, absl::StrCat("its change ", id, " was undone while it was verified (", what,
                                   "); playbook ", e.playbook.name, " stops rather than redo it"));
    } else {
      spdlog::warn("auto playbook {}: change {} is {} ({}) before it was judged; no change for {}",
                   e.playbook.name, id, std::string(tuners::ChangeStateName(r.state)), what,
                   absl::FormatDuration(e.playbook.auto_cooldown));
      e.gate.RolledBack(absl::Now());
    }
    return true;
  }
  return false;
}

absl::StatusOr<playbook::HostFigures> AutoRemediation::Measure(const playbook::Playbook& p,
                                                               absl::Duration window) {
  diagnosis::CollectOptions collect;
  collect.window = window;
  collect.socket_iter = ctx_.socket_iter.get();
  collect.keep_going = [this]() {
    return stop_ || ctx_.lifecycle.stopping() ? absl::UnavailableError("the agent is stopping")
                                              : absl::OkStatus();
  };
  collect.yield = [] { std::this_thread::yield(); };
  auto pair = diagnosis::CollectPair(collect);
  if (!pair.ok()) return pair.status();
  diagnosis::DiagnoseOptions options;
  options.rules = {p.finding};
  options.min_severity = static_cast<diagnosis::Severity>(p.min_severity);
  options.overrides = overrides_;
  playbook::HostFigures figures;
  for (const auto& f : diagnosis::Diagnose(*pair, options)) {
    if (f.rule == p.finding) figures.finding_open = true;
  }
  const diagnosis::Window w(*pair);
  for (const auto& c : playbook::PlaybookCounters(p)) {
    if (w.Delta(c)) figures.rates[c] = w.Rate(c);
  }
  return figures;
}

void AutoRemediation::Handle(Entry& e, const diagnosis::Finding& finding) {
  const playbook::Playbook& p = e.playbook;
  if (auto refusal = e.gate.Refusal(absl::Now())) {
    Note(e, absl::StrCat(finding.rule, " is open, not acting: ", *refusal));
    return;
  }
  if (!finding.remediation.intent) {
    spdlog::info("auto playbook {}: {} has no remediation the agent can apply{}", p.name,
                 finding.rule,
                 finding.remediation.limits.empty()
                     ? ""
                     : absl::StrCat(": ", finding.remediation.limits.front()));
    e.armed.reset();
    return;
  }
  netagent::v1::TuningIntent proposed;
  IntentToProto(*finding.remediation.intent, &proposed);
  if (absl::Status kind = playbook::CheckRemediationKind(p, proposed); !kind.ok()) {
    spdlog::info("auto playbook {}: {}: {}", p.name, finding.rule, std::string(kind.message()));
    e.armed.reset();
    return;
  }
  // A guard against the baseline, or a success measured against it, needs
  // the figures before the change.
  std::optional<playbook::HostFigures> baseline;
  bool needs_baseline = false;
  for (const auto& c : p.failure) needs_baseline |= c.worse_than_baseline.has_value();
  for (const auto& c : p.success) needs_baseline |= c.better_than_baseline.has_value();
  if (needs_baseline) {
    auto b = Measure(p, p.detect_window);
    if (!b.ok()) {
      Note(e, absl::StrCat("no baseline (tried again each evaluation): ", b.status().message()));
      return;
    }
    baseline = *b;
  }
  e.last_refusal.clear();
  const absl::Time now = absl::Now();
  const std::string id = absl::StrCat("auto-", p.name, "-",
                                      absl::FormatTime("%Y%m%dT%H%M%S", now, absl::UTCTimeZone()));
  const absl::Duration confirm_within =
      p.confirm_within.value_or(p.settle + p.verify_window + absl::Minutes(5));
  e.gate.Started(now);
  auto applied = tuning_->Apply(*finding.remediation.intent, AutoCaller(p), confirm_within, "", id);
  if (!applied.ok()) {
    spdlog::warn("auto playbook {}: applying {} ({}) failed: {}", p.name, finding.rule,
                 finding.remediation.summary, std::string(applied.status().message()));
    e.gate.RolledBack(absl::Now());  // a failed apply restored itself; cool down all the same
    return;
  }
  if (!applied->change) {
    spdlog::info("auto playbook {}: {}: the plan had nothing to change", p.name, finding.rule);
    e.gate.Unchanged();
    e.armed.reset();
    return;
  }
  std::vector<std::string> knobs;
  for (const auto& k : applied->change->knobs)
    knobs.push_back(absl::StrCat(k.knob, " ", k.old_value, " -> ", k.new_value));
  spdlog::warn(
      "auto playbook {}: {} ({}): applied change {} ({}), verifying over {} after {}; it "
      "rolls back by itself at the deadline unless verified",
      p.name, finding.rule, finding.summary, id, absl::StrJoin(knobs, ", "),
      absl::FormatDuration(p.verify_window), absl::FormatDuration(p.settle));
  // Settle, then measure.
  const absl::Time settle_end = absl::Now() + p.settle;
  while (!stop_ && !ctx_.lifecycle.stopping() && absl::Now() < settle_end) {
    absl::SleepFor(std::min(absl::Milliseconds(200), settle_end - absl::Now()));
  }
  auto figures = Measure(p, p.verify_window);
  if (!figures.ok()) {
    // Stopping: the change stays pending and rolls back at its deadline.
    spdlog::warn("auto playbook {}: change {} not verified ({}); it rolls back at its deadline",
                 p.name, id, std::string(figures.status().message()));
    e.gate.RolledBack(absl::Now());
    return;
  }
  // What was measured says nothing of the change if it is gone.
  if (UndoneMeanwhile(e, id)) return;
  std::vector<netagent::v1::PlaybookMeasurement> measured;
  const auto verdict = playbook::Judge(p, *figures, baseline ? &*baseline : nullptr, &measured);
  std::vector<std::string> parts;
  for (const auto& m : measured) {
    parts.push_back(absl::StrCat(m.name(), " ", m.value(), m.met() ? " ok (" : " NOT MET (",
                                 m.condition(), ")"));
  }
  // Inconclusive rolls back here whatever the playbook says: no one is
  // there to resume a pause.
  if (verdict == netagent::v1::PLAYBOOK_VERDICT_SUCCESS) {
    auto c = tuning_->Confirm(id, AutoCaller(p));
    if (c.ok()) {
      e.kept.push_back(id);
      e.gate.Kept();
      e.armed.reset();
      spdlog::warn("auto playbook {}: change {} verified and confirmed: {}", p.name, id,
                   absl::StrJoin(parts, "; "));
      return;
    }
    spdlog::warn("auto playbook {}: change {} verified but not confirmed: {}", p.name, id,
                 std::string(c.status().message()));
    e.gate.RolledBack(absl::Now());
    return;
  }
  auto r = tuning_->Rollback(id, AutoCaller(p), /*force=*/false);
  e.gate.RolledBack(absl::Now());
  spdlog::warn(
      "auto playbook {}: change {} {} ({}); {}; no change for {}", p.name, id,
      verdict == netagent::v1::PLAYBOOK_VERDICT_FAILURE ? "did not verify" : "was inconclusive",
      absl::StrJoin(parts, "; "),
      r.ok() ? "rolled back"
             : absl::StrCat("rollback failed (", r.status().message(),
                            "): it rolls back at its deadline"),
      absl::FormatDuration(p.auto_cooldown));
}

}  // namespace netagent::agent
