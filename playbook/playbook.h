// Remediation playbooks: the YAML format (apiVersion netagent/v1, kind
// Playbook), validated with errors that name the file, line and field;
// the value expressions ("max(current * 2, 4096)") and their guards; the
// wave arithmetic; and the verdict of a verification. All pure: the runner
// (client/playbook_run.h) does the I/O.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "netagent/v1/common.pb.h"
#include "netagent/v1/playbook.pb.h"
#include "netagent/v1/tuning.pb.h"

namespace netagent::playbook {

// A wave size, cumulative: after this wave, `count` hosts, or `percent` of
// the matched hosts (rounded up), have the change.
struct WaveStep {
  uint32_t count = 0;
  double percent = 0;  // used when > 0
};

// A failure allowance: a count, or a percent of the hosts it is about.
struct FailureBudget {
  uint32_t count = 0;
  double percent = -1;  // used when >= 0
  // How many failures of `hosts` are allowed.
  uint32_t Allowed(size_t hosts) const;
};

// A condition on a counter's rate over the verification window (name as
// GetCounters gives it: "TcpExtListenOverflows").
struct CounterCondition {
  std::string counter;
  std::optional<double> rate_below;  // success: the rate is below this
  // success: the rate is at least this factor of the baseline rate (a
  // change that should raise a rate: bytes sent by flows that waited on
  // their buffers)
  std::optional<double> better_than_baseline;
  // failure: the rate is more than this factor of the baseline rate and
  // above `rate_above` (so that 0 -> 0.1/s is not a failure).
  std::optional<double> worse_than_baseline;
  double rate_above = 0;
  int line = 0;
};

struct Guards {
  std::optional<double> max_step;  // the new value within [current / s, current * s]
  std::optional<double> floor;
  std::optional<double> ceiling;
};

struct Playbook {
  std::string name;
  std::string description;
  std::string file;
  std::string digest;  // sha256 of the text
  // match
  std::string finding;  // empty: every target (a manual playbook)
  netagent::v1::Severity min_severity = netagent::v1::SEVERITY_WARNING;
  absl::Duration detect_window = absl::Seconds(10);
  std::vector<std::string> target_globs;  // empty: every target
  // remediation: the finding's own, or a literal intent (values may be
  // expressions)
  bool from_finding = false;
  // from_finding: the kinds of the finding's intent this playbook applies
  // (TuningIntent's field names: limits, datapath_block, ...); a host whose
  // finding proposes another kind is left alone. Empty: any.
  std::vector<std::string> kinds;
  std::optional<netagent::v1::TuningIntent> intent;
  Guards guards;
  // rollout
  std::vector<WaveStep> waves;
  FailureBudget max_failures;        // per wave
  FailureBudget max_failures_total;  // over the run
  absl::Duration pause = absl::ZeroDuration();
  std::optional<absl::Duration> confirm_within;  // unset: from the estimate
  // verify
  absl::Duration verify_window = absl::Seconds(10);
  absl::Duration settle = absl::ZeroDuration();  // wait after applying
  bool finding_clears = false;
  std::vector<CounterCondition> success;
  std::vector<CounterCondition> failure;
  bool pause_on_inconclusive = false;
  bool rollback_all = true;  // on_failure: rollback_all | rollback_failed
  // mode: auto: the agent runs it on its own host when the finding opens
  // (remediation.from_finding only), at most `auto_max_per_hour` changes an
  // hour, and not within `auto_cooldown` of a rollback.
  bool auto_mode = false;
  uint32_t auto_max_per_hour = 1;
  absl::Duration auto_cooldown = absl::Hours(1);
};

// Parses and validates a playbook. Errors: "FILE:LINE: FIELD: what".
absl::StatusOr<Playbook> ParsePlaybook(absl::string_view text, const std::string& file);

// Counter names the playbook's conditions read.
std::vector<std::string> PlaybookCounters(const Playbook& p);

// Cumulative wave steps over `hosts` matched hosts -> the hosts in each wave
// (sizes). Percent rounds up; a step that adds nothing is dropped; after the
// last step, if hosts remain, more waves of the last wave's size follow.
std::vector<size_t> WaveSizes(const std::vector<WaveStep>& steps, size_t hosts);

// The longest the run should take: detection, then per wave the settle,
// the verification window and (between waves) the pause, with `per_call`
// for each round of calls.
absl::Duration EstimateRunTime(const Playbook& p, size_t waves, absl::Duration per_call);
// What `waves_left` waves still take from the start of the next one (its
// pause already waited): apply, settle, verify each, the pauses between
// them, and the confirmation.
absl::Duration RestOfRun(const Playbook& p, size_t waves_left, absl::Duration per_call);
// confirm_within when the playbook does not say: 1.5x the estimate plus 5
// minutes, at most 24 h.
absl::Duration DefaultConfirmWithin(absl::Duration estimate);

// Value expressions: numbers (with K, M, G as powers of 1024), `current`
// (the knob's value on the host), + - * /, parentheses, min(...), max(...).
// A setting value is an expression when it names `current` or a function.
bool IsExpression(absl::string_view value);
// INVALID_ARGUMENT with the position when it does not parse.
absl::Status CheckExpression(absl::string_view expr);
absl::StatusOr<double> EvaluateExpression(absl::string_view expr, double current);

// What a knob allows, as GetTunables says (empty strings: no bound).
struct KnobBounds {
  std::string value;  // current
  std::string floor, ceiling;
  double max_step = 0;  // 0: none
};
// The value of one expression setting on one host: the expression over the
// current value, within the playbook's guards and the knob's own bounds.
// `why` says which bound held it back.
absl::StatusOr<std::string> ResolveSetting(absl::string_view expr, const Guards& guards,
                                           const KnobBounds& knob, std::string* why);

// The intent kinds a playbook may name: TuningIntent's oneof field names.
const std::set<std::string>& IntentKinds();
// The kind of `intent` ("limits", "datapath_block"; empty when unset).
std::string IntentKind(const netagent::v1::TuningIntent& intent);
// Why an auto playbook never applies a fast-path block.
inline constexpr char kNoAutoBlock[] =
    "mode: auto never applies a fast-path block: the networks a SYN flood names can be chosen "
    "by whoever spoofs it, and a block that then verifies would stay; run it from netctl";
// FAILED_PRECONDITION saying what the finding proposes when `p.kinds` does
// not admit `intent`'s kind, or when an auto playbook would block.
absl::Status CheckRemediationKind(const Playbook& p, const netagent::v1::TuningIntent& intent);

// The knob names in `intent`'s settings whose values are expressions.
std::vector<std::string> ExpressionKnobs(const netagent::v1::TuningIntent& intent);

// What a host's figures say about the change: failure when a failure
// condition holds (or, without failure conditions, when a success condition
// does not); success when every success condition holds; inconclusive
// otherwise, or when a figure could not be measured.
struct HostFigures {
  bool finding_open = false;  // the playbook's finding at or above its severity
  std::map<std::string, double> rates;
};
netagent::v1::PlaybookVerdict Judge(const Playbook& p, const HostFigures& now,
                                    const HostFigures* baseline,
                                    std::vector<netagent::v1::PlaybookMeasurement>* figures);

}  // namespace netagent::playbook
