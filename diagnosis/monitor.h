// Continuous diagnosis: the catalog evaluated every interval over the two
// latest snapshots, findings tracked by rule so that a watcher hears when one
// opens, changes severity or clears, with the time it has been open since.
//
// FindingTracker is the pure part (evaluations in, events out); Monitor runs
// it on a thread and hands events to subscribers.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "diagnosis/rules.h"
#include "diagnosis/snapshot.h"

namespace netagent::diagnosis {

struct FindingEvent {
  enum class Kind { kOpened, kChanged, kCleared };
  Kind kind = Kind::kOpened;
  Finding finding;  // for kCleared: the last one seen
  absl::Time since;  // when it opened
  absl::Time at;     // this evaluation
  std::optional<Severity> previous;  // kChanged: the severity before
  bool initial = false;  // what was already open when the watch began
};

class FindingTracker {
 public:
  // A finding absent from this many evaluations in a row is cleared (one
  // quiet window inside an incident does not end it).
  explicit FindingTracker(int clear_after = 2) : clear_after_(clear_after) {}

  // The findings of one evaluation at `now`; what opened, changed or cleared.
  std::vector<FindingEvent> Update(const std::vector<Finding>& findings, absl::Time now);

  struct Open {
    Finding finding;
    absl::Time since;
    int missing = 0;  // evaluations in a row without it
  };
  const std::map<std::string, Open>& open() const { return open_; }

 private:
  const int clear_after_;
  std::map<std::string, Open> open_;  // by rule id
};

// The wait before the next evaluation: the interval, or longer when the last
// evaluation cost more than `budget` (a share of one CPU) of it: an
// evaluation that took 0.165 s of CPU under a 0.5 % budget waits 33 s. Never
// more than kMaxStretch intervals (findings must still open and clear; a
// host that costs more than that gets more than the budget).
inline constexpr int kMaxStretch = 6;
absl::Duration NextWait(absl::Duration interval, absl::Duration cost, double budget);

class Monitor {
 public:
  struct Options {
    absl::Duration interval = absl::Seconds(10);
    // The share of one CPU the evaluation may take (0: no limit): on a host
    // where a snapshot is expensive (many sockets) it evaluates less often.
    double cpu_budget = 0.005;
    // Tracked: findings at or above this severity (info comes and goes).
    Severity min_severity = Severity::kWarning;
    LevelOverrides overrides;
    // How the host is read (the agent shares CPUs there); keep_going is
    // asked during walks and may end a collection early.
    CollectOptions collect;
    // The snapshot source; unset: CollectSnapshot. Tests swap it.
    std::function<absl::StatusOr<Snapshot>(std::vector<std::string>*)> snapshot;
    std::function<absl::Time()> clock = [] { return absl::Now(); };
    size_t max_queue = 256;  // events a slow subscriber may fall behind by
    // Run first on the evaluation thread (the agent lowers its priority).
    std::function<void()> on_thread_start;
  };

  explicit Monitor(Options options);
  ~Monitor();  // stops the thread
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  // Evaluates once now (the thread calls it every interval; tests call it).
  void EvaluateOnce();

  class Subscription {
   public:
    // The next event, waiting at most `timeout`; nullopt on timeout or once
    // the monitor stops. A subscriber that fell more than max_queue events
    // behind lost the oldest: TakeLost says so once.
    std::optional<FindingEvent> Next(absl::Duration timeout);
    bool TakeLost();
    ~Subscription();

   private:
    friend class Monitor;
    Monitor* monitor_ = nullptr;
    std::deque<FindingEvent> queue_;  // guarded by the monitor's mutex
    bool lost_ = false;
  };
  // The findings open now come first (initial = true), then every event.
  std::unique_ptr<Subscription> Subscribe();

  // The wait after the last evaluation (the interval, or longer to keep
  // within the CPU budget).
  absl::Duration current_wait() const;

  // The time each open finding opened, by rule id.
  std::map<std::string, absl::Time> OpenSince() const;
  // The open finding of `rule` as the last evaluation saw it (its figures
  // and remediation are that evaluation's); nullopt when not open.
  std::optional<Finding> Current(const std::string& rule) const;
  void Stop();

 private:
  void Loop();
  void Publish(const std::vector<FindingEvent>& events);

  Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  FindingTracker tracker_;
  std::optional<Snapshot> last_;
  absl::Duration wait_;
  std::vector<Subscription*> subscribers_;
  std::thread thread_;
};

}  // namespace netagent::diagnosis
