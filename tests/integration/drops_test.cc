// netagentd's kernel-drop collector, through netctl, against drops of known
// reasons made in the agent's namespace: UDP and TCP to closed ports
// (NO_SOCKET, compared with the kernel's own UdpNoPorts and TcpOutRsts) and an
// iptables DROP rule (NETFILTER_DROP, compared with the rule's counter).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "netagent/v1/host.pb.h"
#include "netagent/v1/telemetry.pb.h"
#include "tests/common/test_support.h"
#include "tests/integration/harness.h"
#include "tests/integration/json.h"

namespace netagent::testing {
namespace {

namespace v1 = ::netagent::v1;

void Bash(const Netns& ns, const std::string& script) {
  RunResult r = RunCommand(ns.Exec({"bash", "-c", script + " 2>/dev/null; true"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

std::string Loop(int n, const std::string& body) {
  return "for i in $(seq " + std::to_string(n) + "); do " + body + "; done";
}

// One UDP datagram to 127.0.0.1:port per iteration, each from a new socket.
std::string Udp(int n, int port) {
  return Loop(n, "echo x > /dev/udp/127.0.0.1/" + std::to_string(port));
}
// One TCP connect (one SYN, answered by a RST) to a closed port per iteration.
std::string Syns(int n, int port) {
  return Loop(n, "(exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port) + ")");
}

// A field of /proc/net/snmp in the namespace ("Udp", "NoPorts").
int64_t Snmp(const Netns& ns, const std::string& group, const std::string& field) {
  RunResult r = RunCommand(ns.Exec({"cat", "/proc/net/snmp"}));
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  for (size_t i = 0; i + 1 < lines.size(); i += 2) {
    std::vector<std::string> names = absl::StrSplit(lines[i], ' ', absl::SkipEmpty());
    std::vector<std::string> values = absl::StrSplit(lines[i + 1], ' ', absl::SkipEmpty());
    if (names.empty() || names[0] != group + ":") continue;
    for (size_t k = 1; k < names.size() && k < values.size(); ++k) {
      int64_t v = 0;
      if (names[k] == field && absl::SimpleAtoi(values[k], &v)) return v;
    }
  }
  ADD_FAILURE() << "no " << group << " " << field << " in /proc/net/snmp";
  return -1;
}

// The packet counter of the first DROP rule of INPUT.
int64_t RuleDrops(const Netns& ns) {
  RunResult r = RunCommand(ns.Exec({"iptables", "-L", "INPUT", "-v", "-x", "-n"}));
  for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t v = 0;
    if (f.size() > 2 && f[2] == "DROP" && absl::SimpleAtoi(f[0], &v)) return v;
  }
  ADD_FAILURE() << "no DROP rule: " << r.out << r.err;
  return -1;
}

v1::GetDropReasonsResponse Drops(const Agent& agent, std::vector<std::string> args = {}) {
  args.insert(args.begin(), {"-o", "json", "drops"});
  RunResult r = agent.Netctl(args);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  return ResultOf<v1::GetDropReasonsResponse>(r.out);
}

uint64_t Count(const v1::GetDropReasonsResponse& r, const std::string& reason,
               const std::string& protocol) {
  uint64_t n = 0;
  for (const auto& row : r.rows()) {
    if (row.reason() == reason && row.protocol() == protocol && row.device() == "lo")
      n += row.count();
  }
  return n;
}

TEST(DropsIntegration, NoSocketDropsEqualTheKernelsOwnCounters) {
  REQUIRE_ROOT();
  Netns ns;
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();
  RunResult host = agent.Netctl({"host"});
  ASSERT_EQ(host.exit_code, 0) << host.err;
  // The first column is as wide as the longest field name.
  EXPECT_THAT(host.out, ::testing::ContainsRegex("\ndrop reasons +yes\n"));

  // The first call attaches the collector, and says so.
  v1::GetDropReasonsResponse first = Drops(agent);
  EXPECT_TRUE(first.collector().attached_now());
  EXPECT_GT(first.collector().reasons_known(), 50u);
  RunResult table = agent.Netctl({"drops"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_FALSE(absl::StrContains(table.out, "attached by this call")) << table.out;

  const int64_t noports = Snmp(ns, "Udp", "NoPorts");
  const int64_t rsts = Snmp(ns, "Tcp", "OutRsts");
  Bash(ns, Udp(30, 9));
  Bash(ns, Syns(20, 9));
  v1::GetDropReasonsResponse r = Drops(agent, {"--samples", "50"});
  EXPECT_FALSE(r.collector().attached_now());
  const uint64_t udp = Count(r, "NO_SOCKET", "ipv4/udp");
  const uint64_t tcp = Count(r, "NO_SOCKET", "ipv4/tcp");
  EXPECT_EQ(udp, 30u);
  EXPECT_EQ(tcp, 20u);
  EXPECT_EQ(static_cast<int64_t>(udp), Snmp(ns, "Udp", "NoPorts") - noports);
  EXPECT_EQ(static_cast<int64_t>(tcp), Snmp(ns, "Tcp", "OutRsts") - rsts);
  // Flow samples (50 drops, under the default cap of 100/s per CPU): every
  // one from loopback to port 9.
  ASSERT_EQ(r.samples_size(), 50);
  for (const auto& s : r.samples()) {
    EXPECT_EQ(s.reason(), "NO_SOCKET");
    EXPECT_EQ(s.source(), "127.0.0.1");
    EXPECT_EQ(s.destination_port(), 9u);
  }
  ASSERT_GE(r.top_sources_size(), 1);
  EXPECT_EQ(r.top_sources(0).prefix(), "127.0.0.0/24");
  EXPECT_EQ(r.top_sources(0).samples(), 50u);

  // Filters: a reason in any case, a device; rows of other reasons are gone.
  v1::GetDropReasonsResponse only = Drops(agent, {"--reason", "no_socket", "--dev", "lo"});
  for (const auto& row : only.rows()) EXPECT_EQ(row.reason(), "NO_SOCKET");
  EXPECT_EQ(only.total(),
            Count(only, "NO_SOCKET", "ipv4/udp") + Count(only, "NO_SOCKET", "ipv4/tcp"));
  EXPECT_EQ(Drops(agent, {"--dev", "nosuchdev"}).rows_size(), 0);

  table = agent.Netctl({"drops", "--samples", "0"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_TRUE(
      absl::StrContains(table.out, "REASON     DEVICE  PROTOCOL  COUNT\nNO_SOCKET  lo      ipv4/"))
      << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, "TOP-SOURCE    SAMPLES  MOSTLY\n127.0.0.0/24"))
      << table.out;
}

TEST(DropsIntegration, NetfilterDropsEqualTheRuleCounterOverAWindow) {
  REQUIRE_ROOT();
  Netns ns;
  ASSERT_EQ(
      RunCommand(ns.Exec({"iptables", "-A", "INPUT", "-p", "udp", "--dport", "7", "-j", "DROP"}))
          .exit_code,
      0);
  Agent agent(ns, {"--drop-reasons", "start", "--drop-samples", "5"});
  ASSERT_TRUE(agent.ok()) << agent.error();
  EXPECT_FALSE(Drops(agent).collector().attached_now());  // attached at start

  Bash(ns, Udp(120, 7));
  v1::GetDropReasonsResponse r = Drops(agent, {"--reason", "NETFILTER_DROP"});
  EXPECT_EQ(static_cast<int64_t>(Count(r, "NETFILTER_DROP", "ipv4/udp")), RuleDrops(ns));
  EXPECT_EQ(Count(r, "NETFILTER_DROP", "ipv4/udp"), 120u);
  EXPECT_EQ(r.collector().samples_per_second(), 5u);
  EXPECT_GT(r.collector().samples_capped(), 0u);  // 120 at once, 5 a second per CPU

  // Datagrams throughout a windowed call: whenever its window opens, some
  // fall inside it, and the delta is what the rule counted meanwhile at most.
  std::atomic<bool> done{false};
  const int64_t rule_before = RuleDrops(ns);
  std::thread traffic([&] {
    while (!done) {
      Bash(ns, Udp(20, 7));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  r = Drops(agent, {"--window", "2s", "--reason", "NETFILTER_DROP"});
  done = true;
  traffic.join();
  const int64_t rule_after = RuleDrops(ns);
  ASSERT_TRUE(r.has_window());
  ASSERT_EQ(r.rows_size(), 1);
  const auto& row = r.rows(0);
  EXPECT_EQ(row.reason(), "NETFILTER_DROP");
  EXPECT_GE(row.delta(), 20u);
  EXPECT_LE(static_cast<int64_t>(row.delta()), rule_after - rule_before);
  const double seconds = r.window().seconds() + r.window().nanos() / 1e9;
  EXPECT_NEAR(row.rate(), row.delta() / seconds, 1e-6 * row.delta());
  // The traffic may send one more batch between the answer and its stop:
  // the rule has counted at least what the collector had at the window's end.
  EXPECT_LE(static_cast<int64_t>(row.count()), rule_after);
  EXPECT_GE(static_cast<int64_t>(row.count()), rule_before + static_cast<int64_t>(row.delta()));
}

TEST(DropsIntegration, OffOrBadInputIsAClearErrorAndAttachesNothing) {
  REQUIRE_ROOT();
  Netns ns;
  {
    Agent off(ns, {"--drop-reasons", "off"});
    ASSERT_TRUE(off.ok()) << off.error();
    RunResult r = off.Netctl({"drops"});
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_TRUE(absl::StrContains(r.err, "FAILED_PRECONDITION: the kernel-drop collector is off"))
        << r.err;
  }
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();
  RunResult r = agent.Netctl({"drops", "--dev", "a/b"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "INVALID_ARGUMENT: devices[0]: \"a/b\" is not an interface"))
      << r.err;
  EXPECT_FALSE(absl::StrContains(agent.log(), "kernel-drop collector attached")) << agent.log();
  r = agent.Netctl({"drops", "--reason", "NO_SOCKET,LISTEN_OVERFLOW"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(
      r.err,
      "INVALID_ARGUMENT: reasons[1]: \"LISTEN_OVERFLOW\" is not a drop reason of this kernel"))
      << r.err;
  r = agent.Netctl({"drops", "--samples", "300"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "max_samples: at most 256")) << r.err;
}

}  // namespace
}  // namespace netagent::testing
