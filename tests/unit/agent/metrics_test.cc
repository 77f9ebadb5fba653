#include "agent/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_split.h"
#include "agent/exposition.h"
#include "agent/metrics_compat.h"
#include "agent/metrics_server.h"
#include "agent/metrics_sources.h"
#include "re2/re2.h"
#include "tests/unit/fixtures.h"

namespace netagent::agent {
namespace {

using netagent::testing::Fixture;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Text(const Families& f) { return WriteExposition(f, ExpositionFormat::kText); }

// The sample lines of `text` that start with `prefix`.
std::vector<std::string> Lines(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  for (absl::string_view l : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(l, prefix)) out.emplace_back(l);
  }
  return out;
}

TEST(Exposition, TextFormatNamesCountersWithTotalAndKeepsIntegersExact) {
  Families f = {
      {"netagent_x", MetricType::kCounter, "X things", "", {{{{"cpu", "0"}}, uint64_t{1} << 63}}},
      {"netagent_g_bytes", MetricType::kGauge, "G", "bytes", {{{}, 0.1}, {{{"a", "b"}}, -3.5}}},
      {"netagent_build", MetricType::kInfo, "B", "", {{{{"version", "1"}}, uint64_t{1}}}},
      {"netagent_empty", MetricType::kGauge, "never written", "", {}},
  };
  EXPECT_EQ(Text(f),
            "# HELP netagent_x_total X things\n"
            "# TYPE netagent_x_total counter\n"
            "netagent_x_total{cpu=\"0\"} 9223372036854775808\n"
            "# HELP netagent_g_bytes G\n"
            "# TYPE netagent_g_bytes gauge\n"
            "netagent_g_bytes 0.1\n"
            "netagent_g_bytes{a=\"b\"} -3.5\n"
            "# HELP netagent_build_info B\n"
            "# TYPE netagent_build_info gauge\n"
            "netagent_build_info{version=\"1\"} 1\n");
}

TEST(Exposition, OpenMetricsDeclaresFamiliesWithoutSuffixesStatesUnitsAndEnds) {
  Families f = {
      {"netagent_x", MetricType::kCounter, "X", "", {{{}, uint64_t{2}}}},
      {"netagent_g_bytes", MetricType::kGauge, "G", "bytes", {{{}, int64_t{-1}}}},
      {"netagent_build", MetricType::kInfo, "B", "", {{{{"version", "1"}}, uint64_t{1}}}},
  };
  EXPECT_EQ(WriteExposition(f, ExpositionFormat::kOpenMetrics),
            "# HELP netagent_x X\n"
            "# TYPE netagent_x counter\n"
            "netagent_x_total 2\n"
            "# HELP netagent_g_bytes G\n"
            "# TYPE netagent_g_bytes gauge\n"
            "# UNIT netagent_g_bytes bytes\n"
            "netagent_g_bytes -1\n"
            "# HELP netagent_build B\n"
            "# TYPE netagent_build info\n"
            "netagent_build_info{version=\"1\"} 1\n"
            "# EOF\n");
}

TEST(Exposition, WhatCameFromOutsideIsEscapedAndMadeUtf8) {
  Families f = {{"netagent_x",
                 MetricType::kGauge,
                 "a \\ back\nslash",
                 "",
                 {{{{"device", "e\"v\\l\n\x01\xff\xc3\xa9"}}, std::nan("")},
                  {{{"device", "b"}}, std::numeric_limits<double>::infinity()}}}};
  EXPECT_EQ(Text(f),
            "# HELP netagent_x a \\\\ back\\nslash\n"
            "# TYPE netagent_x gauge\n"
            "netagent_x{device=\"e\\\"v\\\\l\\n \xEF\xBF\xBD\xc3\xa9\"} NaN\n"
            "netagent_x{device=\"b\"} +Inf\n");
  EXPECT_EQ(SanitizeMetricName("Tcp-Ext.9x"), "Tcp_Ext_9x");
  EXPECT_EQ(SanitizeMetricName("9x"), "_9x");
}

TEST(Exposition, AFamilyNameSeenBeforeIsLeftOut) {
  Families f = {{"netagent_a", MetricType::kGauge, "first", "", {{{}, uint64_t{1}}}},
                {"netagent_a", MetricType::kGauge, "second", "", {{{}, uint64_t{2}}}}};
  EXPECT_THAT(Text(f), HasSubstr("netagent_a 1\n"));
  EXPECT_THAT(Text(f), Not(HasSubstr("netagent_a 2")));
}

TEST(Exposition, NegotiatesOpenMetricsOnlyWhenAsked) {
  // What Prometheus 2.42 sends.
  EXPECT_EQ(NegotiateExposition("application/openmetrics-text;version=1.0.0,application/"
                                "openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;"
                                "q=0.5,*/*;q=0.1"),
            ExpositionFormat::kOpenMetrics);
  EXPECT_EQ(NegotiateExposition("text/plain;version=0.0.4"), ExpositionFormat::kText);
  EXPECT_EQ(NegotiateExposition(""), ExpositionFormat::kText);
  EXPECT_EQ(NegotiateExposition("application/openmetrics-text; q=0"), ExpositionFormat::kText);
  EXPECT_EQ(NegotiateExposition("application/openmetrics-text; q=bad"), ExpositionFormat::kText);
  EXPECT_TRUE(AcceptsGzip("gzip"));
  EXPECT_TRUE(AcceptsGzip("deflate, GZIP;q=0.5"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0"));
  EXPECT_FALSE(AcceptsGzip("identity"));
  EXPECT_FALSE(AcceptsGzip(""));
}

std::string Gunzip(const std::string& in) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out(1 << 20, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  inflateEnd(&z);
  return out;
}

TEST(Exposition, GzipRoundTrips) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += "netagent_x{cpu=\"" + std::to_string(i) + "\"} 1\n";
  const std::string z = Gzip(text);
  EXPECT_LT(z.size(), text.size() / 4);
  EXPECT_EQ(Gunzip(z), text);
}

collectors::CounterSample RecordedCounters(const std::string& kernel) {
  collectors::CounterSample s;
  for (auto [file, source] : {std::pair{"snmp", collectors::CounterSource::kSnmp},
                              std::pair{"netstat", collectors::CounterSource::kNetstat}}) {
    auto v = collectors::ParseSnmpPairs(Fixture("procfs/" + kernel + "/" + file), source);
    EXPECT_TRUE(v.ok()) << v.status();
    s.values.insert(s.values.end(), v->begin(), v->end());
  }
  return s;
}

TEST(CounterMetrics, EveryRecordedCounterUnderItsNstatName) {
  for (const char* kernel : {"linux-6.1", "linux-6.18"}) {
    SCOPED_TRACE(kernel);
    const collectors::CounterSample s = RecordedCounters(kernel);
    Families f;
    AddCounterMetrics(s, nullptr, f);
    const std::string text = Text(f);
    EXPECT_EQ(Lines(text, "netagent_snmp_").size(), s.values.size());
    for (const auto& v : s.values) {
      const std::string series =
          (v.gauge ? "netagent_snmp_value{name=\"" : "netagent_snmp_total{name=\"") + v.name() +
          "\"} ";
      EXPECT_EQ(Lines(text, series), std::vector<std::string>{series + std::to_string(v.value)});
    }
    EXPECT_THAT(text, HasSubstr("netagent_snmp_value{name=\"TcpCurrEstab\"}"));
    EXPECT_THAT(text, HasSubstr("netagent_snmp_total{name=\"TcpExtListenOverflows\"}"));
  }
}

TEST(CounterMetrics, TheAllowlistPicksByNstatName) {
  const collectors::CounterSample s = RecordedCounters("linux-6.18");
  RE2 allow("^(TcpExtListen|TcpInSegs$)");
  Families f;
  AddCounterMetrics(s, &allow, f);
  std::vector<std::string> names;
  for (const auto& fam : f) {
    for (const auto& sample : fam.samples) names.push_back(sample.labels[0].second);
  }
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("TcpExtListenOverflows", "TcpExtListenDrops",
                                                     "TcpInSegs"));
}

TEST(SoftnetMetrics, PerCpuFromTheRecordedFile) {
  auto s = collectors::ParseSoftnet(Fixture("procfs/linux-6.18/softnet_stat"), {});
  ASSERT_TRUE(s.ok()) << s.status();
  Families f;
  AddSoftnetMetrics(*s, f);
  const std::string text = Text(f);
  EXPECT_EQ(Lines(text, "netagent_softnet_processed_total{").size(), s->rows.size());
  for (const auto& row : s->rows) {
    EXPECT_THAT(text,
                HasSubstr("netagent_softnet_processed_total{cpu=\"" + std::to_string(row.cpu) +
                          "\"} " + std::to_string(row.counters.processed) + "\n"));
  }
}

TEST(SockstatMetrics, MemoryInBytesAndSocketsByKind) {
  auto s = collectors::ParseSockstat(
      "sockets: used 10\nTCP: inuse 3 orphan 1 tw 2 alloc 5 mem 7\nUDP: inuse 1 mem 2\n");
  ASSERT_TRUE(s.ok());
  Families f;
  AddSockstatMetrics(*s, 4096, f);
  const std::string text = Text(f);
  EXPECT_THAT(text, HasSubstr("netagent_sockstat_memory_bytes{protocol=\"TCP\"} 28672\n"));
  EXPECT_THAT(text, HasSubstr("netagent_sockstat_sockets{protocol=\"TCP\",kind=\"tw\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("netagent_sockstat_sockets{protocol=\"sockets\",kind=\"used\"} 10\n"));
}

TEST(SocketMetrics, TheFullestListenersUpToTheCap) {
  collectors::SocketSummary s;
  s.states[{IPPROTO_TCP, 1}] = 5;
  for (int i = 0; i < 4; ++i) {
    collectors::ListenerStats l;
    l.address.family = AF_INET;
    l.port = static_cast<uint16_t>(8000 + i);
    l.accept_queue = static_cast<uint32_t>(i);
    l.backlog = 4;
    l.fill_percent = i * 25.0;
    s.listeners.push_back(l);
  }
  s.time_wait.ephemeral_ports = 28232;
  Families f;
  AddSocketMetrics(s, 2, f);
  const std::string text = Text(f);
  EXPECT_THAT(text, HasSubstr("netagent_sockets{protocol=\"tcp\",state=\"established\"} 5\n"));
  EXPECT_EQ(
      Lines(text, "netagent_listener_accept_queue{"),
      (std::vector<std::string>{
          "netagent_listener_accept_queue{protocol=\"tcp\",address=\"0.0.0.0\",port=\"8003\"} 3",
          "netagent_listener_accept_queue{protocol=\"tcp\",address=\"0.0.0.0\",port=\"8002\"} 2"}));
  EXPECT_THAT(text, HasSubstr("netagent_listeners_omitted 2\n"));
  EXPECT_THAT(text, HasSubstr("netagent_tcp_ephemeral_ports 28232\n"));
}

TEST(LinkMetrics, CountersPerDeviceThroughTheFilter) {
  collectors::LinkRecord lo, eth, veth;
  lo.name = "lo";
  lo.operstate = 0;
  eth.name = "eth0";
  eth.operstate = 6;
  eth.mtu = 1500;
  eth.stats_count = 4;
  eth.stats[2] = 1234;  // rx_bytes
  veth.name = "veth1";
  DeviceFilter filter;
  filter.exclude = std::make_shared<RE2>("(?:lo|veth.*)");
  Families f;
  AddLinkMetrics({lo, eth, veth}, filter, f);
  const std::string text = Text(f);
  EXPECT_THAT(text, HasSubstr("netagent_link_rx_bytes_total{device=\"eth0\"} 1234\n"));
  EXPECT_THAT(text, HasSubstr("netagent_link_up{device=\"eth0\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("device=\"lo\"")));
  EXPECT_THAT(text, Not(HasSubstr("device=\"veth1\"")));
  // A counter the kernel did not send is absent, not zero.
  EXPECT_THAT(text, Not(HasSubstr("netagent_link_rx_errors_total")));
}

TEST(ConntrackMetrics, EntriesLimitAndSummedCounters) {
  collectors::ConntrackStats s;
  s.count = 12;
  s.max = 262144;
  s.total = {{"insert_failed", 3}, {"drop", 4}};
  Families f;
  AddConntrackMetrics(s, f);
  const std::string text = Text(f);
  EXPECT_THAT(text, HasSubstr("netagent_conntrack_entries 12\n"));
  EXPECT_THAT(text, HasSubstr("netagent_conntrack_entries_limit 262144\n"));
  EXPECT_THAT(text, HasSubstr("netagent_conntrack_stat_insert_failed_total 3\n"));
}

TEST(DriverMetrics, InfoAndEachStatisticUntyped) {
  collectors::DriverInfo info{"veth", "1.0", "", "", ""};
  Families f;
  AddDriverMetrics(
      {{"va", info, {{"peer_ifindex", 2}, {"rx_queue_0_drops", 7}}}, {"lo", std::nullopt, {}}}, f);
  const std::string text = Text(f);
  EXPECT_THAT(text, HasSubstr("netagent_nic_driver_info{device=\"va\",driver=\"veth\","
                              "version=\"1.0\",firmware_version=\"\",expansion_rom_version=\"\","
                              "bus_info=\"\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE netagent_nic_driver_stat untyped\n"));
  EXPECT_THAT(text,
              HasSubstr("netagent_nic_driver_stat{device=\"va\",stat=\"rx_queue_0_drops\"} 7\n"));
  EXPECT_THAT(text, Not(HasSubstr("\"lo\"")));
  EXPECT_THAT(WriteExposition(f, ExpositionFormat::kOpenMetrics),
              HasSubstr("# TYPE netagent_nic_driver_stat unknown\n"));
}

TEST(DriverMetrics, StandardGroupsAndQueueCountersPerQueue) {
  DeviceDriverStats eth{"eth0", std::nullopt, {}, {}, {}};
  eth.standard = {{"eth-mac", {{"FrameCheckSequenceErrors", 3}}}, {"rmon", {{"rx-64-64", 9}}}};
  eth.queues = {{"rx", 0, {{"rx-packets", 100}, {"rx-bytes", 6400}, {"rx-hw-drops", 2}}},
                {"rx", 1, {{"rx-packets", 50}, {"rx-bytes", 3200}, {"rx-hw-drops", 7}}},
                {"tx", 0, {{"tx-packets", 80}, {"tx-stop", 1}}}};
  Families f;
  AddDriverMetrics({eth}, f);
  const std::string text = Text(f);
  EXPECT_THAT(text, HasSubstr("netagent_nic_standard_stat_total{device=\"eth0\",group=\"eth-mac\","
                              "stat=\"FrameCheckSequenceErrors\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("netagent_nic_standard_stat_total{device=\"eth0\",group=\"rmon\","
                              "stat=\"rx-64-64\"} 9\n"));
  EXPECT_EQ(Lines(text, "netagent_nic_queue_rx_hw_drops_total{"),
            (std::vector<std::string>{
                "netagent_nic_queue_rx_hw_drops_total{device=\"eth0\",queue=\"0\"} 2",
                "netagent_nic_queue_rx_hw_drops_total{device=\"eth0\",queue=\"1\"} 7"}));
  EXPECT_THAT(text, HasSubstr("netagent_nic_queue_tx_stop_total{device=\"eth0\",queue=\"0\"} 1\n"));
  EXPECT_THAT(WriteExposition(f, ExpositionFormat::kOpenMetrics),
              HasSubstr("# UNIT netagent_nic_queue_rx_bytes bytes\n"));
  EXPECT_THAT(text, Not(HasSubstr("netagent_nic_driver_info")));  // no info: not written
}

// A name a driver repeats (vmxnet3 repeats its per-queue names) is written
// once; node_exporter's names leave out every name that collides.
TEST(DriverMetrics, RepeatedNamesOnceAndFailedPartsNamed) {
  DeviceDriverStats d;
  d.device = "ens192";
  d.stats = {{"ucast pkts rx", 5}, {"ucast pkts rx", 6}, {"rx_bytes", 7}, {"rx-bytes", 8}};
  d.failed = {"queue_stats"};
  Families f;
  AddDriverMetrics({d}, f);
  const std::string text = Text(f);
  EXPECT_EQ(Lines(text, "netagent_nic_driver_stat{device=\"ens192\",stat=\"ucast pkts rx\"}"),
            (std::vector<std::string>{
                "netagent_nic_driver_stat{device=\"ens192\",stat=\"ucast pkts rx\"} 5"}));
  EXPECT_THAT(text,
              HasSubstr("netagent_nic_stats_failed{device=\"ens192\",part=\"queue_stats\"} 1\n"));
  Families compat;
  AddNodeExporterFamilies(f, 4096, compat);
  const std::string names = Text(compat);
  EXPECT_THAT(names, HasSubstr("node_ethtool_ucast_pkts_received{device=\"ens192\"} 5\n"));
  // rx_bytes is a declared total; rx-bytes reduces to received_bytes: no clash.
  EXPECT_THAT(names, HasSubstr("node_ethtool_received_bytes_total{device=\"ens192\"} 7\n"));
  EXPECT_THAT(names, HasSubstr("node_ethtool_received_bytes{device=\"ens192\"} 8\n"));
  d.stats = {{"rx.bytes", 1}, {"rx-bytes", 2}, {"tx_ok", 3}};  // both reduce to received_bytes
  f.clear();
  compat.clear();
  AddDriverMetrics({d}, f);
  AddNodeExporterFamilies(f, 4096, compat);
  EXPECT_THAT(Text(compat), Not(HasSubstr("node_ethtool_received_bytes")));
  EXPECT_THAT(Text(compat), HasSubstr("node_ethtool_transmitted_ok{device=\"ens192\"} 3\n"));
}

TEST(NodeExporterNames, NstatNamesSplitAtTheirGroup) {
  using P = std::pair<std::string, std::string>;
  EXPECT_EQ(SplitNstatName("TcpExtListenOverflows"), P("TcpExt", "ListenOverflows"));
  EXPECT_EQ(SplitNstatName("TcpInSegs"), P("Tcp", "InSegs"));
  EXPECT_EQ(SplitNstatName("IpExtInOctets"), P("IpExt", "InOctets"));
  EXPECT_EQ(SplitNstatName("IpForwarding"), P("Ip", "Forwarding"));
  EXPECT_EQ(SplitNstatName("Ip6InReceives"), P("Ip6", "InReceives"));
  EXPECT_EQ(SplitNstatName("Icmp6InType133"), P("Icmp6", "InType133"));
  EXPECT_EQ(SplitNstatName("IcmpMsgInType3"), P("IcmpMsg", "InType3"));
  EXPECT_EQ(SplitNstatName("IcmpInMsgs"), P("Icmp", "InMsgs"));
  EXPECT_EQ(SplitNstatName("UdpLite6InDatagrams"), P("UdpLite6", "InDatagrams"));
  EXPECT_EQ(SplitNstatName("UdpLiteInDatagrams"), P("UdpLite", "InDatagrams"));
  EXPECT_EQ(SplitNstatName("Udp6RcvbufErrors"), P("Udp6", "RcvbufErrors"));
  EXPECT_EQ(SplitNstatName("MPTcpExtMPCapableSYNRX"), P("MPTcpExt", "MPCapableSYNRX"));
  EXPECT_EQ(SplitNstatName("SctpCurrEstab"), std::nullopt);
  EXPECT_EQ(SplitNstatName("Tcp"), std::nullopt);
  EXPECT_EQ(SplitNstatName("Tcpx"), std::nullopt);
}

TEST(NodeExporterNames, EthtoolNamesAsNodeExporterBuildsThem) {
  EXPECT_EQ(NodeExporterEthtoolName("rx_queue_0_drops"), "node_ethtool_received_queue_0_drops");
  EXPECT_EQ(NodeExporterEthtoolName("tx_queue_1_xdp_xmit"),
            "node_ethtool_transmitted_queue_1_xdp_xmit");
  EXPECT_EQ(NodeExporterEthtoolName("rx_queue_0_xdp_tx_errors"),
            "node_ethtool_received_queue_0_xdp_transmitted_errors");
  EXPECT_EQ(NodeExporterEthtoolName("[3]: tx_bytes"), "node_ethtool_3_transmitted_bytes");
  EXPECT_EQ(NodeExporterEthtoolName("Queue[0] AllocFails"), "node_ethtool_queue_0_allocfails");
  EXPECT_EQ(NodeExporterEthtoolName("rx_packets"), "node_ethtool_received_packets_total");
  EXPECT_EQ(NodeExporterEthtoolName("tx_errors"), "node_ethtool_transmitted_errors_total");
  EXPECT_EQ(NodeExporterEthtoolName("rx-0.packets"), "node_ethtool_received_0_packets");
  EXPECT_EQ(NodeExporterEthtoolName("peer_ifindex"), "node_ethtool_peer_ifindex");
}

TEST(NodeExporterNames, TheAgentsFamiliesUnderNodeExportersNamesAndSums) {
  Families ours;
  collectors::SoftnetSample softnet;
  softnet.rows.push_back({});
  softnet.rows.back().cpu = 1;
  softnet.rows.back().counters.processed = 42;
  AddSoftnetMetrics(softnet, ours);
  collectors::CounterSample counters;
  counters.values = {{"TcpExt", "ListenDrops", collectors::CounterSource::kNetstat, 9, false},
                     {"Tcp", "CurrEstab", collectors::CounterSource::kSnmp, 2, true},
                     {"Sctp", "CurrEstab", collectors::CounterSource::kSctp, 1, true}};
  AddCounterMetrics(counters, nullptr, ours);
  auto sockstat = collectors::ParseSockstat(
      "sockets: used 10\nTCP: inuse 3 tw 2 mem 7\nFRAG: inuse 0 memory 0\n");
  ASSERT_TRUE(sockstat.ok());
  AddSockstatMetrics(*sockstat, 4096, ours);
  collectors::ConntrackStats ct;
  ct.count = 12;
  ct.max = 65536;
  ct.total = {{"found", 1}, {"insert_failed", 3}, {"clash_resolve", 5}};
  AddConntrackMetrics(ct, ours);
  collectors::SocketSummary sockets;
  sockets.states[{IPPROTO_TCP, 1}] = 5;   // established
  sockets.states[{IPPROTO_TCP, 3}] = 1;   // syn-recv
  sockets.states[{IPPROTO_TCP, 12}] = 2;  // new-syn-recv: a request, syn_recv to tcpstat
  sockets.states[{IPPROTO_TCP, 10}] = 1;  // listening
  sockets.states[{IPPROTO_UDP, 7}] = 4;   // not TCP: not tcpstat's
  AddSocketMetrics(sockets, 10, ours);
  collectors::LinkRecord eth;
  eth.name = "eth0";
  eth.stats_count = collectors::kLinkStatCount;
  auto stat = [&](const char* name, uint64_t v) {
    for (int i = 0; i < collectors::kLinkStatCount; ++i)
      if (std::string(collectors::kLinkStatNames[i]) == name) eth.stats[i] = v;
  };
  stat("rx_bytes", 1000);
  stat("rx_dropped", 3);
  stat("rx_missed_errors", 4);
  stat("rx_frame_errors", 1);
  stat("rx_crc_errors", 2);
  stat("tx_carrier_errors", 5);
  stat("tx_window_errors", 6);
  stat("multicast", 8);
  AddLinkMetrics({eth}, DeviceFilter{}, ours);
  AddDriverMetrics({{"eth0",
                     collectors::DriverInfo{"e1000e", "3.2", "0.13-4", "0000:00:19.0", ""},
                     {{"rx_packets", 77}, {"rx_queue_0_drops", 1}}}},
                   ours);

  Families compat;
  AddNodeExporterFamilies(ours, 4096, compat);
  const std::string text = Text(compat);
  for (const char* line : {
           "node_softnet_processed_total{cpu=\"1\"} 42\n",
           "# TYPE node_netstat_TcpExt_ListenDrops untyped\nnode_netstat_TcpExt_ListenDrops 9\n",
           "node_netstat_Tcp_CurrEstab 2\n",
           "node_sockstat_sockets_used 10\n",
           "node_sockstat_TCP_tw 2\n",
           "node_sockstat_TCP_mem 7\n",
           "node_sockstat_TCP_mem_bytes 28672\n",
           "node_sockstat_FRAG_memory 0\n",
           "# TYPE node_nf_conntrack_entries gauge\nnode_nf_conntrack_entries 12\n",
           "node_nf_conntrack_entries_limit 65536\n",
           "# TYPE node_nf_conntrack_stat_insert_failed gauge\n"
           "node_nf_conntrack_stat_insert_failed 3\n",
           "node_nf_conntrack_stat_ignore 0\n",
           "node_tcp_connection_states{state=\"established\"} 5\n",
           "node_tcp_connection_states{state=\"syn_recv\"} 3\n",
           "node_tcp_connection_states{state=\"listen\"} 1\n",
           "# TYPE node_network_receive_bytes_total counter\n"
           "node_network_receive_bytes_total{device=\"eth0\"} 1000\n",
           "node_network_receive_drop_total{device=\"eth0\"} 7\n",
           "node_network_receive_frame_total{device=\"eth0\"} 3\n",
           "node_network_receive_multicast_total{device=\"eth0\"} 8\n",
           "node_network_transmit_carrier_total{device=\"eth0\"} 11\n",
           "node_ethtool_info{bus_info=\"0000:00:19.0\",device=\"eth0\",driver=\"e1000e\","
           "expansion_rom_version=\"\",firmware_version=\"0.13-4\",version=\"3.2\"} 1\n",
           "node_ethtool_received_packets_total{device=\"eth0\"} 77\n",
           "node_ethtool_received_queue_0_drops{device=\"eth0\"} 1\n",
       }) {
    EXPECT_THAT(text, HasSubstr(line));
  }
  EXPECT_THAT(text, Not(HasSubstr("Sctp")));
  EXPECT_THAT(text, Not(HasSubstr("clash_resolve")));    // not a node_exporter column
  EXPECT_THAT(text, Not(HasSubstr("state=\"close\"")));  // UDP's unconnected sockets
  // Only what was there: no conntrack families from a scrape without them.
  Families none;
  AddNodeExporterFamilies({}, 4096, none);
  EXPECT_EQ(Text(none), "");
}

TEST(TuningMetrics, StatesDeadlinesAndTheNewestValueOfEachKnob) {
  tuners::ChangeRecord newer, older, undone;
  newer.id = "c3";
  newer.state = tuners::ChangeState::kPending;
  newer.confirm_deadline = absl::FromUnixSeconds(1000);
  newer.knobs = {{"net.core.somaxconn", "4096", "8192", ""},
                 {"net.ipv4.tcp_rmem", "", "4096 131072 6291456", ""},
                 {"dev/eth0/rps_cpus", "0", "f,ff", ""}};
  older.id = "c2";
  older.state = tuners::ChangeState::kConfirmed;
  older.knobs = {{"net.core.somaxconn", "128", "4096", ""}};
  undone.id = "c1";
  undone.state = tuners::ChangeState::kRolledBack;
  undone.knobs = {{"net.core.netdev_max_backlog", "1000", "5000", ""}};
  Families f;
  AddTuningMetrics({newer, older, undone}, f);
  const std::string text = Text(f);
  EXPECT_THAT(text, HasSubstr("netagent_tuning_changes{state=\"pending_confirm\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("netagent_tuning_changes{state=\"rolled_back\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("netagent_tuning_changes{state=\"expired\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("netagent_tuning_confirm_deadline_seconds{change=\"c3\"} 1000\n"));
  EXPECT_THAT(text, HasSubstr("netagent_tuning_value{knob=\"net.core.somaxconn\"} 8192\n"));
  EXPECT_THAT(text,
              HasSubstr("netagent_tuning_value{knob=\"net.ipv4.tcp_rmem\",field=\"2\"} 6291456\n"));
  EXPECT_THAT(text, Not(HasSubstr("rps_cpus")));
  EXPECT_THAT(text, Not(HasSubstr("netdev_max_backlog")));
}

TEST(FindingMetrics, OneSeriesPerOpenFindingWithItsEvidence) {
  diagnosis::Finding f;
  f.rule = "listen-overflow";
  f.title = "Accept queue overflow";
  f.severity = diagnosis::Severity::kCritical;
  f.evidence = {{"TcpExtListenOverflows", 210, "/s", 2100, ""}};
  Families out;
  AddFindingMetrics({{f, absl::FromUnixSeconds(50)}}, out);
  const std::string text = Text(out);
  EXPECT_THAT(text, HasSubstr("netagent_finding{rule=\"listen-overflow\",severity=\"critical\","
                              "title=\"Accept queue overflow\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("netagent_finding_open_since_seconds{rule=\"listen-overflow\"} 50\n"));
  EXPECT_THAT(text, HasSubstr("netagent_finding_evidence{rule=\"listen-overflow\",evidence="
                              "\"TcpExtListenOverflows\",unit=\"/s\"} 210\n"));
}

TEST(DatapathMetrics, VerdictsByReasonPerDevice) {
  Families out;
  AddDatapathMetrics(
      {{"veth0", "native", 7, 3, {{"block", true, 10, 600}, {"pass", false, 5, 300}}}}, out);
  const std::string text = Text(out);
  EXPECT_THAT(text, HasSubstr("netagent_datapath_packets_total{device=\"veth0\",verdict=\"drop\","
                              "reason=\"block\"} 10\n"));
  EXPECT_THAT(text, HasSubstr("netagent_datapath_bytes_total{device=\"veth0\",verdict=\"pass\","
                              "reason=\"pass\"} 300\n"));
  EXPECT_THAT(text, HasSubstr("netagent_datapath_rules{device=\"veth0\",mode=\"native\"} 3\n"));
}

MetricsSource Constant(std::string name, std::function<void()> before = {}) {
  return {name, [name, before]() -> absl::StatusOr<Families> {
            if (before) before();
            return Families{{"netagent_" + name, MetricType::kGauge, "h", "", {{{}, uint64_t{1}}}}};
          }};
}

std::string Collected(MetricsScraper& s) {
  return *s.Collect()->Body(ExpositionFormat::kText, false);
}

TEST(MetricsScraper, ASlowSourceFailsAloneAndIsNotStartedAgainWhileItRuns) {
  std::atomic<bool> release{false};
  std::atomic<int> slow_runs{0};
  std::vector<std::string> failed;
  std::mutex mu;
  MetricsScraper::Options o;
  o.timeout = absl::Milliseconds(200);
  o.on_failure = [&](const std::string& source, const absl::Status&) {
    std::lock_guard<std::mutex> l(mu);
    failed.push_back(source);
  };
  {
    MetricsScraper s({Constant("fast"), Constant("slow",
                                                 [&] {
                                                   ++slow_runs;
                                                   while (!release)
                                                     absl::SleepFor(absl::Milliseconds(5));
                                                 })},
                     o);
    const absl::Time t0 = absl::Now();
    std::string first = Collected(s);
    EXPECT_LT(absl::Now() - t0, absl::Seconds(2));
    EXPECT_THAT(first, HasSubstr("netagent_fast 1\n"));
    EXPECT_THAT(first, Not(HasSubstr("netagent_slow 1")));
    EXPECT_THAT(first, HasSubstr("netagent_scrape_collector_success{collector=\"slow\"} 0\n"));
    EXPECT_THAT(first, HasSubstr("netagent_scrape_collector_success{collector=\"fast\"} 1\n"));
    std::string second = Collected(s);
    EXPECT_THAT(second, HasSubstr("netagent_scrape_collector_success{collector=\"slow\"} 0\n"));
    EXPECT_EQ(slow_runs.load(), 1);  // still the first run
    release = true;
    // Once it returned, the next scrape runs it again, in time.
    for (int i = 0; i < 100 && Collected(s).find("netagent_slow 1\n") == std::string::npos; ++i) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    EXPECT_THAT(Collected(s), HasSubstr("netagent_slow 1\n"));
  }
  std::lock_guard<std::mutex> l(mu);
  EXPECT_THAT(failed, ::testing::Each(std::string("slow")));
  EXPECT_GE(failed.size(), 2u);
}

TEST(MetricsScraper, ConcurrentScrapesShareOneCollection) {
  std::atomic<int> runs{0};
  MetricsScraper s({Constant("a",
                             [&] {
                               ++runs;
                               absl::SleepFor(absl::Milliseconds(300));
                             })},
                   {});
  std::vector<std::thread> scrapers;
  std::atomic<int> answered{0};
  for (int i = 0; i < 16; ++i) {
    scrapers.emplace_back([&] {
      if (Collected(s).find("netagent_a 1\n") != std::string::npos) ++answered;
    });
  }
  for (auto& t : scrapers) t.join();
  EXPECT_EQ(answered.load(), 16);
  // 16 scrapes that arrived together: one collection, or two when a scrape
  // came in just as the first ended.
  EXPECT_LE(runs.load(), 2);
  EXPECT_EQ(s.collections(), static_cast<uint64_t>(runs.load()));
}

TEST(MetricsScraper, AFailingSourceIsReportedAndTheRestServed) {
  MetricsScraper s({Constant("ok"),
                    {"broken", [] { return absl::StatusOr<Families>(absl::InternalError("x")); }}},
                   {});
  const std::string text = Collected(s);
  EXPECT_THAT(text, HasSubstr("netagent_ok 1\n"));
  EXPECT_THAT(text, HasSubstr("netagent_scrape_collector_success{collector=\"broken\"} 0\n"));
}

TEST(MetricsRequest, RoutesNegotiatesAndCompresses) {
  MetricsScraper s({Constant("a")}, {});
  MetricsResponse r = AnswerMetricsRequest({"GET", "/metrics", "", ""}, s);
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_THAT(*r.body, HasSubstr("netagent_a 1\n"));
  r = AnswerMetricsRequest({"GET", "/metrics?x=1", "application/openmetrics-text", "gzip"}, s);
  EXPECT_EQ(r.content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
  EXPECT_EQ(r.content_encoding, "gzip");
  EXPECT_THAT(Gunzip(*r.body), ::testing::EndsWith("# EOF\n"));
  EXPECT_EQ(AnswerMetricsRequest({"POST", "/metrics", "", ""}, s).status, 405u);
  EXPECT_EQ(AnswerMetricsRequest({"POST", "/metrics", "", ""}, s).allow, "GET, HEAD");
  EXPECT_EQ(AnswerMetricsRequest({"GET", "/metricsx", "", ""}, s).status, 404u);
  EXPECT_EQ(AnswerMetricsRequest({"GET", "/", "", ""}, s).status, 200u);
}

}  // namespace
}  // namespace netagent::agent
