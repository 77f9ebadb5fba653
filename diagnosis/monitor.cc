#include "diagnosis/monitor.h"

#include <time.h>

#include <algorithm>

namespace netagent::diagnosis {

std::vector<FindingEvent> FindingTracker::Update(const std::vector<Finding>& findings,
                                                 absl::Time now) {
  std::vector<FindingEvent> events;
  std::map<std::string, const Finding*> seen;
  for (const Finding& f : findings) seen.emplace(f.rule, &f);
  for (const auto& [rule, f] : seen) {
    auto it = open_.find(rule);
    if (it == open_.end()) {
      open_[rule] = {*f, now, 0};
      events.push_back({FindingEvent::Kind::kOpened, *f, now, now, std::nullopt, false});
      continue;
    }
    Open& o = it->second;
    const Severity before = o.finding.severity;
    o.finding = *f;
    o.missing = 0;
    if (f->severity != before) {
      events.push_back({FindingEvent::Kind::kChanged, *f, o.since, now, before, false});
    }
  }
  for (auto it = open_.begin(); it != open_.end();) {
    if (seen.count(it->first) || ++it->second.missing < clear_after_) {
      ++it;
      continue;
    }
    events.push_back({FindingEvent::Kind::kCleared, it->second.finding, it->second.since, now,
                      std::nullopt, false});
    it = open_.erase(it);
  }
  return events;
}

absl::Duration NextWait(absl::Duration interval, absl::Duration cost, double budget) {
  if (!(budget > 0) || cost <= absl::ZeroDuration()) return interval;
  return std::clamp(cost / budget, interval, interval * kMaxStretch);
}

namespace {
absl::Duration ThreadCpu() {
  timespec ts;
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return absl::DurationFromTimespec(ts);
}
}  // namespace

absl::Duration Monitor::current_wait() const {
  std::lock_guard<std::mutex> lk(mu_);
  return wait_;
}

Monitor::Monitor(Options options) : options_(std::move(options)), wait_(options_.interval) {
  if (!options_.snapshot) {
    options_.snapshot = [this](std::vector<std::string>* unavailable) {
      return CollectSnapshot(options_.collect, unavailable);
    };
  }
  if (options_.interval > absl::ZeroDuration()) thread_ = std::thread([this] { Loop(); });
}

Monitor::~Monitor() { Stop(); }

void Monitor::Stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Monitor::Loop() {
  if (options_.on_thread_start) options_.on_thread_start();
  for (;;) {
    // The thread's own CPU: the kernel's work for its socket walks included.
    const absl::Duration t0 = ThreadCpu();
    EvaluateOnce();
    const absl::Duration wait = NextWait(options_.interval, ThreadCpu() - t0, options_.cpu_budget);
    std::unique_lock<std::mutex> lk(mu_);
    wait_ = wait;
    if (cv_.wait_for(lk, absl::ToChronoNanoseconds(wait), [&] { return stop_; })) return;
  }
}

void Monitor::EvaluateOnce() {
  auto snap = options_.snapshot(nullptr);
  if (!snap.ok()) return;  // stopping, or nothing could be read: try again next time
  std::optional<Snapshot> previous;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_) return;
    previous = std::move(last_);
    last_ = *snap;
  }
  if (!previous) return;  // the first snapshot: nothing to compare yet
  SnapshotPair pair;
  pair.before = std::move(*previous);
  pair.after = std::move(*snap);
  for (const Snapshot* s : {&pair.before, &pair.after}) {
    if (s->sockets) FoldListeners(pair, s->sockets->listeners);
  }
  AddRings(options_.collect, pair);
  if (pair.after.drops && options_.collect.drop_sources)
    pair.drop_sources = options_.collect.drop_sources(pair.before.taken);
  DiagnoseOptions d;
  d.min_severity = options_.min_severity;
  d.overrides = options_.overrides;
  const std::vector<Finding> findings = Diagnose(pair, d);
  std::lock_guard<std::mutex> lk(mu_);
  Publish(tracker_.Update(findings, options_.clock()));
}

void Monitor::Publish(const std::vector<FindingEvent>& events) {
  if (events.empty()) return;
  for (Subscription* s : subscribers_) {
    for (const FindingEvent& e : events) {
      if (s->queue_.size() >= options_.max_queue) {
        s->queue_.pop_front();
        s->lost_ = true;
      }
      s->queue_.push_back(e);
    }
  }
  cv_.notify_all();
}

std::unique_ptr<Monitor::Subscription> Monitor::Subscribe() {
  auto s = std::make_unique<Subscription>();
  s->monitor_ = this;
  std::lock_guard<std::mutex> lk(mu_);
  for (const auto& [rule, o] : tracker_.open()) {
    FindingEvent e{
        FindingEvent::Kind::kOpened, o.finding, o.since, options_.clock(), std::nullopt, true};
    s->queue_.push_back(std::move(e));
  }
  subscribers_.push_back(s.get());
  return s;
}

std::map<std::string, absl::Time> Monitor::OpenSince() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::map<std::string, absl::Time> out;
  for (const auto& [rule, o] : tracker_.open()) out[rule] = o.since;
  return out;
}

std::optional<Finding> Monitor::Current(const std::string& rule) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = tracker_.open().find(rule);
  if (it == tracker_.open().end()) return std::nullopt;
  return it->second.finding;
}

std::optional<FindingEvent> Monitor::Subscription::Next(absl::Duration timeout) {
  std::unique_lock<std::mutex> lk(monitor_->mu_);
  monitor_->cv_.wait_for(lk, absl::ToChronoNanoseconds(timeout),
                         [&] { return !queue_.empty() || monitor_->stop_; });
  if (queue_.empty()) return std::nullopt;
  FindingEvent e = std::move(queue_.front());
  queue_.pop_front();
  return e;
}

bool Monitor::Subscription::TakeLost() {
  std::lock_guard<std::mutex> lk(monitor_->mu_);
  const bool was = lost_;
  lost_ = false;
  return was;
}

Monitor::Subscription::~Subscription() {
  std::lock_guard<std::mutex> lk(monitor_->mu_);
  auto& subs = monitor_->subscribers_;
  subs.erase(std::remove(subs.begin(), subs.end(), this), subs.end());
}

}  // namespace netagent::diagnosis
