// The run state machine over a scripted fleet (hosts that answer as each
// test says, a clock that moves only when the run waits): success across
// waves, failure in wave k, failures within the allowance, inconclusive and
// pause, Ctrl-C, resume after a crash from the events alone, and abort. The
// same runner drives real agents in tests/integration/playbook_test.cc.
#include "client/playbook_run.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace netagent::client {
namespace {

namespace v1 = ::netagent::v1;
using Kind = v1::PlaybookEvent;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Crash {};

struct Host {
  bool reachable = true;
  bool finding = true;          // open before the change
  bool fixed_by_change = true;  // the finding clears once changed
  bool has_intent = true;
  bool inconclusive = false;     // its verification cannot read the guard
  bool apply_times_out = false;  // the apply gets no answer (and lands later)
  bool rollback_fails = false;
  bool applied = false, confirmed = false, rolled_back = false;
  std::string owner;                             // of the change it holds (the agent's check)
  absl::Time deadline = absl::InfiniteFuture();  // rolls back by itself unless confirmed
  bool ignores_owner = false;                    // an agent older than owner tokens
  int applies = 0;
};

class ScriptedFleet : public Fleet {
 public:
  explicit ScriptedFleet(size_t n) : hosts(n) {}

  std::vector<HostMeasure> Measure(const std::vector<size_t>& which, const Playbook& p,
                                   absl::Duration window) override {
    if (interrupt_in_measure-- == 0) {
      interrupted = true;  // Ctrl-C while the window runs: every call cut short
      std::vector<HostMeasure> out(which.size());
      for (auto& m : out) m.status = absl::CancelledError("interrupted");
      return out;
    }
    now += window;
    if (measures++ == slow_measure) {  // a verification that drags on
      now += slow_by;
      // ... or until this long before the changed hosts' deadline
      if (slow_until_before_deadline > absl::ZeroDuration()) {
        for (const Host& h : hosts)
          if (h.applied) now = h.deadline - slow_until_before_deadline;
      }
    }
    std::vector<HostMeasure> out;
    for (size_t h : which) {
      HostMeasure m;
      Host& host = hosts[h];
      if (!host.reachable) {
        m.status = absl::UnavailableError("connection refused");
      } else {
        const bool open = host.applied ? !host.fixed_by_change : host.finding;
        m.figures.finding_open = open;
        if (!host.inconclusive) m.figures.rates["TcpRetransSegs"] = 1;
        if (open) {
          v1::Finding f;
          f.set_rule(p.finding);
          f.set_severity(v1::SEVERITY_WARNING);
          f.set_summary("overflowing");
          if (host.has_intent) {
            auto* s = f.mutable_remediation()->mutable_intent()->mutable_limits()->add_settings();
            s->set_name("somaxconn");
            s->set_value(absl::StrCat(1024 + h));
          } else {
            f.mutable_remediation()->add_limits("the application's listen() backlog is the limit");
          }
          m.finding = f;
        }
      }
      out.push_back(m);
    }
    return out;
  }
  std::vector<absl::StatusOr<std::map<std::string, KnobBounds>>> Knobs(
      const std::vector<size_t>& which, const std::vector<std::string>&) override {
    std::vector<absl::StatusOr<std::map<std::string, KnobBounds>>> out;
    for (size_t h : which) {
      out.push_back(std::map<std::string, KnobBounds>{
          {"somaxconn", KnobBounds{absl::StrCat(100 + h), "1", "65535", 0}}});
    }
    return out;
  }
  std::vector<absl::StatusOr<v1::TuningPlan>> Plan(const std::vector<size_t>& which,
                                                   const std::vector<v1::TuningIntent>&) override {
    return std::vector<absl::StatusOr<v1::TuningPlan>>(which.size(), v1::TuningPlan());
  }
  std::vector<absl::StatusOr<v1::ApplyTuningResponse>> Apply(
      const std::vector<size_t>& which, const std::vector<v1::TuningIntent>& intents,
      const ChangeRef& change, absl::Time confirm_by) override {
    const std::string& id = change.id;
    std::vector<absl::StatusOr<v1::ApplyTuningResponse>> out;
    last_confirm_within = confirm_by - now;
    for (size_t i = 0; i < which.size(); ++i) {
      Host& host = hosts[which[i]];
      if (interrupt_in_apply >= 0 && static_cast<int>(i) >= interrupt_in_apply) {
        interrupted = true;  // Ctrl-C: the calls not yet answered are cut short
        out.push_back(absl::CancelledError("interrupted"));
        continue;
      }
      applied_order.push_back(which[i]);
      applied_intents[which[i]] = intents[i];
      if (crash_after_applies >= 0 &&
          static_cast<int>(applied_order.size()) > crash_after_applies) {
        throw Crash{};  // netctl dies here
      }
      if (!host.reachable) {
        out.push_back(absl::UnavailableError("connection refused"));
        continue;
      }
      ++host.applies;
      if (host.apply_times_out) {
        out.push_back(absl::DeadlineExceededError("deadline exceeded"));
        continue;  // lands later: late_applies
      }
      if ((host.applied || host.rolled_back) && !change.owner.empty() &&
          host.owner == change.owner) {
        v1::ApplyTuningResponse r;  // the agent answers its owner's change as it is
        r.mutable_change()->set_id(id);
        if (host.rolled_back) r.mutable_change()->set_state(v1::CHANGE_STATE_ROLLED_BACK);
        r.mutable_change()->set_owner(host.owner);
        r.mutable_change()->add_knobs()->set_knob("net.core.somaxconn");
        out.push_back(r);
        continue;
      }
      if (host.applied) {
        out.push_back(absl::AlreadyExistsError(absl::StrCat("change ", id, " exists")));
        continue;
      }
      host.applied = true;
      host.owner = change.owner;
      host.deadline = confirm_by;
      v1::ApplyTuningResponse r;
      r.mutable_change()->set_id(id);
      if (!host.ignores_owner) r.mutable_change()->set_owner(change.owner);
      auto* k = r.mutable_change()->add_knobs();
      k->set_knob("net.core.somaxconn");
      k->set_old_value("128");
      k->set_new_value(intents[i].limits().settings(0).value());
      out.push_back(r);
    }
    return out;
  }
  // As the agent does: a change of another owner is not the caller's.
  static bool Theirs(const Host& host, const ChangeRef& change) {
    return host.applied && !change.owner.empty() && host.owner != change.owner;
  }
  std::vector<absl::Status> Confirm(const std::vector<size_t>& which,
                                    const ChangeRef& change) override {
    std::vector<absl::Status> out;
    for (size_t h : which) {
      if (Theirs(hosts[h], change)) {
        out.push_back(absl::NotFoundError("another owner"));
        continue;
      }
      if (crash_after_confirms-- == 0) throw Crash{};  // netctl dies here
      if (!hosts[h].reachable) {
        out.push_back(absl::UnavailableError("connection refused"));
        continue;
      }
      if (!hosts[h].confirmed && now >= hosts[h].deadline) {  // expired by itself
        hosts[h].applied = false;
        out.push_back(absl::FailedPreconditionError("the deadline passed; it is expired"));
        continue;
      }
      hosts[h].confirmed = true;
      out.push_back(absl::OkStatus());
    }
    return out;
  }
  std::vector<absl::Status> Rollback(const std::vector<size_t>& which,
                                     const ChangeRef& change) override {
    const std::string& id = change.id;
    std::vector<absl::Status> out;
    for (size_t h : which) {
      rollback_order.push_back(h);
      Host& host = hosts[h];
      if (Theirs(host, change)) {
        out.push_back(
            absl::NotFoundError(absl::StrCat("change_id: change ", id, " here has another owner")));
      } else if (host.rollback_fails) {
        out.push_back(absl::UnavailableError("connection refused"));
      } else if (host.applied || host.rolled_back) {  // now, or already undone
        host.applied = false;
        host.rolled_back = true;
        out.push_back(absl::OkStatus());
      } else {
        out.push_back(absl::NotFoundError(absl::StrCat("change_id: no change ", id)));
      }
    }
    return out;
  }
  bool Sleep(absl::Duration d) override {
    if (interrupt_at_sleep >= 0 && sleeps++ == interrupt_at_sleep) return false;
    now += d;
    return true;
  }
  absl::Time Now() override { return now; }
  bool Interrupted() override { return interrupted; }

  std::vector<Host> hosts;
  absl::Time now = absl::FromUnixSeconds(1800000000);
  std::vector<size_t> applied_order, rollback_order;
  std::map<size_t, v1::TuningIntent> applied_intents;
  absl::Duration last_confirm_within;
  int interrupt_at_sleep = -1, sleeps = 0;
  int crash_after_applies = -1;
  int crash_after_confirms = -1;
  int measures = 0, slow_measure = -1;  // which Measure call (0: detection) is slow
  absl::Duration slow_by, slow_until_before_deadline;
  int interrupt_in_apply = -1;    // the host (by position in the call) cut short first
  int interrupt_in_measure = -1;  // which Measure call (0: the first) is cut short
  bool interrupted = false;
};

Playbook FindingPlaybook(std::vector<WaveStep> waves) {
  Playbook p;
  p.name = "lo";
  p.digest = "d1";
  p.finding = "listen-overflow";
  p.from_finding = true;
  p.finding_clears = true;
  p.waves = std::move(waves);
  p.pause = absl::Seconds(30);
  p.verify_window = absl::Seconds(20);
  return p;
}

RunOptions Options(size_t n) {
  RunOptions o;
  o.run_id = "lo-1";
  o.owner = "token-of-this-run";
  o.caller = "root@test";
  o.per_call = absl::Seconds(1);
  for (size_t i = 0; i < n; ++i) {
    v1::PlaybookTarget t;
    t.set_display(absl::StrCat("h", i));
    t.set_address(absl::StrCat("unix:///run/h", i));
    o.targets.push_back(t);
  }
  return o;
}

struct Recorded {
  std::vector<v1::PlaybookEvent> events;
  size_t fail_after = static_cast<size_t>(-1);  // events recorded before the disk fills
  EventSink sink() {
    return [this](const v1::PlaybookEvent& e) {
      events.push_back(e);
      return events.size() > fail_after ? absl::InternalError("No space left on device")
                                        : absl::OkStatus();
    };
  }
  std::vector<std::string> Of(Kind::Kind k) const {
    std::vector<std::string> out;
    for (const auto& e : events)
      if (e.kind() == k)
        out.push_back(e.target().empty() ? absl::StrCat("wave", e.wave()) : e.target());
    return out;
  }
  const v1::PlaybookEvent& Last() const { return events.back(); }
};

TEST(PlaybookRun, SucceedsAcrossWavesAndConfirmsOnlyAtTheEnd) {
  ScriptedFleet fleet(5);
  Recorded rec;
  const auto p = FindingPlaybook({{1, 0}, {0, 50}, {0, 100}});
  const absl::Time start = fleet.now;
  EXPECT_EQ(RunPlaybook(p, Options(5), fleet, rec.sink()), v1::PLAYBOOK_RUN_STATE_SUCCEEDED);
  EXPECT_THAT(rec.Of(Kind::KIND_WAVE_STARTED), ElementsAre("wave1", "wave2", "wave3"));
  EXPECT_THAT(fleet.applied_order, ElementsAre(0, 1, 2, 3, 4));
  EXPECT_THAT(rec.Of(Kind::KIND_HOST_VERIFIED), ElementsAre("h0", "h1", "h2", "h3", "h4"));
  EXPECT_THAT(rec.Of(Kind::KIND_HOST_CONFIRMED), ElementsAre("h0", "h1", "h2", "h3", "h4"));
  EXPECT_TRUE(fleet.rollback_order.empty());
  // Each host got its own finding's remediation.
  EXPECT_EQ(fleet.applied_intents[3].limits().settings(0).value(), "1027");
  // Nothing is confirmed before the last wave verified.
  size_t first_confirm = 0, last_verify = 0;
  for (size_t i = 0; i < rec.events.size(); ++i) {
    if (rec.events[i].kind() == Kind::KIND_HOST_CONFIRMED && !first_confirm) first_confirm = i;
    if (rec.events[i].kind() == Kind::KIND_HOST_VERIFIED) last_verify = i;
  }
  EXPECT_GT(first_confirm, last_verify);
  // The waits: detection 10 s, then per wave 20 s of verification, and two
  // pauses of 30 s.
  EXPECT_EQ(fleet.now - start, absl::Seconds(10 + 3 * 20 + 2 * 30));
  // The confirm deadline shrinks as the run goes on: every host rolls back
  // at one moment, whatever wave changed it.
  auto record = FoldRun(rec.events);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->state, v1::PLAYBOOK_RUN_STATE_SUCCEEDED);
  EXPECT_EQ(fleet.last_confirm_within, record->deadline - (fleet.now - absl::Seconds(20)));
  EXPECT_EQ(record->confirmed.size(), 5u);
  EXPECT_EQ(rec.Last().kind(), Kind::KIND_RUN_FINISHED);
  EXPECT_THAT(rec.Last().detail(), HasSubstr("5 hosts changed and confirmed"));
}

TEST(PlaybookRun, AFailureInWaveTwoRollsBackEveryChangedHostAndStops) {
  ScriptedFleet fleet(6);
  fleet.hosts[2].fixed_by_change = false;  // wave 2 = h1, h2
  Recorded rec;
  const auto p = FindingPlaybook({{1, 0}, {3, 0}, {0, 100}});
  EXPECT_EQ(RunPlaybook(p, Options(6), fleet, rec.sink()), v1::PLAYBOOK_RUN_STATE_FAILED);
  EXPECT_THAT(rec.Of(Kind::KIND_HOST_FAILED), ElementsAre("h2"));
  EXPECT_THAT(rec.Of(Kind::KIND_WAVE_FAILED), ElementsAre("wave2"));
  EXPECT_THAT(fleet.applied_order, ElementsAre(0, 1, 2));  // wave 3 never touched
  std::set<size_t> back(fleet.rollback_order.begin(), fleet.rollback_order.end());
  EXPECT_EQ(back, (std::set<size_t>{0, 1, 2}));
  EXPECT_TRUE(rec.Of(Kind::KIND_HOST_CONFIRMED).empty());
  for (const auto& h : fleet.hosts) EXPECT_FALSE(h.applied);
  EXPECT_THAT(rec.Last().detail(), HasSubstr("later waves were not touched"));
}

TEST(PlaybookRun, OnlyTheFailedHostsWhenThePlaybookSaysSo) {
  ScriptedFleet fleet(4);
  fleet.hosts[1].fixed_by_change = false;
  Recorded rec;
  auto p = FindingPlaybook({{0, 100}});
  p.rollback_all = false;
  EXPECT_EQ(RunPlaybook(p, Options(4), fleet, rec.sink()), v1::PLAYBOOK_RUN_STATE_FAILED);
  EXPECT_THAT(fleet.rollback_order, ElementsAre(1));
}

TEST(PlaybookRun, FailuresWithinTheAllowanceAreRolledBackAndTheRunGoesOn) {
  ScriptedFleet fleet(4);
  fleet.hosts[1].fixed_by_change = false;
  Recorded rec;
  auto p = FindingPlaybook({{2, 0}, {0, 100}});
  p.max_failures = FailureBudget{1, -1};
  p.max_failures_total = FailureBudget{1, -1};
  EXPECT_EQ(RunPlaybook(p, Options(4), fleet, rec.sink()), v1::PLAYBOOK_RUN_STATE_SUCCEEDED);
  EXPECT_THAT(fleet.rollback_order, ElementsAre(1));
  EXPECT_THAT(rec.Of(Kind::KIND_HOST_CONFIRMED), ElementsAre("h0", "h2", "h3"));
  EXPECT_THAT(rec.Last().detail(), HasSubstr("1 failed within the allowance"));
}

TEST(PlaybookRun, TheOverallBudgetStopsARunWhoseWavesEachStayWithinTheirs) {
  ScriptedFleet fleet(4);
  fleet.hosts[0].fixed_by_change = false;
  fleet.hosts[2].fixed_by_change = false;
  Recorded rec;
  auto p = FindingPlaybook({{2, 0}, {0, 100}});
  p.max_failures = FailureBudget{1, -1};
  p.max_failures_total = FailureBudget{1, -1};
  EXPECT_EQ(RunPlaybook(p, Options(4), fleet, rec.sink()), v1::PLAYBOOK_RUN_STATE_FAILED);
  EXPECT_THAT(rec.Of(Kind::KIND_WAVE_FAILED), ElementsAre("wave2"));
}

TEST(PlaybookRun, HostsThatDoNotMatchOrCannotBeFixedAreSkippedAndNamed) {
  ScriptedFleet fleet(4);
  fleet.hosts[0].reachable = false;
  fleet.hosts[1].finding = false;
  fleet.hosts[2].has_intent = false;
  Recorded rec;
  EXPECT_EQ(RunPlaybook(FindingPlaybook({{0, 100}}), Options(4), fleet, rec.sink()),
            v1::PLAYBOOK_RUN_STATE_SUCCEEDED);
  EXPECT_THAT(rec.Of(Kind::KIND_HOST_SKIPPED), ElementsAre("h0", "h1", "h2"));
  EXPECT_THAT(rec.events[1].detail(), HasSubstr("unreachable before the change"));
  EXPECT_THAT(rec.events[2].detail(), HasSubstr("no listen-overflow finding at warning or above"));
  EXPECT_THAT(rec.events[3].detail(), HasSubstr("the application's listen() backlog"));
  EXPECT_THAT(fleet.applied_order, ElementsAre(3));
}

TEST(PlaybookRun, NoMatchChangesNothing) {
  ScriptedFleet fleet(2);
  fleet.hosts[0].finding = fleet.hosts[1].finding = false;
  Recorded rec;
  EXPECT_EQ(RunPlaybook(FindingPlaybook({{0, 100}}), Options(2), fleet, rec.sink()),
            v1::PLAYBOOK_RUN_STATE_NOTHING_TO_DO);
  EXPECT_TRUE(fleet.applied_order.empty());
}

TEST(PlaybookRun, AConfirmWindowShorterThanTheRunIsRefusedBeforeAnyChange) {
  ScriptedFleet fleet(3);
  Recorded rec;
  auto p = FindingPlaybook({{1, 0}, {0, 100}});
  p.confirm_within = absl::Seconds(30);
  EXPECT_EQ(RunPlaybook(p, Options(3), fleet, rec.sink()), v1::PLAYBOOK_RUN_STATE_FAILED);
  EXPECT_TRUE(fleet.applied_order.empty());
  EXPECT_THAT(rec.Last().detail(), HasSubstr("confirm_within is shorter than the run"));
}

TEST(PlaybookRun, ExpressionsAreResolvedPerHost) {
  ScriptedFleet fleet(2);
  Recorded rec;
  Playbook p;
  p.name = "x";
  p.intent.emplace();
  auto* s = p.intent->mutable_limits()->add_settings();
  s->set_name("somaxconn");
  s->set_value("current * 10");
  p.guards.ceiling = 1005;
  CounterCondition c;
  c.counter = "TcpRetransSegs";
  c.rate_below = 5;
  p.success.push_back(c);
  p.waves = {{0, 100}};
  EXPECT_EQ(RunPlaybook(p, Options(2), fleet, rec.sink()), v1::PLAYBOOK_RUN_STATE_SUCCEEDED);
  EXPECT_EQ(fleet.applied_intents[0].limits().settings(0).value(), "1000");  // 100 * 10
  EXPECT_EQ(fleet.applied_intents[1].limits().settings(0).value(), "1005");  // held by ceiling
  EXPECT_THAT(rec.events[2].detail(), HasSubstr("held to 1005"));
}

TEST(PlaybookRun, InconclusivePausesAndResumeVerifiesTheWaveAgain) {
  Recorded rec;
  auto p = FindingPlaybook({{1, 0}, {0, 100}});
  CounterCondition guard;
  guard.counter = "TcpRetransSegs";
  guard.worse_than_baseline = 2;
  p.failure.push_back(guard);
  p.pause_on_inconclusive = true;
  // The guard is readable before the change but not in the canary's first
  // verification.
  struct Flip : ScriptedFleet {
    using ScriptedFleet::ScriptedFleet;
    std::vector<HostMeasure> Measure(const std::vector<size_t>& which, const Playbook& pb,
                                     absl::Duration w) override {
      if (hosts[0].applied && flips-- > 0) hosts[0].inconclusive = true;
      auto out = ScriptedFleet::Measure(which, pb, w);
      hosts[0].inconclusive = false;
      return out;
    }
    int flips = 1;
  } flip(3);
  EXPECT_EQ(RunPlaybook(p, Options(3), flip, rec.sink()), v1::PLAYBOOK_RUN_STATE_PAUSED);
  EXPECT_THAT(rec.Of(Kind::KIND_HOST_INCONCLUSIVE), ElementsAre("h0"));
  EXPECT_TRUE(flip.rollback_order.empty());
  EXPECT_THAT(flip.applied_order, ElementsAre(0));

  auto record = FoldRun(rec.events);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->state, v1::PLAYBOOK_RUN_STATE_PAUSED);
  Recorded more;
  auto resumed = ResumePlaybook(p, *record, flip, more.sink());
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(*resumed, v1::PLAYBOOK_RUN_STATE_SUCCEEDED);
  EXPECT_EQ(more.events[0].kind(), Kind::KIND_RUN_RESUMED);
  // The canary is not applied twice; it is verified again.
  EXPECT_EQ(flip.hosts[0].applies, 1);
  EXPECT_THAT(more.Of(Kind::KIND_HOST_VERIFIED), ElementsAre("h0", "h1", "h2"));
}

TEST(PlaybookRun, InconclusiveFailsByDefault) {
  ScriptedFleet fleet(2);
  Recorded rec;
  auto p = FindingPlaybook({{0, 100}});
  CounterCondition guard;
  guard.counter = "TcpRetransSegs";
  guard.worse_than_baseline = 2;
  p.failure.push_back(guard);
  fleet.hosts[1].inconclusive = true;  // no baseline either
  EXPECT_EQ(RunPlaybook(p, Options(2), fleet, rec.sink()), v1::PLAYBOOK_RUN_STATE_FAILED);
  EXPECT_THAT(rec.Of(Kind::KIND_HOST_INCONCLUSIVE), ElementsAre("h1"));
}

TEST(PlaybookRun, CtrlCLeavesTheRunResumable) {
  ScriptedFleet fleet(3);
  fleet.interrupt_at_sleep = 1;  // the pause before wave 2 (the first is wave 1's settle)
  Recorded rec;
  const auto p = FindingPlaybook({{1, 0}, {0, 100}});
  EXPECT_EQ(RunPlaybook(p, Options(3), fleet, rec.sink()), v1::PLAYBOOK_RUN_STATE_RUNNING);
  EXPECT_TRUE(fleet.hosts[0].applied);
  EXPECT_FALSE(fleet.hosts[0].confirmed);
  auto record = FoldRun(rec.events);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->waves_passed, 1u);
  fleet.interrupt_at_sleep = -1;
  Recorded more;
  EXPECT_EQ(*ResumePlaybook(p, *record, fleet, more.sink()), v1::PLAYBOOK_RUN_STATE_SUCCEEDED);
  EXPECT_THAT(fleet.applied_order, ElementsAre(0, 1, 2));
  EXPECT_THAT(more.Of(Kind::KIND_HOST_CONFIRMED), ElementsAre("h0", "h1", "h2"));
}

// netctl killed between sending wave 2's applies and recording them: the run
// file ends with HOST_APPLYING. Resume finds the change on the host that got
// it (ALREADY_EXISTS), applies the other, verifies both; abort instead rolls
// back every host the file says may have it.
std::vector<v1::PlaybookEvent> CrashedInWaveTwo(ScriptedFleet& fleet, const Playbook& p) {
  Recorded rec;
  fleet.crash_after_applies = 2;  // h0 (wave 1) and h1 get it; netctl dies before h2's
  EXPECT_THROW(RunPlaybook(p, Options(3), fleet, rec.sink()), Crash);
  fleet.crash_after_applies = -1;
  fleet.applied_order.pop_back();  // h2: never sent
  std::vector<v1::PlaybookEvent> cut;
  for (const auto& e : rec.events) {
    cut.push_back(e);
    if (e.kind() == Kind::KIND_HOST_APPLYING && e.target() == "h2") break;
  }
  return cut;
}

TEST(PlaybookRun, ResumeAfterACrashMidWave) {
  ScriptedFleet fleet(3);
  const auto p = FindingPlaybook({{1, 0}, {0, 100}});
  auto events = CrashedInWaveTwo(fleet, p);
  EXPECT_EQ(events.back().kind(), Kind::KIND_HOST_APPLYING);
  auto record = FoldRun(events);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->state, v1::PLAYBOOK_RUN_STATE_RUNNING);
  EXPECT_EQ(record->applying, (std::set<size_t>{0, 1, 2}));
  Recorded more;
  EXPECT_EQ(*ResumePlaybook(p, *record, fleet, more.sink()), v1::PLAYBOOK_RUN_STATE_SUCCEEDED);
  EXPECT_EQ(fleet.hosts[1].applies, 2);  // the second said ALREADY_EXISTS
  EXPECT_THAT(more.Of(Kind::KIND_HOST_CHANGED), ElementsAre("h1", "h2"));
  for (const auto& h : fleet.hosts) EXPECT_TRUE(h.confirmed);
}

TEST(PlaybookRun, AbortAfterACrashRollsBackEveryHostThatMayHaveTheChange) {
  ScriptedFleet fleet(3);
  const auto p = FindingPlaybook({{1, 0}, {0, 100}});
  auto events = CrashedInWaveTwo(fleet, p);
  EXPECT_TRUE(fleet.hosts[0].applied && fleet.hosts[1].applied && !fleet.hosts[2].applied);
  auto record = FoldRun(events);
  ASSERT_TRUE(record.ok());
  // Right after the crash, h2 has no change, but the apply netctl may have
  // sent could still land: that is not taken as proof.
  Recorded more;
  EXPECT_EQ(AbortPlaybook(*record, fleet, more.sink()), v1::PLAYBOOK_RUN_STATE_FAILED);
  std::set<size_t> back(fleet.rollback_order.begin(), fleet.rollback_order.end());
  EXPECT_EQ(back, (std::set<size_t>{0, 1, 2}));  // h2 too: the file cannot tell
  for (const auto& h : fleet.hosts) EXPECT_FALSE(h.applied);
  EXPECT_THAT(more.Of(Kind::KIND_HOST_ROLLED_BACK), ElementsAre("h0", "h1"));
  EXPECT_THAT(more.Of(Kind::KIND_HOST_ROLLBACK_FAILED), ElementsAre("h2"));
  EXPECT_THAT(more.events[2].detail(), HasSubstr("may still land"));
  EXPECT_THAT(more.Last().detail(), HasSubstr("run abort again"));
  // A minute on, "no such change" is an answer: the abort completes.
  events.insert(events.end(), more.events.begin(), more.events.end());
  auto second = FoldRun(events);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->rollback_failed, (std::set<size_t>{2}));
  fleet.now += kApplyInFlight;
  fleet.rollback_order.clear();
  Recorded again_events;
  EXPECT_EQ(AbortPlaybook(*second, fleet, again_events.sink()), v1::PLAYBOOK_RUN_STATE_ABORTED);
  EXPECT_THAT(fleet.rollback_order, ElementsAre(2));
  EXPECT_THAT(again_events.events[0].detail(), HasSubstr("never applied there"));
  // Aborting again finds nothing left to do.
  events.insert(events.end(), again_events.events.begin(), again_events.events.end());
  auto again = FoldRun(events);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->state, v1::PLAYBOOK_RUN_STATE_ABORTED);
  EXPECT_TRUE(again->rollback_failed.empty());
  fleet.rollback_order.clear();
  Recorded third;
  EXPECT_EQ(AbortPlaybook(*again, fleet, third.sink()), v1::PLAYBOOK_RUN_STATE_ABORTED);
  EXPECT_TRUE(fleet.rollback_order.empty());
}

TEST(PlaybookRun, ResumeRefusesWhatItCannotContinue) {
  ScriptedFleet fleet(2);
  Recorded rec;
  const auto p = FindingPlaybook({{0, 100}});
  RunPlaybook(p, Options(2), fleet, rec.sink());
  auto finished = FoldRun(rec.events);
  ASSERT_TRUE(finished.ok());
  Recorded more;
  auto r = ResumePlaybook(p, *finished, fleet, more.sink());
  EXPECT_THAT(r.status().message(), HasSubstr("has finished (succeeded)"));

  ScriptedFleet fleet2(2);
  fleet2.interrupt_at_sleep = 0;
  Recorded rec2;
  RunPlaybook(p, Options(2), fleet2, rec2.sink());
  auto running = FoldRun(rec2.events);
  ASSERT_TRUE(running.ok());
  Playbook edited = p;
  edited.digest = "d2";
  r = ResumePlaybook(edited, *running, fleet2, more.sink());
  EXPECT_THAT(r.status().message(), HasSubstr("changed since run lo-1 started"));
  fleet2.now = running->deadline + absl::Seconds(1);
  r = ResumePlaybook(p, *running, fleet2, more.sink());
  EXPECT_THAT(r.status().message(), HasSubstr("confirm deadline passed"));
  EXPECT_TRUE(more.events.empty());
}

TEST(PlaybookRun, FoldRefusesFilesThatAreNotARun) {
  EXPECT_FALSE(FoldRun({}).ok());
  v1::PlaybookEvent e;
  e.set_kind(Kind::KIND_HOST_CHANGED);
  EXPECT_FALSE(FoldRun({e}).ok());
  v1::PlaybookEvent s;
  s.set_kind(Kind::KIND_RUN_STARTED);
  s.mutable_started()->add_targets()->set_display("h0");
  e.set_target("stranger");
  auto r = FoldRun({s, e});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("\"stranger\" is not in the run"));
  EXPECT_FALSE(FoldRun({s, s}).ok());
  // Found by fuzzing: a host event without a target folded as host -1, and
  // an abort rolled back a host that does not exist.
  v1::PlaybookEvent nameless;
  nameless.set_kind(Kind::KIND_HOST_APPLYING);
  r = FoldRun({s, nameless});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("KIND_HOST_APPLYING names no target"));
  v1::PlaybookEvent planned;
  planned.set_kind(Kind::KIND_RUN_PLANNED);
  planned.add_waves()->add_targets("h0");
  r = FoldRun({s, planned});
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("has no remediation"));
  planned.mutable_waves(0)->set_targets(0, "h9");
  EXPECT_THAT(FoldRun({s, planned}).status().message(), HasSubstr("\"h9\" is not in the run"));
  // A wave the plan does not have (it would count as passed).
  v1::PlaybookEvent passed;
  passed.set_kind(Kind::KIND_WAVE_PASSED);
  passed.set_wave(7);
  EXPECT_THAT(FoldRun({s, passed}).status().message(),
              HasSubstr("wave 7 is not a wave of the run's plan"));
  // Found by review: a host twice in a run folded as one, and its second
  // apply (ALREADY_EXISTS) was taken as another run's change.
  v1::PlaybookEvent twice = s;
  twice.mutable_started()->add_targets()->set_display("h0");
  EXPECT_THAT(FoldRun({twice}).status().message(), HasSubstr("\"h0\" is in the run twice"));
}

// Found by review: an abort read past lines that were not JSON, but a line
// that parsed as an event the run cannot have (a stranger target, a wave
// the plan lacks) still refused the whole file, and nothing was rolled back.
TEST(PlaybookRun, ALenientFoldLeavesOutEventsThatCannotBePartOfTheRun) {
  ScriptedFleet fleet(2);
  Recorded rec;
  fleet.crash_after_applies = 1;
  EXPECT_THROW(RunPlaybook(FindingPlaybook({{0, 100}}), Options(2), fleet, rec.sink()), Crash);
  ASSERT_TRUE(fleet.hosts[0].applied);
  auto events = rec.events;
  v1::PlaybookEvent stranger;
  stranger.set_kind(Kind::KIND_HOST_CHANGED);
  stranger.set_target("stranger");
  v1::PlaybookEvent wave9;
  wave9.set_kind(Kind::KIND_WAVE_PASSED);
  wave9.set_wave(9);
  events.insert(events.begin() + 2, stranger);
  events.push_back(wave9);
  EXPECT_FALSE(FoldRun(events).ok());
  size_t skipped = 0;
  auto r = FoldRun(events, &skipped);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(skipped, 2u);
  EXPECT_EQ(r->run, "lo-1");
  EXPECT_EQ(r->waves_passed, 0u);
  fleet.now += kApplyInFlight;
  Recorded more;
  EXPECT_EQ(AbortPlaybook(*r, fleet, more.sink(), /*everyone=*/true),
            v1::PLAYBOOK_RUN_STATE_ABORTED);
  EXPECT_FALSE(fleet.hosts[0].applied);
  // Found by review: a host in a wave whose HOST_MATCHED line is lost is a
  // sign that lines are missing: counted, so the abort takes every target.
  std::vector<v1::PlaybookEvent> lost;
  for (const auto& e : rec.events)
    if (!(e.kind() == Kind::KIND_HOST_MATCHED && e.target() == "h1")) lost.push_back(e);
  skipped = 0;
  auto partial = FoldRun(lost, &skipped);
  ASSERT_TRUE(partial.ok()) << partial.status();
  EXPECT_GE(skipped, 1u);
}

// Found by review: an abort cut short (Ctrl-C) left the run resumable, and
// netctl said to resume it: a resume would have gone on changing hosts.
TEST(PlaybookRun, AnAbortCutShortIsFinishedByAbortNotResume) {
  ScriptedFleet fleet(3);
  const auto p = FindingPlaybook({{1, 0}, {0, 100}});
  auto events = CrashedInWaveTwo(fleet, p);
  auto before = FoldRun(events);
  ASSERT_TRUE(before.ok());
  EXPECT_FALSE(before->aborting);
  v1::PlaybookEvent back;
  back.set_kind(Kind::KIND_HOST_ROLLED_BACK);
  back.set_target("h0");
  back.set_wave(0);  // what AbortPlaybook writes
  events.push_back(back);
  auto record = FoldRun(events);
  ASSERT_TRUE(record.ok());
  EXPECT_TRUE(record->aborting);
  Recorded more;
  auto r = ResumePlaybook(p, *record, fleet, more.sink());
  EXPECT_THAT(r.status().message(), HasSubstr("an abort of run"));
  EXPECT_TRUE(more.events.empty());
  EXPECT_EQ(AbortPlaybook(*record, fleet, more.sink()), v1::PLAYBOOK_RUN_STATE_FAILED);
}

// Found by review: an inconclusive host that counted as a failure was not
// recorded as failed, so when its rollback failed it was confirmed with the
// others; and a resumed run forgot it in the overall budget.
TEST(PlaybookRun, InconclusiveAsAFailureIsAFailureEverywhere) {
  ScriptedFleet fleet(4);
  Recorded rec;
  auto p = FindingPlaybook({{0, 100}});
  CounterCondition guard;
  guard.counter = "TcpRetransSegs";
  guard.worse_than_baseline = 2;
  p.failure.push_back(guard);
  p.max_failures = FailureBudget{1, -1};
  p.max_failures_total = FailureBudget{1, -1};
  fleet.hosts[1].inconclusive = true;
  fleet.hosts[1].rollback_fails = true;
  EXPECT_EQ(RunPlaybook(p, Options(4), fleet, rec.sink()), v1::PLAYBOOK_RUN_STATE_SUCCEEDED);
  EXPECT_THAT(rec.Of(Kind::KIND_HOST_INCONCLUSIVE), ElementsAre("h1"));
  EXPECT_THAT(rec.Of(Kind::KIND_HOST_FAILED), ElementsAre("h1"));
  EXPECT_THAT(rec.Of(Kind::KIND_HOST_ROLLBACK_FAILED), ElementsAre("h1"));
  EXPECT_THAT(rec.Of(Kind::KIND_HOST_CONFIRMED), ElementsAre("h0", "h2", "h3"));
  EXPECT_FALSE(fleet.hosts[1].confirmed);
  EXPECT_THAT(rec.Last().detail(), HasSubstr("1 failed host could not be rolled back: never "
                                             "confirmed"));
  auto record = FoldRun(rec.events);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->failed, (std::set<size_t>{1}));
  EXPECT_EQ(record->rollback_failed, (std::set<size_t>{1}));
}

TEST(PlaybookRun, AResumedRunCountsTheFailuresBeforeTheInterruption) {
  ScriptedFleet fleet(4);
  auto p = FindingPlaybook({{2, 0}, {0, 100}});
  CounterCondition guard;
  guard.counter = "TcpRetransSegs";
  guard.worse_than_baseline = 2;
  p.failure.push_back(guard);
  p.max_failures = FailureBudget{1, -1};
  p.max_failures_total = FailureBudget{1, -1};
  fleet.hosts[0].inconclusive = true;      // wave 1: within its allowance
  fleet.hosts[2].fixed_by_change = false;  // wave 2: one more, over the total
  fleet.interrupt_at_sleep = 1;            // the pause before wave 2
  Recorded rec;
  EXPECT_EQ(RunPlaybook(p, Options(4), fleet, rec.sink()), v1::PLAYBOOK_RUN_STATE_RUNNING);
  auto record = FoldRun(rec.events);
  ASSERT_TRUE(record.ok());
  fleet.interrupt_at_sleep = -1;
  Recorded more;
  EXPECT_EQ(*ResumePlaybook(p, *record, fleet, more.sink()), v1::PLAYBOOK_RUN_STATE_FAILED);
  EXPECT_THAT(more.Of(Kind::KIND_WAVE_FAILED), ElementsAre("wave2"));
  EXPECT_THAT(more.events[more.events.size() - 1].detail(), HasSubstr("wave 2 failed"));
}

// Found by review: an apply that timed out may land after the run gave up
// on it; the rollback that follows must not take "no such change" as proof.
TEST(PlaybookRun, AnApplyWithNoAnswerIsNotTakenAsNeverApplied) {
  ScriptedFleet fleet(3);
  fleet.hosts[1].apply_times_out = true;
  Recorded rec;
  EXPECT_EQ(RunPlaybook(FindingPlaybook({{0, 100}}), Options(3), fleet, rec.sink()),
            v1::PLAYBOOK_RUN_STATE_FAILED);
  EXPECT_THAT(rec.Of(Kind::KIND_HOST_FAILED), ElementsAre("h1"));
  EXPECT_THAT(rec.Of(Kind::KIND_HOST_ROLLED_BACK), ElementsAre("h0", "h2"));
  EXPECT_THAT(rec.Of(Kind::KIND_HOST_ROLLBACK_FAILED), ElementsAre("h1"));
  auto record = FoldRun(rec.events);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->uncertain, (std::set<size_t>{1}));
  EXPECT_EQ(record->rollback_failed, (std::set<size_t>{1}));
  EXPECT_THAT(rec.Last().detail(), HasSubstr("1 could not be"));
}

TEST(PlaybookRun, AReusedRunIdIsNotAdoptedNorRolledBack) {
  ScriptedFleet fleet(3);
  fleet.hosts[1].applied = true;  // someone's change with the same id
  fleet.hosts[1].owner = "another-run";
  fleet.hosts[1].fixed_by_change = false;  // and the finding is open there
  Recorded rec;
  EXPECT_EQ(RunPlaybook(FindingPlaybook({{0, 100}}), Options(3), fleet, rec.sink()),
            v1::PLAYBOOK_RUN_STATE_FAILED);
  EXPECT_THAT(rec.Of(Kind::KIND_HOST_FAILED), ElementsAre("h1"));
  EXPECT_THAT(rec.events[rec.events.size() - 1].detail(), HasSubstr("wave 1 failed"));
  std::set<size_t> back(fleet.rollback_order.begin(), fleet.rollback_order.end());
  EXPECT_EQ(back, (std::set<size_t>{0, 2}));
  EXPECT_TRUE(fleet.hosts[1].applied);  // left alone
  auto record = FoldRun(rec.events);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->not_ours, (std::set<size_t>{1}));
  fleet.rollback_order.clear();
  Recorded more;
  AbortPlaybook(*record, fleet, more.sink());
  EXPECT_TRUE(fleet.rollback_order.empty());  // an abort leaves it alone too
}

// Found by review: an abort that rolls back every target (its file lost
// events) reached another run's change of the same id (a reused --run-id).
TEST(PlaybookRun, AnAbortOfEveryTargetLeavesAnotherRunsChangeOfTheSameIdAlone) {
  ScriptedFleet fleet(3);
  fleet.hosts[1].applied = true;
  fleet.hosts[1].owner = "another-run";
  fleet.hosts[1].fixed_by_change = false;
  const auto p = FindingPlaybook({{1, 0}, {0, 100}});
  fleet.crash_after_applies = 2;  // netctl dies in wave 2, at h2
  Recorded rec;
  EXPECT_THROW(RunPlaybook(p, Options(3), fleet, rec.sink()), Crash);
  ASSERT_TRUE(fleet.hosts[0].applied);
  auto record = FoldRun(rec.events);
  ASSERT_TRUE(record.ok());
  fleet.now += kApplyInFlight;
  Recorded more;
  // Lines lost: every target is rolled back by the change id.
  AbortPlaybook(*record, fleet, more.sink(), /*everyone=*/true);
  EXPECT_EQ(std::set<size_t>(fleet.rollback_order.begin(), fleet.rollback_order.end()),
            (std::set<size_t>{0, 1, 2}));
  EXPECT_FALSE(fleet.hosts[0].applied);  // this run's change: undone
  EXPECT_TRUE(fleet.hosts[1].applied);   // the other run's: left alone
  EXPECT_EQ(fleet.hosts[1].owner, "another-run");
  // An agent that does not keep owners is named where it was changed.
  ScriptedFleet old(1);
  old.hosts[0].ignores_owner = true;
  Recorded rec2;
  RunPlaybook(FindingPlaybook({{0, 100}}), Options(1), old, rec2.sink());
  for (const auto& e : rec2.events) {
    if (e.kind() == Kind::KIND_HOST_CHANGED) {
      EXPECT_THAT(e.detail(), HasSubstr("does not keep the run's owner token"));
    }
  }
  // Nothing of this run is on h1: said so, with the agent's reason.
  for (const auto& e : more.events) {
    if (e.target() != "h1") continue;
    EXPECT_EQ(e.kind(), Kind::KIND_HOST_ROLLED_BACK);
    EXPECT_THAT(e.detail(), HasSubstr("another owner"));
  }
}

// Found by review: netctl killed inside the final confirmation, resumed
// after the deadline, was told every host had rolled back, though the host
// confirmed before the kill keeps the change. Resume asks the hosts again.
TEST(PlaybookRun, ACrashDuringTheFinalConfirmIsResumedByConfirmingAgainEvenLate) {
  ScriptedFleet fleet(2);
  const auto p = FindingPlaybook({{0, 100}});
  fleet.crash_after_confirms = 1;  // h0 confirmed, then netctl dies
  Recorded rec;
  EXPECT_THROW(RunPlaybook(p, Options(2), fleet, rec.sink()), Crash);
  ASSERT_TRUE(fleet.hosts[0].confirmed);
  EXPECT_TRUE(rec.Of(Kind::KIND_HOST_CONFIRMED).empty());  // no word of it in the file
  auto record = FoldRun(rec.events);
  ASSERT_TRUE(record.ok());
  fleet.now = record->deadline + absl::Minutes(5);
  Recorded more;
  auto state = ResumePlaybook(p, *record, fleet, more.sink());
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, v1::PLAYBOOK_RUN_STATE_FAILED);
  EXPECT_THAT(more.Of(Kind::KIND_HOST_CONFIRMED), ElementsAre("h0"));
  EXPECT_THAT(more.Of(Kind::KIND_HOST_CONFIRM_FAILED), ElementsAre("h1"));
  EXPECT_THAT(more.Last().detail(),
              HasSubstr("1 answered that the change is no longer pending (past the deadline they "
                        "rolled it back by themselves); 1 confirmed"));
  EXPECT_TRUE(fleet.hosts[0].applied);
  EXPECT_FALSE(fleet.hosts[1].applied);
  // Found by review: a host that does not answer is not said to have rolled
  // back (it may be one confirmed before the crash).
  fleet.hosts[0].reachable = false;
  Recorded silent;
  auto again = ResumePlaybook(p, *record, fleet, silent.sink());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_THAT(silent.Last().detail(),
              HasSubstr("1 did not answer (whether they kept it is unknown"));
  // A run cut short before its last wave passed is still refused late.
  ScriptedFleet other(2);
  other.crash_after_applies = 1;
  Recorded cut;
  EXPECT_THROW(RunPlaybook(p, Options(2), other, cut.sink()), Crash);
  auto mid = FoldRun(cut.events);
  ASSERT_TRUE(mid.ok());
  other.now = mid->deadline + absl::Minutes(5);
  Recorded none;
  EXPECT_TRUE(absl::IsFailedPrecondition(ResumePlaybook(p, *mid, other, none.sink()).status()));
}

// Found by review: a run that fell behind (a verification that dragged on)
// started waves it could not verify before the hosts' deadline: churn on
// every host, and then every host rolled back anyway.
TEST(PlaybookRun, ARunThatFellBehindStopsBeforeAWaveItCannotFinishInTime) {
  ScriptedFleet fleet(4);
  auto p = FindingPlaybook({{1, 0}, {0, 100}});
  fleet.slow_measure = 1;  // wave 1's verification
  Recorded rec;
  // After the 30 s pause, 15 s are left: wave 2 needs its 20 s window and
  // its calls.
  fleet.slow_until_before_deadline = p.pause + absl::Seconds(15);
  EXPECT_EQ(RunPlaybook(p, Options(4), fleet, rec.sink()), v1::PLAYBOOK_RUN_STATE_FAILED);
  EXPECT_THAT(rec.Of(Kind::KIND_WAVE_STARTED), ElementsAre("wave1"));
  EXPECT_EQ(fleet.applied_order.size(), 1u);  // wave 2's three hosts never changed
  EXPECT_THAT(rec.Of(Kind::KIND_HOST_ROLLED_BACK), ElementsAre("h0"));
  EXPECT_THAT(rec.Last().detail(), HasSubstr("wave 2 not started"));
  EXPECT_THAT(rec.Last().detail(), HasSubstr("longer rollout.confirm_within"));
  for (const auto& h : fleet.hosts) EXPECT_FALSE(h.applied);
  // Found by review: the decision survives an interruption of its rollback:
  // the rollback is an abort's, which resume refuses to go on from.
  auto record = FoldRun(rec.events);
  ASSERT_TRUE(record.ok());
  EXPECT_TRUE(record->aborting);
  // A lag the deadline leaves room for does not stop the run.
  ScriptedFleet ok(4);
  ok.slow_measure = 1;
  ok.slow_by = absl::Minutes(1);
  Recorded fine;
  EXPECT_EQ(RunPlaybook(p, Options(4), ok, fine.sink()), v1::PLAYBOOK_RUN_STATE_SUCCEEDED);
}

// Found by review: a resumed run took any ALREADY_EXISTS for its own apply
// that had landed, and went on to verify (and would confirm) another run's
// change of the same id.
TEST(PlaybookRun, AResumedRunDoesNotAdoptAnotherRunsChangeOfTheSameId) {
  ScriptedFleet fleet(3);
  const auto p = FindingPlaybook({{0, 100}});
  fleet.crash_after_applies = 0;  // netctl dies before its first apply
  Recorded rec;
  EXPECT_THROW(RunPlaybook(p, Options(3), fleet, rec.sink()), Crash);
  fleet.hosts[0].applied = true;  // meanwhile another run, same id, changed h0
  fleet.hosts[0].owner = "another-run";
  fleet.hosts[0].fixed_by_change = false;
  fleet.crash_after_applies = -1;
  auto record = FoldRun(rec.events);
  ASSERT_TRUE(record.ok());
  Recorded more;
  auto state = ResumePlaybook(p, *record, fleet, more.sink());
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_THAT(more.Of(Kind::KIND_HOST_CHANGED), ElementsAre("h1", "h2"));
  EXPECT_THAT(more.Of(Kind::KIND_HOST_FAILED), ElementsAre("h0"));
  EXPECT_TRUE(fleet.hosts[0].applied);
  EXPECT_EQ(fleet.hosts[0].owner, "another-run");
  EXPECT_FALSE(fleet.hosts[0].confirmed);
  // Its own apply that had landed is still its own on resume.
  ScriptedFleet own(2);
  own.crash_after_applies = 1;  // h0 applied, then netctl dies
  Recorded first;
  EXPECT_THROW(RunPlaybook(p, Options(2), own, first.sink()), Crash);
  own.crash_after_applies = -1;
  auto r2 = FoldRun(first.events);
  ASSERT_TRUE(r2.ok());
  Recorded resumed;
  ASSERT_TRUE(ResumePlaybook(p, *r2, own, resumed.sink()).ok());
  EXPECT_THAT(resumed.Of(Kind::KIND_HOST_CHANGED), ElementsAre("h0", "h1"));
  EXPECT_TRUE(own.hosts[0].confirmed && own.hosts[1].confirmed);
  // ... unless an operator rolled it back while netctl was away: not
  // redone, not verified, a failure of the wave.
  ScriptedFleet undone(2);
  undone.crash_after_applies = 1;
  Recorded third;
  EXPECT_THROW(RunPlaybook(p, Options(2), undone, third.sink()), Crash);
  undone.crash_after_applies = -1;
  undone.hosts[0].applied = false;
  undone.hosts[0].rolled_back = true;
  auto r3 = FoldRun(third.events);
  ASSERT_TRUE(r3.ok());
  Recorded after;
  ASSERT_TRUE(ResumePlaybook(p, *r3, undone, after.sink()).ok());
  EXPECT_THAT(after.Of(Kind::KIND_HOST_FAILED), ElementsAre("h0"));
  EXPECT_FALSE(undone.hosts[0].applied);
}

// Found by review: a run whose file could not be written went on changing
// hosts it could then neither resume nor abort.
TEST(PlaybookRun, ARunThatCannotRecordStopsBeforeItsNextChange) {
  ScriptedFleet fleet(3);
  Recorded rec;
  const auto p = FindingPlaybook({{1, 0}, {0, 100}});
  // Detection (start, 3 matched, plan) and wave 1 (started, applying,
  // changed, verified, passed) are written; wave 2's first event is not.
  rec.fail_after = 1 + 3 + 1 + 5;
  EXPECT_EQ(RunPlaybook(p, Options(3), fleet, rec.sink()), v1::PLAYBOOK_RUN_STATE_FAILED);
  EXPECT_THAT(fleet.applied_order, ElementsAre(0));  // wave 2 never applied
  EXPECT_THAT(fleet.rollback_order, ElementsAre(0));
  EXPECT_FALSE(fleet.hosts[0].applied);
  EXPECT_THAT(rec.Last().detail(), HasSubstr("the run file cannot be written (No space left"));
  // Nothing at all when the first event cannot be written.
  ScriptedFleet fresh(2);
  Recorded none;
  none.fail_after = 0;
  EXPECT_EQ(RunPlaybook(p, Options(2), fresh, none.sink()), v1::PLAYBOOK_RUN_STATE_FAILED);
  EXPECT_TRUE(fresh.applied_order.empty());
}

// Found by review: Ctrl-C during a call was judged as host failures (and a
// run interrupted in detection ended "nothing to do"). It is an
// interruption: the run stops where it is, resumable.
TEST(PlaybookRun, CtrlCDuringApplyLeavesTheRestApplyingAndResumable) {
  ScriptedFleet fleet(4);
  const auto p = FindingPlaybook({{1, 0}, {0, 100}});
  fleet.interrupt_in_apply = 1;  // wave 1 (h0) goes through; in wave 2, h1 answers, h2, h3 cut
  Recorded rec;
  // Wave 1's call has one host, so position 1 is never reached there.
  EXPECT_EQ(RunPlaybook(p, Options(4), fleet, rec.sink()), v1::PLAYBOOK_RUN_STATE_RUNNING);
  EXPECT_TRUE(rec.Of(Kind::KIND_HOST_FAILED).empty());
  EXPECT_THAT(rec.Of(Kind::KIND_HOST_CHANGED), ElementsAre("h0", "h1"));
  EXPECT_TRUE(fleet.rollback_order.empty());
  auto record = FoldRun(rec.events);
  ASSERT_TRUE(record.ok());
  EXPECT_TRUE(record->Uncertain(2) && record->Uncertain(3));
  fleet.interrupted = false;
  fleet.interrupt_in_apply = -1;
  Recorded more;
  EXPECT_EQ(*ResumePlaybook(p, *record, fleet, more.sink()), v1::PLAYBOOK_RUN_STATE_SUCCEEDED);
  for (const auto& h : fleet.hosts) EXPECT_TRUE(h.confirmed);
}

TEST(PlaybookRun, CtrlCDuringVerificationJudgesNoOne) {
  ScriptedFleet fleet(2);
  const auto p = FindingPlaybook({{0, 100}});
  fleet.interrupt_in_measure = 1;  // 0: detection; 1: wave 1's verification
  Recorded rec;
  EXPECT_EQ(RunPlaybook(p, Options(2), fleet, rec.sink()), v1::PLAYBOOK_RUN_STATE_RUNNING);
  EXPECT_TRUE(rec.Of(Kind::KIND_HOST_FAILED).empty());
  EXPECT_TRUE(fleet.rollback_order.empty());
  auto record = FoldRun(rec.events);
  ASSERT_TRUE(record.ok());
  fleet.interrupted = false;
  Recorded more;
  EXPECT_EQ(*ResumePlaybook(p, *record, fleet, more.sink()), v1::PLAYBOOK_RUN_STATE_SUCCEEDED);
  EXPECT_THAT(more.Of(Kind::KIND_HOST_VERIFIED), ElementsAre("h0", "h1"));
  EXPECT_EQ(fleet.hosts[0].applies, 1);
}

TEST(PlaybookRun, CtrlCDuringDetectionIsResumedByDetectingAgain) {
  ScriptedFleet fleet(3);
  const auto p = FindingPlaybook({{0, 100}});
  fleet.interrupt_in_measure = 0;
  Recorded rec;
  EXPECT_EQ(RunPlaybook(p, Options(3), fleet, rec.sink()), v1::PLAYBOOK_RUN_STATE_RUNNING);
  EXPECT_TRUE(rec.Of(Kind::KIND_HOST_SKIPPED).empty());
  EXPECT_TRUE(rec.Of(Kind::KIND_RUN_PLANNED).empty());
  auto record = FoldRun(rec.events);
  ASSERT_TRUE(record.ok());
  EXPECT_FALSE(record->planned);
  fleet.interrupted = false;
  Recorded more;
  EXPECT_EQ(*ResumePlaybook(p, *record, fleet, more.sink()), v1::PLAYBOOK_RUN_STATE_SUCCEEDED);
  EXPECT_THAT(more.Last().detail(), HasSubstr("3 hosts changed and confirmed"));
  // The file of both tells the same run: the second detection replaces the
  // first.
  rec.events.insert(rec.events.end(), more.events.begin(), more.events.end());
  auto whole = FoldRun(rec.events);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->confirmed.size(), 3u);
}

// A two-wave run interrupted in the pause before wave 2, and its record.
void InterruptedInThePause(ScriptedFleet& fleet, const Playbook& p, Recorded& rec,
                           absl::StatusOr<RunRecord>& record) {
  fleet.interrupt_at_sleep = 1;  // the pause before wave 2
  EXPECT_EQ(RunPlaybook(p, Options(3), fleet, rec.sink()), v1::PLAYBOOK_RUN_STATE_RUNNING);
  record = FoldRun(rec.events);
}

TEST(PlaybookRun, ResumeRefusesWhenTheRestCannotFinishBeforeTheDeadline) {
  ScriptedFleet fleet(3);
  const auto p = FindingPlaybook({{1, 0}, {0, 100}});
  Recorded rec;
  absl::StatusOr<RunRecord> record;
  InterruptedInThePause(fleet, p, rec, record);
  ASSERT_TRUE(record.ok());
  fleet.interrupt_at_sleep = -1;
  // Long after the pause: wave 2 still needs its 20 s window and the calls.
  fleet.now = record->deadline - absl::Seconds(20);
  Recorded more;
  auto r = ResumePlaybook(p, *record, fleet, more.sink());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("the rest of the run takes about"));
  EXPECT_TRUE(more.events.empty());
  EXPECT_THAT(fleet.applied_order, ElementsAre(0));
}

// A resume counts a round of calls as the run measured it at detection
// (kept on RUN_PLANNED), not a fixed 2 s: a fleet that answered slowly
// then is not assumed fast now.
TEST(PlaybookRun, ResumeCountsTheCallRoundTheRunMeasured) {
  ScriptedFleet fleet(3);
  const auto p = FindingPlaybook({{1, 0}, {0, 100}});
  Recorded rec;
  absl::StatusOr<RunRecord> record;
  InterruptedInThePause(fleet, p, rec, record);
  ASSERT_TRUE(record.ok());
  // The scripted fleet answers at once: the floor of a round.
  EXPECT_EQ(record->call_round, absl::Seconds(1));
  fleet.interrupt_at_sleep = -1;
  fleet.now = record->deadline - absl::Seconds(40);
  // The same file, had detection measured 30 s rounds: the rest (three
  // rounds, the settle and the 20 s window) no longer fits in 40 s.
  auto slow_events = rec.events;
  for (auto& e : slow_events) {
    if (e.kind() == v1::PlaybookEvent::KIND_RUN_PLANNED) e.mutable_call_round()->set_seconds(30);
  }
  auto slow = FoldRun(slow_events);
  ASSERT_TRUE(slow.ok());
  EXPECT_EQ(slow->call_round, absl::Seconds(30));
  Recorded refused;
  auto r = ResumePlaybook(p, *slow, fleet, refused.sink());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("the rest of the run takes about"));
  EXPECT_TRUE(refused.events.empty());
  // As measured, it fits and goes on.
  Recorded more;
  EXPECT_EQ(*ResumePlaybook(p, *record, fleet, more.sink()), v1::PLAYBOOK_RUN_STATE_SUCCEEDED);
  // A damaged file cannot make a round absurd either way.
  for (auto& e : slow_events) {
    if (e.kind() == v1::PlaybookEvent::KIND_RUN_PLANNED) {
      e.mutable_call_round()->set_seconds(-5);
    }
  }
  EXPECT_EQ(FoldRun(slow_events)->call_round, absl::Seconds(1));
}

// The line a terminal shows while the run waits, at each kind of wait.
TEST(PlaybookRun, TheProgressLineSaysWhatTheRunWaitsForAndHowLong) {
  ScriptedFleet fleet(3);
  fleet.hosts[2].fixed_by_change = false;
  auto p = FindingPlaybook({{1, 0}, {0, 100}});
  p.max_failures = FailureBudget{1, -1};
  p.max_failures_total = FailureBudget{1, -1};
  p.settle = absl::Seconds(5);
  std::vector<std::string> lines;
  RunFold fold;
  EventSink sink = [&](const v1::PlaybookEvent& e) {
    fold.Add(e);
    // As if the terminal redrew 3 s after this event.
    lines.push_back(ProgressLine(fold.record(), fold.last(), p, fleet.now + absl::Seconds(3)));
    return absl::OkStatus();
  };
  EXPECT_EQ(RunPlaybook(p, Options(3), fleet, sink), v1::PLAYBOOK_RUN_STATE_SUCCEEDED);
  auto find = [&](const std::string& what) {
    for (const auto& l : lines)
      if (absl::StrContains(l, what)) return l;
    return std::string("(no line with: " + what + ")");
  };
  EXPECT_EQ(lines.front(), "detecting over 10s | changed 0, verified 0, failed 0");
  EXPECT_THAT(find("verifying"),
              HasSubstr("wave 1/2: verifying, 22s left | changed 1, verified 0, failed 0 | "
                        "unconfirmed roll back at "));
  EXPECT_THAT(find("pause before"), HasSubstr("wave 1/2: pause before wave 2, 27s left |"));
  EXPECT_THAT(find("failed 1"), HasSubstr("changed 3, verified 2, failed 1"));
  EXPECT_EQ(lines.back(),
            "wave 2/2: finished | changed 3, verified 2, failed 1, rolled back 1, "
            "confirmed 2");
}

TEST(PlaybookRun, ARunFileWithBadLinesCanStillBeRead) {
  const std::string text =
      "{\"kind\":\"KIND_RUN_STARTED\",\"run\":\"r\"}\nnot json\n{\"kind\":\"KIND_RUN_PAUSED\"}\n";
  EXPECT_THAT(ParseRunEvents(text, "f").status().message(), HasSubstr("f:2: not an event"));
  size_t bad = 0;
  auto events = ParseRunEvents(text, "f", &bad);
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->size(), 2u);
  EXPECT_EQ(bad, 1u);
}

}  // namespace
}  // namespace netagent::client
