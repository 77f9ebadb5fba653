// Running a playbook over a fleet: detect (which hosts have the finding, and
// their figures before the change), plan the waves, then per wave apply the
// remediation under one change id with a confirm deadline, measure over the
// verification window, judge each host, and go on, pause, or roll back.
// Nothing is confirmed until every wave has verified: a netctl that dies
// mid-run leaves hosts that roll themselves back at the deadline.
//
// Every step is an event (v1::PlaybookEvent) handed to an EventSink before
// the next step starts; the sink appends it to the run file, so a run can be
// folded back from its events (FoldRun), resumed from the wave it was in,
// or aborted (every host it may have changed is rolled back). The hosts are
// reached through Fleet, which netctl implements over gRPC.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "netagent/v1/diagnosis.pb.h"
#include "netagent/v1/playbook.pb.h"
#include "netagent/v1/tuning.pb.h"
#include "playbook/playbook.h"

namespace netagent::client {

using playbook::CounterCondition;
using playbook::DefaultConfirmWithin;
using playbook::EstimateRunTime;
using playbook::ExpressionKnobs;
using playbook::FailureBudget;
using playbook::Guards;
using playbook::HostFigures;
using playbook::IsExpression;
using playbook::Judge;
using playbook::KnobBounds;
using playbook::ParsePlaybook;
using playbook::Playbook;
using playbook::PlaybookCounters;
using playbook::ResolveSetting;
using playbook::WaveSizes;
using playbook::WaveStep;

// One host's figures over a window, and the playbook's finding when open.
struct HostMeasure {
  absl::Status status;
  HostFigures figures;
  std::optional<netagent::v1::Finding> finding;
};

// A run's change on every host: its id, and the run's owner token, which
// the agent keeps with each apply and checks on each confirm and rollback
// (empty: no check, for runs recorded before the token existed).
struct ChangeRef {
  std::string id;
  std::string owner;
};

// The hosts, by index into the run's target list. Each call covers several
// hosts at once and returns one result per host, in the order given.
class Fleet {
 public:
  virtual ~Fleet() = default;
  // The playbook's finding (if it has one) and counter rates over `window`.
  virtual std::vector<HostMeasure> Measure(const std::vector<size_t>& hosts, const Playbook& p,
                                           absl::Duration window) = 0;
  // The current value and bounds of each named knob.
  virtual std::vector<absl::StatusOr<std::map<std::string, KnobBounds>>> Knobs(
      const std::vector<size_t>& hosts, const std::vector<std::string>& names) = 0;
  virtual std::vector<absl::StatusOr<netagent::v1::TuningPlan>> Plan(
      const std::vector<size_t>& hosts, const std::vector<netagent::v1::TuningIntent>& intents) = 0;
  // ALREADY_EXISTS when the host has this change id already (a resumed run).
  // Each host's change rolls back by itself at `confirm_by` (the time left
  // is reckoned as each host's call is made).
  virtual std::vector<absl::StatusOr<netagent::v1::ApplyTuningResponse>> Apply(
      const std::vector<size_t>& hosts, const std::vector<netagent::v1::TuningIntent>& intents,
      const ChangeRef& change, absl::Time confirm_by) = 0;
  // NOT_FOUND when the host has no change of this id and owner.
  virtual std::vector<absl::Status> Confirm(const std::vector<size_t>& hosts,
                                            const ChangeRef& change) = 0;
  // OK when nothing of the change is left in effect on the host (rolled
  // back now, or before: expired, restored after a failed apply); NOT_FOUND
  // when the host has no change with this id and owner (never applied
  // there, an apply still on its way, or another run's change that reused
  // the id).
  virtual std::vector<absl::Status> Rollback(const std::vector<size_t>& hosts,
                                             const ChangeRef& change) = 0;
  // False when interrupted (Ctrl-C): the run stops where it is.
  virtual bool Sleep(absl::Duration d) = 0;
  virtual absl::Time Now() = 0;
  // True once interrupted: calls cut short answer CANCELLED, and the run
  // stops where it is instead of judging the hosts on them.
  virtual bool Interrupted() { return false; }
};

// Records an event (netctl appends it to the run file). An error stops the
// run before its next change: it never makes a change it cannot record.
using EventSink = std::function<absl::Status(const netagent::v1::PlaybookEvent&)>;

// How long after an apply that got no answer a host's "no such change" is
// not taken as proof: the apply may still be on its way there.
inline constexpr absl::Duration kApplyInFlight = absl::Minutes(1);

// A run as its events tell it.
// A round of calls to the fleet when the run file does not say (a file
// written before RUN_PLANNED carried it).
inline constexpr absl::Duration kDefaultCallRound = absl::Seconds(2);

struct RunRecord {
  std::string run;
  netagent::v1::PlaybookRunStarted started;
  netagent::v1::PlaybookRunState state = netagent::v1::PLAYBOOK_RUN_STATE_UNSPECIFIED;
  std::vector<std::vector<size_t>> waves;  // hosts by index into started.targets
  size_t waves_passed = 0;
  std::map<size_t, netagent::v1::TuningIntent> intents;    // matched hosts
  std::map<size_t, netagent::v1::PlaybookEvent> baseline;  // their HOST_MATCHED events
  std::set<size_t> applying, changed, unchanged, failed, rolled_back, confirmed, skipped;
  std::set<size_t> verified;         // by their latest verification
  std::set<size_t> uncertain;        // an apply with no answer (it may have landed)
  std::set<size_t> not_ours;         // the change id was there already: never rolled back
  std::set<size_t> rollback_failed;  // and not rolled back since
  bool aborting = false;             // `playbook abort` rolled hosts back (wave 0): no resume
  std::map<size_t, absl::Time> applying_at;
  bool planned = false;                           // detection finished (RUN_PLANNED)
  absl::Duration call_round = kDefaultCallRound;  // RUN_PLANNED's
  size_t waves_started = 0;
  absl::Time wave_passed_at = absl::InfinitePast();  // the last WAVE_PASSED
  absl::Time started_at, deadline;
  std::string last_detail;
  bool finished() const;
  // The host may have the change though the run cannot tell: sent, and no
  // answer recorded (netctl died, or the call timed out).
  bool Uncertain(size_t h) const;
};
// Folds events in order; INVALID_ARGUMENT when they do not start with
// RUN_STARTED, name a host the run does not have, or put a host in a wave
// without its remediation. With `skipped` (for an abort, which rolls back
// every target when the file is damaged), events that cannot be part of the
// run are left out and counted there instead.
absl::StatusOr<RunRecord> FoldRun(const std::vector<netagent::v1::PlaybookEvent>& events,
                                  size_t* skipped = nullptr);

// Folds events one at a time (for a live view; FoldRun also checks them).
class RunFold {
 public:
  RunFold();
  ~RunFold();
  void Add(const netagent::v1::PlaybookEvent& e);
  const RunRecord& record() const;
  const netagent::v1::PlaybookEvent& last() const { return last_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  netagent::v1::PlaybookEvent last_;
};

// The progress line a terminal shows while a run waits: the wave, the
// hosts changed / verified / failed / rolled back, what the run is doing and
// how long that has left, and when unconfirmed changes roll back.
std::string ProgressLine(const RunRecord& r, const netagent::v1::PlaybookEvent& last,
                         const Playbook& p, absl::Time now);

// The events of a run file's text (one JSON object per line). A last line
// cut short (netctl killed while writing it) is left out; a bad line before
// it is DATA_LOSS naming `name` and the line, unless `bad_lines` is given:
// then bad lines are left out and counted there.
absl::StatusOr<std::vector<netagent::v1::PlaybookEvent>> ParseRunEvents(
    absl::string_view text, const std::string& name, size_t* bad_lines = nullptr);

// The remediation for one host: the finding's own intent, or the literal
// one with its expressions resolved against `knobs`. FAILED_PRECONDITION
// says why there is none.
absl::StatusOr<netagent::v1::TuningIntent> ResolveIntent(
    const Playbook& p, const std::optional<netagent::v1::Finding>& finding,
    const std::map<std::string, KnobBounds>& knobs, std::string* why);

struct RunOptions {
  std::string run_id;  // also the change id on every host
  std::string owner;   // the run's token (random), kept with every host's change
  std::string caller;
  std::vector<netagent::v1::PlaybookTarget> targets;
  // What a round of calls to the fleet is expected to take, for the
  // default confirm_within (a run also measures it and refuses to start
  // waves a confirm_within cannot cover).
  absl::Duration per_call = absl::Seconds(2);
};

// Detects, and plans every matched host (changes nothing): the events a run
// would start with, then a plan per host (HOST_MATCHED events carry the
// intent; `plans` gets what PlanTuning says).
struct Preview {
  std::vector<netagent::v1::PlaybookEvent> events;
  std::map<size_t, absl::StatusOr<netagent::v1::TuningPlan>> plans;
  std::vector<std::vector<size_t>> waves;
  absl::Duration estimate;
  absl::Duration confirm_within;
};
Preview PreviewPlaybook(const Playbook& p, const RunOptions& o, Fleet& fleet);

// The whole run; returns how it ended (RUNNING when interrupted).
netagent::v1::PlaybookRunState RunPlaybook(const Playbook& p, const RunOptions& o, Fleet& fleet,
                                           const EventSink& sink);
// Goes on with a run that was interrupted or paused: the wave it was in is
// applied where it had not been, verified again, and the run continues.
// FAILED_PRECONDITION when it cannot (finished, the deadline passed, the
// playbook's text changed). A run stopped while confirming (every wave
// passed) is confirmed again even past the deadline: the hosts say which
// kept the change.
absl::StatusOr<netagent::v1::PlaybookRunState> ResumePlaybook(const Playbook& p,
                                                              const RunRecord& record, Fleet& fleet,
                                                              const EventSink& sink);
// Rolls back every host the run may have changed (confirmed ones too);
// `everyone`: every target of the run (its file lost events).
netagent::v1::PlaybookRunState AbortPlaybook(const RunRecord& record, Fleet& fleet,
                                             const EventSink& sink, bool everyone = false);

}  // namespace netagent::client
