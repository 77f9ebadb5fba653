// netagentd's /metrics in a network namespace: scraped by hand and by a real
// Prometheus server, compared with /proc, checked by promtool, and attacked
// (a storm of scrapes, a slow reader, an oversized header) while the gRPC API
// must keep answering.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <optional>
#include <regex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/common/test_support.h"
#include "tests/integration/harness.h"

namespace netagent::testing {
namespace {

constexpr int kPort = 9471;  // a fresh namespace: nothing else listens there
const std::string kUrl = absl::StrCat("http://127.0.0.1:", kPort, "/metrics");

std::string Probe() {
  return std::string(NETAGENT_SOURCE_DIR) + "/tests/integration/http_probe.py";
}

struct Http {
  int status = 0;
  std::map<std::string, std::string> headers;
  std::string body;
};

Http Get(const Netns& ns, const std::string& url, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {"python3", Probe(), "get", url};
  argv.insert(argv.end(), extra.begin(), extra.end());
  RunResult r = RunCommand(ns.Exec(argv), std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  Http h;
  const size_t blank = r.out.find("\n\n");
  if (blank == std::string::npos) return h;
  std::vector<std::string> head = absl::StrSplit(r.out.substr(0, blank), '\n');
  (void)absl::SimpleAtoi(head[0], &h.status);
  for (size_t i = 1; i < head.size(); ++i) {
    std::pair<std::string, std::string> kv = absl::StrSplit(head[i], absl::MaxSplits(": ", 1));
    h.headers[kv.first] = kv.second;
  }
  h.body = r.out.substr(blank + 2);
  return h;
}

// The value of the sample `series` (its name and labels as written).
std::optional<double> Sample(const std::string& body, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    if (absl::ConsumePrefix(&line, series) && absl::ConsumePrefix(&line, " ")) {
      double v;
      if (absl::SimpleAtod(line, &v)) return v;
    }
  }
  return std::nullopt;
}

// softnet_stat's processed column of the first line (CPU 0).
uint32_t SoftnetProcessedCpu0(const Netns& ns) {
  RunResult r = RunCommand(ns.Exec({"head", "-1", "/proc/net/softnet_stat"}));
  std::vector<std::string> cols = absl::StrSplit(r.out, ' ', absl::SkipEmpty());
  uint32_t v = 0;
  EXPECT_TRUE(!cols.empty() && absl::SimpleHexAtoi(cols[0], &v)) << r.out;
  return v;
}

std::vector<std::string> AgentFlags() {
  return {"--metrics-listen", absl::StrCat("127.0.0.1:", kPort)};
}

TEST(MetricsLab, AScrapeShowsWhatTheKernelShowsAndPromtoolAcceptsIt) {
  REQUIRE_ROOT();
  Netns ns;
  Agent agent(ns, AgentFlags());
  ASSERT_TRUE(agent.ok()) << agent.error();

  const int64_t in_before = ProcSnmp(ns)["TcpInSegs"];
  const uint32_t softnet_before = SoftnetProcessedCpu0(ns);
  Http h = Get(ns, kUrl);
  const int64_t in_after = ProcSnmp(ns)["TcpInSegs"];
  const uint32_t softnet_after = SoftnetProcessedCpu0(ns);
  ASSERT_EQ(h.status, 200) << h.body;
  EXPECT_EQ(h.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");

  auto in = Sample(h.body, "netagent_snmp_total{name=\"TcpInSegs\"}");
  ASSERT_TRUE(in) << h.body.substr(0, 2000);
  EXPECT_GE(*in, in_before);
  EXPECT_LE(*in, in_after);
  auto processed = Sample(h.body, "netagent_softnet_processed_total{cpu=\"0\"}");
  ASSERT_TRUE(processed);
  EXPECT_GE(*processed, softnet_before);
  EXPECT_LE(*processed, softnet_after);
  // The scrape's own connection is a socket of the namespace, established.
  auto established = Sample(h.body, "netagent_sockets{protocol=\"tcp\",state=\"established\"}");
  ASSERT_TRUE(established);
  EXPECT_GE(*established, 1);
  EXPECT_TRUE(Sample(h.body, "netagent_link_rx_packets_total{device=\"lo\"}"));
  EXPECT_TRUE(Sample(h.body, "netagent_tuning_changes{state=\"pending_confirm\"}"));
  EXPECT_THAT(h.body, ::testing::HasSubstr("netagent_build_info{version=\""));
  // Every source answered.
  int sources = 0;
  for (absl::string_view line : absl::StrSplit(h.body, '\n')) {
    if (!absl::StartsWith(line, "netagent_scrape_collector_success{")) continue;
    ++sources;
    EXPECT_TRUE(absl::EndsWith(line, " 1")) << line << "\n" << agent.log();
  }
  EXPECT_GE(sources, 8);

  TempDir dir;
  WriteFile(dir / "scrape", h.body);
  RunResult check = RunCommand({"bash", "-c", "promtool check metrics < " + (dir / "scrape")});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_EQ(check.out + check.err, "");

  Http om = Get(ns, kUrl, {"--gzip", "--accept", "application/openmetrics-text;version=1.0.0"});
  EXPECT_EQ(om.status, 200);
  EXPECT_EQ(om.headers["content-encoding"], "gzip");
  EXPECT_EQ(om.headers["content-type"],
            "application/openmetrics-text; version=1.0.0; charset=utf-8");
  EXPECT_TRUE(absl::EndsWith(om.body, "# EOF\n"));
  EXPECT_THAT(om.body, ::testing::HasSubstr("# TYPE netagent_snmp counter\n"));

  EXPECT_EQ(Get(ns, absl::StrCat("http://127.0.0.1:", kPort, "/nope")).status, 404);
}

// A Prometheus server with the shipped alerting rules scrapes the agent
// every second: the target is up, a counter has the kernel's value, and an
// accept-queue overflow in the namespace turns into the shipped alert
// (pending: it fires after its minute).
TEST(MetricsLab, APrometheusServerScrapesTheAgentAndTheShippedAlertFollowsAnIncident) {
  REQUIRE_ROOT();
  Netns ns;
  TempDir dir;
  auto listener = SlowListener(ns, dir, 4);
  Agent agent(
      ns, {"--metrics-listen", absl::StrCat("127.0.0.1:", kPort), "--diagnosis-interval", "1s"});
  ASSERT_TRUE(agent.ok()) << agent.error();
  ASSERT_TRUE(Listening(ns, 8080));
  WriteFile(dir / "prometheus.yml",
            absl::StrCat("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                         "rule_files:\n  - ",
                         NETAGENT_SOURCE_DIR,
                         "/deploy/prometheus/netagent.rules.yml\n"
                         "scrape_configs:\n  - job_name: netagent\n    static_configs:\n"
                         "      - targets: ['127.0.0.1:",
                         kPort, "']\n"));
  const std::string web = "127.0.0.1:9090";
  Process prometheus(ns.Exec({"prometheus", "--config.file", dir / "prometheus.yml",
                              "--storage.tsdb.path", dir / "data", "--web.listen-address", web}),
                     dir / "prometheus.log");
  const auto query = [&](const std::string& q) {
    RunResult r = RunCommand(ns.Exec({"python3", Probe(), "query", "http://" + web, q}));
    return std::string(absl::StripAsciiWhitespace(r.out));
  };
  std::string up;
  ASSERT_TRUE(Eventually(
      [&] {
        up = query("up{job=\"netagent\"}");
        return up == "1";
      },
      std::chrono::seconds(60)))
      << "up: " << up << "\n"
      << ReadFile(dir / "prometheus.log");
  double in = 0;
  ASSERT_TRUE(absl::SimpleAtod(query("netagent_snmp_total{name=\"TcpInSegs\"}"), &in));
  EXPECT_GT(in, 0);
  EXPECT_LE(in, ProcSnmp(ns)["TcpInSegs"]);
  // No source failed in the scrapes Prometheus made.
  EXPECT_EQ(query("netagent_scrape_collector_success == 0"), "none");
  double samples = 0;
  ASSERT_TRUE(absl::SimpleAtod(query("scrape_samples_scraped{job=\"netagent\"}"), &samples));
  EXPECT_GT(samples, 300);
  // No alert before the incident.
  EXPECT_EQ(query("ALERTS{alertname=\"NetagentListenOverflow\"}"), "none");

  auto load = Connector(ns, dir, 40);
  std::string alert;
  EXPECT_TRUE(Eventually(
      [&] {
        alert = query("ALERTS{alertname=\"NetagentListenOverflow\",rule=\"listen-overflow\"}");
        return alert == "1";
      },
      std::chrono::seconds(30)))
      << "ALERTS: " << alert << "\nfinding: " << query("netagent_finding") << "\n"
      << agent.log();
}

// A text-format scrape: each family's type, and each sample by its name and
// labels (sorted, so two writers' label orders compare).
struct Scrape {
  std::map<std::string, std::string> types;
  std::map<std::string, double> samples;
};

Scrape ParseScrape(const std::string& body) {
  static const std::regex kSample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$)");
  static const std::regex kLabel(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)")re");
  Scrape s;
  for (absl::string_view line : absl::StrSplit(body, '\n', absl::SkipEmpty())) {
    if (absl::ConsumePrefix(&line, "# TYPE ")) {
      std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits(' ', 1));
      s.types[kv.first] = kv.second;
      continue;
    }
    if (absl::StartsWith(line, "#")) continue;
    std::smatch m;
    const std::string text(line);
    if (!std::regex_match(text, m, kSample)) continue;
    std::vector<std::string> labels;
    const std::string inner = m[3];
    for (auto it = std::sregex_iterator(inner.begin(), inner.end(), kLabel);
         it != std::sregex_iterator(); ++it) {
      labels.push_back((*it)[0]);
    }
    std::sort(labels.begin(), labels.end());
    double v = 0;
    if (!absl::SimpleAtod(std::string(m[4]), &v)) continue;
    s.samples[absl::StrCat(std::string(m[1]), "{", absl::StrJoin(labels, ","), "}")] = v;
  }
  return s;
}

// --metrics-compat node_exporter against node_exporter itself (Debian's 1.5),
// both in the same namespace, with the collectors the agent stands in for:
// every series node_exporter writes there is in the agent's scrape under the
// same name, type and labels, and its value lies between the agent's
// scrapes before and after it (counters), or next to them (gauges).
TEST(MetricsLab, WithNodeExporterNamesTheScrapeMatchesNodeExporter) {
  REQUIRE_ROOT();
  Netns ns;
  TempDir dir;
  const auto sh = [&](const std::string& cmd) {
    RunResult r = RunCommand(ns.Exec({"sh", "-c", cmd}));
    ASSERT_EQ(r.exit_code, 0) << cmd << ": " << r.err;
  };
  sh("ip link add name va numtxqueues 2 numrxqueues 2 type veth peer name vb numtxqueues 2 "
     "numrxqueues 2 && ip addr add 10.77.0.1/24 dev va && ip link set va up && "
     "ip link set vb up && iptables -A INPUT -m conntrack --ctstate NEW -j ACCEPT");
  Agent agent(ns, {"--metrics-listen", absl::StrCat("127.0.0.1:", kPort), "--metrics-compat",
                   "node_exporter", "--metrics-ethtool-devices", "v[ab]"});
  ASSERT_TRUE(agent.ok()) << agent.error();
  const int ne_port = 9100;
  Process node_exporter(
      ns.Exec({"prometheus-node-exporter", absl::StrCat("--web.listen-address=127.0.0.1:", ne_port),
               "--collector.disable-defaults", "--collector.softnet", "--collector.netstat",
               "--collector.netstat.fields=.*", "--collector.sockstat", "--collector.conntrack",
               "--collector.tcpstat", "--collector.netdev",
               "--collector.netdev.device-exclude=", "--collector.ethtool"}),
      dir / "node_exporter.log");
  ASSERT_TRUE(Eventually([&] { return Listening(ns, ne_port); }))
      << ReadFile(dir / "node_exporter.log");

  const Http before = Get(ns, kUrl);
  const Http ne = Get(ns, absl::StrCat("http://127.0.0.1:", ne_port, "/metrics"));
  const Http after = Get(ns, kUrl);
  ASSERT_EQ(before.status, 200);
  ASSERT_EQ(ne.status, 200) << ReadFile(dir / "node_exporter.log");
  const Scrape o1 = ParseScrape(before.body), o2 = ParseScrape(after.body),
               theirs = ParseScrape(ne.body);
  // Every source of both scrapes answered (a missing series below would
  // otherwise be a source that failed or timed out).
  for (const Scrape* s : {&o1, &o2}) {
    for (const auto& [series, value] : s->samples) {
      if (absl::StartsWith(series, "netagent_scrape_collector_success")) {
        EXPECT_EQ(value, 1) << series << (s == &o1 ? " before" : " after") << "\n" << agent.log();
      }
    }
    EXPECT_EQ(s->samples.count("netagent_scrape_collector_success{collector=\"ethtool\"}"), 1u);
    for (const auto& [series, value] : s->samples) {
      EXPECT_FALSE(absl::StartsWith(series, "netagent_nic_stats_failed")) << series;
    }
  }

  // The families the agent's data covers (node_exporter's ethtool collector
  // also writes link modes as node_network_* gauges: not covered).
  static const std::regex kCovered(
      "node_(softnet|netstat|sockstat|nf_conntrack|tcp_connection_states|ethtool|"
      "network_(receive|transmit))_.*|node_tcp_connection_states|node_ethtool_info");
  size_t compared = 0;
  for (const auto& [series, value] : theirs.samples) {
    const std::string family = series.substr(0, series.find('{'));
    if (!std::regex_match(family, kCovered)) continue;
    // tcpstat's queued-bytes pseudo-states are not produced (documented).
    if (absl::StrContains(series, "queued_bytes")) continue;
    SCOPED_TRACE(series);
    const std::string type = theirs.types.at(family);
    EXPECT_EQ(o2.types.count(family) ? o2.types.at(family) : "(missing)", type);
    auto a = o1.samples.find(series), b = o2.samples.find(series);
    // A counter the kernel writes once it is not zero (snmp6's per-type
    // ICMP counters, a router solicitation sent meanwhile) was 0 before.
    if (a == o1.samples.end() && b != o2.samples.end() && type != "gauge") {
      EXPECT_LE(value, b->second);
      ++compared;
      continue;
    }
    if (family == "node_tcp_connection_states") {
      // A state can come and go between the scrapes (the scrapes' own
      // connections closing into TIME_WAIT); where both have it, the counts
      // are the scrapes' few connections apart at most.
      EXPECT_TRUE(a != o1.samples.end() || b != o2.samples.end());
      if (a != o1.samples.end() && b != o2.samples.end()) {
        EXPECT_GE(value, std::min(a->second, b->second) - 4);
        EXPECT_LE(value, std::max(a->second, b->second) + 4);
      }
      continue;
    }
    if (a == o1.samples.end() || b == o2.samples.end()) {
      ADD_FAILURE() << "not in the agent's scrape " << (a == o1.samples.end() ? "before" : "after");
      continue;
    }
    ++compared;
    const double lo = std::min(a->second, b->second), hi = std::max(a->second, b->second);
    // netstat's untyped values that are not counters (CurrEstab, MaxConn,
    // Forwarding, DefaultTTL) go up and down.
    const bool level = absl::EndsWith(family, "CurrEstab") || absl::EndsWith(family, "MaxConn") ||
                       absl::EndsWith(family, "Forwarding") || absl::EndsWith(family, "DefaultTTL");
    if ((type == "counter" || type == "untyped") && !level) {
      EXPECT_LE(a->second, value);
      EXPECT_LE(value, b->second);
    } else if (absl::StrContains(family, "_mem")) {
      // Socket memory is the host's (every namespace's sockets) and moves
      // with every scrape: the two writers read the same file, in pages or
      // in bytes alike.
      const double page = absl::EndsWith(family, "_bytes") ? 4096 : 1;
      EXPECT_LE(std::abs(value - b->second), 256 * page);
    } else {
      EXPECT_GE(value, lo - 4);
      EXPECT_LE(value, hi + 4);
    }
  }
  EXPECT_GT(compared, 300u);
  for (const char* must :
       {"node_ethtool_received_queue_1_drops{device=\"va\"}",
        "node_ethtool_info{bus_info=\"\",device=\"vb\",driver=\"veth\","
        "expansion_rom_version=\"\",firmware_version=\"\",version=\"1.0\"}",
        "node_network_receive_bytes_total{device=\"va\"}", "node_netstat_TcpExt_ListenOverflows{}",
        "node_sockstat_TCP_inuse{}", "node_nf_conntrack_entries_limit{}",
        "node_softnet_processed_total{cpu=\"0\"}"}) {
    EXPECT_TRUE(theirs.samples.count(must) && o1.samples.count(must)) << must;
  }
}

TEST(MetricsLab, BadScrapersLeaveTheAgentAndItsApiServing) {
  REQUIRE_ROOT();
  Netns ns;
  Agent agent(ns, AgentFlags());
  ASSERT_TRUE(agent.ok()) << agent.error();
  TempDir dir;
  // Slow readers: requests a byte at a time, answers never read.
  std::vector<std::unique_ptr<Process>> slow;
  for (int i = 0; i < 4; ++i) {
    slow.push_back(std::make_unique<Process>(
        ns.Exec({"python3", Probe(), "slow", "127.0.0.1", std::to_string(kPort), "8"}),
        dir / ("slow" + std::to_string(i))));
  }
  RunResult big = RunCommand(
      ns.Exec({"python3", Probe(), "header", "127.0.0.1", std::to_string(kPort), "65536"}));
  EXPECT_THAT(big.out, ::testing::HasSubstr("431")) << big.err;

  RunResult storm;
  std::thread storming([&] {
    storm =
        RunCommand(ns.Exec({"python3", Probe(), "storm", kUrl, "200"}), std::chrono::seconds(60));
  });
  // The API answers while it goes on.
  std::chrono::steady_clock::duration slowest{};
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    RunResult host = agent.Netctl({"host"});
    EXPECT_EQ(host.exit_code, 0) << host.err;
    slowest = std::max(slowest, std::chrono::steady_clock::now() - t0);
  }
  storming.join();
  EXPECT_LT(slowest, std::chrono::seconds(2));
  ASSERT_EQ(storm.exit_code, 0) << storm.err;
  int ok = 0;
  ASSERT_EQ(std::sscanf(storm.out.c_str(), "ok %d", &ok), 1) << storm.out;
  EXPECT_GT(ok, 0) << storm.out;
  EXPECT_TRUE(agent.process().running());
  EXPECT_EQ(Get(ns, kUrl).status, 200);
}

}  // namespace
}  // namespace netagent::testing
