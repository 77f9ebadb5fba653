#include "agent/limits.h"

#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace netagent::agent {

absl::StatusOr<std::unique_ptr<LongCallLimiter::Slot>> LongCallLimiter::Acquire(
    const std::string& caller_key) {
  absl::MutexLock lock(&mu_);
  if (in_use_ >= total_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the agent already serves ", total_, " ", what_, "; try again later"));
  }
  int& mine = by_caller_[caller_key];
  if (mine >= per_caller_) {
    return absl::ResourceExhaustedError(absl::StrCat("at most ", per_caller_, " ", what_,
                                                     " at a time per caller (", caller_key, " has ",
                                                     mine, ")"));
  }
  ++mine;
  ++in_use_;
  return std::make_unique<Slot>(this, caller_key);
}

int LongCallLimiter::in_use() const {
  absl::MutexLock lock(&mu_);
  return in_use_;
}

uint64_t LongCallLimiter::finished() const {
  absl::MutexLock lock(&mu_);
  return finished_;
}

void LongCallLimiter::Release(const std::string& key) {
  absl::MutexLock lock(&mu_);
  --in_use_;
  ++finished_;
  auto it = by_caller_.find(key);
  if (it != by_caller_.end() && --it->second <= 0) by_caller_.erase(it);
}

int CpuShares::ForThisHost() {
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  return online > 1 ? static_cast<int>(online - 1) : 1;
}

void CpuShares::Take() {
  absl::MutexLock lock(&mu_);
  std::pair<const uint64_t*, uint64_t> turn(&granted_, next_++);
  mu_.Await(absl::Condition(
      +[](std::pair<const uint64_t*, uint64_t>* t) { return t->second < *t->first; }, &turn));
}

void CpuShares::Give() {
  absl::MutexLock lock(&mu_);
  ++granted_;
}

}  // namespace netagent::agent
