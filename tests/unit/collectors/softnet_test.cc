#include "collectors/softnet.h"

#include <gtest/gtest.h>

#include "tests/unit/fixtures.h"

namespace netagent::collectors {
namespace {

using netagent::testing::Fixture;
using netagent::testing::FixtureExists;

TEST(ParseSoftnet, NineColumnsOf2_6_23) {
  auto s = ParseSoftnet(Fixture("procfs/synthetic/softnet_stat.9col"), {0, 1});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->columns, 9);
  ASSERT_EQ(s->rows.size(), 2u);
  EXPECT_EQ(s->rows[0].counters.processed, 0x9a7c1u);
  EXPECT_EQ(s->rows[0].counters.time_squeeze, 0x12u);
  EXPECT_EQ(s->rows[0].counters.cpu_collision, 3u);
  EXPECT_EQ(s->rows[1].counters.dropped, 2u);
  EXPECT_FALSE(s->rows[0].counters.received_rps.has_value());
  EXPECT_FALSE(s->rows[0].counters.flow_limit_count.has_value());
  EXPECT_FALSE(s->rows[0].backlog_len.has_value());
}

TEST(ParseSoftnet, TenAndElevenColumnsAddRpsAndFlowLimit) {
  auto ten = ParseSoftnet(Fixture("procfs/synthetic/softnet_stat.10col"), {0, 1, 2});
  ASSERT_TRUE(ten.ok()) << ten.status();
  EXPECT_EQ(ten->rows[0].counters.received_rps, 7u);
  EXPECT_FALSE(ten->rows[0].counters.flow_limit_count.has_value());
  auto eleven = ParseSoftnet(Fixture("procfs/synthetic/softnet_stat.11col"), {0, 1, 2});
  ASSERT_TRUE(eleven.ok()) << eleven.status();
  EXPECT_EQ(eleven->rows[0].counters.flow_limit_count, 4u);
  EXPECT_FALSE(eleven->rows[0].backlog_len.has_value());
}

TEST(ParseSoftnet, WithoutTheIdColumnLinesAreOnlineCpusInOrder) {
  // CPU 1 offline: the kernel prints lines for 0, 2 and 3.
  auto s = ParseSoftnet(Fixture("procfs/synthetic/softnet_stat.11col"), {0, 2, 3});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->cpu_id_source, CpuIdSource::kOnlineOrder);
  EXPECT_EQ(s->rows[1].cpu, 2u);
  EXPECT_EQ(s->rows[2].cpu, 3u);
}

TEST(ParseSoftnet, AMismatchedOnlineListFallsBackToLineNumbersAndSaysSo) {
  auto s = ParseSoftnet(Fixture("procfs/synthetic/softnet_stat.11col"), {0, 1});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->cpu_id_source, CpuIdSource::kLineIndex);
  EXPECT_EQ(s->rows[2].cpu, 2u);
}

TEST(ParseSoftnet, ThirteenColumnsCarryTheCpuId) {
  // CPUs 1 and 2 offline; the id column says 0 and 3 whatever the online list.
  auto s = ParseSoftnet(Fixture("procfs/synthetic/softnet_stat.13col"), {});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->cpu_id_source, CpuIdSource::kColumn);
  EXPECT_EQ(s->rows[0].cpu, 0u);
  EXPECT_EQ(s->rows[1].cpu, 3u);
  EXPECT_EQ(s->rows[0].backlog_len, 5u);
  EXPECT_EQ(s->rows[1].counters.processed, 0xffffffffu);
  EXPECT_FALSE(s->rows[0].input_queue_len.has_value());
}

TEST(ParseSoftnet, RecordedOn6_18) {
  auto s = ParseSoftnet(Fixture("procfs/linux-6.18/softnet_stat"), {0, 1});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->columns, 15);
  ASSERT_EQ(s->rows.size(), 2u);
  EXPECT_EQ(s->rows[1].cpu, 1u);
  EXPECT_EQ(s->rows[1].counters.processed, 0x336u);
  EXPECT_EQ(s->rows[1].counters.time_squeeze, 1u);
  EXPECT_TRUE(s->rows[1].input_queue_len.has_value());
  EXPECT_TRUE(s->rows[1].process_queue_len.has_value());
}

TEST(ParseSoftnet, RecordedOn6_1) {
  if (!FixtureExists("procfs/linux-6.1/softnet_stat")) GTEST_SKIP() << "no 6.1 recording";
  auto s = ParseSoftnet(Fixture("procfs/linux-6.1/softnet_stat"), {0, 1});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_GE(s->columns, 13);
  EXPECT_EQ(s->cpu_id_source, CpuIdSource::kColumn);
  ASSERT_EQ(s->rows.size(), 2u);
  EXPECT_EQ(s->rows[1].cpu, 1u);
}

TEST(ParseSoftnet, RejectsMalformedFiles) {
  EXPECT_EQ(ParseSoftnet("00000001 00000002\n", {}).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseSoftnet("0000000g 0 0 0 0 0 0 0 0\n", {}).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseSoftnet("100000000 0 0 0 0 0 0 0 0\n", {}).status().code(),
            absl::StatusCode::kDataLoss);  // wider than 32 bits
  EXPECT_EQ(ParseSoftnet("0 0 0 0 0 0 0 0 0\n0 0 0 0 0 0 0 0 0 0\n", {}).status().code(),
            absl::StatusCode::kDataLoss);  // lines of different widths
}

TEST(Delta32, WrapsAround) {
  EXPECT_EQ(Delta32(0xfffffff0u, 0x10u), 0x20u);
  EXPECT_EQ(Delta32(5, 5), 0u);
  EXPECT_EQ(Delta32(1, 3), 2u);
}

TEST(BuildSoftnetReport, DeltasTotalsAndRates) {
  SoftnetSample before, after;
  before.columns = after.columns = 13;
  before.taken = absl::FromUnixSeconds(100);
  after.taken = absl::FromUnixSeconds(102);
  SoftnetRow b0{0, {0xfffffff0u, 1, 0, 0, 10, 0}, 0, {}, {}};
  SoftnetRow b1{1, {100, 0, 0, 0, 0, 0}, 0, {}, {}};
  SoftnetRow a0{0, {0x10u, 3, 1, 0, 12, 0}, 4, {}, {}};
  SoftnetRow a1{1, {300, 0, 0, 0, 0, 0}, 1, {}, {}};
  SoftnetRow a2{2, {50, 0, 0, 0, 0, 0}, 0, {}, {}};  // came online during the window
  before.rows = {b0, b1};
  after.rows = {a0, a1, a2};
  SoftnetReport r = BuildSoftnetReport(&before, after);
  ASSERT_TRUE(r.window.has_value());
  EXPECT_EQ(*r.window, absl::Seconds(2));
  ASSERT_EQ(r.cpus.size(), 3u);
  EXPECT_EQ(r.cpus[0].delta->processed, 0x20u);
  EXPECT_EQ(r.cpus[0].delta->dropped, 2u);
  EXPECT_EQ(r.cpus[0].delta->received_rps, 2u);
  EXPECT_FALSE(r.cpus[2].delta.has_value());
  EXPECT_EQ(r.total.delta->processed, 0x20u + 200u);
  EXPECT_EQ(r.total.row.counters.processed, 0x10u + 300u + 50u);
  EXPECT_EQ(r.total.row.backlog_len, 5u);
  EXPECT_DOUBLE_EQ(SoftnetRate(*r.total.delta, *r.window).processed, (0x20 + 200) / 2.0);
}

TEST(BuildSoftnetReport, OneSampleHasNoDeltas) {
  auto s = ParseSoftnet(Fixture("procfs/linux-6.18/softnet_stat"), {0, 1});
  ASSERT_TRUE(s.ok());
  SoftnetReport r = BuildSoftnetReport(nullptr, *s);
  EXPECT_FALSE(r.window.has_value());
  EXPECT_FALSE(r.total.delta.has_value());
  EXPECT_EQ(r.total.row.counters.processed, 0xeu + 0x336u);
}

TEST(ReadSoftnet, ThisKernel) {
  auto s = ReadSoftnet();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(s->rows.empty());
  EXPECT_GE(s->columns, 9);
}

}  // namespace
}  // namespace netagent::collectors
