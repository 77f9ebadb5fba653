#include "agent/conditions.h"

#include <algorithm>

namespace netagent::agent {

void Conditions::Set(Condition c) {
  absl::MutexLock l(&mu_);
  for (Condition& old : set_) {
    if (old.id == c.id) {
      c.since = old.since;
      old = std::move(c);
      return;
    }
  }
  set_.push_back(std::move(c));
}

void Conditions::Clear(const std::string& id) {
  absl::MutexLock l(&mu_);
  set_.erase(
      std::remove_if(set_.begin(), set_.end(), [&](const Condition& c) { return c.id == id; }),
      set_.end());
}

void Conditions::AddSource(std::function<std::vector<Condition>()> source) {
  absl::MutexLock l(&mu_);
  sources_.push_back(std::move(source));
}

std::vector<Condition> Conditions::List() const {
  std::vector<Condition> out;
  std::vector<std::function<std::vector<Condition>()>> sources;
  {
    absl::MutexLock l(&mu_);
    out = set_;
    sources = sources_;
  }
  // Sources take their own locks: asked outside ours.
  for (const auto& source : sources) {
    std::vector<Condition> more = source();
    out.insert(out.end(), more.begin(), more.end());
  }
  std::sort(out.begin(), out.end(), [](const Condition& a, const Condition& b) {
    if (a.severity != b.severity) return a.severity > b.severity;
    return a.id < b.id;
  });
  return out;
}

}  // namespace netagent::agent
