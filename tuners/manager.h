// The tuning state machine of one agent: plans from intents, applies them as
// journaled change sets, confirms or rolls them back, expires unconfirmed
// ones at their deadline (also across restarts: the journal is reconciled at
// start), and watches the knobs it set for drift, which it reports and never
// fights. Every mutation is serialized by one lock; a background thread
// wakes for deadlines and drift checks. Every time it judges (deadlines,
// event times, drift checks) comes from one injectable clock, so tests move
// time instead of sleeping.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tuners/journal.h"
#include "tuners/plan.h"
#include "tuners/system.h"

namespace netagent::tuners {

struct Tunable {
  std::string knob;
  std::string value;  // empty when absent
  bool exists = false;
  bool writable = false;
  std::string kernel_default;
  std::string default_source;  // "kernel", "first seen 2026-11-22T..." or empty
  std::string floor, ceiling;
  double max_step = 0;
  bool per_netns = true;
  std::string group;
  std::string help;
  std::string set_by;  // id of the active change that set it
  bool drifted = false;
};

// The change journal's health, for GetJournalStatus and the agent's
// conditions (tuners/ knows neither).
struct JournalHealth {
  std::string path;
  // Set while the journal found at start is set aside: it did not load, so
  // the agent no longer knows the changes it recorded and can neither roll
  // them back nor expire them. Applies are refused until an operator
  // acknowledges (AcknowledgeJournal); nothing is written meanwhile.
  struct Quarantine {
    std::string moved_to;  // empty: it could not be moved (move_error says why)
    std::string move_error;
    std::string error;  // why it did not load
    absl::Time since;
    Salvage salvage;  // what it held, as far as it can be read
  };
  std::optional<Quarantine> quarantine;
  // Empty while the file holds what the agent knows. Otherwise the last
  // write failed: the host is as the agent reports it and the file is
  // behind (an agent restarted now would act on the older record). Writes
  // are retried at every deadline pass and drift check.
  std::string save_error;
  absl::Time save_failing_since;
  std::vector<ChangeEvent> events;  // the journal's own history (acknowledgements)
};

// One account of a quarantine for the log, refusals and the agent's
// condition: what became of the file and what may be left on the host.
std::string DescribeQuarantine(const std::string& path, const JournalHealth::Quarantine& q);

// What a confirm or rollback did. `journal` not OK: the host is as `change`
// says, but the journal could not record it (the agent keeps trying).
struct ChangeOutcome {
  ChangeRecord change;
  absl::Status journal;
};

class TuningManager {
 public:
  struct Options {
    std::string state_dir;  // the journal lives in <state_dir>/tuning/journal.yaml
    SystemPaths paths;
    std::unique_ptr<KnobIo> io;  // default: SystemKnobs(paths)
    absl::Duration drift_interval = absl::Seconds(30);
    absl::Duration max_confirm_window = absl::Hours(24);
    // First wait before an expiry that could not restore everything is
    // retried; it doubles each time, and the fifth failure gives up.
    absl::Duration expiry_retry = absl::Seconds(10);
    // Wall time for deadlines, events and drift checks. Default: absl::Now.
    // A test clock need not move on its own: the thread waits at most
    // kMaxSleep at a time, and tests call Tick() after moving it.
    std::function<absl::Time()> clock;
    // Default: TakeSnapshot of the running kernel (tests give their own).
    std::function<absl::StatusOr<HostSnapshot>(const SnapshotRequest&,
                                               const std::map<std::string, std::string>&)>
        snapshot;
  };

  // Loads the journal, records first-seen values, reconciles (undoes changes
  // interrupted mid-apply, expires overdue ones, checks drift) and starts the
  // deadline thread. A leftover `journal.yaml.tmp` (a write cut short before
  // its rename, so nothing acted on it) is removed. A journal that does not
  // load is quarantined (see JournalHealth), not an error: the agent must
  // keep serving everything else. Errors: the state directory cannot be
  // created, the journal cannot be read (EACCES, EIO).
  static absl::StatusOr<std::unique_ptr<TuningManager>> Start(Options options);
  ~TuningManager();

  // Plans stay allowed while the journal is quarantined (they change
  // nothing); the plan then warns that applying is refused.
  absl::StatusOr<Plan> PlanFor(const Intent& intent);

  struct ApplyResult {
    Plan plan;
    std::optional<ChangeRecord> change;  // absent when there was nothing to change
  };
  // `confirm_within` unset: the change is confirmed at once. `expected_digest`
  // non-empty: refused (ABORTED) unless the fresh plan has that digest.
  // `change_id` empty: a fresh one. `owner` is kept with the change (see
  // Confirm and Rollback).
  absl::StatusOr<ApplyResult> Apply(const Intent& intent, const std::string& caller,
                                    std::optional<absl::Duration> confirm_within,
                                    const std::string& expected_digest,
                                    const std::string& change_id = "",
                                    const std::string& owner = "");
  // On time is judged by arrival: a confirm that arrived before the deadline
  // wins even when the deadline pass holds the lock at that moment. A
  // confirm the journal cannot record still holds in this agent (it will not
  // roll the change back) and the outcome says it was not saved.
  // `expected_owner` non-empty: a change of this id with another owner is
  // NOT_FOUND, as if absent (so for Rollback).
  absl::StatusOr<ChangeOutcome> Confirm(const std::string& id, const std::string& caller,
                                        const std::string& expected_owner = "");
  // Restores the values the change replaced. A knob someone else changed
  // since (drift) is not overwritten unless `force`: FAILED_PRECONDITION
  // naming it, and nothing is written. A restore the journal cannot record
  // is still a restore: OK, and the outcome says it was not saved.
  absl::StatusOr<ChangeOutcome> Rollback(const std::string& id, const std::string& caller,
                                         bool force, const std::string& expected_owner = "");
  // Newest first.
  std::vector<ChangeRecord> List(size_t limit, bool active_only);
  absl::StatusOr<std::vector<Tunable>> Tunables(const std::string& device);
  JournalHealth JournalStatus();
  // Ends a quarantine once an operator has checked what the file set aside
  // may have left on the host: a fresh journal whose first event records
  // who, when and which file; first-seen values are taken again; applies
  // are allowed again. `quarantined_path` non-empty: refused
  // (INVALID_ARGUMENT) unless it names the file set aside (path or base
  // name). FAILED_PRECONDITION when there is nothing to acknowledge or the
  // fresh journal cannot be written. Returns what was acknowledged.
  absl::StatusOr<JournalHealth::Quarantine> AcknowledgeJournal(const std::string& caller,
                                                               const std::string& quarantined_path);

  // Runs the deadline and drift pass now (the thread does it on its own).
  void Tick();

  // The longest the deadline thread sleeps before it looks at the clock
  // again: a wall clock that steps, or a test clock, is noticed this late.
  static constexpr absl::Duration kMaxSleep = absl::Seconds(1);

 private:
  explicit TuningManager(Options options, Journal journal, std::string journal_path);

  // Under mu_.
  void RecordFirstSeenLocked(absl::Time now);
  // FAILED_PRECONDITION for an apply while quarantined, or for a change id
  // the quarantined journal may have held.
  absl::Status QuarantineRefusalLocked() const;
  absl::Status UnknownChangeLocked(const std::string& id) const;
  void ReconcileLocked();
  void ExpireLocked(ChangeRecord& r, absl::Time now, const std::string& why);
  // True when it recorded new drift (or drift that cleared).
  bool CheckDriftLocked(absl::Time now);
  struct Restore {
    std::vector<std::string> failed;   // could not be put back
    std::vector<std::string> drifted;  // someone else's value, left alone
    std::vector<std::string> gone;     // the knob no longer exists
    std::string Describe() const;
  };
  // Puts the change's old values back, best effort. FAILED_PRECONDITION
  // (nothing written) when `refuse_drift` and a knob holds a third value;
  // `force` overwrites such values instead.
  absl::StatusOr<Restore> RestoreLocked(ChangeRecord& r, bool force, bool refuse_drift);
  // The newest active change that set `knob`, if any.
  const ChangeRecord* OwnerLocked(const std::string& knob) const;
  // Writes the journal; a failure is remembered for JournalStatus() and logged
  // once, and the next deadline pass or drift check tries again.
  absl::Status SaveLocked();
  std::map<std::string, std::string> BaselineLocked() const;
  // When the thread must next run Tick().
  absl::Time NextWakeLocked();
  // A confirm of `id` arrived before `deadline` and waits for the lock.
  bool ConfirmArrivedBefore(const std::string& id, absl::Time deadline);
  void Loop();
  absl::Time Now() const { return options_.clock(); }

  Options options_;
  const std::string journal_path_;
  std::mutex mu_;
  std::condition_variable cv_;
  Journal journal_;
  std::optional<JournalHealth::Quarantine> quarantine_;
  std::string save_error_;  // see JournalHealth
  absl::Time save_failing_since_;
  bool stop_ = false;
  absl::Time next_drift_check_;
  std::map<std::string, absl::Time> retry_at_;  // failed expiries, retried later
  std::map<std::string, int> expiry_attempts_;
  // Confirms stamped with their arrival, until they hold mu_ and are done.
  // Taken alone or under mu_, never the other way round.
  std::mutex arrivals_mu_;
  std::multimap<std::string, absl::Time> confirms_arrived_;
  std::thread thread_;
};

}  // namespace netagent::tuners
