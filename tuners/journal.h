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
  // Loads `path` (absent: an empty journal). A file that does not parse is
  // an error: the agent must not forget changes it may have to undo.
  static absl::StatusOr<Journal> Load(const std::string& path);

  absl::Status Save();

  std::vector<ChangeRecord>& records() { return records_; }
  const std::vector<ChangeRecord>& records() const { return records_; }
  ChangeRecord* Find(absl::string_view id);
  std::map<std::string, BaselineValue>& baseline() { return baseline_; }

  // Drops the oldest inactive records beyond `keep`.
  void Prune(size_t keep);

  // Serialization, for tests.
  std::string ToYaml() const;
  static absl::StatusOr<Journal> FromYaml(const std::string& text, const std::string& path);

 private:
  std::string path_;
  std::vector<ChangeRecord> records_;
  std::map<std::string, BaselineValue> baseline_;
};

}  // namespace netagent::tuners
