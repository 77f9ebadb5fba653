// netctl against a small fleet: agents on TCP in one namespace and a
// blackholed target (routed to a namespace that silently drops what is not
// its own: a SYN that is never answered). Results show as each target
// answers; the blackholed one costs the connect timeout, not the call's
// deadline; Ctrl-C prints what arrived and names what did not; the progress
// line appears on a terminal only.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <map>
#include <thread>

#include "netagent/v1/telemetry.pb.h"
#include "tests/common/test_support.h"
#include "tests/integration/harness.h"
#include "tests/integration/json.h"

namespace netagent::testing {
namespace {

namespace v1 = ::netagent::v1;

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

constexpr char kBlackholed[] = "10.250.0.2:9470";

class FleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_ROOT("network namespaces");
    // ns routes 10.250.0.2 to `drop`, which does not have that address and
    // does not forward: the SYN vanishes.
    const std::string veth = "nafl" + std::to_string(getpid() % 100000);
    ASSERT_EQ(RunCommand({"ip", "-n", ns_.name(), "link", "add", veth, "type", "veth", "peer",
                          "name", "p" + veth, "netns", drop_.name()})
                  .exit_code,
              0);
    for (const auto& cmd : std::vector<std::vector<std::string>>{
             {"ip", "-n", ns_.name(), "addr", "add", "10.250.0.1/24", "dev", veth},
             {"ip", "-n", ns_.name(), "link", "set", veth, "up"},
             {"ip", "-n", drop_.name(), "addr", "add", "10.250.0.3/24", "dev", "p" + veth},
             {"ip", "-n", drop_.name(), "link", "set", "p" + veth, "up"},
             {"ip", "-n", ns_.name(), "route", "add", "10.250.0.2/32", "via", "10.250.0.3"}}) {
      ASSERT_EQ(RunCommand(cmd).exit_code, 0) << cmd[3];
    }
    for (int i = 0; i < 3; ++i) {
      agents_.push_back(std::make_unique<Agent>(
          ns_, std::vector<std::string>{"--listen", "127.0.0.1:" + std::to_string(9471 + i)}));
      ASSERT_TRUE(agents_.back()->ok()) << agents_.back()->error();
    }
    // The blackholed target first: in list order everything would wait on it.
    WriteFile(tmp_ / "fleet",
              std::string(kBlackholed) + "\n127.0.0.1:9471\n127.0.0.1:9472\n" + "127.0.0.1:9473\n");
  }

  std::vector<std::string> Netctl(std::vector<std::string> args) const {
    args.insert(args.begin(), {NetctlPath(), "--targets-file", tmp_ / "fleet"});
    return ns_.Exec(args);
  }

  Netns ns_, drop_;
  TempDir tmp_;
  std::vector<std::unique_ptr<Agent>> agents_;
};

TEST_F(FleetTest, ABlackholedHostCostsTheConnectTimeoutAndIsNamed) {
  const auto start = steady_clock::now();
  RunResult r = RunCommand(Netctl({"--connect-timeout", "1s", "--timeout", "10s", "host"}));
  const auto took = steady_clock::now() - start;
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_LT(took, milliseconds(1000 + 1500)) << "the call deadline was waited for";
  for (int port : {9471, 9472, 9473}) {
    EXPECT_NE(r.out.find("== 127.0.0.1:" + std::to_string(port) + " =="), std::string::npos)
        << r.out;
  }
  EXPECT_EQ(r.out.find(kBlackholed), std::string::npos) << "errors belong on stderr";
  EXPECT_NE(r.err.find(std::string("1 of 4 targets failed:\n  ") + kBlackholed +
                       ": UNAVAILABLE: not connected within 1s"),
            std::string::npos)
      << r.err;
}

// Output comes as targets answer: the live agents' results are on stdout
// while netctl still waits for the blackholed one.
TEST_F(FleetTest, ResultsArePrintedAsTargetsAnswer) {
  Process p(Netctl({"--connect-timeout", "6s", "-o", "json", "health"}), tmp_ / "out");
  auto lines = [&] {
    const std::string s = ReadFile(tmp_ / "out");
    return std::count(s.begin(), s.end(), '\n');
  };
  ASSERT_TRUE(Eventually([&] { return lines() == 3; }, seconds(4))) << ReadFile(tmp_ / "out");
  EXPECT_TRUE(p.running()) << "finished before the blackholed target's connect timeout";
  EXPECT_EQ(ReadFile(tmp_ / "out").find(kBlackholed), std::string::npos);
  std::optional<int> code = p.Wait(seconds(10));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 1);
  // With --order targets, the list's order: nothing before the first target.
  Process ordered(Netctl({"--connect-timeout", "3s", "--order", "targets", "-o", "json", "health"}),
                  tmp_ / "ordered");
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_EQ(ReadFile(tmp_ / "ordered"), "");
  ASSERT_TRUE(ordered.Wait(seconds(10)).has_value());
  const std::string all = ReadFile(tmp_ / "ordered");
  EXPECT_LT(all.find(kBlackholed), all.find("127.0.0.1:9471")) << all;
  EXPECT_LT(all.find("127.0.0.1:9471"), all.find("127.0.0.1:9473")) << all;
}

// Ctrl-C during a fleet call: prompt, what arrived is printed, the silent
// target named, exit status 130.
TEST_F(FleetTest, CtrlCPrintsWhatArrivedAndNamesTheRest) {
  Process p(Netctl({"--connect-timeout", "20s", "--timeout", "30s", "counters", "--window", "1s",
                    "--filter", "^TcpExtListenOverflows$"}),
            tmp_ / "out");
  // The three live agents answered (in whatever order); the blackholed one
  // is still being connected to.
  ASSERT_TRUE(Eventually(
      [&] {
        const std::string out = ReadFile(tmp_ / "out");
        return out.find("\n127.0.0.1:9471 ") != std::string::npos &&
               out.find("\n127.0.0.1:9472 ") != std::string::npos &&
               out.find("\n127.0.0.1:9473 ") != std::string::npos;
      },
      seconds(8)))
      << ReadFile(tmp_ / "out");
  const auto start = steady_clock::now();
  p.Signal(SIGINT);
  std::optional<int> code = p.Wait(seconds(3));
  ASSERT_TRUE(code.has_value()) << "netctl did not stop on Ctrl-C";
  EXPECT_LT(steady_clock::now() - start, seconds(1));
  EXPECT_EQ(*code, 130);
  const std::string out = ReadFile(tmp_ / "out");
  for (int port : {9471, 9472, 9473}) {
    const size_t row = out.find("\n127.0.0.1:" + std::to_string(port) + " ");
    ASSERT_NE(row, std::string::npos) << out;
    const std::string line = out.substr(row + 1, out.find('\n', row + 1) - row - 1);
    EXPECT_NE(line.find(" TcpExtListenOverflows "), std::string::npos) << out;
  }
  EXPECT_NE(out.find(std::string("interrupted; no answer from 1 of 4 targets: ") + kBlackholed),
            std::string::npos)
      << out;
}

// The progress line is for a person at a terminal: under a pseudo-terminal
// (script(1)) it appears while the blackholed target is awaited; in a pipe
// it never does.
TEST_F(FleetTest, ProgressOnlyOnATerminal) {
  const std::string cmd = "ip netns exec " + ns_.name() + " " + NetctlPath() + " --targets-file " +
                          (tmp_ / "fleet") + " --connect-timeout 2500ms host";
  RunResult tty = RunCommand({"script", "-qfec", cmd, "/dev/null"}, seconds(15));
  EXPECT_NE(tty.out.find("3 of 4 answered, 0 failed, 1 running"), std::string::npos) << tty.out;
  EXPECT_NE(tty.out.find(std::string("waiting on ") + kBlackholed), std::string::npos);
  RunResult pipe = RunCommand(Netctl({"--connect-timeout", "2500ms", "host"}));
  EXPECT_EQ(pipe.err.find("answered"), std::string::npos) << pipe.err;
  EXPECT_EQ(pipe.out.find("answered"), std::string::npos);
}

// --top against a reference computed from the same fleet's JSON: three
// agents in three namespaces that sent different numbers of datagrams to a
// closed port.
TEST(FleetTopTest, TopRanksTargetsAsTheJsonSays) {
  REQUIRE_ROOT("network namespaces");
  Netns ns[3];
  std::vector<std::unique_ptr<Agent>> agents;
  TempDir tmp;
  std::string fleet;
  for (int i = 0; i < 3; ++i) {
    // 1, 4 and 2 datagrams: the middle one has the most.
    const int sends[] = {1, 4, 2};
    ASSERT_EQ(RunCommand(ns[i].Exec({"bash", "-c",
                                     "for i in $(seq " + std::to_string(sends[i]) +
                                         "); do echo x > /dev/udp/127.0.0.1/9; done"}))
                  .exit_code,
              0);
    agents.push_back(std::make_unique<Agent>(ns[i]));
    ASSERT_TRUE(agents.back()->ok()) << agents.back()->error();
    fleet += agents.back()->target() + "\n";
  }
  WriteFile(tmp / "fleet", fleet);
  const std::vector<std::string> base = {NetctlPath(),  "--targets-file",
                                         tmp / "fleet", "counters",
                                         "--filter",    "^Udp(NoPorts|OutDatagrams)$"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = base;
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunCommand(argv);
  };
  RunResult json = with({"-o", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  // The reference: per counter, the target with the highest value.
  std::map<std::string, std::pair<int64_t, std::string>> best;
  for (const std::string& line : Lines(json.out)) {
    auto r = ResultOf<v1::GetCountersResponse>(line);
    const std::string target = ParseJson(line).fields().at("target").string_value();
    for (const auto& c : r.counters()) {
      auto& b = best[c.name()];
      if (b.second.empty() || c.value() > b.first) b = {c.value(), target};
    }
  }
  ASSERT_EQ(best.size(), 2u) << json.out;
  EXPECT_EQ(best["UdpNoPorts"].second, agents[1]->target());
  EXPECT_EQ(best["UdpNoPorts"].first, 4);
  RunResult top = with({"--top", "1"});
  ASSERT_EQ(top.exit_code, 0) << top.err;
  std::vector<std::string> lines = Lines(top.out);
  ASSERT_EQ(lines.size(), 3u) << top.out;  // header and one row per counter
  for (const auto& [name, b] : best) {
    bool found = false;
    for (const std::string& l : lines) {
      found |= l.rfind(b.second + " ", 0) == 0 && l.find(" " + name + " ") != std::string::npos &&
               l.find(" " + std::to_string(b.first)) != std::string::npos;
    }
    EXPECT_TRUE(found) << name << " " << b.second << "\n" << top.out;
  }
  // JSON rows and --sum.
  RunResult top_json = with({"--top", "1", "-o", "json"});
  ASSERT_EQ(Lines(top_json.out).size(), 2u) << top_json.out;
  EXPECT_EQ(ParseJson(Lines(top_json.out)[0]).fields().at("value").number_value(),
            static_cast<double>(
                best[ParseJson(Lines(top_json.out)[0]).fields().at("name").string_value()].first));
  RunResult sum = with({"--sum", "-o", "json"});
  int64_t total = 0;
  for (const std::string& line : Lines(json.out)) {
    const auto r = ResultOf<v1::GetCountersResponse>(line);
    for (const auto& c : r.counters())
      if (c.name() == "UdpNoPorts") total += c.value();
  }
  bool summed = false;
  for (const std::string& line : Lines(sum.out)) {
    auto f = ParseJson(line).fields();
    if (f.at("name").string_value() == "UdpNoPorts") {
      summed = f.at("value").number_value() == static_cast<double>(total) &&
               f.at("target").string_value() == "sum of 3";
    }
  }
  EXPECT_TRUE(summed) << sum.out;
  RunResult bad = with({"--top", "1", "--by", "name"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--by: \"name\" is not a number column here (VALUE)"), std::string::npos)
      << bad.err;
}

}  // namespace
}  // namespace netagent::testing
