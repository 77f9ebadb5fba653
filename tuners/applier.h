// Writing a set of knob values as one unit: each knob is checked to still hold
// the value the plan started from, written, read back and compared. When any
// step fails, every knob already written is put back (in reverse order, each
// verified) before the call returns, so the host ends as it began.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tuners/system.h"

namespace netagent::tuners {

struct Step {
  std::string knob;
  std::string from;  // expected current value (canonical form)
  std::string to;
};

struct ApplyReport {
  size_t written = 0;                       // steps completed before a failure (all on success)
  size_t restored = 0;                      // of those, put back after a failure
  std::vector<std::string> restore_errors;  // a restore that failed: the host is mixed
};

// OK, or the first failure (ABORTED when a knob no longer holds `from`,
// DATA_LOSS when the kernel kept another value than the one written, or the
// write's own error) with the restore outcome appended to its message.
absl::Status ApplySteps(KnobIo& io, const std::vector<Step>& steps, ApplyReport* report);

// Putting values back (rollback, expiry): every step is tried; a step that
// fails is recorded and the others go on, and nothing already restored is
// undone. Returns the knobs that could not be restored, with why.
std::vector<std::string> RestoreSteps(KnobIo& io, const std::vector<Step>& steps);

}  // namespace netagent::tuners
