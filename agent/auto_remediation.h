// Playbooks marked `mode: auto`, run by the agent on its own host (opt-in:
// netagentd --playbook FILE). When the continuous diagnosis opens a
// playbook's finding (or raises its severity), the agent applies that
// finding's own remediation as a commit-confirmed change (caller
// "auto-playbook:NAME", id "auto-NAME-TIME"), waits the playbook's settle
// time, measures over its verification window and judges it as netctl
// would: it confirms what verified and rolls back what did not, which starts
// the cool-down. AutoGate bounds how often; drift on a knob a kept change
// set stops the playbook (reported as a host condition) rather than fight.
// One action at a time, on one thread; a change left pending by a stop or a
// crash rolls back at its deadline like any other.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/context.h"
#include "diagnosis/monitor.h"
#include "playbook/auto_gate.h"
#include "playbook/playbook.h"
#include "tuners/manager.h"

namespace netagent::agent {

class AutoRemediation {
 public:
  // Starts the thread. `monitor` and `tuning` outlive this object.
  AutoRemediation(std::vector<playbook::Playbook> playbooks, diagnosis::Monitor* monitor,
                  tuners::TuningManager* tuning, diagnosis::LevelOverrides overrides,
                  AgentContext& ctx);
  ~AutoRemediation();
  void Stop();

 private:
  struct Entry {
    playbook::Playbook playbook;
    playbook::AutoGate gate;
    std::vector<std::string> kept;  // ids of confirmed changes, to watch for drift
    std::string last_refusal;       // logged once per reason
    // The playbook's finding while it is open and not yet dealt with: acted
    // on as soon as the gate lets it (a rollback leaves it armed, so it is
    // tried again after the cool-down; a kept change disarms it until the
    // finding opens again).
    std::optional<diagnosis::Finding> armed;
  };
  void Loop();
  void Handle(Entry& e, const diagnosis::Finding& finding);
  void CheckDrift(Entry& e);
  // True when change `id` is no longer pending (rolled back by an operator,
  // or expired) and the playbook was told so (stopped, or cooling down).
  bool UndoneMeanwhile(Entry& e, const std::string& id);
  void StopPlaybook(Entry& e, const std::string& why);
  // What the journal says this playbook did before the agent started: its
  // changes of the last hour count against the rate, a rollback starts the
  // cool-down, and its confirmed changes are watched for drift.
  void Restore(Entry& e);
  // Logs once per distinct line (a loop that retries must not flood the log).
  void Note(Entry& e, const std::string& line);
  // The playbook's figures over `window`: its finding, its counters' rates.
  absl::StatusOr<playbook::HostFigures> Measure(const playbook::Playbook& p, absl::Duration window);

  std::vector<Entry> entries_;
  diagnosis::Monitor* monitor_;
  tuners::TuningManager* tuning_;
  diagnosis::LevelOverrides overrides_;
  AgentContext& ctx_;
  std::atomic<bool> stop_{false};
  absl::Time last_drift_check_ = absl::InfinitePast();
  std::thread thread_;
};

}  // namespace netagent::agent
