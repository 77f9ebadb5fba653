#include "diagnosis/monitor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <time.h>

#include <atomic>

#include "absl/strings/str_cat.h"

namespace netagent::diagnosis {
namespace {

using Kind = FindingEvent::Kind;

Finding F(const std::string& rule, Severity s) {
  Finding f;
  f.rule = rule;
  f.severity = s;
  f.summary = absl::StrCat(rule, " ", SeverityName(s));
  return f;
}

const absl::Time t0 = absl::FromUnixSeconds(1800000000);

TEST(FindingTracker, OpensOnceChangesSeverityAndClearsAfterTwoQuietEvaluations) {
  FindingTracker t;
  auto e = t.Update({F("a", Severity::kWarning)}, t0);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].kind, Kind::kOpened);
  EXPECT_EQ(e[0].since, t0);
  EXPECT_TRUE(t.Update({F("a", Severity::kWarning)}, t0 + absl::Seconds(10)).empty())
      << "the same finding again is no news";
  e = t.Update({F("a", Severity::kCritical)}, t0 + absl::Seconds(20));
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].kind, Kind::kChanged);
  EXPECT_EQ(e[0].previous, Severity::kWarning);
  EXPECT_EQ(e[0].since, t0);
  EXPECT_TRUE(t.Update({}, t0 + absl::Seconds(30)).empty()) << "one quiet window";
  e = t.Update({F("a", Severity::kCritical)}, t0 + absl::Seconds(40));
  EXPECT_TRUE(e.empty()) << "back before it cleared: still the same incident";
  EXPECT_EQ(t.open().at("a").since, t0);
  EXPECT_TRUE(t.Update({}, t0 + absl::Seconds(50)).empty());
  e = t.Update({}, t0 + absl::Seconds(60));
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].kind, Kind::kCleared);
  EXPECT_EQ(e[0].finding.severity, Severity::kCritical);
  EXPECT_TRUE(t.open().empty());
}

// A monitor fed snapshots by a test source: the first evaluation has nothing
// to compare; then the catalog runs over the last two.
class MonitorTest : public ::testing::Test {
 protected:
  Snapshot Snap(int64_t overflows, int seconds) {
    Snapshot s;
    s.taken = t0 + absl::Seconds(seconds);
    collectors::CounterSample c;
    collectors::CounterValue v;
    v.group = "TcpExt";
    v.field = "ListenOverflows";
    v.source = collectors::CounterSource::kNetstat;
    v.value = overflows;
    c.values.push_back(v);
    s.counters = c;
    s.sysctls["net.core.somaxconn"] = "4096";
    return s;
  }
  std::unique_ptr<Monitor> Make(size_t max_queue = 256) {
    Monitor::Options o;
    o.interval = absl::ZeroDuration();  // no thread: the test evaluates
    o.snapshot = [this](std::vector<std::string>*) -> absl::StatusOr<Snapshot> {
      return snaps_.at(next_++);
    };
    o.clock = [this] { return t0 + absl::Seconds(10 * static_cast<int64_t>(next_)); };
    o.max_queue = max_queue;
    return std::make_unique<Monitor>(std::move(o));
  }
  std::vector<Snapshot> snaps_;
  size_t next_ = 0;
};

TEST_F(MonitorTest, WatchersGetWhatIsOpenThenEvents) {
  snaps_ = {Snap(0, 0), Snap(100, 10), Snap(200, 20), Snap(200, 30), Snap(200, 40)};
  auto m = Make();
  m->EvaluateOnce();
  m->EvaluateOnce();  // 10/s: warning, opened
  auto sub = m->Subscribe();
  auto first = sub->Next(absl::ZeroDuration());
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(first->initial);
  EXPECT_EQ(first->finding.rule, "listen-overflow");
  EXPECT_EQ(m->OpenSince().count("listen-overflow"), 1u);
  m->EvaluateOnce();  // still 10/s: nothing new
  EXPECT_FALSE(sub->Next(absl::ZeroDuration()).has_value());
  m->EvaluateOnce();  // quiet
  m->EvaluateOnce();  // quiet again: cleared
  auto cleared = sub->Next(absl::ZeroDuration());
  ASSERT_TRUE(cleared.has_value());
  EXPECT_EQ(cleared->kind, Kind::kCleared);
  EXPECT_FALSE(cleared->initial);
  EXPECT_TRUE(m->OpenSince().empty());
}

TEST_F(MonitorTest, ASlowWatcherLosesTheOldestAndIsTold) {
  // Overflows alternate between 2/s (warning) and 10/s (critical): an event
  // at every evaluation.
  int64_t total = 0;
  for (int i = 0; i < 8; ++i) {
    snaps_.push_back(Snap(total, 10 * i));
    total += i % 2 ? 20 : 100;
  }
  auto m = Make(/*max_queue=*/1);
  auto sub = m->Subscribe();
  for (int i = 0; i < 8; ++i) m->EvaluateOnce();
  EXPECT_TRUE(sub->TakeLost());
  EXPECT_FALSE(sub->TakeLost()) << "said once";
  EXPECT_TRUE(sub->Next(absl::ZeroDuration()).has_value());
  EXPECT_FALSE(sub->Next(absl::ZeroDuration()).has_value());
}

TEST_F(MonitorTest, StopWakesWatchers) {
  auto m = Make();
  auto sub = m->Subscribe();
  std::thread stopper([&] {
    absl::SleepFor(absl::Milliseconds(50));
    m->Stop();
  });
  const absl::Time start = absl::Now();
  EXPECT_FALSE(sub->Next(absl::Seconds(30)).has_value());
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  stopper.join();
}

TEST(NextWait, TheIntervalUnlessTheLastEvaluationWasDearerThanTheBudget) {
  const absl::Duration ten = absl::Seconds(10);
  EXPECT_EQ(NextWait(ten, absl::Milliseconds(5), 0.005), ten);  // 0.05 %
  EXPECT_EQ(NextWait(ten, absl::Milliseconds(50), 0.005), ten);  // exactly 0.5 %
  EXPECT_EQ(NextWait(ten, absl::Milliseconds(165), 0.005), absl::Seconds(33));
  EXPECT_EQ(NextWait(ten, absl::Milliseconds(165), 0), ten) << "no budget";
  EXPECT_EQ(NextWait(ten, absl::ZeroDuration(), 0.005), ten);
  EXPECT_EQ(NextWait(ten, absl::Seconds(5), 0.005), absl::Seconds(60)) << "six intervals at most";
}

// The thread stretches its interval by the CPU an evaluation really took:
// one that burns 20 ms of CPU under a 1 % budget would wait 2 s; capped at six
// 200 ms intervals, it waits 1.2 s.
TEST(Monitor, AnExpensiveEvaluationWaitsLonger) {
  std::atomic<int> runs{0};
  Monitor::Options o;
  o.interval = absl::Milliseconds(200);
  o.cpu_budget = 0.01;
  o.snapshot = [&](std::vector<std::string>*) -> absl::StatusOr<Snapshot> {
    ++runs;
    timespec ts;
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    const absl::Duration start = absl::DurationFromTimespec(ts);
    volatile uint64_t x = 0;
    do {
      for (int i = 0; i < 10000; ++i) x = x + i;
      ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    } while (absl::DurationFromTimespec(ts) - start < absl::Milliseconds(20));
    Snapshot s;
    s.taken = absl::Now();
    return s;
  };
  Monitor m(std::move(o));
  const absl::Time deadline = absl::Now() + absl::Seconds(20);  // a starved CI host
  while (m.current_wait() == absl::Milliseconds(200) && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(m.current_wait(), absl::Milliseconds(1200));
  absl::SleepFor(absl::Milliseconds(450));  // two intervals; 750 ms left of the wait
  EXPECT_EQ(runs.load(), 1) << "the 200 ms interval alone would have run it again";
  m.Stop();
}

}  // namespace
}  // namespace netagent::diagnosis
