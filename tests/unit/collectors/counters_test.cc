#include "collectors/counters.h"

#include <gtest/gtest.h>
#include <re2/re2.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <limits>

#include "tests/unit/fixtures.h"

namespace netagent::collectors {
namespace {

using netagent::testing::Fixture;

const CounterValue* Find(const std::vector<CounterValue>& v, const std::string& name) {
  auto it =
      std::find_if(v.begin(), v.end(), [&](const CounterValue& c) { return c.name() == name; });
  return it == v.end() ? nullptr : &*it;
}

TEST(ParseSnmpPairs, RecordedSnmpOn6_18) {
  auto v = ParseSnmpPairs(Fixture("procfs/linux-6.18/snmp"), CounterSource::kSnmp);
  ASSERT_TRUE(v.ok()) << v.status();
  const CounterValue* max_conn = Find(*v, "TcpMaxConn");
  ASSERT_NE(max_conn, nullptr);
  EXPECT_EQ(max_conn->value, -1);  // printed signed by the kernel
  EXPECT_TRUE(max_conn->gauge);
  const CounterValue* in_recv = Find(*v, "IpInReceives");
  ASSERT_NE(in_recv, nullptr);
  EXPECT_EQ(in_recv->value, 834);
  EXPECT_FALSE(in_recv->gauge);
  EXPECT_NE(Find(*v, "UdpInDatagrams"), nullptr);
  EXPECT_NE(Find(*v, "IcmpInMsgs"), nullptr);
}

TEST(ParseSnmpPairs, RecordedNetstatOn6_18) {
  auto v = ParseSnmpPairs(Fixture("procfs/linux-6.18/netstat"), CounterSource::kNetstat);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_GT(v->size(), 100u);
  const CounterValue* lo = Find(*v, "TcpExtListenOverflows");
  ASSERT_NE(lo, nullptr);
  EXPECT_EQ(lo->group, "TcpExt");
  EXPECT_EQ(lo->field, "ListenOverflows");
  EXPECT_NE(Find(*v, "IpExtInOctets"), nullptr);
  EXPECT_NE(Find(*v, "MPTcpExtMPCapableSYNRX"), nullptr);
}

TEST(ParseSnmpPairs, FieldsThisCodeDoesNotKnowAreKept) {
  auto v =
      ParseSnmpPairs(Fixture("procfs/synthetic/netstat.unknown_fields"), CounterSource::kNetstat);
  ASSERT_TRUE(v.ok()) << v.status();
  const CounterValue* future = Find(*v, "TcpExtTCPFutureCounterFromKernel99");
  ASSERT_NE(future, nullptr);
  EXPECT_EQ(future->value, 42);
  // A u64 beyond int64 saturates rather than going negative.
  EXPECT_EQ(Find(*v, "IpExtInOctets")->value, std::numeric_limits<int64_t>::max());
}

TEST(ParseSnmpPairs, MismatchedLinesAreDataLossWithTheLine) {
  auto v = ParseSnmpPairs("Tcp: A B C\nTcp: 1 2\n", CounterSource::kSnmp);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(v.status().message().find("line 1"), absl::string_view::npos) << v.status();
  EXPECT_FALSE(ParseSnmpPairs("Tcp: A\nUdp: 1\n", CounterSource::kSnmp).ok());
  EXPECT_FALSE(ParseSnmpPairs("Tcp: A\n", CounterSource::kSnmp).ok());
  EXPECT_FALSE(ParseSnmpPairs("Tcp: A\nTcp: x\n", CounterSource::kSnmp).ok());
}

TEST(ParseSnmp6, GroupsByPrefix) {
  auto v = ParseNameValueMib(Fixture("procfs/linux-6.18/snmp6"), CounterSource::kSnmp6);
  ASSERT_TRUE(v.ok()) << v.status();
  const CounterValue* in = Find(*v, "Ip6InReceives");
  ASSERT_NE(in, nullptr);
  EXPECT_EQ(in->group, "Ip6");
  EXPECT_EQ(in->field, "InReceives");
  const CounterValue* lite = Find(*v, "UdpLite6InDatagrams");
  ASSERT_NE(lite, nullptr);
  EXPECT_EQ(lite->group, "UdpLite6");
  EXPECT_FALSE(ParseNameValueMib("Ip6InReceives\n", CounterSource::kSnmp6).ok());
  EXPECT_FALSE(ParseNameValueMib("NoSixHere 1\n", CounterSource::kSnmp6).ok());
}

TEST(ParseNameValueMib, SctpFile) {
  // The layout of /proc/net/sctp/snmp (name, padding, tab, value).
  auto v = ParseNameValueMib(
      "SctpCurrEstab                   \t2\nSctpActiveEstabs                \t17\n",
      CounterSource::kSctp);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->size(), 2u);
  EXPECT_EQ((*v)[1].name(), "SctpActiveEstabs");
  EXPECT_EQ((*v)[1].group, "Sctp");
  EXPECT_EQ((*v)[1].value, 17);
  EXPECT_FALSE(ParseNameValueMib("Ip6InReceives 1\n", CounterSource::kSctp).ok());
}

TEST(CounterDelta, CountersResetAndGaugesMoveBothWays) {
  CounterValue b{"Tcp", "RetransSegs", CounterSource::kSnmp, 100, false};
  CounterValue a = b;
  a.value = 130;
  EXPECT_EQ(CounterDelta(b, a), 30);
  a.value = 7;  // the namespace was recreated: a reset, not a huge delta
  EXPECT_EQ(CounterDelta(b, a), 7);
  CounterValue gb{"Tcp", "CurrEstab", CounterSource::kSnmp, 10, true};
  CounterValue ga = gb;
  ga.value = 4;
  EXPECT_EQ(CounterDelta(gb, ga), -6);
}

TEST(CounterDelta, AGaugeChangeBeyondTheInt64RangeSaturates) {
  // The subtraction overflowed (undefined; it wrapped to a negative change).
  CounterValue b{"Tcp", "MaxConn", CounterSource::kSnmp, std::numeric_limits<int64_t>::min(), true};
  CounterValue a = b;
  a.value = 1;
  EXPECT_EQ(CounterDelta(b, a), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(CounterDelta(a, b), std::numeric_limits<int64_t>::min());
}

TEST(CompileNameFilter, NamesTheFieldOnBadInput) {
  auto bad = CompileNameFilter("Tcp(", "filter");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message().rfind("filter:", 0), 0u) << bad.status();
  EXPECT_FALSE(CompileNameFilter(std::string(300, 'a'), "filter").ok());
  EXPECT_EQ(*CompileNameFilter("", "filter"), nullptr);
}

TEST(BuildCounterReport, WindowFilterAndNonzero) {
  CounterSample before, after;
  before.taken = absl::FromUnixSeconds(10);
  after.taken = absl::FromUnixSeconds(15);
  before.values = {{"Tcp", "RetransSegs", CounterSource::kSnmp, 100, false},
                   {"TcpExt", "ListenOverflows", CounterSource::kNetstat, 3, false},
                   {"Tcp", "CurrEstab", CounterSource::kSnmp, 9, true}};
  after.values = {{"Tcp", "RetransSegs", CounterSource::kSnmp, 150, false},
                  {"TcpExt", "ListenOverflows", CounterSource::kNetstat, 3, false},
                  {"Tcp", "CurrEstab", CounterSource::kSnmp, 12, true},
                  {"TcpExt", "Brand", CounterSource::kNetstat, 5, false}};
  after.unavailable = {{CounterSource::kSnmp6, "IPv6 disabled"}};
  CounterQuery all;
  CounterReport r = BuildCounterReport(&before, after, all);
  ASSERT_EQ(r.counters.size(), 4u);
  EXPECT_EQ(*r.window, absl::Seconds(5));
  EXPECT_EQ(r.counters[0].delta, 50);
  EXPECT_DOUBLE_EQ(*r.counters[0].rate, 10.0);
  EXPECT_EQ(r.counters[2].delta, 3);
  EXPECT_FALSE(r.counters[2].rate.has_value());   // gauge
  EXPECT_FALSE(r.counters[3].delta.has_value());  // new field: nothing to compare with
  EXPECT_EQ(r.unavailable.size(), 1u);

  CounterQuery q{*CompileNameFilter("^Tcp[A-Z]", "filter"), true};
  CounterReport f = BuildCounterReport(&before, after, q);
  ASSERT_EQ(f.counters.size(), 2u);  // RetransSegs and CurrEstab moved; TcpExt* filtered out
  EXPECT_EQ(f.counters[0].value.name(), "TcpRetransSegs");
  EXPECT_EQ(f.counters[1].value.name(), "TcpCurrEstab");

  CounterQuery nz{nullptr, true};
  CounterReport single = BuildCounterReport(nullptr, after, nz);
  EXPECT_EQ(single.counters.size(), 4u);  // without a window: non-zero values
}

TEST(ReadCounters, WithoutSnmp6TheSourceIsUnavailableNotAnError) {
  auto dir = std::filesystem::temp_directory_path() / ("netagent-proc-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(netagent::testing::FixturePath("procfs/linux-6.1/snmp"), dir / "snmp");
  std::filesystem::copy_file(netagent::testing::FixturePath("procfs/linux-6.1/netstat"),
                             dir / "netstat");
  auto s = ReadCounters(dir.string());
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->unavailable.size(), 2u);
  EXPECT_EQ(s->unavailable[0].source, CounterSource::kSnmp6);
  EXPECT_NE(s->unavailable[0].reason.find("IPv6"), std::string::npos);
  EXPECT_EQ(s->unavailable[1].source, CounterSource::kSctp);
  EXPECT_NE(s->unavailable[1].reason.find("sctp module"), std::string::npos);
  EXPECT_NE(Find(s->values, "TcpExtListenOverflows"), nullptr);
}

TEST(ParseSnmpPairs, RecordedOn6_1) {
  auto snmp = ParseSnmpPairs(Fixture("procfs/linux-6.1/snmp"), CounterSource::kSnmp);
  ASSERT_TRUE(snmp.ok()) << snmp.status();
  EXPECT_EQ(Find(*snmp, "IpOutTransmits"), nullptr);  // 6.18 added it; 6.1 has 19 Ip fields
  EXPECT_NE(Find(*snmp, "IpInReceives"), nullptr);
  auto netstat = ParseSnmpPairs(Fixture("procfs/linux-6.1/netstat"), CounterSource::kNetstat);
  ASSERT_TRUE(netstat.ok()) << netstat.status();
  EXPECT_NE(Find(*netstat, "TcpExtListenDrops"), nullptr);
  auto snmp6 = ParseNameValueMib(Fixture("procfs/linux-6.1/snmp6"), CounterSource::kSnmp6);
  ASSERT_TRUE(snmp6.ok()) << snmp6.status();
}

TEST(ReadCounters, ThisKernel) {
  auto s = ReadCounters();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_GT(s->values.size(), 100u);
}

}  // namespace
}  // namespace netagent::collectors
