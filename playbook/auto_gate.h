// When the agent may act on a `mode: auto` playbook by itself: at most N
// changes in any hour, none within the cool-down after a rollback, one at a
// time, and never again (until the agent restarts) once someone else changed
// a knob the playbook set: the agent reports drift and stops rather than
// fight. Pure: the agent tells it what happened and asks before acting.
#pragma once

#include <deque>
#include <optional>
#include <string>

#include "absl/time/time.h"

namespace netagent::playbook {

class AutoGate {
 public:
  AutoGate(uint32_t max_per_hour, absl::Duration cooldown)
      : max_per_hour_(max_per_hour), cooldown_(cooldown) {}

  // Why the playbook may not act at `now`; nullopt: it may.
  std::optional<std::string> Refusal(absl::Time now) const;

  void Started(absl::Time now);    // a change is being applied
  void Kept();                     // verified and confirmed
  void RolledBack(absl::Time now);  // did not verify: the cool-down starts
  void Unchanged();                // the plan had nothing to change
  void Stop(const std::string& why);  // for good (drift)

  bool busy() const { return busy_; }
  const std::string& stopped() const { return stopped_; }

 private:
  uint32_t max_per_hour_;
  absl::Duration cooldown_;
  std::deque<absl::Time> changes_;  // starts within the last hour
  absl::Time cooldown_until_ = absl::InfinitePast();
  bool busy_ = false;
  std::string stopped_;
};

}  // namespace netagent::playbook
