#include "agent/convert.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <functional>

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

const datapath::DropReasonNames& DropNames() {
  static const auto n =
      datapath::DropReasonNames::FromEnums({{"SKB_NOT_DROPPED_YET", 0},
                                            {"SKB_CONSUMED", 1},
                                            {"SKB_DROP_REASON_NO_SOCKET", 3},
                                            {"SKB_DROP_REASON_NETFILTER_DROP", 12}});
  return n;
}

TEST(DropQueryFromRequest, ReasonsByNameDevicesAndSampleCount) {
  netagent::v1::GetDropReasonsRequest req;
  auto q = DropQueryFromRequest(req, DropNames());
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_TRUE(q->reasons.empty());
  EXPECT_TRUE(q->devices.empty());
  EXPECT_EQ(q->max_samples, kDefaultDropSamples);
  req.add_reasons("no_socket");
  req.add_reasons("SKB_DROP_REASON_NETFILTER_DROP");
  req.add_devices("eth0");
  req.set_max_samples(0);
  q = DropQueryFromRequest(req, DropNames());
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->reasons, (std::set<uint32_t>{3, 12}));
  EXPECT_EQ(q->devices, (std::set<std::string>{"eth0"}));
  EXPECT_EQ(q->max_samples, 0u);
}

TEST(DropQueryFromRequest, BadInputNamesTheField) {
  struct Case {
    std::function<void(netagent::v1::GetDropReasonsRequest&)> set;
    std::string prefix;
  };
  const std::vector<Case> cases = {
      {[](auto& r) { r.add_reasons("CONSUMED"); }, "reasons[0]: \"CONSUMED\" is not a drop reason"},
      {[](auto& r) {
         r.add_reasons("NO_SOCKET");
         r.add_reasons("LISTEN_OVERFLOW");
       },
       "reasons[1]: "},
      {[](auto& r) { r.add_reasons(""); }, "reasons[0]: empty"},
      {[](auto& r) { r.add_devices("a/b"); }, "devices[0]: "},
      {[](auto& r) { r.add_devices(std::string(16, 'x')); }, "devices[0]: "},
      {[](auto& r) { r.set_max_samples(257); }, "max_samples: at most 256"},
      {[](auto& r) {
         for (int i = 0; i < 65; ++i) r.add_reasons("NO_SOCKET");
       },
       "reasons: at most 64"},
      {[](auto& r) {
         for (int i = 0; i < 65; ++i) r.add_devices("lo");
       },
       "devices: at most 64"},
  };
  for (const Case& c : cases) {
    netagent::v1::GetDropReasonsRequest req;
    c.set(req);
    auto q = DropQueryFromRequest(req, DropNames());
    ASSERT_FALSE(q.ok()) << c.prefix;
    EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(q.status().message().rfind(c.prefix, 0), 0u) << q.status();
  }
  // What needs no kernel names is checked before any collector is there.
  netagent::v1::GetDropReasonsRequest req;
  req.add_reasons("ANYTHING");
  EXPECT_TRUE(CheckDropReasonsRequest(req).ok());
  req.add_devices("a b");
  EXPECT_EQ(CheckDropReasonsRequest(req).code(), absl::StatusCode::kInvalidArgument);
}

TEST(DropReasonsToProto, RowsSamplesSourcesAndTheCollector) {
  datapath::KernelDropSnapshot before, after;
  before.taken = absl::FromUnixSeconds(1000);
  after.taken = before.taken + absl::Seconds(4);
  const datapath::KernelDropKey syn{3, 1, 0x0800, 6};
  before.counts[syn] = 10;
  after.counts[syn] = 30;
  after.devices[1] = "lo";
  after.events.sampled = 7;
  after.events.table_full = 2;
  after.events.no_netns = 1;
  nd_sample rec{};
  rec.reason = 3;
  rec.ifindex = 1;
  rec.len = 40;
  rec.l3_proto = 0x0800;
  rec.l4_proto = 6;
  rec.saddr[0] = 10, rec.saddr[3] = 1;
  rec.daddr[0] = 10, rec.daddr[3] = 2;
  rec.sport = htons(40000);
  rec.dport = htons(9);
  rec.has_ports = 1;
  const auto sample = datapath::SampleFromRecord(rec, before.taken + absl::Seconds(1));
  const auto report = datapath::BuildKernelDropReport(&before, after, {sample}, DropNames(), {});
  datapath::DropCollectorStatus st;
  st.attached_at = absl::FromUnixSeconds(900);
  st.samples_per_second = 100;
  st.prog_id = 42;
  st.reasons_known = 2;
  netagent::v1::GetDropReasonsResponse out;
  ToProto(report, st, &out);
  ASSERT_EQ(out.rows_size(), 1);
  const auto& row = out.rows(0);
  EXPECT_EQ(row.reason(), "NO_SOCKET");
  EXPECT_EQ(row.reason_code(), 3u);
  EXPECT_EQ(row.device(), "lo");
  EXPECT_EQ(row.protocol(), "ipv4/tcp");
  EXPECT_EQ(row.ethertype(), 0x0800u);
  EXPECT_EQ(row.ip_protocol(), 6u);
  EXPECT_EQ(row.count(), 30u);
  EXPECT_EQ(row.delta(), 20u);
  EXPECT_DOUBLE_EQ(row.rate(), 5.0);
  EXPECT_EQ(out.total(), 30u);
  EXPECT_EQ(out.total_delta(), 20u);
  ASSERT_EQ(out.samples_size(), 1);
  EXPECT_EQ(out.samples(0).source(), "10.0.0.1");
  EXPECT_EQ(out.samples(0).destination(), "10.0.0.2");
  EXPECT_EQ(out.samples(0).source_port(), 40000u);
  EXPECT_EQ(out.samples(0).destination_port(), 9u);
  EXPECT_EQ(out.samples(0).time().seconds(), 1001);
  ASSERT_EQ(out.top_sources_size(), 1);
  EXPECT_EQ(out.top_sources(0).prefix(), "10.0.0.0/24");
  EXPECT_EQ(out.collector().attached_at().seconds(), 900);
  EXPECT_EQ(out.collector().samples_taken(), 7u);
  EXPECT_EQ(out.collector().no_room(), 2u);
  EXPECT_EQ(out.collector().unattributed(), 1u);
  EXPECT_EQ(out.collector().prog_id(), 42u);
  EXPECT_EQ(out.window().seconds(), 4);
  EXPECT_EQ(out.sampled_at().seconds(), 1004);
  // Without a window: no delta, rate or window.
  netagent::v1::GetDropReasonsResponse one;
  ToProto(datapath::BuildKernelDropReport(nullptr, after, {}, DropNames(), {}), st, &one);
  EXPECT_FALSE(one.rows(0).has_delta());
  EXPECT_FALSE(one.rows(0).has_rate());
  EXPECT_FALSE(one.has_total_delta());
  EXPECT_FALSE(one.has_window());
}

}  // namespace
}  // namespace netagent::agent
