// The change journal: every change set the agent applied, its state, who asked
// and what happened to it since, plus the first-seen values that stand in for
// machine-dependent kernel defaults. Two files under the state directory:
//   journal.yaml      a snapshot, replaced atomically (write, fsync, rename,
//                     fsync the directory), so it is the old or the new one;
//   journal.yaml.log.N  what changed since that snapshot: one framed entry per
//                     record that changed (its whole new version), appended,
//                     so a save costs one small write whatever the history's
//                     length. Not synced: what the journal records does not
//                     outlive a reboot either (see AppendToLog); write order
//                     is what a crash of the agent needs.
// Loading reads the snapshot and replays the log over it. An entry cut short
// at the end of the log (a crash in the middle of an append) was never
// acknowledged and is dropped; damage anywhere else is damage. The log names
// the snapshot generation it follows, so a log left over from before the
// last compaction is recognized and ignored. After enough entries a save
// writes a new snapshot and starts an empty log (compaction).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace netagent::tuners {

// Change ids are typed by people and printed in history: letters, digits,
// '.', '_' and '-', 1 to 64 of them; INVALID_ARGUMENT naming change_id.
absl::Status ValidateChangeId(absl::string_view id);
// A change's owner token (ApplyTuningRequest.owner, expected_owner): empty,
// or what a change id may be; INVALID_ARGUMENT naming `field`.
absl::Status ValidateOwner(absl::string_view owner, absl::string_view field);

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
  std::string owner;  // the applier's token (a playbook run's); may be empty
  // Read from a record an agent wrote before owners existed (no `owner`
  // key): its owner is unknown, so no owner check applies to it.
  bool owner_unknown = false;
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

  // The snapshot file alone (tests; the manager reads the snapshot's text
  // itself to keep it as evidence when it does not load).
  std::string ToYaml() const;
  static absl::StatusOr<Journal> FromYaml(const std::string& text, const std::string& path);
  // Replays the logs that follow the snapshot FromYaml read
  // (<path>.log.<generation>, and the next ones a compaction started) over
  // it. DATA_LOSS when a log is damaged anywhere but the newest one's last
  // entry; `log_text` gets the logs' bytes either way, for the operator.
  absl::Status ReplayLog(std::string* log_text);
  std::string LogPath(uint64_t generation) const;

  // Compaction, in the background: when the log holds this many entries or
  // bytes, StartCompaction (under the caller's lock) moves appends to the
  // next log and returns the snapshot of everything so far, which the caller
  // writes outside its lock and reports with FinishCompaction. Saves never
  // wait for a snapshot to be synced; one that must rewrite the snapshot
  // itself (its log cannot be appended to) fails while a compaction is out.
  static constexpr size_t kCompactAfterEntries = 256;
  static constexpr size_t kCompactAfterBytes = 1 << 20;
  struct PendingSnapshot {
    std::string path, text;
    uint64_t generation = 0;
    absl::Status Write() const;
  };
  std::optional<PendingSnapshot> StartCompaction();
  void FinishCompaction(const PendingSnapshot& done, const absl::Status& written);

 private:
  // Writes a snapshot now (no log yet, or one that cannot be appended to).
  absl::Status Compact();
  absl::Status StartLog(uint64_t generation);
  absl::Status ReplayOneLog(uint64_t generation, bool last, std::string* log_text,
                            bool* torn_at_end);
  void RemoveLogsBefore(uint64_t generation) const;
  // What a record, the baseline and the journal's events are now, cheaply:
  // a change to any of them changes these.
  static uint64_t Fingerprint(const ChangeRecord& r);
  uint64_t BaselineFingerprint() const;
  uint64_t EventsFingerprint() const;
  // Marks everything as it is now as written.
  void MarkWritten();

  std::string path_;
  std::vector<ChangeRecord> records_;
  std::map<std::string, BaselineValue> baseline_;
  std::vector<ChangeEvent> events_;

  // The log appended to (its generation), how much it holds, and what of
  // the journal is written (fingerprints). `log_ready_` false: the next save
  // writes a snapshot (no log yet, or one that cannot be appended to).
  uint64_t generation_ = 0;
  bool log_ready_ = false;
  size_t log_entries_ = 0, log_bytes_ = 0;
  uint64_t log_inode_ = 0;   // the log is appended to only while it is this file
  bool compacting_ = false;  // a PendingSnapshot is out, not yet finished
  std::map<std::string, uint64_t> written_;
  uint64_t written_baseline_ = 0, written_events_ = 0;
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
