#include "agent/lifecycle.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace netagent::agent {
namespace {

TEST(Lifecycle, SleepsTheWholeDuration) {
  Lifecycle l;
  absl::Time start = absl::Now();
  EXPECT_TRUE(l.Sleep(absl::Milliseconds(120), nullptr, Lifecycle::OnShutdown::kEndNow).ok());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(120));
}

TEST(Lifecycle, CallerCancellationEndsTheSleep) {
  Lifecycle l;
  std::atomic<bool> cancelled{false};
  std::thread t([&] {
    absl::SleepFor(absl::Milliseconds(50));
    cancelled = true;
  });
  absl::Status st = l.Sleep(
      absl::Seconds(30), [&] { return cancelled.load(); }, Lifecycle::OnShutdown::kEndNow);
  t.join();
  EXPECT_TRUE(absl::IsCancelled(st)) << st;
}

TEST(Lifecycle, ShutdownEndsStreamsAtOnce) {
  Lifecycle l;
  std::thread t([&] {
    absl::SleepFor(absl::Milliseconds(50));
    l.BeginShutdown(absl::Seconds(10));
  });
  absl::Time start = absl::Now();
  absl::Status st = l.Sleep(absl::Seconds(30), nullptr, Lifecycle::OnShutdown::kEndNow);
  t.join();
  EXPECT_TRUE(absl::IsUnavailable(st)) << st;
  EXPECT_EQ(st.message(), "agent is shutting down");
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(Lifecycle, AWindowThatFitsTheGraceFinishes) {
  Lifecycle l;
  l.BeginShutdown(absl::Seconds(5));
  EXPECT_TRUE(
      l.Sleep(absl::Milliseconds(100), nullptr, Lifecycle::OnShutdown::kFinishWithinGrace).ok());
  EXPECT_TRUE(absl::IsUnavailable(
      l.Sleep(absl::Seconds(30), nullptr, Lifecycle::OnShutdown::kFinishWithinGrace)));
  EXPECT_TRUE(l.stopping());
}

}  // namespace
}  // namespace netagent::agent
