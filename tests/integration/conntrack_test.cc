// Conntrack in a namespace with over 10,000 entries, compared with the
// conntrack tool in the same namespace.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "netagent/v1/conntrack.pb.h"
#include "tests/common/conntrack_output.h"
#include "tests/common/test_support.h"
#include "tests/integration/harness.h"
#include "tests/integration/json.h"

namespace netagent::testing {
namespace {

namespace v1 = ::netagent::v1;

constexpr int kUdpEntries = 10000;
constexpr int kTcpPairs = 40;

// A namespace whose conntrack tracks (a rule uses it), with UDP entries that
// last (600 s timeout, per namespace) and some established TCP connections.
class ConntrackNamespace {
 public:
  ConntrackNamespace() {
    for (const auto& cmd : std::vector<std::vector<std::string>>{
             {"iptables", "-A", "OUTPUT", "-m", "conntrack", "--ctstate", "NEW", "-j", "ACCEPT"},
             {"sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=600"},
             {"sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1"},
             {UDPSPRAY_PATH, absl::StrCat(kUdpEntries)}}) {
      RunResult r = RunCommand(ns_.Exec(cmd));
      EXPECT_EQ(r.exit_code, 0) << cmd[0] << ": " << r.err;
    }
    farm_ = std::make_unique<Process>(
        ns_.Exec({SOCKFARM_PATH, "--established", absl::StrCat(kTcpPairs)}), dir_ / "farm.out");
    EXPECT_TRUE(
        Eventually([&] { return ReadFile(dir_ / "farm.out").find("ready") != std::string::npos; },
                   std::chrono::seconds(30)))
        << ReadFile(dir_ / "farm.out");
  }
  ~ConntrackNamespace() { farm_->Signal(SIGTERM); }
  const Netns& ns() const { return ns_; }
  RunResult Conntrack(std::vector<std::string> args) const {
    args.insert(args.begin(), "conntrack");
    return RunCommand(ns_.Exec(args), std::chrono::seconds(60));
  }

 private:
  Netns ns_;
  TempDir dir_;
  std::unique_ptr<Process> farm_;
};

std::vector<v1::ConntrackEntry> List(const Agent& agent, std::vector<std::string> args) {
  args.insert(args.begin(), {"-o", "json", "conntrack", "list"});
  RunResult r = agent.Netctl(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<v1::ConntrackEntry> out;
  for (const std::string& line : Lines(r.out)) {
    auto batch = ResultOf<v1::ListConntrackResponse>(line);
    out.insert(out.end(), batch.entries().begin(), batch.entries().end());
  }
  return out;
}

std::string Key(const v1::ConntrackEntry& e) {
  const auto& o = e.original();
  return absl::StrCat(e.protocol(), " ", o.source(), ":", o.source_port(), " > ", o.destination(),
                      ":", o.destination_port());
}

uint64_t ToolCount(const ConntrackNamespace& ct, std::vector<std::string> args) {
  RunResult r = ct.Conntrack(args);
  return ParseConntrackL(r.out).size();
}

TEST(ConntrackIntegration, TenThousandEntriesAgreeWithTheConntrackTool) {
  REQUIRE_ROOT();
  ConntrackNamespace ct;
  Agent agent(ct.ns());
  ASSERT_TRUE(agent.ok()) << agent.error();

  RunResult count = ct.Conntrack({"-C"});
  ASSERT_EQ(count.exit_code, 0) << count.err;
  const uint64_t tool_count = std::stoull(count.out);
  ASSERT_GE(tool_count, static_cast<uint64_t>(kUdpEntries));

  RunResult stats = agent.Netctl({"-o", "json", "conntrack", "stats"});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  auto s = ResultOf<v1::GetConntrackStatsResponse>(stats.out);
  EXPECT_EQ(s.count(), tool_count);
  EXPECT_EQ(s.source(), "netlink");
  EXPECT_GT(s.max(), 0u);

  // The tuples, set against set.
  RunResult l = ct.Conntrack({"-L"});
  std::set<std::string> tool;
  std::map<std::string, CtLine> tool_lines;
  for (const auto& line : ParseConntrackL(l.out)) {
    tool.insert(line.Key());
    tool_lines[line.Key()] = line;
  }
  std::set<std::string> ours;
  int tcp = 0;
  for (const auto& e : List(agent, {})) {
    ours.insert(Key(e));
    auto it = tool_lines.find(Key(e));
    if (it == tool_lines.end()) continue;
    EXPECT_EQ(e.tcp_state(), it->second.state) << Key(e);
    EXPECT_EQ(absl::StrCat(e.reply().source_port()), it->second.tuples[1].at("sport"));
    if (e.protocol() == "tcp") {
      ++tcp;
      EXPECT_EQ(absl::StrCat(e.original_packets()), it->second.tuples[0].at("packets")) << Key(e);
    }
  }
  EXPECT_EQ(ours, tool);
  EXPECT_EQ(tcp, kTcpPairs);

  // Per-CPU statistics, as conntrack -S gives them.
  auto ref = ParseConntrackS(ct.Conntrack({"-S"}).out);
  ASSERT_EQ(static_cast<size_t>(s.cpus_size()), ref.size());
  for (const auto& cpu : s.cpus()) {
    for (const auto& v : cpu.values()) {
      if (!ref[cpu.cpu()].count(v.name())) continue;
      EXPECT_EQ(v.value(), ref[cpu.cpu()][v.name()]) << "cpu " << cpu.cpu() << " " << v.name();
    }
  }
}

TEST(ConntrackIntegration, FiltersMatchTheConntrackTool) {
  REQUIRE_ROOT();
  ConntrackNamespace ct;
  Agent agent(ct.ns());
  ASSERT_TRUE(agent.ok()) << agent.error();
  struct Case {
    std::vector<std::string> ours, tool;
  };
  for (const Case& c : std::vector<Case>{
           {{"-p", "tcp"}, {"-L", "-p", "tcp"}},
           {{"-p", "tcp", "--state", "ESTABLISHED"}, {"-L", "-p", "tcp", "--state", "ESTABLISHED"}},
           {{"-p", "udp", "--dport", "2000"}, {"-L", "-p", "udp", "--dport", "2000"}},
           {{"-p", "tcp", "--dport", "5000", "-s", "127.0.0.1"},
            {"-L", "-p", "tcp", "--dport", "5000", "-s", "127.0.0.1"}},
           {{"-s", "10.0.0.0/8"}, {"-L", "-s", "10.0.0.0/8"}},
           {{"-6"}, {"-L", "-f", "ipv6"}},
       }) {
    EXPECT_EQ(List(agent, c.ours).size(), ToolCount(ct, c.tool)) << absl::StrJoin(c.ours, " ");
  }
  // A range the tool cannot express: checked against the full list instead.
  uint64_t in_range = 0;
  for (const auto& line : ParseConntrackL(ct.Conntrack({"-L", "-p", "udp"}).out)) {
    const int port = std::stoi(line.tuples[0].at("dport"));
    in_range += port >= 3000 && port <= 3099;
  }
  EXPECT_EQ(List(agent, {"-p", "udp", "--dport", "3000-3099"}).size(), in_range);
  EXPECT_EQ(in_range, 100u);

  RunResult bad = agent.Netctl({"conntrack", "list", "-s", "10.0.0.1/8"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("INVALID_ARGUMENT: filter.source:"), std::string::npos) << bad.err;
  RunResult proto = agent.Netctl({"conntrack", "list", "-p", "quic"});
  EXPECT_NE(proto.err.find("filter.protocol:"), std::string::npos) << proto.err;
}

TEST(ConntrackIntegration, SummaryCountsProtocolsStatesAndSources) {
  REQUIRE_ROOT();
  ConntrackNamespace ct;
  Agent agent(ct.ns());
  ASSERT_TRUE(agent.ok()) << agent.error();
  RunResult r = agent.Netctl({"-o", "json", "conntrack", "summary"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto sum = ResultOf<v1::GetConntrackSummaryResponse>(r.out);
  std::map<std::string, uint64_t> counts;
  for (const auto& c : sum.counts()) counts[c.protocol() + "/" + c.state()] = c.count();
  EXPECT_EQ(counts["udp/"], ToolCount(ct, {"-L", "-p", "udp"}));
  EXPECT_EQ(counts["tcp/ESTABLISHED"], static_cast<uint64_t>(kTcpPairs));
  ASSERT_GE(sum.top_sources_size(), 1);
  EXPECT_EQ(sum.top_sources(0).address(), "127.0.0.1");
  EXPECT_EQ(sum.matched(), sum.count());
  EXPECT_GT(sum.fill_percent(), 0);
}

// -4 and -6 together mean both families, as with netctl sockets (not IPv6
// alone): two IPv4 entries and one IPv6 entry made with conntrack -I.
TEST(ConntrackIntegration, BothFamilyFlagsMeanBothFamilies) {
  REQUIRE_ROOT();
  Netns ns;
  for (const char* src : {"10.0.0.1", "10.0.0.3", "fd00::1"}) {
    const std::string dst = absl::StrContains(src, ':') ? "fd00::2" : "10.0.0.2";
    RunResult r = RunCommand(ns.Exec({"conntrack", "-I", "-s", src, "-d", dst, "-p", "udp",
                                      "--sport", "1000", "--dport", "53", "--timeout", "600"}));
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();
  auto count = [&](std::vector<std::string> flags) {
    std::vector<std::string> args = {"-o", "json", "conntrack", "list", "--count"};
    args.insert(args.end(), flags.begin(), flags.end());
    RunResult r = agent.Netctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return ResultOf<google::protobuf::Struct>(r.out).fields().at("entries").number_value();
  };
  EXPECT_EQ(count({}), 3);
  EXPECT_EQ(count({"-4"}), 2);
  EXPECT_EQ(count({"-6"}), 1);
  EXPECT_EQ(count({"-4", "-6"}), 3);
}

}  // namespace
}  // namespace netagent::testing
