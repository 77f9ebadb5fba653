// netctl playbook validate | plan | run | resume | status | abort | history:
// the runner of client/playbook_run.h over gRPC, with the run file (one
// event per line, appended and synced as the run goes) under the user's
// state dir.
#include <fcntl.h>
#include <fnmatch.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "client/commands.h"
#include "client/json.h"
#include "client/playbook_run.h"
#include "client/rpc.h"
#include "client/run_file.h"
#include "netagent/v1/diagnosis.grpc.pb.h"
#include "netagent/v1/telemetry.grpc.pb.h"
#include "netagent/v1/tuning.grpc.pb.h"
#include "playbook/playbook.h"

namespace netagent::client {
namespace v1 = ::netagent::v1;
namespace fs = std::filesystem;
namespace {

// --- the hosts, over gRPC ------------------------------------------------

class GrpcFleet : public Fleet {
 public:
  GrpcFleet(std::vector<Target> targets, const Dialer& dialer)
      : targets_(std::move(targets)), dialer_(dialer) {}

  std::vector<HostMeasure> Measure(const std::vector<size_t>& hosts, const Playbook& p,
                                   absl::Duration window) override {
    std::vector<HostMeasure> out(hosts.size());
    const auto counters = PlaybookCounters(p);
    v1::DiagnoseRequest dreq;
    SetDuration(window, dreq.mutable_window());
    dreq.add_rules(p.finding);
    dreq.set_min_severity(p.min_severity);
    v1::GetCountersRequest creq;
    SetDuration(window, creq.mutable_window());
    creq.set_filter(absl::StrCat("^(", absl::StrJoin(counters, "|"), ")$"));
    Each(
        hosts, window,
        [&](size_t i, grpc::Channel& ch, absl::Time d) {
          HostMeasure& m = out[i];
          // Both over the same window, at once.
          Outcome counted;
          std::thread t;
          auto count = [&] {
            counted = Unary(ch, d, creq, &v1::TelemetryService::Stub::GetCounters);
          };
          if (!counters.empty()) {
            try {
              t = std::thread(count);
            } catch (const std::system_error&) {
              count();  // no thread to spare: one after the other (the windows add up)
            }
          }
          if (!p.finding.empty()) {
            Outcome o = Unary(ch, d, dreq, &v1::DiagnosisService::Stub::Diagnose);
            if (!o.status.ok()) m.status = o.status;
            if (const auto* r = o.result ? MessageAs<v1::DiagnoseResponse>(*o.result) : nullptr) {
              for (const auto& f : r->findings()) {
                if (f.rule() == p.finding && f.severity() >= p.min_severity) {
                  m.finding = f;
                  m.figures.finding_open = true;
                  break;
                }
              }
            }
          }
          if (t.joinable()) t.join();
          if (!counters.empty()) {
            if (!counted.status.ok() && m.status.ok()) m.status = counted.status;
            if (const auto* r = counted.result ? MessageAs<v1::GetCountersResponse>(*counted.result)
                                               : nullptr) {
              for (const auto& c : r->counters())
                if (c.has_rate()) m.figures.rates[c.name()] = c.rate();
            }
          }
          return m.status;
        },
        [&](size_t i, const absl::Status& st) { out[i].status = st; });
    return out;
  }

  std::vector<absl::StatusOr<std::map<std::string, KnobBounds>>> Knobs(
      const std::vector<size_t>& hosts, const std::vector<std::string>& names) override {
    std::vector<absl::StatusOr<std::map<std::string, KnobBounds>>> out(
        hosts.size(), absl::UnavailableError("no answer"));
    std::vector<std::string> quoted;
    for (const auto& n : names) quoted.push_back(absl::StrReplaceAll(n, {{".", "\\."}}));
    v1::GetTunablesRequest req;
    req.set_filter(absl::StrCat("(^|\\.)(", absl::StrJoin(quoted, "|"), ")$"));
    Each(
        hosts, absl::ZeroDuration(),
        [&](size_t i, grpc::Channel& ch, absl::Time d) {
          Outcome o = Unary(ch, d, req, &v1::TuningService::Stub::GetTunables);
          if (!o.status.ok()) return o.status;
          std::map<std::string, KnobBounds> knobs;
          for (const auto& t : MessageAs<v1::GetTunablesResponse>(*o.result)->tunables()) {
            for (const auto& n : names) {
              if (t.knob() != n && !absl::EndsWith(t.knob(), absl::StrCat(".", n))) continue;
              if (!t.exists()) continue;
              knobs[n] = KnobBounds{t.value(), t.floor(), t.ceiling(), t.max_step()};
            }
          }
          out[i] = knobs;
          return absl::OkStatus();
        },
        [&](size_t i, const absl::Status& st) { out[i] = st; });
    return out;
  }

  std::vector<absl::StatusOr<v1::TuningPlan>> Plan(
      const std::vector<size_t>& hosts, const std::vector<v1::TuningIntent>& intents) override {
    std::vector<absl::StatusOr<v1::TuningPlan>> out(hosts.size(),
                                                    absl::UnavailableError("no answer"));
    Each(
        hosts, absl::ZeroDuration(),
        [&](size_t i, grpc::Channel& ch, absl::Time d) {
          v1::PlanTuningRequest req;
          *req.mutable_intent() = intents[i];
          Outcome o = Unary(ch, d, req, &v1::TuningService::Stub::PlanTuning);
          if (!o.status.ok()) return o.status;
          out[i] = MessageAs<v1::PlanTuningResponse>(*o.result)->plan();
          return absl::OkStatus();
        },
        [&](size_t i, const absl::Status& st) { out[i] = st; });
    return out;
  }

  std::vector<absl::StatusOr<v1::ApplyTuningResponse>> Apply(
      const std::vector<size_t>& hosts, const std::vector<v1::TuningIntent>& intents,
      const ChangeRef& change, absl::Time confirm_by) override {
    std::vector<absl::StatusOr<v1::ApplyTuningResponse>> out(hosts.size(),
                                                             absl::UnavailableError("no answer"));
    Each(
        hosts, absl::ZeroDuration(),
        [&](size_t i, grpc::Channel& ch, absl::Time d) {
          v1::ApplyTuningRequest req;
          *req.mutable_intent() = intents[i];
          req.set_change_id(change.id);
          req.set_owner(change.owner);
          // What is left now, for this host: every host rolls back at one moment.
          SetDuration(
              absl::Seconds(std::max<int64_t>(1, absl::ToInt64Seconds(confirm_by - absl::Now()))),
              req.mutable_confirm_within());
          Outcome o = Unary(ch, d, req, &v1::TuningService::Stub::ApplyTuning);
          if (!o.status.ok()) return o.status;
          out[i] = *MessageAs<v1::ApplyTuningResponse>(*o.result);
          return absl::OkStatus();
        },
        [&](size_t i, const absl::Status& st) { out[i] = st; });
    return out;
  }

  std::vector<absl::Status> Confirm(const std::vector<size_t>& hosts,
                                    const ChangeRef& change) override {
    std::vector<absl::Status> out(hosts.size());
    v1::ConfirmChangeRequest req;
    req.set_change_id(change.id);
    req.set_expected_owner(change.owner);
    Each(
        hosts, absl::ZeroDuration(),
        [&](size_t i, grpc::Channel& ch, absl::Time d) {
          return out[i] = Unary(ch, d, req, &v1::TuningService::Stub::ConfirmChange).status;
        },
        [&](size_t i, const absl::Status& st) { out[i] = st; });
    return out;
  }

  std::vector<absl::Status> Rollback(const std::vector<size_t>& hosts,
                                     const ChangeRef& change) override {
    std::vector<absl::Status> out(hosts.size());
    v1::RollbackChangeRequest req;
    req.set_change_id(change.id);
    req.set_expected_owner(change.owner);
    Each(
        hosts, absl::ZeroDuration(),
        [&](size_t i, grpc::Channel& ch, absl::Time d) {
          absl::Status st = Unary(ch, d, req, &v1::TuningService::Stub::RollbackChange).status;
          // Already undone (rolled back, expired, a failed apply that restored
          // itself): nothing of it is left. NOT_FOUND stays: the runner knows
          // whether an apply may still be on its way.
          if (absl::IsFailedPrecondition(st) &&
              absl::StrContains(st.message(), ": nothing to roll back") &&
              !absl::StrContains(st.message(), " is confirmed") &&
              !absl::StrContains(st.message(), " is pending")) {
            st = absl::OkStatus();
          }
          return out[i] = st;
        },
        [&](size_t i, const absl::Status& st) { out[i] = st; });
    return out;
  }

  bool Sleep(absl::Duration d) override {
    const absl::Time until = absl::Now() + d;
    while (absl::Now() < until) {
      if (CallsStopping()) return false;
      absl::SleepFor(std::min(absl::Milliseconds(100), until - absl::Now()));
    }
    return !CallsStopping();
  }
  absl::Time Now() override { return absl::Now(); }
  bool Interrupted() override { return CallsStopping(); }

 private:
  using HostCall = std::function<absl::Status(size_t i, grpc::Channel&, absl::Time deadline)>;
  // `call` for each host (i: its position in `hosts`); `failed` for those
  // with no connection.
  void Each(const std::vector<size_t>& hosts, absl::Duration extra, const HostCall& call,
            const std::function<void(size_t, const absl::Status&)>& failed) {
    std::vector<Target> subset;
    for (size_t h : hosts) subset.push_back(targets_.at(h));
    FanOut(
        subset, dialer_,
        [&](const Target& t, grpc::Channel& ch, absl::Time d) {
          Outcome o;
          o.status = call(static_cast<size_t>(&t - subset.data()), ch, d);
          return o;
        },
        extra,
        [&](size_t i, Outcome o) {
          if (!o.status.ok()) failed(i, o.status);
        });
  }

  std::vector<Target> targets_;
  const Dialer& dialer_;
};

std::string StateText(v1::PlaybookRunState s) {
  return absl::AsciiStrToLower(EnumSuffix(v1::PlaybookRunState_Name(s), "PLAYBOOK_RUN_STATE_", s));
}

std::string KindText(v1::PlaybookEvent::Kind k) {
  return absl::AsciiStrToLower(EnumSuffix(v1::PlaybookEvent::Kind_Name(k), "KIND_", k));
}

std::string Clock(const google::protobuf::Timestamp& t) {
  return absl::FormatTime("%H:%M:%S", absl::FromUnixSeconds(t.seconds()), absl::UTCTimeZone());
}

// One event as a line for people.
std::string EventLine(const v1::PlaybookEvent& e) {
  std::string line = Clock(e.at());
  if (e.wave() > 0) absl::StrAppend(&line, "  wave ", e.wave());
  absl::StrAppend(&line, "  ", absl::StrReplaceAll(KindText(e.kind()), {{"_", " "}}));
  if (!e.target().empty()) absl::StrAppend(&line, "  ", e.target());
  if (e.kind() == v1::PlaybookEvent::KIND_RUN_STARTED) {
    absl::StrAppend(&line, "  ", e.run());
  }
  if (e.kind() == v1::PlaybookEvent::KIND_RUN_FINISHED) {
    absl::StrAppend(&line, "  ", absl::AsciiStrToUpper(StateText(e.state())));
  }
  if (!e.detail().empty()) absl::StrAppend(&line, ": ", e.detail());
  line = TerminalText(line);
  if (e.kind() == v1::PlaybookEvent::KIND_RUN_PLANNED) {
    for (const auto& w : e.waves()) {
      absl::StrAppend(&line, "\n          wave ", w.number(), ": ",
                      TerminalText(absl::StrJoin(w.targets(), ", ")));
    }
  }
  return line;
}

v1::PlaybookRunSummary Summarize(const RunRecord& r, const std::string& file) {
  v1::PlaybookRunSummary s;
  s.set_run(r.run);
  s.set_playbook(r.started.playbook());
  s.set_state(r.state);
  s.set_caller(r.started.caller());
  s.set_file(file);
  s.mutable_started()->set_seconds(absl::ToUnixSeconds(r.started_at));
  *s.mutable_confirm_deadline() = r.started.confirm_deadline();
  s.set_targets(static_cast<uint32_t>(r.started.targets_size()));
  s.set_matched(static_cast<uint32_t>(r.intents.size()));
  s.set_waves(static_cast<uint32_t>(r.waves.size()));
  s.set_waves_passed(static_cast<uint32_t>(r.waves_passed));
  s.set_changed(static_cast<uint32_t>(r.changed.size()));
  s.set_confirmed(static_cast<uint32_t>(r.confirmed.size()));
  s.set_failed(static_cast<uint32_t>(r.failed.size()));
  s.set_rolled_back(static_cast<uint32_t>(r.rolled_back.size()));
  s.set_rollback_failed(static_cast<uint32_t>(r.rollback_failed.size()));
  s.set_detail(r.last_detail);
  return s;
}

std::string Caller() {
  std::string user = std::to_string(getuid());
  if (const passwd* pw = getpwuid(getuid())) user = pw->pw_name;
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(user, "@", host);
}

std::string NewRunId(const std::string& name) {
  std::random_device rd;
  return absl::StrCat(name, "-",
                      absl::FormatTime("%Y%m%dT%H%M%S", absl::Now(), absl::UTCTimeZone()), "-",
                      absl::StrFormat("%04x", rd() & 0xffff));
}

// 128 random bits: no other run has this owner token.
std::string NewOwnerToken() {
  std::random_device rd;
  std::string out;
  for (int i = 0; i < 4; ++i) absl::StrAppendFormat(&out, "%08x", rd());
  return out;
}

absl::StatusOr<Playbook> LoadPlaybook(const std::string& file) {
  std::ifstream in(file);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(file, ": cannot read"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return ParsePlaybook(text, file);
}

struct PlaybookArgs {
  std::vector<std::string> files;
  std::string file;
  std::string run;
  std::string state_dir;
  std::string run_id;
  uint32_t limit = 20;
};

// Targets of the command line, filtered by the playbook's match.targets.
std::vector<Target> SelectTargets(const CommandContext& c, const Playbook& p) {
  std::vector<Target> out;
  for (const auto& t : c.targets) {
    bool keep = p.target_globs.empty();
    for (const auto& g : p.target_globs)
      if (::fnmatch(g.c_str(), t.display.c_str(), 0) == 0) keep = true;
    if (keep) out.push_back(t);
  }
  return out;
}

// A host twice in one run would be tracked as one: its second apply would
// look like another run's change and never be rolled back.
absl::Status CheckDistinctTargets(const std::vector<Target>& targets) {
  for (size_t i = 0; i < targets.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (targets[i].display == targets[j].display || targets[i].address == targets[j].address) {
        return absl::InvalidArgumentError(
            absl::StrCat("targets: ", targets[i].display, " and ", targets[j].display,
                         " are the same host (name or address): a host may be in a run once"));
      }
    }
  }
  return absl::OkStatus();
}

RunOptions Options(const std::vector<Target>& targets, const std::string& run_id,
                   const CommandContext& c) {
  RunOptions o;
  o.run_id = run_id;
  o.caller = Caller();
  o.owner = NewOwnerToken();
  o.per_call = std::min(absl::Seconds(2), c.dialer->options().timeout);
  for (const auto& t : targets) {
    v1::PlaybookTarget pt;
    pt.set_display(t.display);
    pt.set_address(t.address);
    pt.set_tls_name(t.tls_name);
    o.targets.push_back(pt);
  }
  return o;
}

std::vector<Target> TargetsOf(const RunRecord& r) {
  std::vector<Target> out;
  for (const auto& pt : r.started.targets()) {
    Target t;
    t.display = pt.display();
    t.address = pt.address();
    t.tls_name = pt.tls_name();
    t.unix_socket = absl::StartsWith(pt.address(), "unix:");
    out.push_back(t);
  }
  return out;
}

// On a terminal, while a run waits: one line on stderr, redrawn four times a
// second (ProgressLine), cleared before each event line is printed.
class RunProgress {
 public:
  RunProgress(const CommandContext& c, const Playbook& p) : c_(c), p_(p) {
    if (!c.progress || c.format != Format::kTable) return;
    on_ = true;
    thread_ = std::thread([this] { Loop(); });
  }
  ~RunProgress() { Stop(); }
  // The line off and the thread gone: call before writing anything else to
  // stderr (the thread writes there too).
  void Stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      done_ = true;
      Clear();
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  // Around each event line: the progress line off, then the event counted.
  void Before() {
    if (!on_) return;
    mu_.lock();
    Clear();
  }
  void After(const v1::PlaybookEvent& e) {
    if (!on_) return;
    fold_.Add(e);
    mu_.unlock();
  }
  void Seed(const std::vector<v1::PlaybookEvent>& events) {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& e : events) fold_.Add(e);
  }

 private:
  void Clear() {
    if (!shown_) return;
    *c_.err << "\r\x1b[K" << std::flush;
    shown_ = false;
  }
  void Loop() {
    std::unique_lock<std::mutex> lk(mu_);
    while (!done_) {
      cv_.wait_for(lk, std::chrono::milliseconds(250));
      if (done_ || fold_.record().run.empty()) continue;
      std::string line = TerminalText(ProgressLine(fold_.record(), fold_.last(), p_, absl::Now()));
      winsize ws{};
      const size_t columns =
          ::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 ? ws.ws_col - 1 : 79;
      if (line.size() > columns) line.resize(columns);
      *c_.err << "\r\x1b[K" << line << std::flush;
      shown_ = true;
    }
  }

  const CommandContext& c_;
  const Playbook& p_;
  bool on_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false, shown_ = false;
  RunFold fold_;
  std::thread thread_;
};

// Prints each event (a line, or JSON) and appends it to the run file.
EventSink Sink(const CommandContext& c, RunFile* file, bool* file_failed,
               RunProgress* progress = nullptr) {
  return [&c, file, file_failed, progress](const v1::PlaybookEvent& e) {
    if (progress) progress->Before();
    absl::Status written;
    if (file) {
      written = file->Append(e);
      if (!written.ok() && !*file_failed) {
        *file_failed = true;
        *c.err << "netctl: the run file cannot be written (" << TerminalText(written.message())
               << "): the run stops before its next change\n";
      }
    }
    if (c.format == Format::kJson) {
      std::string line;
      AppendJson(e, &line);
      line.push_back('\n');
      *c.out << line << std::flush;
    } else {
      *c.out << EventLine(e) << "\n" << std::flush;
    }
    if (progress) progress->After(e);
    return written;
  };
}

int ExitFor(v1::PlaybookRunState s, const CommandContext& c, const std::string& run) {
  switch (s) {
    case v1::PLAYBOOK_RUN_STATE_SUCCEEDED:
    case v1::PLAYBOOK_RUN_STATE_NOTHING_TO_DO:
    case v1::PLAYBOOK_RUN_STATE_ABORTED:
      return 0;
    case v1::PLAYBOOK_RUN_STATE_RUNNING:
      *c.err << "netctl: run " << run
             << " interrupted: nothing is confirmed, so every changed host rolls back by itself "
                "at the deadline; go on with `netctl playbook resume "
             << run << "` or undo now with `netctl playbook abort " << run << "`\n";
      return 130;
    case v1::PLAYBOOK_RUN_STATE_PAUSED:
      *c.err << "netctl: run " << run << " paused: `netctl playbook resume " << run
             << "` verifies the wave again; `netctl playbook abort " << run << "` rolls back\n";
      return 3;
    default:
      return 1;
  }
}

int RunValidate(const CommandContext& c, const PlaybookArgs& a) {
  int rc = 0;
  for (const auto& f : a.files) {
    auto p = LoadPlaybook(f);
    if (!p.ok()) {
      *c.err << "netctl: " << TerminalText(p.status().message()) << "\n";
      rc = 1;
      continue;
    }
    *c.out << f << ": ok: playbook " << p->name
           << (p->finding.empty() ? " (manual)" : absl::StrCat(" for ", p->finding)) << ", "
           << WaveSizes(p->waves, 100).size() << " waves over 100 hosts"
           << (p->auto_mode ? ", mode auto" : "") << "\n";
  }
  return rc;
}

int RunPlan(const CommandContext& c, const PlaybookArgs& a) {
  auto p = LoadPlaybook(a.file);
  if (!p.ok()) return UsageError(c, std::string(p.status().message()));
  const auto targets = SelectTargets(c, *p);
  if (targets.empty()) return UsageError(c, "match.targets: no target of the command line matches");
  GrpcFleet fleet(targets, *c.dialer);
  const Preview pv = PreviewPlaybook(*p, Options(targets, "plan", c), fleet);
  if (c.format == Format::kJson) {
    std::string out;
    for (const auto& e : pv.events) {
      AppendJson(e, &out);
      out.push_back('\n');
    }
    for (const auto& [h, plan] : pv.plans) {
      if (!plan.ok()) continue;
      AppendJsonLine(targets[h], absl::OkStatus(), &*plan, &out);
    }
    *c.out << out;
  } else {
    for (const auto& e : pv.events) {
      if (e.kind() == v1::PlaybookEvent::KIND_RUN_STARTED) continue;
      *c.out << EventLine(e) << "\n";
    }
    for (const auto& [h, plan] : pv.plans) {
      *c.out << "\n== " << TerminalText(targets[h].display) << " ==\n";
      if (!plan.ok()) {
        *c.out << "plan: " << DescribeError(plan.status()) << "\n";
        continue;
      }
      *c.out << "plan: " << TerminalText(plan->intent()) << "\n";
      if (plan->changes_size() == 0) *c.out << "  nothing to change\n";
      for (const auto& ch : plan->changes()) {
        *c.out << "  " << TerminalText(ch.knob()) << " " << TerminalText(ch.old_value()) << " -> "
               << TerminalText(ch.new_value()) << "\n";
      }
      for (const auto& r : plan->refusals())
        *c.out << "  an apply would be refused here: " << TerminalText(r) << "\n";
    }
    *c.out << "\nthe run would take about " << absl::FormatDuration(pv.estimate)
           << "; changes roll back by themselves unless confirmed within "
           << absl::FormatDuration(pv.confirm_within) << "; nothing was changed\n";
  }
  return 0;
}

int RunRun(const CommandContext& c, const PlaybookArgs& a) {
  auto p = LoadPlaybook(a.file);
  if (!p.ok()) return UsageError(c, std::string(p.status().message()));
  if (p->auto_mode) {
    *c.err << "netctl: note: " << a.file
           << " is mode auto (for the agent); running it from netctl as a manual run\n";
  }
  const auto targets = SelectTargets(c, *p);
  if (targets.empty()) return UsageError(c, "match.targets: no target of the command line matches");
  if (auto st = CheckDistinctTargets(targets); !st.ok()) {
    return UsageError(c, std::string(st.message()));
  }
  const std::string run = a.run_id.empty() ? NewRunId(p->name) : a.run_id;
  auto file = RunFile::Open(StateDir(a.state_dir), run, true);
  if (!file.ok()) return UsageError(c, std::string(file.status().message()));
  bool file_failed = false;
  GrpcFleet fleet(targets, *c.dialer);
  RunProgress progress(c, *p);
  const auto state =
      RunPlaybook(*p, Options(targets, run, c), fleet, Sink(c, &*file, &file_failed, &progress));
  progress.Stop();
  return ExitFor(state, c, run);
}

struct OpenedRun {
  RunFile file;
  RunRecord record;
  size_t bad_lines = 0;  // left out (only when asked to read on past them)
  std::vector<v1::PlaybookEvent> events;
};

// The run file, locked, and the run its events tell. `lenient`: lines that
// are not events are left out and counted rather than refused.
absl::StatusOr<OpenedRun> OpenRun(const PlaybookArgs& a, bool lenient) {
  auto file = RunFile::Open(StateDir(a.state_dir), a.run, false);
  if (!file.ok()) return file.status();
  size_t bad_lines = 0;
  auto events = ReadRunFile(file->path(), lenient ? &bad_lines : nullptr);
  if (!events.ok()) return events.status();
  size_t skipped = 0;
  auto record = FoldRun(*events, lenient ? &skipped : nullptr);
  if (!record.ok()) {
    return absl::DataLossError(
        absl::StrCat(file->path().string(), ": ", record.status().message()));
  }
  bad_lines += skipped;
  if (record->run != a.run) {
    return absl::DataLossError(
        absl::StrCat(file->path().string(), ": it holds run \"", record->run, "\", not ", a.run));
  }
  return OpenedRun{std::move(*file), std::move(*record), bad_lines, std::move(*events)};
}

int RunResume(const CommandContext& c, const PlaybookArgs& a) {
  auto opened = OpenRun(a, /*lenient=*/false);
  if (!opened.ok()) {
    return UsageError(c, absl::StrCat(opened.status().message(),
                                      absl::IsDataLoss(opened.status())
                                          ? absl::StrCat(" (cannot resume; `netctl playbook abort ",
                                                         a.run, "` rolls the run back)")
                                          : ""));
  }
  auto& file = opened->file;
  auto& record = opened->record;
  const std::string path = a.file.empty() ? record.started.file() : a.file;
  auto p = LoadPlaybook(path);
  if (!p.ok()) return UsageError(c, std::string(p.status().message()));
  bool file_failed = false;
  GrpcFleet fleet(TargetsOf(record), *c.dialer);
  RunProgress progress(c, *p);
  progress.Seed(opened->events);
  auto state = ResumePlaybook(*p, record, fleet, Sink(c, &file, &file_failed, &progress));
  progress.Stop();
  if (!state.ok()) {
    *c.err << "netctl: " << TerminalText(state.status().message()) << "\n";
    return 1;
  }
  return ExitFor(*state, c, record.run);
}

int RunAbort(const CommandContext& c, const PlaybookArgs& a) {
  // A damaged file does not stop an abort: with events lost, every target
  // of the run is rolled back (a host without the change says so).
  auto opened = OpenRun(a, /*lenient=*/true);
  if (!opened.ok()) return UsageError(c, std::string(opened.status().message()));
  auto& file = opened->file;
  auto& record = opened->record;
  if (opened->bad_lines > 0) {
    *c.err << "netctl: " << TerminalText(file.path().string()) << ": " << opened->bad_lines
           << (opened->bad_lines == 1 ? " line is not an event of the run"
                                      : " lines are not events of the run")
           << ": rolling back every target of the run\n";
  }
  bool file_failed = false;
  GrpcFleet fleet(TargetsOf(record), *c.dialer);
  const auto state =
      AbortPlaybook(record, fleet, Sink(c, &file, &file_failed), opened->bad_lines > 0);
  if (state == v1::PLAYBOOK_RUN_STATE_RUNNING) {
    *c.err << "netctl: abort of run " << record.run
           << " interrupted: hosts not rolled back yet still hold the change until its deadline "
              "(a confirmed one until rolled back); run `netctl playbook abort "
           << record.run << "` again\n";
    return 130;
  }
  return ExitFor(state, c, record.run);
}

void PrintSummary(const v1::PlaybookRunSummary& s, std::ostream& out) {
  out << "run " << TerminalText(s.run()) << ": playbook " << TerminalText(s.playbook()) << ", "
      << absl::AsciiStrToUpper(StateText(s.state())) << "\n"
      << "  started " << Time(s.started()) << " by " << TerminalText(s.caller())
      << "; unconfirmed changes roll back at " << Time(s.confirm_deadline()) << "\n"
      << "  " << s.matched() << " of " << s.targets() << " targets matched; waves passed "
      << s.waves_passed() << " of " << s.waves() << "; changed " << s.changed() << ", confirmed "
      << s.confirmed() << ", failed " << s.failed() << ", rolled back " << s.rolled_back()
      << (s.rollback_failed() ? absl::StrCat(", could not roll back ", s.rollback_failed()) : "")
      << "\n";
  if (!s.detail().empty()) out << "  last: " << TerminalText(s.detail()) << "\n";
}

int RunStatus(const CommandContext& c, const PlaybookArgs& a) {
  const fs::path dir = StateDir(a.state_dir);
  if (!ValidRunId(a.run))
    return UsageError(c, absl::StrCat("RUN: \"", a.run, "\" is not a run id"));
  const fs::path path = dir / (a.run + ".jsonl");
  if (!fs::exists(path)) {
    return UsageError(c, absl::StrCat("no run ", a.run, " in ", dir.string(),
                                      " (netctl playbook history lists them)"));
  }
  auto events = ReadRunFile(path);
  if (!events.ok()) return UsageError(c, std::string(events.status().message()));
  auto record = FoldRun(*events);
  if (!record.ok()) return UsageError(c, std::string(record.status().message()));
  const auto summary = Summarize(*record, fs::absolute(path).string());
  if (c.format == Format::kJson) {
    std::string out;
    AppendJson(summary, &out);
    out.push_back('\n');
    *c.out << out;
    return 0;
  }
  PrintSummary(summary, *c.out);
  // Each host's last word.
  std::map<std::string, const v1::PlaybookEvent*> last;
  for (const auto& e : *events)
    if (!e.target().empty()) last[e.target()] = &e;
  Table t({"TARGET", "WAVE", "LAST", "DETAIL"});
  for (const auto& pt : record->started.targets()) {
    auto it = last.find(pt.display());
    if (it == last.end()) continue;
    t.AddRow({pt.display(), it->second->wave() ? absl::StrCat(it->second->wave()) : "-",
              absl::StrReplaceAll(KindText(it->second->kind()), {{"host_", ""}, {"_", " "}}),
              it->second->detail()});
  }
  t.Render(*c.out);
  return 0;
}

int RunHistory(const CommandContext& c, const PlaybookArgs& a) {
  const fs::path dir = StateDir(a.state_dir);
  std::vector<std::pair<fs::file_time_type, fs::path>> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".jsonl")
      files.emplace_back(entry.last_write_time(ec), entry.path());
  }
  std::sort(files.begin(), files.end(),
            [](const auto& x, const auto& y) { return x.first > y.first; });
  if (files.size() > a.limit) files.resize(a.limit);
  Table t({"RUN", "PLAYBOOK", "STARTED (UTC)", "STATE", "MATCHED", "CONFIRMED", "FAILED",
           "ROLLED BACK"});
  std::string json;
  for (const auto& [when, path] : files) {
    auto events = ReadRunFile(path);
    absl::StatusOr<RunRecord> record =
        events.ok() ? FoldRun(*events) : absl::StatusOr<RunRecord>(events.status());
    if (!record.ok()) {
      *c.err << "netctl: " << TerminalText(path.string()) << ": "
             << TerminalText(record.status().message()) << "\n";
      continue;
    }
    const auto s = Summarize(*record, fs::absolute(path).string());
    if (c.format == Format::kJson) {
      AppendJson(s, &json);
      json.push_back('\n');
    } else {
      t.AddRow({s.run(), s.playbook(), Time(s.started()), StateText(s.state()),
                absl::StrCat(s.matched(), "/", s.targets()), absl::StrCat(s.confirmed()),
                absl::StrCat(s.failed()), absl::StrCat(s.rolled_back())});
    }
  }
  if (c.format == Format::kJson) {
    *c.out << json;
  } else if (files.empty()) {
    *c.out << "no runs in " << TerminalText(dir.string()) << "\n";
  } else {
    t.Render(*c.out);
  }
  return 0;
}

}  // namespace

void AddPlaybookCommands(Commands& commands) {
  auto args = std::make_shared<PlaybookArgs>();
  auto* pb = commands.app().add_subcommand(
      "playbook",
      "remediation playbooks: detect, apply in verified waves, confirm or roll the fleet back");
  pb->require_subcommand(1);
  pb->add_option("--state-dir", args->state_dir,
                 "where run files live (default $XDG_STATE_HOME/netagent/runs or "
                 "~/.local/state/netagent/runs)");
  auto* validate = pb->add_subcommand("validate", "check playbook files; changes nothing");
  validate->add_option("FILE", args->files, "playbook files")->required();
  commands.Runs(validate, [args](CommandContext& c) { return RunValidate(c, *args); });
  auto* plan = pb->add_subcommand(
      "plan", "which targets match, in which waves, with which plans; changes nothing");
  plan->add_option("FILE", args->file, "the playbook")->required();
  commands.Runs(plan, [args](CommandContext& c) { return RunPlan(c, *args); });
  auto* run = pb->add_subcommand("run", "run a playbook over the targets");
  run->add_option("FILE", args->file, "the playbook")->required();
  run->add_option("--run-id", args->run_id,
                  "the run's id, also the change id on every host (default NAME-TIME-RANDOM)");
  commands.Runs(run, [args](CommandContext& c) { return RunRun(c, *args); });
  auto* resume = pb->add_subcommand(
      "resume", "go on with an interrupted or paused run (on the targets it started with)");
  resume->add_option("RUN", args->run, "the run id")->required();
  resume->add_option("--file", args->file, "the playbook, if it moved (its text must not change)");
  commands.Runs(resume, [args](CommandContext& c) { return RunResume(c, *args); });
  auto* status = pb->add_subcommand("status", "a run: its state and each host's last step");
  status->add_option("RUN", args->run, "the run id")->required();
  commands.Runs(status, [args](CommandContext& c) { return RunStatus(c, *args); });
  auto* abort = pb->add_subcommand("abort", "roll back every host a run changed");
  abort->add_option("RUN", args->run, "the run id")->required();
  commands.Runs(abort, [args](CommandContext& c) { return RunAbort(c, *args); });
  auto* history = pb->add_subcommand("history", "runs, newest first");
  history->add_option("--limit", args->limit, "at most this many (default 20)");
  commands.Runs(history, [args](CommandContext& c) { return RunHistory(c, *args); });
}

}  // namespace netagent::client
