// netagentd in a network namespace, queried through netctl, compared with what
// /proc and nstat say in the same namespace.
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <map>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "netagent/v1/host.pb.h"
#include "netagent/v1/telemetry.grpc.pb.h"
#include "tests/common/test_support.h"
#include "tests/integration/harness.h"
#include "tests/integration/json.h"

namespace netagent::testing {
namespace {

namespace v1 = ::netagent::v1;

// UDP datagrams to a closed port on loopback: each one moves UdpNoPorts and
// the ICMP/IP counters of the namespace.
void SendUdpToClosedPort(const Netns& ns, int count) {
  RunCommand(ns.Exec({"bash", "-c",
                      "for i in $(seq " + std::to_string(count) +
                          "); do echo x > /dev/udp/127.0.0.1/9; done 2>/dev/null; true"}));
}

std::map<std::string, int64_t> CountersByName(const v1::GetCountersResponse& r) {
  std::map<std::string, int64_t> out;
  for (const auto& c : r.counters()) out[c.name()] = c.value();
  return out;
}

TEST(AgentIntegration, ServesItsNamespaceAndSaysWhichOne) {
  REQUIRE_ROOT();
  Netns ns;
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();
  RunResult health = agent.Netctl({"health"});
  EXPECT_EQ(health.exit_code, 0) << health.err;
  EXPECT_NE(health.out.find("SERVING"), std::string::npos);

  RunResult host = agent.Netctl({"-o", "json", "host"});
  ASSERT_EQ(host.exit_code, 0) << host.err;
  auto info = ResultOf<v1::GetHostInfoResponse>(host.out);
  struct stat st;
  ASSERT_EQ(stat(("/run/netns/" + ns.name()).c_str(), &st), 0);
  EXPECT_EQ(info.network_namespace().inode(), st.st_ino);
  EXPECT_EQ(info.network_namespace().name(), ns.name());
  EXPECT_FALSE(info.network_namespace().initial());
  EXPECT_FALSE(info.kernel_release().empty());
  EXPECT_GT(info.cpus().online_size(), 0);
  EXPECT_TRUE(info.capabilities().ethtool_netlink().status().available())
      << info.capabilities().ethtool_netlink().status().reason();
  EXPECT_FALSE(info.capabilities().congestion_control().available().empty());
  EXPECT_EQ(info.caller().role(), v1::ROLE_OPERATOR);  // root on the unix socket

  RunResult table = agent.Netctl({"host"});
  EXPECT_EQ(table.exit_code, 0);
  EXPECT_NE(table.out.find("name " + ns.name()), std::string::npos) << table.out;
}

TEST(AgentIntegration, CountersEqualProcAndNstatInTheSameNamespace) {
  REQUIRE_ROOT();
  Netns ns;
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();
  auto before = ProcSnmp(ns);
  SendUdpToClosedPort(ns, 25);
  RunResult r = agent.Netctl({"-o", "json", "counters"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto after = ProcSnmp(ns);
  auto ours = CountersByName(ResultOf<v1::GetCountersResponse>(r.out));

  // The namespace is quiet but for our traffic: every /proc/net/snmp value the
  // agent saw lies between the reads around the call.
  ASSERT_FALSE(after.empty());
  for (const auto& [name, value] : after) {
    ASSERT_TRUE(ours.count(name)) << name;
    EXPECT_LE(before[name], ours[name]) << name;
    EXPECT_LE(ours[name], value) << name;
  }
  EXPECT_GE(ours["UdpNoPorts"], before["UdpNoPorts"] + 25);
  // ...and they are this namespace's values, not the host's.
  EXPECT_EQ(ours["UdpNoPorts"], after["UdpNoPorts"]);

  // nstat, the reference: every counter it prints, we print with its value.
  RunResult nstat = RunCommand(ns.Exec({"nstat", "-asz", "--json"}));
  ASSERT_EQ(nstat.exit_code, 0) << nstat.err;
  auto kernel = ParseJson(nstat.out).fields().at("kernel").struct_value();
  ASSERT_GT(kernel.fields_size(), 100);
  for (const auto& [name, value] : kernel.fields()) {
    ASSERT_TRUE(ours.count(name)) << "nstat has " << name;
    EXPECT_EQ(static_cast<double>(ours[name]), value.number_value()) << name;
  }
}

TEST(AgentIntegration, WindowedCountersGiveDeltasAndRates) {
  REQUIRE_ROOT();
  Netns ns;
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();
  // Datagrams throughout the call, so that whenever its window opens at
  // least one batch of 40 falls inside it.
  std::atomic<bool> done{false};
  std::thread traffic([&] {
    while (!done) {
      SendUdpToClosedPort(ns, 40);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  RunResult r = agent.Netctl({"-o", "json", "counters", "--window", "2s", "--filter", "^Udp"});
  done = true;
  traffic.join();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto resp = ResultOf<v1::GetCountersResponse>(r.out);
  ASSERT_TRUE(resp.has_window());
  EXPECT_GE(resp.window().seconds(), 2);
  bool found = false;
  for (const auto& c : resp.counters()) {
    EXPECT_EQ(c.name().rfind("Udp", 0), 0u) << c.name();  // the filter held
    if (c.name() == "UdpNoPorts") {
      found = true;
      EXPECT_GE(c.delta(), 40);
      const double seconds = resp.window().seconds() + resp.window().nanos() / 1e9;
      EXPECT_NEAR(c.rate(), c.delta() / seconds, 1e-6 * c.delta());
    }
  }
  EXPECT_TRUE(found);

  RunResult table = agent.Netctl({"counters", "--window", "500ms", "--filter", "UdpNoPorts"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_EQ(table.out.rfind("NAME        VALUE  DELTA  RATE/s\nUdpNoPorts", 0), 0u) << table.out;
}

TEST(AgentIntegration, SoftnetMatchesProcSoftnetStat) {
  REQUIRE_ROOT();
  Netns ns;
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();
  std::string before = ReadFile("/proc/net/softnet_stat");
  RunResult r = agent.Netctl({"-o", "json", "softnet"});
  std::string after = ReadFile("/proc/net/softnet_stat");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto s = ResultOf<v1::GetSoftnetResponse>(r.out);
  std::vector<std::string> b = absl::StrSplit(before, '\n', absl::SkipEmpty());
  std::vector<std::string> a = absl::StrSplit(after, '\n', absl::SkipEmpty());
  ASSERT_EQ(s.cpus_size(), static_cast<int>(a.size()));
  for (int i = 0; i < s.cpus_size(); ++i) {
    std::vector<std::string> bc = absl::StrSplit(b[i], ' ', absl::SkipEmpty());
    std::vector<std::string> ac = absl::StrSplit(a[i], ' ', absl::SkipEmpty());
    EXPECT_EQ(s.columns(), ac.size());
    uint32_t lo, hi;
    ASSERT_TRUE(absl::SimpleHexAtoi(bc[0], &lo) && absl::SimpleHexAtoi(ac[0], &hi));
    EXPECT_LE(lo, s.cpus(i).counters().processed());
    EXPECT_GE(hi, s.cpus(i).counters().processed());
  }
  RunResult windowed = agent.Netctl({"softnet", "--window", "300ms"});
  ASSERT_EQ(windowed.exit_code, 0);
  EXPECT_EQ(windowed.out.rfind("CPU  PROCESSED/s", 0), 0u) << windowed.out;
}

TEST(AgentIntegration, BadInputGetsAClearError) {
  REQUIRE_ROOT();
  Netns ns;
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();

  RunResult neg = agent.Netctl({"counters", "--window=-1s"});
  EXPECT_EQ(neg.exit_code, 2);
  EXPECT_NE(neg.err.find("--window: must not be negative"), std::string::npos) << neg.err;

  // The agent refuses it too, for callers other than netctl.
  auto channel = grpc::CreateChannel(agent.target(), grpc::InsecureChannelCredentials());
  v1::TelemetryService::Stub stub(channel);
  grpc::ClientContext ctx;
  v1::GetCountersRequest req;
  req.mutable_window()->set_seconds(-1);
  v1::GetCountersResponse resp;
  grpc::Status st = stub.GetCounters(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "window: must not be negative");

  RunResult regex = agent.Netctl({"counters", "--filter", "Tcp("});
  EXPECT_EQ(regex.exit_code, 1);
  EXPECT_NE(regex.err.find("INVALID_ARGUMENT: filter: invalid regular expression"),
            std::string::npos)
      << regex.err;

  RunResult interval = agent.Netctl({"watch", "--interval", "10ms"});
  EXPECT_EQ(interval.exit_code, 1);
  // Errors go to stderr, streamed or not.
  EXPECT_NE(interval.err.find("interval: at least 100ms"), std::string::npos) << interval.err;
  EXPECT_EQ(interval.out, "");

  TempDir tmp;
  RunResult dead = RunCommand({NetctlPath(), "-t", "unix://" + (tmp / "nobody-here.sock"), "host"});
  EXPECT_EQ(dead.exit_code, 1);
  EXPECT_NE(dead.err.find("UNAVAILABLE"), std::string::npos) << dead.err;

  RunResult dns = RunCommand({NetctlPath(), "--dns", "no-such-agent.invalid:9470", "health"});
  EXPECT_EQ(dns.exit_code, 1);
  EXPECT_NE(dns.err.find("netctl: no-such-agent.invalid:9470: UNAVAILABLE: cannot resolve"),
            std::string::npos)
      << dns.err;

  WriteFile(tmp / "fleet.txt", agent.target() + "\nnode-1 node-2\n");
  RunResult file = RunCommand({NetctlPath(), "--targets-file", tmp / "fleet.txt", "host"});
  EXPECT_EQ(file.exit_code, 2);
  EXPECT_NE(file.err.find("fleet.txt line 2: one target per line"), std::string::npos) << file.err;

  RunResult target = RunCommand({NetctlPath(), "-t", "node:0", "host"});
  EXPECT_EQ(target.exit_code, 2);
  EXPECT_NE(target.err.find("port \"0\" is not in 1-65535"), std::string::npos) << target.err;

  // Global flags after the subcommand work as before it; an unknown one is
  // still a usage error.
  RunResult after = RunCommand({NetctlPath(), "sockets", "summary", "-o", "json", "-t",
                                agent.target()});
  EXPECT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(after.out.rfind("{\"target\":", 0), 0u) << after.out;
  RunResult unknown = RunCommand({NetctlPath(), "-t", agent.target(), "host", "--bogus"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_EQ(unknown.err, "netctl: host: no option --bogus (netctl host --help lists them)\n");
  // A flag of another command says where it belongs, in the order typed.
  RunResult elsewhere = RunCommand({NetctlPath(), "host", "--window", "5s"});
  EXPECT_EQ(elsewhere.exit_code, 2);
  EXPECT_EQ(elsewhere.err,
            "netctl: host does not take --window; it belongs to softnet, counters, drops, doctor\n");
  RunResult before = RunCommand({NetctlPath(), "--nonzero", "counters"});
  EXPECT_EQ(before.err,
            "netctl: --nonzero is an option of counters: put it after the command (netctl "
            "counters --nonzero)\n");
}

TEST(AgentIntegration, AFailingTargetIsReportedBesideTheOthers) {
  REQUIRE_ROOT();
  Netns ns1, ns2;
  Agent a1(ns1), a2(ns2);
  ASSERT_TRUE(a1.ok()) << a1.error();
  ASSERT_TRUE(a2.ok()) << a2.error();
  TempDir tmp;
  const std::string dead = "unix://" + (tmp / "dead.sock");
  WriteFile(tmp / "fleet.txt", "# two live agents and a dead one\n" + a1.target() + "\n" + dead +
                                   "\n" + a2.target() + "\n");
  RunResult table = RunCommand({NetctlPath(), "--targets-file", tmp / "fleet.txt", "softnet"});
  EXPECT_EQ(table.exit_code, 1);
  std::vector<std::string> lines = Lines(table.out);
  ASSERT_GE(lines.size(), 4u);
  EXPECT_EQ(lines[0].rfind("TARGET", 0), 0u);
  EXPECT_NE(table.out.find(a1.target() + "  "), std::string::npos);
  EXPECT_NE(table.out.find(a2.target() + "  "), std::string::npos);
  // The data on stdout; the dead target named with its error on stderr.
  EXPECT_EQ(table.out.find(dead), std::string::npos) << table.out;
  EXPECT_NE(table.err.find("1 of 3 targets failed:\n  " + dead + ": UNAVAILABLE"),
            std::string::npos)
      << table.err;

  RunResult json =
      RunCommand({NetctlPath(), "--targets-file", tmp / "fleet.txt", "-o", "json", "--order",
                  "targets", "host"});
  EXPECT_EQ(json.exit_code, 1);
  std::vector<std::string> objs = Lines(json.out);
  ASSERT_EQ(objs.size(), 3u);
  EXPECT_TRUE(ParseJson(objs[0]).fields().at("ok").bool_value());
  EXPECT_FALSE(ParseJson(objs[1]).fields().at("ok").bool_value());
  EXPECT_EQ(
      ParseJson(objs[1]).fields().at("error").struct_value().fields().at("code").string_value(),
      "UNAVAILABLE");
  EXPECT_TRUE(ParseJson(objs[2]).fields().at("ok").bool_value());
  // Two different namespaces: two different inodes.
  EXPECT_NE(ResultOf<v1::GetHostInfoResponse>(objs[0]).network_namespace().inode(),
            ResultOf<v1::GetHostInfoResponse>(objs[2]).network_namespace().inode());
}

TEST(AgentIntegration, SigtermDuringWatchEndsTheStreamCleanly) {
  REQUIRE_ROOT();
  Netns ns;
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();
  TempDir tmp;
  Process watch({NetctlPath(), "-t", agent.target(), "-o", "json", "watch", "--interval", "200ms"},
                tmp / "watch.out");
  // Wait for a few samples.
  Eventually([&] { return Lines(ReadFile(tmp / "watch.out")).size() >= 3; });
  ASSERT_GE(Lines(ReadFile(tmp / "watch.out")).size(), 3u);
  agent.process().Signal(SIGTERM);
  std::optional<int> agent_exit = agent.process().Wait(std::chrono::seconds(10));
  ASSERT_TRUE(agent_exit.has_value()) << "agent did not stop";
  EXPECT_EQ(*agent_exit, 0);
  std::optional<int> watch_exit = watch.Wait(std::chrono::seconds(10));
  ASSERT_TRUE(watch_exit.has_value()) << "netctl watch did not end";
  EXPECT_EQ(*watch_exit, 1);  // the target's stream ended with an error: not a user stop

  std::vector<std::string> lines = Lines(ReadFile(tmp / "watch.out"));
  ASSERT_GE(lines.size(), 4u);
  // Samples arrived in order with no gaps, then the agent's own goodbye.
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    auto sample = ResultOf<v1::WatchResponse>(lines[i]);
    EXPECT_EQ(sample.sequence(), i + 1);
    EXPECT_EQ(sample.softnet().has_window(), i > 0);
  }
  auto last = ParseJson(lines.back()).fields();
  EXPECT_FALSE(last.at("ok").bool_value());
  const auto& error = last.at("error").struct_value().fields();
  EXPECT_EQ(error.at("code").string_value(), "UNAVAILABLE");
  EXPECT_EQ(error.at("message").string_value(), "agent is shutting down");
  EXPECT_NE(agent.log().find("\"msg\":\"stopped\""), std::string::npos) << agent.log();
  EXPECT_FALSE(std::filesystem::exists(agent.socket()));  // removed on the way out
}

TEST(AgentIntegration, SigtermLetsAWindowedCallFinish) {
  REQUIRE_ROOT();
  Netns ns;
  Agent agent(ns, {"--log-level", "debug"});  // --shutdown-grace 3s
  ASSERT_TRUE(agent.ok()) << agent.error();
  TempDir tmp;
  Process call({NetctlPath(), "-t", agent.target(), "-o", "json", "counters", "--window", "1s",
                "--filter", "UdpNoPorts"},
               tmp / "call.out");
  // SIGTERM once the agent has the call (it logs each call at debug level).
  Eventually([&] { return agent.log().find("TelemetryService/GetCounters") != std::string::npos; });
  agent.process().Signal(SIGTERM);
  EXPECT_EQ(call.Wait(std::chrono::seconds(10)), 0) << ReadFile(tmp / "call.out");
  auto resp = ResultOf<v1::GetCountersResponse>(ReadFile(tmp / "call.out"));
  EXPECT_TRUE(resp.has_window());
  EXPECT_EQ(agent.process().Wait(std::chrono::seconds(10)), 0);
  // A new call during the drain is refused: the socket is gone.
  EXPECT_EQ(agent.Netctl({"health"}).exit_code, 1);
}

TEST(AgentIntegration, LongCallsAreBoundedPerCallerAndOthersStillGetIn) {
  REQUIRE_ROOT();
  Netns ns;
  Agent agent(ns, {"--listen", "127.0.0.1:9470"});
  ASSERT_TRUE(agent.ok()) << agent.error();
  TempDir tmp;
  // Eight watches from one plaintext TCP client (a viewer): the per-caller limit.
  std::vector<std::unique_ptr<Process>> watches;
  for (int i = 0; i < 8; ++i) {
    watches.push_back(std::make_unique<Process>(
        ns.Exec({NetctlPath(), "-t", "127.0.0.1:9470", "watch", "--interval", "1s"}),
        tmp / ("watch" + std::to_string(i))));
  }
  auto started = [&] {
    int n = 0;
    for (int i = 0; i < 8; ++i) n += ReadFile(tmp / ("watch" + std::to_string(i))).empty() ? 0 : 1;
    return n;
  };
  Eventually([&] { return started() == 8; }, std::chrono::seconds(15));
  ASSERT_EQ(started(), 8);
  RunResult ninth =
      RunCommand(ns.Exec({NetctlPath(), "-t", "127.0.0.1:9470", "watch", "--count", "1"}));
  EXPECT_EQ(ninth.exit_code, 1);
  EXPECT_NE(ninth.err.find(
                "RESOURCE_EXHAUSTED: at most 8 watches and windowed calls at a time per caller"),
            std::string::npos)
      << ninth.out << ninth.err;
  // Short calls, and other callers' long ones, are unaffected.
  EXPECT_EQ(agent.Netctl({"softnet"}).exit_code, 0);
  EXPECT_EQ(agent.Netctl({"counters", "--window", "200ms", "--filter", "Udp"}).exit_code, 0);
  // A second agent cannot take the same TCP port (no SO_REUSEPORT sharing).
  RunResult twin = RunCommand({NetagentdPath(), "--netns", ns.name(), "--socket", tmp / "twin.sock",
                               "--state-dir", tmp / "twin", "--listen", "127.0.0.1:9470"});
  EXPECT_EQ(twin.exit_code, 1);
  EXPECT_NE(twin.err.find("127.0.0.1:9470"), std::string::npos) << twin.err;
}

TEST(AgentIntegration, WatchCountEndsTheStreamWithSuccess) {
  REQUIRE_ROOT();
  Netns ns;
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();
  RunResult r = agent.Netctl({"watch", "--interval", "100ms", "--count", "3", "--filter", "Udp"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lines(r.out).size(), 3u) << r.out;
  EXPECT_EQ(r.out.rfind("#1  ", 0), 0u) << r.out;
}

TEST(AgentIntegration, OneAgentPerSocketAndStaleSocketsAreReplaced) {
  REQUIRE_ROOT();
  Netns ns;
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();
  RunResult second = RunCommand({NetagentdPath(), "--netns", ns.name(), "--socket", agent.socket(),
                                 "--state-dir", agent.dir() / "state2"});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(second.err.find("another agent already serves"), std::string::npos) << second.err;
  // Nor may two agents share a state directory (TLS copies, later the journal).
  RunResult shared = RunCommand({NetagentdPath(), "--netns", ns.name(), "--socket",
                                 agent.dir() / "other.sock", "--state-dir", agent.dir() / "state"});
  EXPECT_EQ(shared.exit_code, 1);
  EXPECT_NE(shared.err.find("is in use by another agent (pid"), std::string::npos) << shared.err;
  EXPECT_FALSE(std::filesystem::exists(agent.dir() / "other.sock"));

  agent.process().Signal(SIGKILL);  // leaves the socket file behind
  agent.process().Wait(std::chrono::seconds(5));
  ASSERT_TRUE(std::filesystem::exists(agent.socket()));
  Process again({NetagentdPath(), "--netns", ns.name(), "--socket", agent.socket(), "--state-dir",
                 agent.dir() / "state3"},
                agent.dir() / "again.log");
  const bool healthy = Eventually([&] {
    return RunCommand({NetctlPath(), "-t", agent.target(), "health"}).exit_code == 0;
  });
  EXPECT_TRUE(healthy) << ReadFile(agent.dir() / "again.log");
  again.Signal(SIGTERM);
  EXPECT_EQ(again.Wait(std::chrono::seconds(10)), 0);
}

TEST(AgentIntegration, ConfigErrorsNameTheKey) {
  REQUIRE_ROOT();
  TempDir tmp;
  WriteFile(tmp / "agent.yaml", "socket: " + (tmp / "a.sock") + "\nlisten_port: 9470\n");
  RunResult r = RunCommand({NetagentdPath(), "--config", tmp / "agent.yaml"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("config key listen_port: unknown"), std::string::npos) << r.err;
  RunResult bad_ns = RunCommand(
      {NetagentdPath(), "--netns", "no-such-ns-for-netagent", "--socket", tmp / "b.sock"});
  EXPECT_EQ(bad_ns.exit_code, 2);
  EXPECT_NE(bad_ns.err.find("/run/netns/no-such-ns-for-netagent"), std::string::npos) << bad_ns.err;
  EXPECT_FALSE(std::filesystem::exists(tmp / "b.sock"));
}

}  // namespace
}  // namespace netagent::testing
