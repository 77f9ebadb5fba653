// A finding: what is wrong, how we know (evidence), where (attribution), why
// it happens (the mechanism), what would fix it (a remediation the tuning API
// takes as is, and what it cannot fix), and what must change once it is fixed
// (verification).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "tuners/plan.h"

namespace netagent::diagnosis {

enum class Severity { kInfo = 1, kWarning = 2, kCritical = 3 };
absl::string_view SeverityName(Severity s);  // "info", "warning", "critical"
std::optional<Severity> SeverityFromName(absl::string_view name);

// One measured fact. `value` in `unit`; a counter over the window also has
// its delta (and `value` is then its rate per second).
struct Evidence {
  std::string name;  // "TcpExtListenOverflows", "listener 0.0.0.0:8080 accept queue"
  double value = 0;
  std::string unit;  // "/s", "%", "sockets", "entries"
  std::optional<int64_t> delta;
  std::string note;
};

// Which object the finding is about.
struct Attribution {
  std::string kind;    // "listener", "peer", "cpu", "device", "queue", "source", "table", "sysctl"
  std::string object;  // "0.0.0.0:8080", "10.0.0.2", "cpu 3", "eth0", "conntrack"
  std::string detail;  // "accept queue 17/16 in 9 of 11 samples; listen() backlog 16"
};

struct Remediation {
  std::string summary;  // one sentence: what the change does
  // What to apply with PlanTuning / ApplyTuning, as is; unset when there is
  // nothing the agent can change for it.
  std::optional<tuners::Intent> intent;
  // What the change cannot fix, and what would ("the application's listen()
  // backlog is the limit: raise it in the application").
  std::vector<std::string> limits;
};

// The measurement that must go to zero, or below a level, once fixed.
struct Verification {
  std::string measurement;  // "TcpExtListenOverflows per second"
  std::string condition;    // "0 over a 10 s window"
};

struct Finding {
  std::string rule;   // the rule's stable id
  std::string title;  // the rule's title
  Severity severity = Severity::kInfo;
  std::string summary;  // one sentence with the numbers
  std::vector<Evidence> evidence;
  std::vector<Attribution> attribution;
  std::string explanation;  // the mechanism
  Remediation remediation;
  Verification verification;
};

}  // namespace netagent::diagnosis
