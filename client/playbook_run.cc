#include "client/playbook_run.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace netagent::client {
namespace v1 = ::netagent::v1;
using Kind = v1::PlaybookEvent;

namespace {

google::protobuf::Timestamp Stamp(absl::Time t) {
  google::protobuf::Timestamp ts;
  const int64_t ns = absl::ToUnixNanos(t);
  ts.set_seconds(ns / 1000000000);
  ts.set_nanos(static_cast<int32_t>(ns % 1000000000));
  return ts;
}

// RUN_PLANNED's round of calls, within bounds a damaged file cannot push a
// resume's deadline checks out of; 2 s in a file from before it was kept.
absl::Duration CallRound(const v1::PlaybookEvent& e) {
  if (!e.has_call_round()) return kDefaultCallRound;
  const absl::Duration d =
      absl::Seconds(e.call_round().seconds()) + absl::Nanoseconds(e.call_round().nanos());
  return std::clamp(d, absl::Seconds(1), absl::Minutes(10));
}

absl::Time FromStamp(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

std::string Figures(const v1::PlaybookEvent& e) {
  std::vector<std::string> parts;
  for (const auto& m : e.measurements()) {
    std::string s = absl::StrCat(m.name(), " ", absl::StrFormat("%.4g", m.value()));
    if (m.has_baseline()) absl::StrAppend(&s, " (was ", absl::StrFormat("%.4g", m.baseline()), ")");
    absl::StrAppend(&s, ", want ", m.condition(), m.met() ? ": ok" : ": NOT MET");
    parts.push_back(s);
  }
  return absl::StrJoin(parts, "; ");
}

// The run's state and its events: every step goes through Emit, which
// records it (the sink writes the run file) and folds it into the record.
class Runner {
 public:
  Runner(const Playbook& p, Fleet& fleet, const EventSink& sink, RunRecord record,
         bool resumed = false)
      : p_(p), fleet_(fleet), sink_(sink), r_(std::move(record)), resumed_(resumed) {}

  ChangeRef Change() const { return {r_.run, r_.started.owner()}; }

  v1::PlaybookEvent Event(v1::PlaybookEvent::Kind kind, uint32_t wave = 0, int host = -1) {
    v1::PlaybookEvent e;
    e.set_kind(kind);
    *e.mutable_at() = Stamp(fleet_.Now());
    e.set_run(r_.run);
    e.set_wave(wave);
    if (host >= 0) e.set_target(r_.started.targets(host).display());
    return e;
  }

  void Emit(const v1::PlaybookEvent& e) {
    if (absl::Status st = sink_(e); !st.ok() && record_error_.ok()) record_error_ = st;
    Fold(e);
  }
  // OK while every event so far was recorded.
  const absl::Status& record_error() const { return record_error_; }
  // Ends a run whose events can no longer be recorded, before any further
  // change: the hosts it changed are rolled back now.
  // `not_sent`: hosts recorded as applying whose apply was not sent.
  v1::PlaybookRunState Unrecorded(uint32_t wave, const std::vector<size_t>& not_sent = {}) {
    const std::string why(record_error_.message());
    for (size_t h : not_sent) r_.applying.erase(h);
    RollBack(std::vector<size_t>(r_.applying.begin(), r_.applying.end()), wave);
    return Finish(v1::PLAYBOOK_RUN_STATE_FAILED,
                  absl::StrCat("the run file cannot be written (", why,
                               "): the run stopped before its next change and rolled back the "
                               "hosts it had changed"));
  }

  void Fold(const v1::PlaybookEvent& e);
  RunRecord& record() { return r_; }

  // Waves from `from` (0-based) to the end, then the confirmation.
  v1::PlaybookRunState Waves(size_t from);
  v1::PlaybookRunState Finish(v1::PlaybookRunState state, const std::string& detail) {
    auto e = Event(Kind::KIND_RUN_FINISHED);
    e.set_state(state);
    e.set_detail(detail);
    Emit(e);
    return state;
  }
  // Rolls back `hosts` (those the run may have changed and not yet restored).
  size_t RollBack(std::vector<size_t> hosts, uint32_t wave);
  // What a round of calls is reckoned to take when the run checks that its
  // rest fits before the deadline (the start measures it on detection).

 private:
  absl::Duration ConfirmWithin() const { return r_.deadline - fleet_.Now(); }

  const Playbook& p_;
  Fleet& fleet_;
  const EventSink& sink_;
  RunRecord r_;
  const bool resumed_;  // ALREADY_EXISTS means "applied before the interruption"
  absl::Status record_error_;
};

size_t IndexOf(const RunRecord& r, const std::string& target) {
  for (int i = 0; i < r.started.targets_size(); ++i)
    if (r.started.targets(i).display() == target) return static_cast<size_t>(i);
  return static_cast<size_t>(-1);
}

bool AboutAHost(v1::PlaybookEvent::Kind k) {
  switch (k) {
    case Kind::KIND_HOST_MATCHED:
    case Kind::KIND_HOST_SKIPPED:
    case Kind::KIND_HOST_APPLYING:
    case Kind::KIND_HOST_CHANGED:
    case Kind::KIND_HOST_UNCHANGED:
    case Kind::KIND_HOST_VERIFIED:
    case Kind::KIND_HOST_INCONCLUSIVE:
    case Kind::KIND_HOST_FAILED:
    case Kind::KIND_HOST_ROLLED_BACK:
    case Kind::KIND_HOST_ROLLBACK_FAILED:
    case Kind::KIND_HOST_CONFIRMED:
    case Kind::KIND_HOST_CONFIRM_FAILED:
      return true;
    default:
      return false;
  }
}

// A fleet that is never called: folding events needs none.
struct NullFleet : Fleet {
  std::vector<HostMeasure> Measure(const std::vector<size_t>&, const Playbook&,
                                   absl::Duration) override {
    return {};
  }
  std::vector<absl::StatusOr<std::map<std::string, KnobBounds>>> Knobs(
      const std::vector<size_t>&, const std::vector<std::string>&) override {
    return {};
  }
  std::vector<absl::StatusOr<v1::TuningPlan>> Plan(const std::vector<size_t>&,
                                                   const std::vector<v1::TuningIntent>&) override {
    return {};
  }
  std::vector<absl::StatusOr<v1::ApplyTuningResponse>> Apply(const std::vector<size_t>&,
                                                             const std::vector<v1::TuningIntent>&,
                                                             const ChangeRef&,
                                                             absl::Time) override {
    return {};
  }
  std::vector<absl::Status> Confirm(const std::vector<size_t>&, const ChangeRef&) override {
    return {};
  }
  std::vector<absl::Status> Rollback(const std::vector<size_t>&, const ChangeRef&) override {
    return {};
  }
  bool Sleep(absl::Duration) override { return false; }
  absl::Time Now() override { return absl::Now(); }
};

}  // namespace

struct RunFold::Impl {
  Playbook none;
  NullFleet fleet;
  EventSink sink = [](const v1::PlaybookEvent&) { return absl::OkStatus(); };
  Runner runner{none, fleet, sink, RunRecord{}};
};

RunFold::RunFold() : impl_(std::make_unique<Impl>()) {}
RunFold::~RunFold() = default;
void RunFold::Add(const v1::PlaybookEvent& e) {
  impl_->runner.Fold(e);
  last_ = e;
}
const RunRecord& RunFold::record() const { return impl_->runner.record(); }

bool RunRecord::Uncertain(size_t h) const {
  if (!applying.count(h) || changed.count(h) || unchanged.count(h)) return false;
  return uncertain.count(h) > 0 || !failed.count(h);
}

bool RunRecord::finished() const {
  return state != v1::PLAYBOOK_RUN_STATE_RUNNING && state != v1::PLAYBOOK_RUN_STATE_PAUSED &&
         state != v1::PLAYBOOK_RUN_STATE_UNSPECIFIED;
}

namespace {

// Why event `i` cannot be part of the run folded so far (OK when it can).
absl::Status CheckEvent(const RunRecord& r, const v1::PlaybookEvent& e, size_t i) {
  if (i > 0 && e.kind() == Kind::KIND_RUN_STARTED) {
    return absl::InvalidArgumentError(absl::StrCat("event ", i + 1, ": a second run_started"));
  }
  if (AboutAHost(e.kind()) && e.target().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("event ", i + 1, ": ", Kind::Kind_Name(e.kind()), " names no target"));
  }
  if (!e.target().empty() && IndexOf(r, e.target()) == static_cast<size_t>(-1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("event ", i + 1, ": target \"", e.target(), "\" is not in the run"));
  }
  if ((e.kind() == Kind::KIND_WAVE_STARTED || e.kind() == Kind::KIND_WAVE_PASSED ||
       e.kind() == Kind::KIND_WAVE_FAILED) &&
      (e.wave() == 0 || e.wave() > r.waves.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("event ", i + 1, ": wave ", e.wave(), " is not a wave of the run's plan"));
  }
  for (const auto& w : e.waves()) {
    for (const auto& t : w.targets()) {
      if (IndexOf(r, t) == static_cast<size_t>(-1)) {
        return absl::InvalidArgumentError(
            absl::StrCat("event ", i + 1, ": wave target \"", t, "\" is not in the run"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RunRecord> FoldRun(const std::vector<v1::PlaybookEvent>& events, size_t* skipped) {
  if (skipped) *skipped = 0;
  if (events.empty() || events[0].kind() != Kind::KIND_RUN_STARTED) {
    return absl::InvalidArgumentError("the run file does not start with run_started");
  }
  RunFold fold;
  for (size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i];
    absl::Status bad = CheckEvent(fold.record(), e, i);
    if (!bad.ok()) {
      if (!skipped) return bad;
      ++*skipped;
      continue;
    }
    fold.Add(e);
  }
  const RunRecord& r = fold.record();
  for (int i = 0; i < r.started.targets_size(); ++i) {
    for (int j = 0; j < i; ++j) {
      if (r.started.targets(i).display() == r.started.targets(j).display()) {
        return absl::InvalidArgumentError(
            absl::StrCat("target \"", r.started.targets(i).display(), "\" is in the run twice"));
      }
    }
  }
  for (const auto& w : r.waves) {
    for (size_t h : w) {
      if (!r.intents.count(h) && skipped) {
        // Its HOST_MATCHED line is lost: so may be others (its apply); the
        // abort then rolls back every target.
        ++*skipped;
        continue;
      }
      if (!r.intents.count(h)) {
        return absl::InvalidArgumentError(
            absl::StrCat("host ", r.started.targets(static_cast<int>(h)).display(),
                         " is in a wave but has no remediation (no host_matched event)"));
      }
    }
  }
  return r;
}

absl::StatusOr<std::vector<v1::PlaybookEvent>> ParseRunEvents(absl::string_view text,
                                                              const std::string& name,
                                                              size_t* bad_lines) {
  if (bad_lines) *bad_lines = 0;
  std::vector<v1::PlaybookEvent> events;
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  const bool cut = !text.empty() && text.back() != '\n';
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;  // a newer netctl's fields
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    if (cut && i + 1 == lines.size()) break;
    v1::PlaybookEvent e;
    auto st = google::protobuf::util::JsonStringToMessage(
        google::protobuf::StringPiece(lines[i].data(), lines[i].size()), &e, opts);
    if (!st.ok()) {
      if (bad_lines) {
        ++*bad_lines;
        continue;
      }
      return absl::DataLossError(
          absl::StrCat(name, ":", i + 1, ": not an event: ", st.message().as_string()));
    }
    events.push_back(std::move(e));
  }
  return events;
}

void Runner::Fold(const v1::PlaybookEvent& e) {
  const size_t h = e.target().empty() ? static_cast<size_t>(-1) : IndexOf(r_, e.target());
  if (!e.detail().empty()) r_.last_detail = e.detail();
  switch (e.kind()) {
    case Kind::KIND_RUN_STARTED:
      r_.run = e.run();
      r_.started = e.started();
      r_.state = v1::PLAYBOOK_RUN_STATE_RUNNING;
      r_.started_at = FromStamp(e.at());
      r_.deadline = FromStamp(e.started().confirm_deadline());
      break;
    case Kind::KIND_HOST_MATCHED:
      r_.intents[h] = e.intent();
      r_.baseline[h] = e;
      break;
    case Kind::KIND_HOST_SKIPPED:
      r_.skipped.insert(h);
      break;
    case Kind::KIND_RUN_PLANNED:
      r_.planned = true;
      r_.call_round = CallRound(e);
      r_.waves.clear();
      for (const auto& w : e.waves()) {
        std::vector<size_t> hosts;
        for (const auto& t : w.targets()) hosts.push_back(IndexOf(r_, t));
        r_.waves.push_back(hosts);
      }
      break;
    case Kind::KIND_HOST_APPLYING:
      r_.applying.insert(h);
      r_.applying_at[h] = FromStamp(e.at());
      break;
    case Kind::KIND_WAVE_STARTED:
      r_.waves_started = std::max<size_t>(r_.waves_started, e.wave());
      break;
    case Kind::KIND_HOST_CHANGED:
      r_.changed.insert(h);
      break;
    case Kind::KIND_HOST_VERIFIED:
      r_.verified.insert(h);
      break;
    case Kind::KIND_HOST_UNCHANGED:
      r_.unchanged.insert(h);
      break;
    case Kind::KIND_HOST_FAILED:
      r_.failed.insert(h);
      r_.verified.erase(h);
      if (e.apply_outcome() == v1::PlaybookEvent::APPLY_OUTCOME_UNKNOWN) r_.uncertain.insert(h);
      if (e.apply_outcome() == v1::PlaybookEvent::APPLY_OUTCOME_NOT_OURS) r_.not_ours.insert(h);
      break;
    case Kind::KIND_HOST_ROLLED_BACK:
      r_.rolled_back.insert(h);
      r_.rollback_failed.erase(h);
      if (e.wave() == 0) r_.aborting = true;
      break;
    case Kind::KIND_HOST_ROLLBACK_FAILED:
      r_.rollback_failed.insert(h);
      if (e.wave() == 0) r_.aborting = true;
      break;
    case Kind::KIND_HOST_CONFIRMED:
      r_.confirmed.insert(h);
      break;
    case Kind::KIND_WAVE_PASSED:
      r_.waves_passed = std::max<size_t>(r_.waves_passed, e.wave());
      r_.wave_passed_at = FromStamp(e.at());
      break;
    case Kind::KIND_RUN_PAUSED:
      r_.state = v1::PLAYBOOK_RUN_STATE_PAUSED;
      break;
    case Kind::KIND_RUN_RESUMED:
      r_.state = v1::PLAYBOOK_RUN_STATE_RUNNING;
      if (!r_.planned) {  // detection was cut short: it starts over
        r_.intents.clear();
        r_.baseline.clear();
        r_.skipped.clear();
      }
      break;
    case Kind::KIND_RUN_FINISHED:
      r_.state = e.state();
      break;
    default:
      break;
  }
}

namespace {

// An apply the agent answered with this refused it: nothing changed there.
// Any other error leaves the outcome unknown (it may have landed).
bool Refused(const absl::Status& st) {
  switch (st.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kUnimplemented:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kResourceExhausted:
      return true;
    default:
      return false;
  }
}

std::string Clock(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", t, absl::UTCTimeZone());
}

}  // namespace

size_t Runner::RollBack(std::vector<size_t> hosts, uint32_t wave) {
  hosts.erase(std::remove_if(hosts.begin(), hosts.end(),
                             [&](size_t h) {
                               return r_.rolled_back.count(h) > 0 || r_.not_ours.count(h) > 0;
                             }),
              hosts.end());
  if (hosts.empty()) return 0;
  auto results = fleet_.Rollback(hosts, Change());
  size_t failed = 0;
  for (size_t i = 0; i < hosts.size(); ++i) {
    const size_t h = hosts[i];
    absl::Status st = i < results.size() ? results[i] : absl::UnavailableError("no answer");
    if (absl::IsCancelled(st) && fleet_.Interrupted()) continue;  // not asked: no word on it
    std::string detail;
    if (absl::IsNotFound(st)) {
      auto at = r_.applying_at.find(h);
      if (r_.Uncertain(h) && at != r_.applying_at.end() &&
          fleet_.Now() - at->second < kApplyInFlight) {
        st = absl::UnavailableError(absl::StrCat(
            "the host has no change ", r_.run, " yet, but the apply sent at ", Clock(at->second),
            " got no answer and may still land; if it does it rolls back by itself at ",
            Clock(r_.deadline), "; abort again after ", Clock(at->second + kApplyInFlight),
            " to be sure"));
      } else {
        // The agent's words say which: no such id, or another run's change
        // of the same id (left alone).
        detail = absl::StrCat(
            "this run's change is not on the host (never applied there: ", st.message(), ")");
        st = absl::OkStatus();
      }
    }
    auto e = Event(st.ok() ? Kind::KIND_HOST_ROLLED_BACK : Kind::KIND_HOST_ROLLBACK_FAILED, wave,
                   static_cast<int>(h));
    if (!st.ok()) {
      ++failed;
      detail = absl::StrCat(st.message(),
                            absl::StrContains(st.message(), "rolls back by itself") ? ""
                            : r_.confirmed.count(h)
                                ? "; the change was confirmed: it stays until rolled back"
                                : "; the host still rolls it back by itself at the deadline");
    }
    e.set_detail(detail);
    Emit(e);
  }
  return failed;
}

v1::PlaybookRunState Runner::Waves(size_t from) {
  const size_t matched = r_.intents.size();
  size_t total_failures = 0;
  for (size_t w = 0; w < from && w < r_.waves.size(); ++w)
    for (size_t h : r_.waves[w]) total_failures += r_.failed.count(h);
  for (size_t w = from; w < r_.waves.size(); ++w) {
    const uint32_t number = static_cast<uint32_t>(w + 1);
    if (w > 0) {
      // The pause after the wave before; a resume waits what is left of it
      // unless this wave had started.
      absl::Duration pause = p_.pause;
      if (w == from) {
        pause = r_.waves_started > w
                    ? absl::ZeroDuration()
                    : std::max(absl::ZeroDuration(), r_.wave_passed_at + p_.pause - fleet_.Now());
      }
      if (pause > absl::ZeroDuration() && !fleet_.Sleep(pause)) {
        return v1::PLAYBOOK_RUN_STATE_RUNNING;
      }
    }
    if (fleet_.Now() >= r_.deadline) {
      RollBack(std::vector<size_t>(r_.applying.begin(), r_.applying.end()), number);
      return Finish(v1::PLAYBOOK_RUN_STATE_FAILED,
                    "the confirm deadline passed before the run could verify its waves; the "
                    "hosts rolled back");
    }
    // The run fell behind (slow calls, a long pause): if this wave and the
    // rest cannot be verified and confirmed before the hosts roll back by
    // themselves, changing more hosts only adds churn. Undo the run now.
    const absl::Duration rest = RestOfRun(p_, r_.waves.size() - w, r_.call_round);
    if (fleet_.Now() + rest > r_.deadline) {
      // Recorded as an abort (wave 0): cut short, it is finished by
      // `playbook abort`, and resume refuses to go on changing hosts.
      const size_t rb_failed =
          RollBack(std::vector<size_t>(r_.applying.begin(), r_.applying.end()), 0);
      if (fleet_.Interrupted()) return v1::PLAYBOOK_RUN_STATE_RUNNING;
      return Finish(
          v1::PLAYBOOK_RUN_STATE_FAILED,
          absl::StrCat("wave ", number, " not started: the rest of the run takes about ",
                       absl::FormatDuration(rest), " but the hosts roll back by themselves at ",
                       Clock(r_.deadline), "; the run's changes are rolled back",
                       rb_failed ? absl::StrCat(" (", rb_failed,
                                                " could not be: they roll back "
                                                "at the deadline)")
                                 : "",
                       ". Start a new run with a longer rollout.confirm_within"));
    }
    const auto& hosts = r_.waves[w];
    auto started = Event(Kind::KIND_WAVE_STARTED, number);
    started.set_detail(absl::StrCat(hosts.size(), " host", hosts.size() == 1 ? "" : "s"));
    Emit(started);

    // Apply where not yet applied (a resumed wave keeps what it did).
    std::vector<size_t> to_apply;
    std::vector<v1::TuningIntent> intents;
    for (size_t h : hosts) {
      if (r_.changed.count(h) || r_.unchanged.count(h) || r_.failed.count(h)) continue;
      to_apply.push_back(h);
      intents.push_back(r_.intents.at(h));
    }
    for (size_t h : to_apply) Emit(Event(Kind::KIND_HOST_APPLYING, number, static_cast<int>(h)));
    if (!record_error_.ok()) return Unrecorded(number, to_apply);
    if (!to_apply.empty()) {
      auto applied = fleet_.Apply(to_apply, intents, Change(), r_.deadline);
      for (size_t i = 0; i < to_apply.size(); ++i) {
        const int h = static_cast<int>(to_apply[i]);
        const absl::Status st =
            i < applied.size() ? applied[i].status() : absl::UnavailableError("no answer");
        // Cut short by Ctrl-C: no word on this host; it stays "applying"
        // (a resume applies it, an abort rolls it back).
        if (absl::IsCancelled(st) && fleet_.Interrupted()) continue;
        // With an owner token, the agent answers this run's own change as
        // the change itself, so ALREADY_EXISTS is always someone else's.
        // Without one (a run recorded before tokens), a resume can only
        // take it for its own.
        if (absl::IsAlreadyExists(st) && resumed_ && r_.started.owner().empty()) {
          auto e = Event(Kind::KIND_HOST_CHANGED, number, h);
          e.set_detail("the change was already there (applied before the interruption)");
          Emit(e);
        } else if (absl::IsAlreadyExists(st)) {
          auto e = Event(Kind::KIND_HOST_FAILED, number, h);
          e.set_apply_outcome(v1::PlaybookEvent::APPLY_OUTCOME_NOT_OURS);
          e.set_detail(absl::StrCat("the host already has a change ", r_.run,
                                    " that this run did not make (a reused run id?): left alone"));
          Emit(e);
        } else if (!st.ok()) {
          auto e = Event(Kind::KIND_HOST_FAILED, number, h);
          e.set_apply_outcome(Refused(st) ? v1::PlaybookEvent::APPLY_OUTCOME_REFUSED
                                          : v1::PlaybookEvent::APPLY_OUTCOME_UNKNOWN);
          e.set_detail(absl::StrCat("apply: ", st.ToString(),
                                    Refused(st) ? ""
                                                : " (it may still land: it rolls back by "
                                                  "itself at the deadline)"));
          Emit(e);
        } else if (const v1::ChangeState s = applied[i]->change().state();
                   s == v1::CHANGE_STATE_EXPIRED || s == v1::CHANGE_STATE_ROLLED_BACK ||
                   s == v1::CHANGE_STATE_FAILED || s == v1::CHANGE_STATE_ROLLBACK_FAILED) {
          // A resumed run's own change, no longer in effect (expired while
          // netctl was away): nothing to verify there.
          auto e = Event(Kind::KIND_HOST_FAILED, number, h);
          e.set_apply_outcome(v1::PlaybookEvent::APPLY_OUTCOME_REFUSED);
          e.set_detail(absl::StrCat("the run's change on the host is ",
                                    absl::AsciiStrToLower(std::string(absl::StripPrefix(
                                        v1::ChangeState_Name(s), "CHANGE_STATE_"))),
                                    ": not in effect"));
          Emit(e);
        } else if (!applied[i]->has_change()) {
          auto e = Event(Kind::KIND_HOST_UNCHANGED, number, h);
          e.set_detail("the plan had nothing to change here");
          Emit(e);
        } else {
          auto e = Event(Kind::KIND_HOST_CHANGED, number, h);
          *e.mutable_knobs() = applied[i]->change().knobs();
          std::vector<std::string> k;
          for (const auto& c : applied[i]->change().knobs())
            k.push_back(absl::StrCat(c.knob(), " ", c.old_value(), " -> ", c.new_value()));
          std::string detail = absl::StrJoin(k, ", ");
          if (!r_.started.owner().empty() && applied[i]->change().owner() != r_.started.owner()) {
            // An agent older than owner tokens drops the field unread.
            absl::StrAppend(&detail,
                            " (this agent does not keep the run's owner token: a reused "
                            "run id is not guarded on it)");
          }
          e.set_detail(detail);
          Emit(e);
        }
      }
      if (fleet_.Interrupted()) return v1::PLAYBOOK_RUN_STATE_RUNNING;
    }

    // Verify every host of the wave that has the change.
    std::vector<size_t> verify;
    for (size_t h : hosts)
      if (r_.changed.count(h) && !r_.failed.count(h)) verify.push_back(h);
    size_t inconclusive = 0;
    if (!verify.empty()) {
      if (!fleet_.Sleep(p_.settle)) return v1::PLAYBOOK_RUN_STATE_RUNNING;
      auto measured = fleet_.Measure(verify, p_, p_.verify_window);
      // Interrupted while measuring: no verdict on anyone; a resume
      // verifies the wave again.
      if (fleet_.Interrupted()) return v1::PLAYBOOK_RUN_STATE_RUNNING;
      for (size_t i = 0; i < verify.size(); ++i) {
        const size_t h = verify[i];
        if (i >= measured.size() || !measured[i].status.ok()) {
          auto e = Event(Kind::KIND_HOST_FAILED, number, static_cast<int>(h));
          e.set_verdict(v1::PLAYBOOK_VERDICT_FAILURE);
          e.set_detail(absl::StrCat("verify: ", i < measured.size() ? measured[i].status.ToString()
                                                                    : std::string("no answer")));
          Emit(e);
          continue;
        }
        HostFigures base;
        const HostFigures* basep = nullptr;
        if (auto it = r_.baseline.find(h); it != r_.baseline.end()) {
          for (const auto& m : it->second.measurements()) {
            if (m.name() == absl::StrCat("finding ", p_.finding)) base.finding_open = m.value() > 0;
            if (absl::EndsWith(m.name(), " rate")) {
              base.rates[std::string(absl::StripSuffix(m.name(), " rate"))] = m.value();
            }
          }
          basep = &base;
        }
        std::vector<v1::PlaybookMeasurement> figures;
        const v1::PlaybookVerdict v = Judge(p_, measured[i].figures, basep, &figures);
        auto e = Event(v == v1::PLAYBOOK_VERDICT_SUCCESS   ? Kind::KIND_HOST_VERIFIED
                       : v == v1::PLAYBOOK_VERDICT_FAILURE ? Kind::KIND_HOST_FAILED
                                                           : Kind::KIND_HOST_INCONCLUSIVE,
                       number, static_cast<int>(h));
        e.set_verdict(v);
        for (const auto& f : figures) *e.add_measurements() = f;
        e.set_detail(Figures(e));
        Emit(e);
        if (v == v1::PLAYBOOK_VERDICT_INCONCLUSIVE) {
          if (p_.pause_on_inconclusive) {
            ++inconclusive;
          } else {
            auto f = Event(Kind::KIND_HOST_FAILED, number, static_cast<int>(h));
            f.set_verdict(v);
            f.set_detail("inconclusive counts as a failure (verify.on_inconclusive: fail)");
            Emit(f);
          }
        }
      }
    }
    std::vector<size_t> failed_here;
    for (size_t h : hosts)
      if (r_.failed.count(h)) failed_here.push_back(h);
    total_failures += failed_here.size();
    const uint32_t allowed = p_.max_failures.Allowed(hosts.size());
    const uint32_t allowed_total = p_.max_failures_total.Allowed(matched);
    if (failed_here.size() > allowed || total_failures > allowed_total) {
      auto e = Event(Kind::KIND_WAVE_FAILED, number);
      e.set_detail(absl::StrCat(failed_here.size(), " of ", hosts.size(), " hosts failed (allowed ",
                                allowed, " per wave, ", allowed_total, " in all; ", total_failures,
                                " so far)"));
      Emit(e);
      std::vector<size_t> back;
      if (p_.rollback_all) {
        back.assign(r_.applying.begin(), r_.applying.end());
      } else {
        back = failed_here;
      }
      const size_t rb_failed = RollBack(back, number);
      if (fleet_.Interrupted()) return v1::PLAYBOOK_RUN_STATE_RUNNING;
      return Finish(
          v1::PLAYBOOK_RUN_STATE_FAILED,
          absl::StrCat("wave ", number, " failed; ",
                       p_.rollback_all ? "every host changed by the run" : "the failed hosts",
                       " rolled back",
                       rb_failed ? absl::StrCat(" (", rb_failed,
                                                " could not be: they roll back by themselves at "
                                                "the deadline; run abort again)")
                                 : "",
                       "; later waves were not touched"));
    }
    if (inconclusive > 0) {
      auto e = Event(Kind::KIND_RUN_PAUSED, number);
      e.set_state(v1::PLAYBOOK_RUN_STATE_PAUSED);
      e.set_detail(absl::StrCat(inconclusive, " host", inconclusive == 1 ? "" : "s",
                                " inconclusive: resume (verifies wave ", number,
                                " again) or abort before ", Clock(r_.deadline),
                                ", when the hosts roll back by themselves"));
      Emit(e);
      return v1::PLAYBOOK_RUN_STATE_PAUSED;
    }
    // Failures within the allowance: those hosts do not keep a change that
    // did not verify (and are never confirmed, rolled back or not).
    const size_t rb_failed = RollBack(failed_here, number);
    if (fleet_.Interrupted()) return v1::PLAYBOOK_RUN_STATE_RUNNING;
    auto passed = Event(Kind::KIND_WAVE_PASSED, number);
    passed.set_detail(absl::StrCat(
        hosts.size() - failed_here.size(), " of ", hosts.size(), " hosts verified",
        rb_failed ? absl::StrCat("; ", rb_failed, " failed host", rb_failed == 1 ? "" : "s",
                                 " could not be rolled back now: never confirmed, they roll back "
                                 "by themselves at the deadline")
                  : ""));
    Emit(passed);
  }

  // Every wave verified: make the changes stay.
  if (!record_error_.ok()) return Unrecorded(0);
  std::vector<size_t> keep;
  for (size_t h : r_.changed) {
    if (!r_.failed.count(h) && !r_.rolled_back.count(h) && !r_.rollback_failed.count(h) &&
        !r_.confirmed.count(h)) {
      keep.push_back(h);
    }
  }
  size_t confirm_failed = 0, refused = 0;  // refused: the agent said why (expired, ...)
  if (!keep.empty()) {
    auto confirmed = fleet_.Confirm(keep, Change());
    for (size_t i = 0; i < keep.size(); ++i) {
      const absl::Status st =
          i < confirmed.size() ? confirmed[i] : absl::UnavailableError("no answer");
      if (absl::IsCancelled(st) && fleet_.Interrupted()) continue;
      auto e = Event(st.ok() ? Kind::KIND_HOST_CONFIRMED : Kind::KIND_HOST_CONFIRM_FAILED, 0,
                     static_cast<int>(keep[i]));
      if (!st.ok()) {
        ++confirm_failed;
        refused += absl::IsFailedPrecondition(st);
        e.set_detail(std::string(st.message()));
      }
      Emit(e);
    }
    if (fleet_.Interrupted()) return v1::PLAYBOOK_RUN_STATE_RUNNING;
  }
  const size_t failures = r_.failed.size();
  const size_t stuck = r_.rollback_failed.size();
  const std::string stuck_text =
      stuck ? absl::StrCat("; ", stuck, " failed host", stuck == 1 ? "" : "s",
                           " could not be rolled back: never confirmed, they roll back by "
                           "themselves at ",
                           Clock(r_.deadline))
            : "";
  if (confirm_failed > 0) {
    // Past the deadline, only a host that answered (FAILED_PRECONDITION:
    // expired, not pending) is known to have rolled back; one that did not
    // answer may have been confirmed before netctl died.
    std::string why = " could not confirm (they roll back at the deadline); ";
    if (fleet_.Now() >= r_.deadline) {
      why = absl::StrCat(" could not confirm: ", refused,
                         " answered that the change is no longer pending (past the deadline they "
                         "rolled it back by themselves)");
      if (confirm_failed > refused) {
        absl::StrAppend(&why, ", ", confirm_failed - refused,
                        " did not answer (whether they kept it is unknown: netctl tune history "
                        "on them)");
      }
      why += "; ";
    }
    return Finish(v1::PLAYBOOK_RUN_STATE_FAILED,
                  absl::StrCat(confirm_failed, " host", confirm_failed == 1 ? "" : "s", why,
                               r_.confirmed.size(), " confirmed", stuck_text));
  }
  return Finish(
      v1::PLAYBOOK_RUN_STATE_SUCCEEDED,
      absl::StrCat(r_.confirmed.size(), " host", r_.confirmed.size() == 1 ? "" : "s",
                   " changed and confirmed",
                   r_.unchanged.empty()
                       ? ""
                       : absl::StrCat(", ", r_.unchanged.size(), " had nothing to change"),
                   failures ? absl::StrCat(", ", failures, " failed within the allowance") : "",
                   stuck_text));
}

absl::StatusOr<v1::TuningIntent> ResolveIntent(const Playbook& p,
                                               const std::optional<v1::Finding>& finding,
                                               const std::map<std::string, KnobBounds>& knobs,
                                               std::string* why) {
  if (p.from_finding) {
    if (!finding) return absl::FailedPreconditionError("the finding is not open here");
    if (!finding->remediation().has_intent()) {
      std::string limit = finding->remediation().limits_size() > 0
                              ? finding->remediation().limits(0)
                              : finding->remediation().summary();
      return absl::FailedPreconditionError(
          absl::StrCat("the finding has no remediation the agent can apply: ", limit));
    }
    if (absl::Status kind = CheckRemediationKind(p, finding->remediation().intent()); !kind.ok()) {
      return kind;
    }
    if (why) *why = finding->remediation().summary();
    return finding->remediation().intent();
  }
  v1::TuningIntent in = *p.intent;
  google::protobuf::RepeatedPtrField<v1::Setting>* settings = nullptr;
  if (in.has_limits()) settings = in.mutable_limits()->mutable_settings();
  if (in.has_sysctl()) settings = in.mutable_sysctl()->mutable_settings();
  std::vector<std::string> whys;
  if (settings) {
    for (auto& s : *settings) {
      if (!IsExpression(s.value())) continue;
      auto it = knobs.find(s.name());
      if (it == knobs.end()) {
        return absl::FailedPreconditionError(
            absl::StrCat(s.name(), ": the agent does not list this knob here"));
      }
      std::string w;
      auto v = ResolveSetting(s.value(), p.guards, it->second, &w);
      if (!v.ok())
        return absl::FailedPreconditionError(absl::StrCat(s.name(), ": ", v.status().message()));
      s.set_value(*v);
      whys.push_back(absl::StrCat(s.name(), ": ", w));
    }
  }
  if (why) *why = absl::StrJoin(whys, "; ");
  return in;
}

namespace {

// Detection: the events up to RUN_PLANNED, folded into `runner`. False when
// interrupted (nothing planned: a resume detects again).
bool Detect(const Playbook& p, Runner& runner, Fleet& fleet) {
  const absl::Time detect_start = fleet.Now();
  RunRecord& r = runner.record();
  std::vector<size_t> all;
  for (int i = 0; i < r.started.targets_size(); ++i) all.push_back(static_cast<size_t>(i));
  const bool measure = !p.finding.empty() || !PlaybookCounters(p).empty();
  std::vector<HostMeasure> measured(all.size());
  if (measure) measured = fleet.Measure(all, p, p.detect_window);
  if (fleet.Interrupted()) return false;
  measured.resize(all.size());
  // Knobs for expressions, on the hosts that matched.
  std::vector<size_t> candidates;
  for (size_t h : all) {
    if (!measured[h].status.ok()) continue;
    if (!p.finding.empty() && !measured[h].finding) continue;
    candidates.push_back(h);
  }
  std::vector<absl::StatusOr<std::map<std::string, KnobBounds>>> knobs;
  const auto names = p.intent ? ExpressionKnobs(*p.intent) : std::vector<std::string>{};
  if (!names.empty() && !candidates.empty()) knobs = fleet.Knobs(candidates, names);
  if (fleet.Interrupted()) return false;
  knobs.resize(candidates.size(), absl::UnavailableError("no answer"));
  size_t k = 0;
  std::vector<size_t> matched;
  for (size_t h : all) {
    const int hi = static_cast<int>(h);
    if (!measured[h].status.ok()) {
      auto e = runner.Event(Kind::KIND_HOST_SKIPPED, 0, hi);
      e.set_detail(absl::StrCat("unreachable before the change: ", measured[h].status.ToString()));
      runner.Emit(e);
      continue;
    }
    if (!p.finding.empty() && !measured[h].finding) {
      auto e = runner.Event(Kind::KIND_HOST_SKIPPED, 0, hi);
      e.set_detail(absl::StrCat("no ", p.finding, " finding at ",
                                absl::AsciiStrToLower(std::string(absl::StripPrefix(
                                    v1::Severity_Name(p.min_severity), "SEVERITY_"))),
                                " or above"));
      runner.Emit(e);
      continue;
    }
    std::map<std::string, KnobBounds> host_knobs;
    if (!names.empty()) {
      const auto& kr = knobs.at(k++);
      if (!kr.ok()) {
        auto e = runner.Event(Kind::KIND_HOST_SKIPPED, 0, hi);
        e.set_detail(absl::StrCat("knobs: ", kr.status().ToString()));
        runner.Emit(e);
        continue;
      }
      host_knobs = *kr;
    }
    std::string why;
    auto intent = ResolveIntent(p, measured[h].finding, host_knobs, &why);
    if (!intent.ok()) {
      auto e = runner.Event(Kind::KIND_HOST_SKIPPED, 0, hi);
      e.set_detail(std::string(intent.status().message()));
      runner.Emit(e);
      continue;
    }
    auto e = runner.Event(Kind::KIND_HOST_MATCHED, 0, hi);
    *e.mutable_intent() = *intent;
    if (measured[h].finding) {
      e.set_severity(measured[h].finding->severity());
      e.set_detail(measured[h].finding->summary());
    }
    if (!why.empty()) e.set_detail(e.detail().empty() ? why : absl::StrCat(e.detail(), "; ", why));
    // The figures before the change: the verification's baseline.
    if (!p.finding.empty()) {
      auto* m = e.add_measurements();
      m->set_name(absl::StrCat("finding ", p.finding));
      m->set_value(1);
      m->set_condition("open before the change");
    }
    for (const auto& [name, rate] : measured[h].figures.rates) {
      auto* m = e.add_measurements();
      m->set_name(absl::StrCat(name, " rate"));
      m->set_value(rate);
      m->set_condition("before the change");
    }
    runner.Emit(e);
    matched.push_back(h);
  }
  auto planned = runner.Event(Kind::KIND_RUN_PLANNED);
  size_t at = 0;
  for (size_t size : WaveSizes(p.waves, matched.size())) {
    auto* w = planned.add_waves();
    w->set_number(static_cast<uint32_t>(planned.waves_size()));
    for (size_t i = 0; i < size; ++i)
      w->add_targets(r.started.targets(static_cast<int>(matched[at++])).display());
  }
  // A round of calls as this fleet answers them (detection, less its
  // window), with room for a slower round.
  const absl::Duration round = std::max(
      absl::Seconds(1),
      2 * (fleet.Now() - detect_start - (measure ? p.detect_window : absl::ZeroDuration())));
  planned.mutable_call_round()->set_seconds(absl::ToInt64Seconds(round));
  planned.mutable_call_round()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(round - absl::Trunc(round, absl::Seconds(1)))));
  planned.set_detail(absl::StrCat(matched.size(), " of ", all.size(), " hosts matched; ",
                                  planned.waves_size(), " wave",
                                  planned.waves_size() == 1 ? "" : "s"));
  runner.Emit(planned);
  return true;
}

v1::PlaybookEvent StartedEvent(const Playbook& p, const RunOptions& o, Fleet& fleet,
                               absl::Duration confirm_within) {
  v1::PlaybookEvent e;
  e.set_kind(Kind::KIND_RUN_STARTED);
  const absl::Time now = fleet.Now();
  *e.mutable_at() = Stamp(now);
  e.set_run(o.run_id);
  auto* s = e.mutable_started();
  s->set_playbook(p.name);
  s->set_file(p.file);
  s->set_digest(p.digest);
  s->set_change_id(o.run_id);
  s->set_owner(o.owner);
  for (const auto& t : o.targets) *s->add_targets() = t;
  *s->mutable_confirm_deadline() = Stamp(now + confirm_within);
  s->set_caller(o.caller);
  e.set_detail(absl::StrCat(
      "playbook ", p.name, " on ", o.targets.size(), " target", o.targets.size() == 1 ? "" : "s",
      "; changes roll back by themselves at ",
      absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", now + confirm_within, absl::UTCTimeZone()),
      " unless the run confirms them"));
  return e;
}

// Waves the targets would need at most (every target matched).
absl::Duration ConfirmWithinFor(const Playbook& p, size_t targets, absl::Duration per_call) {
  if (p.confirm_within) return *p.confirm_within;
  return DefaultConfirmWithin(EstimateRunTime(p, WaveSizes(p.waves, targets).size(), per_call));
}

}  // namespace

Preview PreviewPlaybook(const Playbook& p, const RunOptions& o, Fleet& fleet) {
  Preview pv;
  pv.confirm_within = ConfirmWithinFor(p, o.targets.size(), o.per_call);
  EventSink sink = [&](const v1::PlaybookEvent& e) {
    pv.events.push_back(e);
    return absl::OkStatus();
  };
  Runner runner(p, fleet, sink, RunRecord{});
  runner.Emit(StartedEvent(p, o, fleet, pv.confirm_within));
  Detect(p, runner, fleet);
  const RunRecord& r = runner.record();
  pv.waves = r.waves;
  pv.estimate = EstimateRunTime(p, r.waves.size(), o.per_call);
  std::vector<size_t> hosts;
  std::vector<v1::TuningIntent> intents;
  for (const auto& [h, in] : r.intents) {
    hosts.push_back(h);
    intents.push_back(in);
  }
  if (!hosts.empty()) {
    auto plans = fleet.Plan(hosts, intents);
    for (size_t i = 0; i < hosts.size(); ++i) {
      pv.plans.emplace(hosts[i], i < plans.size() ? plans[i]
                                                  : absl::StatusOr<v1::TuningPlan>(
                                                        absl::UnavailableError("no answer")));
    }
  }
  return pv;
}

v1::PlaybookRunState RunPlaybook(const Playbook& p, const RunOptions& o, Fleet& fleet,
                                 const EventSink& sink) {
  Runner runner(p, fleet, sink, RunRecord{});
  runner.Emit(StartedEvent(p, o, fleet, ConfirmWithinFor(p, o.targets.size(), o.per_call)));
  if (!runner.record_error().ok()) return runner.Unrecorded(0);
  if (!Detect(p, runner, fleet)) return v1::PLAYBOOK_RUN_STATE_RUNNING;
  if (runner.record().intents.empty()) {
    return runner.Finish(v1::PLAYBOOK_RUN_STATE_NOTHING_TO_DO, "no host matched: nothing changed");
  }
  const bool detected = !p.finding.empty() || !PlaybookCounters(p).empty();
  const absl::Duration round = runner.record().call_round;
  const absl::Duration estimate = EstimateRunTime(p, runner.record().waves.size(), round) -
                                  (detected ? p.detect_window : absl::ZeroDuration()) - round;
  if (fleet.Now() + estimate > runner.record().deadline) {
    return runner.Finish(
        v1::PLAYBOOK_RUN_STATE_FAILED,
        absl::StrCat("rollout.confirm_within is shorter than the run (about ",
                     absl::FormatDuration(estimate),
                     "): the hosts would roll back before the run confirms; nothing changed"));
  }
  return runner.Waves(0);
}

absl::StatusOr<v1::PlaybookRunState> ResumePlaybook(const Playbook& p, const RunRecord& record,
                                                    Fleet& fleet, const EventSink& sink) {
  if (record.finished()) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", record.run, " has finished (",
                     absl::AsciiStrToLower(std::string(absl::StripPrefix(
                         v1::PlaybookRunState_Name(record.state), "PLAYBOOK_RUN_STATE_"))),
                     "): nothing to resume"));
  }
  if (record.aborting) {
    return absl::FailedPreconditionError(
        absl::StrCat("an abort of run ", record.run,
                     " began and did not finish: a resume would go on changing hosts; finish it "
                     "with `netctl playbook abort ",
                     record.run, "`"));
  }
  if (p.digest != record.started.digest()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the playbook ", p.file, " changed since run ", record.run,
                     " started: resume with the text it started with, or abort the run"));
  }
  const absl::Time now = fleet.Now();
  // Every wave verified: the run was confirming when it stopped (some hosts
  // may be confirmed though no event says so). Confirming again asks each
  // host, deadline or not: confirmed ones say so, expired ones say that.
  const bool confirming = record.planned && record.waves_passed >= record.waves.size();
  if (now >= record.deadline && !confirming) {
    return absl::FailedPreconditionError(absl::StrCat(
        "run ", record.run, ": its confirm deadline passed at ", Clock(record.deadline),
        ", so the hosts rolled the change back by themselves; `playbook abort` makes sure"));
  }
  // The rest of the run must fit before the deadline, or hosts changed now
  // would roll back by themselves before the run could confirm them.
  absl::Duration rest;
  // As the run measured it (a file from before it was recorded: 2 s).
  const absl::Duration per_call = record.planned ? record.call_round : kDefaultCallRound;
  if (!record.planned) {
    rest = EstimateRunTime(p, WaveSizes(p.waves, record.started.targets_size()).size(), per_call);
  } else {
    const size_t from = std::min(record.waves.size(), record.waves_passed);
    for (size_t w = from; w < record.waves.size(); ++w) {
      rest += 2 * per_call + p.settle + p.verify_window;
      if (w > from) {
        rest += p.pause;
      } else if (w > 0 && record.waves_started <= w) {  // the pause it was in
        rest += std::max(absl::ZeroDuration(), record.wave_passed_at + p.pause - now);
      }
    }
    rest += per_call;  // the confirmation
  }
  if (now + rest > record.deadline && !confirming) {
    return absl::FailedPreconditionError(absl::StrCat(
        "run ", record.run, ": the rest of the run takes about ", absl::FormatDuration(rest),
        " but its hosts roll back by themselves at ", Clock(record.deadline), " (in ",
        absl::FormatDuration(absl::Trunc(record.deadline - now, absl::Seconds(1))),
        "): abort it and start a new run"));
  }
  Runner runner(p, fleet, sink, record, /*resumed=*/true);
  auto e = runner.Event(Kind::KIND_RUN_RESUMED, static_cast<uint32_t>(record.waves_passed + 1));
  e.set_detail(record.planned ? absl::StrCat("resuming at wave ", record.waves_passed + 1, " of ",
                                             record.waves.size())
                              : "resuming: detection was cut short, it starts over");
  runner.Emit(e);
  if (!runner.record_error().ok()) return runner.Unrecorded(0);
  if (!record.planned) {
    if (!Detect(p, runner, fleet)) return v1::PLAYBOOK_RUN_STATE_RUNNING;
  }
  if (runner.record().intents.empty()) {
    return runner.Finish(v1::PLAYBOOK_RUN_STATE_NOTHING_TO_DO, "no host matched: nothing changed");
  }
  return runner.Waves(runner.record().waves_passed);
}

v1::PlaybookRunState AbortPlaybook(const RunRecord& record, Fleet& fleet, const EventSink& sink,
                                   bool everyone) {
  Playbook none;
  Runner runner(none, fleet, sink, record);
  std::vector<size_t> hosts(record.applying.begin(), record.applying.end());
  if (everyone) {
    hosts.clear();
    for (int i = 0; i < record.started.targets_size(); ++i) hosts.push_back(static_cast<size_t>(i));
  }
  const size_t failed = runner.RollBack(hosts, 0);
  if (fleet.Interrupted()) return v1::PLAYBOOK_RUN_STATE_RUNNING;
  return runner.Finish(failed ? v1::PLAYBOOK_RUN_STATE_FAILED : v1::PLAYBOOK_RUN_STATE_ABORTED,
                       failed ? absl::StrCat("aborted; ", failed, " host", failed == 1 ? "" : "s",
                                             " could not be rolled back: run abort again")
                              : "aborted; every host the run changed is restored");
}

std::string ProgressLine(const RunRecord& r, const v1::PlaybookEvent& last, const Playbook& p,
                         absl::Time now) {
  const absl::Duration since = now - FromStamp(last.at());
  auto left = [&](absl::Duration d) {
    const absl::Duration l =
        absl::Trunc(std::max(absl::ZeroDuration(), d - since), absl::Seconds(1));
    return l == absl::ZeroDuration() ? std::string("0s") : absl::FormatDuration(l);
  };
  std::string doing;
  switch (last.kind()) {
    case Kind::KIND_RUN_STARTED:
    case Kind::KIND_HOST_MATCHED:
    case Kind::KIND_HOST_SKIPPED:
      doing = absl::StrCat("detecting over ", absl::FormatDuration(p.detect_window));
      break;
    case Kind::KIND_RUN_RESUMED:
      doing = r.planned ? "resuming"
                        : absl::StrCat("detecting over ", absl::FormatDuration(p.detect_window));
      break;
    case Kind::KIND_RUN_PLANNED:
    case Kind::KIND_WAVE_STARTED:
    case Kind::KIND_HOST_APPLYING:
      doing = "applying";
      break;
    case Kind::KIND_HOST_CHANGED:
    case Kind::KIND_HOST_UNCHANGED:
      doing = absl::StrCat("verifying, ", left(p.settle + p.verify_window), " left");
      break;
    case Kind::KIND_WAVE_PASSED:
      doing = last.wave() < r.waves.size() ? absl::StrCat("pause before wave ", last.wave() + 1,
                                                          ", ", left(p.pause), " left")
                                           : "confirming";
      break;
    case Kind::KIND_WAVE_FAILED:
    case Kind::KIND_HOST_ROLLED_BACK:
    case Kind::KIND_HOST_ROLLBACK_FAILED:
      doing = "rolling back";
      break;
    case Kind::KIND_HOST_CONFIRMED:
    case Kind::KIND_HOST_CONFIRM_FAILED:
      doing = "confirming";
      break;
    case Kind::KIND_RUN_PAUSED:
      doing = "paused";
      break;
    case Kind::KIND_RUN_FINISHED:
      doing = "finished";
      break;
    default:
      doing = "judging";
      break;
  }
  // What matters most first: a narrow terminal cuts the end.
  std::string line = r.waves.empty() ? doing
                                     : absl::StrCat("wave ", std::max<size_t>(r.waves_started, 1),
                                                    "/", r.waves.size(), ": ", doing);
  absl::StrAppend(&line, " | changed ", r.changed.size(), ", verified ", r.verified.size(),
                  ", failed ", r.failed.size());
  if (!r.rolled_back.empty()) absl::StrAppend(&line, ", rolled back ", r.rolled_back.size());
  if (!r.confirmed.empty()) absl::StrAppend(&line, ", confirmed ", r.confirmed.size());
  size_t pending = 0;
  for (size_t h : r.changed) pending += !r.confirmed.count(h) && !r.rolled_back.count(h);
  if (pending > 0) {
    absl::StrAppend(&line, " | unconfirmed roll back at ",
                    absl::FormatTime("%H:%M:%S UTC", r.deadline, absl::UTCTimeZone()));
  }
  return line;
}

}  // namespace netagent::client
