// The agent's stop signal, and the interruptible waits of windowed calls and
// streams. On shutdown, streams end at once (UNAVAILABLE: the agent is going
// away); a windowed call still finishes if it can before the grace period ends.
#pragma once

#include <functional>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace netagent::agent {

class Lifecycle {
 public:
  void BeginShutdown(absl::Duration grace);
  bool stopping() const;

  enum class OnShutdown { kEndNow, kFinishWithinGrace };

  // Sleeps `d`. Returns CANCELLED when `cancelled()` turns true, UNAVAILABLE
  // when the agent stops (per `mode`), OK otherwise.
  absl::Status Sleep(absl::Duration d, const std::function<bool()>& cancelled, OnShutdown mode);

 private:
  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
};

}  // namespace netagent::agent
