#include "agent/convert.h"

#include <gtest/gtest.h>

namespace netagent::agent {
namespace {

google::protobuf::Duration D(int64_t s, int32_t n = 0) {
  google::protobuf::Duration d;
  d.set_seconds(s);
  d.set_nanos(n);
  return d;
}

TEST(DurationFromRequest, UnsetAndZeroMeanNoWindow) {
  EXPECT_EQ(*DurationFromRequest(false, D(5), "window", kMaxWindow), std::nullopt);
  EXPECT_EQ(*DurationFromRequest(true, D(0), "window", kMaxWindow), std::nullopt);
}

TEST(DurationFromRequest, Valid) {
  EXPECT_EQ(**DurationFromRequest(true, D(1, 500000000), "window", kMaxWindow),
            absl::Milliseconds(1500));
  EXPECT_EQ(**DurationFromRequest(true, D(600), "window", kMaxWindow), absl::Minutes(10));
}

TEST(DurationFromRequest, NegativeMalformedAndTooLongAreInvalidArgumentNamingTheField) {
  for (const auto& d :
       {D(-1), D(0, -5), D(1, -1), D(-1, 1), D(0, 1000000000), D(601), D(600, 1), D(INT64_MAX)}) {
    auto r = DurationFromRequest(true, d, "window", kMaxWindow);
    ASSERT_FALSE(r.ok()) << d.DebugString();
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message().rfind("window:", 0), 0u) << r.status();
  }
  EXPECT_EQ(DurationFromRequest(true, D(-1), "window", kMaxWindow).status().message(),
            "window: must not be negative");
}

TEST(WatchInterval, DefaultAndBounds) {
  netagent::v1::WatchRequest req;
  EXPECT_EQ(*WatchInterval(req), absl::Seconds(1));
  *req.mutable_interval() = D(0, 50000000);
  EXPECT_EQ(WatchInterval(req).status().message(), "interval: at least 100ms");
  *req.mutable_interval() = D(0, 100000000);
  EXPECT_EQ(*WatchInterval(req), absl::Milliseconds(100));
  *req.mutable_interval() = D(7200);
  EXPECT_FALSE(WatchInterval(req).ok());
}

TEST(ToGrpc, KeepsCodeAndMessage) {
  grpc::Status s = ToGrpc(absl::InvalidArgumentError("filter: bad"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "filter: bad");
  EXPECT_TRUE(ToGrpc(absl::OkStatus()).ok());
}

TEST(ToProto, SoftnetKeepsAbsentColumnsAbsent) {
  collectors::SoftnetSample s;
  s.columns = 9;
  s.cpu_id_source = collectors::CpuIdSource::kOnlineOrder;
  s.rows.push_back({3, {10, 1, 2, 0, std::nullopt, std::nullopt}, std::nullopt, {}, {}});
  netagent::v1::GetSoftnetResponse out;
  ToProto(collectors::BuildSoftnetReport(nullptr, s), &out);
  ASSERT_EQ(out.cpus_size(), 1);
  EXPECT_EQ(out.cpus(0).cpu(), 3u);
  EXPECT_FALSE(out.cpus(0).counters().has_received_rps());
  EXPECT_FALSE(out.cpus(0).has_backlog_len());
  EXPECT_FALSE(out.cpus(0).has_delta());
  EXPECT_FALSE(out.has_window());
  EXPECT_EQ(out.cpu_id_source(), netagent::v1::CPU_ID_SOURCE_ONLINE_ORDER);
  EXPECT_EQ(out.columns(), 9u);
}

}  // namespace
}  // namespace netagent::agent
