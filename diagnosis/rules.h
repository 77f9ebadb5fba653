// The rule catalog, as data: each rule has a stable id, a title, what it
// measures, the levels of its metrics (warning and critical thresholds, from
// published anchors; overridable in the agent's config), the mechanism it
// explains, and a pure evaluation over a snapshot pair. Diagnose runs them.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "diagnosis/finding.h"
#include "diagnosis/snapshot.h"

namespace netagent::diagnosis {

// A metric's thresholds: at or above `warning` (or `critical`) the finding
// has that severity. A rule may report a non-zero metric below `warning` as
// info.
struct Level {
  std::string metric;  // "overflows_per_second"
  double warning = 0;
  double critical = 0;
  std::string unit;  // "/s", "%"
  std::string what;  // what the metric is, for --explain
};

// Thresholds in force for one evaluation: a rule's levels with the config's
// overrides (rule id -> metric -> level).
using LevelOverrides = std::map<std::string, std::map<std::string, Level>>;

// A read-only view of a snapshot pair: counter deltas and rates, sysctls as
// numbers. Everything a rule needs besides its own objects.
class Window {
 public:
  explicit Window(const SnapshotPair& pair);
  const SnapshotPair& pair() const { return pair_; }
  double seconds() const { return seconds_; }
  // A counter's change over the window ("TcpExtListenOverflows"); unset
  // when it is in neither or one snapshot only.
  std::optional<int64_t> Delta(absl::string_view counter) const;
  // Delta per second; 0 when unset.
  double Rate(absl::string_view counter) const;
  // A counter's (or gauge's) value at the end of the window.
  std::optional<int64_t> Value(absl::string_view counter) const;
  std::optional<std::string> Sysctl(absl::string_view name) const;
  // The sysctl's first (or `index`th) word as a number.
  std::optional<int64_t> SysctlInt(absl::string_view name, size_t index = 0) const;

  using DropDeltas = std::map<std::pair<std::string, std::string>, int64_t>;
  // Kernel drops over the window by (reason, device); unset unless the
  // kernel-drop collector ran through the whole window (the same attachment
  // in both snapshots).
  const std::optional<DropDeltas>& Drops() const { return drops_; }
  // One reason's drops over the window on every device; unset as above.
  std::optional<int64_t> Drops(absl::string_view reason) const;
  // Drops the collector could not count over the window (its key table was
  // full): the counts above are then short.
  uint64_t DropsUncounted() const { return drops_uncounted_; }

  // Whether a rule evaluated earlier over this window found something
  // (Diagnose runs the catalog in order and marks them).
  bool Fired(absl::string_view rule) const { return fired_.count(rule) > 0; }
  void MarkFired(const std::string& rule) { fired_.insert(rule); }

 private:
  const SnapshotPair& pair_;
  double seconds_ = 0;
  std::map<std::string, int64_t, std::less<>> before_, after_;
  std::optional<DropDeltas> drops_;
  uint64_t drops_uncounted_ = 0;
  std::set<std::string, std::less<>> fired_;
};

struct RuleSpec {
  std::string id;
  std::string title;
  std::string measures;     // what it reads
  std::string explanation;  // the mechanism, as in the reference texts
  std::string sources;      // where the thresholds come from
  std::vector<Level> levels;
  // Unset when nothing is wrong; `levels` is the rule's levels with overrides.
  std::function<std::optional<Finding>(const Window&, const std::vector<Level>&)> evaluate;
};

const std::vector<RuleSpec>& Catalog();
const RuleSpec* FindRule(absl::string_view id);

// The severity `value` reaches on `level` (unset: below warning).
std::optional<Severity> Grade(double value, const Level& level);
// The named level of `levels` (the rule's own; a missing name is a bug).
const Level& LevelOf(const std::vector<Level>& levels, absl::string_view metric);

struct DiagnoseOptions {
  std::vector<std::string> rules;  // empty: all
  Severity min_severity = Severity::kInfo;
  LevelOverrides overrides;
};

// INVALID_ARGUMENT naming the field ("rules", "thresholds.<rule>.<metric>",
// after `prefix.` when given) for an unknown rule id, an override of an
// unknown rule or metric, or a warning above its critical.
absl::Status ValidateOptions(const DiagnoseOptions& options, absl::string_view prefix = "");

// Every rule (or those asked for) over the pair; findings at or above the
// minimum severity, the most severe first.
std::vector<Finding> Diagnose(const SnapshotPair& pair, const DiagnoseOptions& options);

}  // namespace netagent::diagnosis
