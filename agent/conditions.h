// States of the agent itself (not of the network) an operator must know
// about or act on: the change journal set aside, bpffs mounted by the agent.
// GetHostInfo reports them. Parts of the agent that cannot include agent/
// (tuners, datapath) expose their state; the composition root registers a
// source that turns it into conditions, asked each time they are listed.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace netagent::agent {

enum class ConditionSeverity { kInfo = 1, kWarning = 2, kCritical = 3 };

struct Condition {
  std::string id;  // stable, "tuning-journal-quarantined"
  ConditionSeverity severity = ConditionSeverity::kInfo;
  std::string summary;
  std::string action;  // empty: nothing to do
  absl::Time since;
};

class Conditions {
 public:
  // Replaces a condition with the same id (keeping its `since`).
  void Set(Condition c);
  void Clear(const std::string& id);
  void AddSource(std::function<std::vector<Condition>()> source);
  // Set ones and every source's, most severe first, then by id.
  std::vector<Condition> List() const;

 private:
  mutable absl::Mutex mu_;
  std::vector<Condition> set_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<std::vector<Condition>()>> sources_ ABSL_GUARDED_BY(mu_);
};

}  // namespace netagent::agent
