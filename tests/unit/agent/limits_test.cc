#include "agent/limits.h"

#include <gtest/gtest.h>

namespace netagent::agent {
namespace {

TEST(LongCallLimiter, PerCallerAndTotal) {
  LongCallLimiter limits(3, 2);
  auto a1 = limits.Acquire("uid:1000");
  auto a2 = limits.Acquire("uid:1000");
  ASSERT_TRUE(a1.ok() && a2.ok());
  auto a3 = limits.Acquire("uid:1000");
  EXPECT_EQ(a3.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(a3.status().message().find("per caller"), absl::string_view::npos);
  auto b1 = limits.Acquire("uid:0");
  ASSERT_TRUE(b1.ok());
  auto b2 = limits.Acquire("uid:0");
  EXPECT_EQ(b2.status().code(), absl::StatusCode::kResourceExhausted);  // total of 3
  a1->reset();  // a call ends: its slot is free again
  EXPECT_TRUE(limits.Acquire("uid:0").ok());
}

}  // namespace
}  // namespace netagent::agent
