#include "agent/lifecycle.h"

namespace netagent::agent {
namespace {

// How often a sleeping call looks at the caller's cancellation.
constexpr absl::Duration kPoll = absl::Milliseconds(50);

}  // namespace

void Lifecycle::BeginShutdown(absl::Duration grace) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  stopping_ = true;
  deadline_ = absl::Now() + grace;
  changed_.SignalAll();
}

bool Lifecycle::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

absl::Status Lifecycle::Sleep(absl::Duration d, const std::function<bool()>& cancelled,
                              OnShutdown mode) {
  const absl::Time end = absl::Now() + d;
  absl::MutexLock lock(&mu_);
  for (;;) {
    if (stopping_ && (mode == OnShutdown::kEndNow || end > deadline_)) {
      return absl::UnavailableError("agent is shutting down");
    }
    const absl::Time now = absl::Now();
    if (now >= end) return absl::OkStatus();
    if (cancelled && cancelled()) return absl::CancelledError("caller cancelled");
    changed_.WaitWithTimeout(&mu_, std::min(end - now, kPoll));
  }
}

}  // namespace netagent::agent
