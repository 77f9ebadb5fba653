// The change journal: every change set the agent applied, its state, who asked
// and what happened to it since, plus the first-seen values that stand in for
// machine-dependent kernel defaults. One YAML file under the state directory,
// replaced atomically (write, fsync, rename, fsync the directory) on every
// update, so a crash leaves either the old or the new journal, never half.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace netagent::tuners {

enum class ChangeState {
  kApplying,        // written to the journal before the first knob; a crash here is undone at start
  kPending,         // applied, waiting for ConfirmChange before its deadline
  kConfirmed,       // applied for good (until rolled back)
  kRolledBack,      // restored by RollbackChange, or at start after a crash mid-apply
  kExpired,         // restored by the agent because no confirmation came in time
  kFailed,          // a write failed; everything already written was restored
  kRollbackFailed,  // a restore failed: values may be mixed, see the events
};
absl::string_view ChangeStateName(ChangeState s);
std::optional<ChangeState> ChangeStateFromName(absl::string_view name);
bool IsActive(ChangeState s);  // its values are (meant to be) in effect

struct KnobChange {
  std::string knob;
  std::string old_value;
  std::string new_value;
  std::string reason;
};

struct ChangeEvent {
  absl::Time at;
  std::string what;
};

struct Drift {
  std::string knob;
  std::string expected;
  std::string observed;
  absl::Time since;
};

struct ChangeRecord {
  std::string id;
  absl::Time created;
  std::string caller;
  std::string intent;
  std::string digest;
  ChangeState state = ChangeState::kApplying;
  std::optional<absl::Time> confirm_deadline;
  std::vector<KnobChange> knobs;
  std::vector<ChangeEvent> events;
  std::vector<Drift> drift;  // knobs whose value someone else changed, now

  // Appends an event; a record keeps its first 20 and last 180 events (drift
  // that comes and goes, say under irqbalance, must not grow it forever).
  void Event(absl::Time at, std::string what);
};

struct BaselineValue {
  std::string value;
  absl::Time seen;
};

class Journal {
 public:
  // A fresh journal that Save() writes to `path`.
  static Journal Empty(const std::string& path);
  // Loads `path` (absent: an empty journal). A file that does not load is
  // DATA_LOSS saying why (empty, binary, cut short, an unknown version, a bad
  // state or time): the agent must not forget changes it may have to undo.
  // Other errors are the read's own (EACCES, EIO).
  static absl::StatusOr<Journal> Load(const std::string& path);

  absl::Status Save();

  std::vector<ChangeRecord>& records() { return records_; }
  const std::vector<ChangeRecord>& records() const { return records_; }
  ChangeRecord* Find(absl::string_view id);
  std::map<std::string, BaselineValue>& baseline() { return baseline_; }
  // The journal's own history (a fresh start after a quarantine, and who
  // acknowledged it), apart from any change.
  std::vector<ChangeEvent>& events() { return events_; }
  const std::vector<ChangeEvent>& events() const { return events_; }
  const std::string& path() const { return path_; }

  // Drops the oldest inactive records beyond `keep`.
  void Prune(size_t keep);

  // Serialization, for tests.
  std::string ToYaml() const;
  static absl::StatusOr<Journal> FromYaml(const std::string& text, const std::string& path);

 private:
  std::string path_;
  std::vector<ChangeRecord> records_;
  std::map<std::string, BaselineValue> baseline_;
  std::vector<ChangeEvent> events_;
};

// What a journal that does not load can still tell the operator who must
// check the host: the changes it names and their knobs, read line by line
// from the layout ToYaml writes, since the file may be cut anywhere or hold
// garbage a YAML parser rejects as a whole.
struct SalvagedChange {
  std::string id;
  std::optional<ChangeState> state;  // unset: missing or unreadable
  std::optional<absl::Time> confirm_deadline;
  std::vector<KnobChange> knobs;
};
struct Salvage {
  size_t changes_read = 0;  // every change named, whatever its state
  // Those whose values may be on the host: applying, pending, confirmed,
  // rollback_failed, or a state that could not be read.
  std::vector<SalvagedChange> possibly_in_effect;
};
Salvage SalvageJournal(absl::string_view text);
// One line for logs, refusals and the agent's condition.
std::string DescribeSalvage(const Salvage& s);

// Renames a journal that does not load to `<path>.corrupt-<UTC time>` (never
// over an earlier one) and makes the rename durable; returns the new path.
absl::StatusOr<std::string> QuarantineJournalFile(const std::string& path, absl::Time now);

}  // namespace netagent::tuners
