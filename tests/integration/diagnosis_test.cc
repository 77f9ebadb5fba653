// Diagnosis against the real kernel, one incident built as the real thing in
// a namespace this test creates: the finding fires with the right
// attribution, its remediation applied (with a confirm deadline) clears the
// symptom, and a rollback restores the value. A clean namespace under load
// reports nothing above info.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "netagent/v1/diagnosis.pb.h"
#include "netagent/v1/tuning.pb.h"
#include "tests/common/test_support.h"
#include "tests/integration/harness.h"
#include "tests/integration/json.h"

namespace netagent::testing {
namespace {

namespace v1 = ::netagent::v1;
using ::testing::HasSubstr;

v1::DiagnoseResponse Doctor(const Agent& agent, std::vector<std::string> args) {
  std::vector<std::string> argv = {"-o", "json", "--timeout", "30s", "doctor"};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult r = agent.Netctl(argv);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  if (r.exit_code != 0) return {};
  return ResultOf<v1::DiagnoseResponse>(Lines(r.out).at(0));
}

const v1::Finding* FindingOf(const v1::DiagnoseResponse& r, const std::string& rule) {
  for (const auto& f : r.findings())
    if (f.rule() == rule) return &f;
  return nullptr;
}

// somaxconn 64 caps a listen(4096): the finding names the listener and
// proposes somaxconn (1024: one apply moves it 16-fold at most); applied as
// the finding says, and the application listening again, the overflows stop;
// a rollback puts 64 back.
TEST(DiagnosisIntegration, ListenOverflowOfACappedListenerIsFixedBySomaxconn) {
  REQUIRE_ROOT("network namespaces");
  Netns ns;
  ASSERT_EQ(RunCommand(ns.Exec({"sysctl", "-qw", "net.core.somaxconn=64"})).exit_code, 0);
  TempDir dir;
  auto listener = SlowListener(ns, dir, 4096);
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();
  ASSERT_TRUE(Listening(ns, 8080));
  // One load for both looks (JSON, then the table people read): a python
  // that starts slowly on a loaded host still overlaps both windows.
  auto load = Connector(ns, dir, 14);
  v1::DiagnoseResponse r = Doctor(agent, {"--window", "3s"});
  const v1::Finding* f = FindingOf(r, "listen-overflow");
  ASSERT_NE(f, nullptr) << r.DebugString();
  EXPECT_GE(f->severity(), v1::SEVERITY_WARNING) << f->summary();
  ASSERT_GE(f->attribution_size(), 1);
  EXPECT_EQ(f->attribution(0).object(), "127.0.0.1:8080");
  EXPECT_THAT(f->attribution(0).detail(), HasSubstr("capped at somaxconn 64"));
  ASSERT_TRUE(f->remediation().has_intent());
  ASSERT_EQ(f->remediation().intent().limits().settings_size(), 1);
  EXPECT_EQ(f->remediation().intent().limits().settings(0).value(), "1024");
  ASSERT_EQ(f->remediation().plan().changes_size(), 1) << f->remediation().DebugString();
  EXPECT_EQ(f->remediation().plan().changes(0).old_value(), "64");
  // The table shows the command to run.
  RunResult shown = agent.Netctl({"doctor", "--window", "2s", "--rule", "listen-overflow"});
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_THAT(shown.out, HasSubstr("netctl tune apply limits --set somaxconn=1024 "
                                   "--confirm-within 5m"));
  EXPECT_EQ(load->Wait(std::chrono::seconds(30)), 0);

  // Applied with a confirm deadline, as the finding says; the application
  // listens again (the backlog is fixed at listen()).
  RunResult apply = agent.Netctl({"-o", "json", "tune", "apply", "limits", "--set",
                                  "somaxconn=1024", "--confirm-within", "5m"});
  ASSERT_EQ(apply.exit_code, 0) << apply.err;
  const std::string id =
      ResultOf<v1::ApplyTuningResponse>(Lines(apply.out).at(0)).change().id();
  EXPECT_EQ(Sysctl(ns, "net.core.somaxconn"), "1024");
  listener.reset();
  listener = SlowListener(ns, dir, 4096);
  ASSERT_TRUE(Listening(ns, 8080)) << "the listener is not back";
  load = Connector(ns, dir, 6);
  v1::DiagnoseResponse after = Doctor(agent, {"--window", "3s", "--rule", "listen-overflow"});
  EXPECT_EQ(FindingOf(after, "listen-overflow"), nullptr) << after.DebugString();
  EXPECT_EQ(load->Wait(std::chrono::seconds(20)), 0);

  ASSERT_EQ(agent.Netctl({"tune", "rollback", id}).exit_code, 0);
  EXPECT_EQ(Sysctl(ns, "net.core.somaxconn"), "64");
}

// The application's own small backlog: named as the limit, nothing proposed.
TEST(DiagnosisIntegration, AnApplicationsSmallBacklogIsNamedNotTuned) {
  REQUIRE_ROOT("network namespaces");
  Netns ns;
  TempDir dir;
  auto listener = SlowListener(ns, dir, 4);
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();
  ASSERT_TRUE(Listening(ns, 8080));
  auto load = Connector(ns, dir, 5);
  v1::DiagnoseResponse r = Doctor(agent, {"--window", "2s", "--rule", "listen-overflow"});
  const v1::Finding* f = FindingOf(r, "listen-overflow");
  ASSERT_NE(f, nullptr) << r.DebugString();
  EXPECT_FALSE(f->remediation().has_intent());
  EXPECT_THAT(f->remediation().limits(0),
              HasSubstr("listener 127.0.0.1:8080 has backlog 4 < somaxconn 4096: the "
                        "application's listen() backlog is the limit"));
  EXPECT_EQ(load->Wait(std::chrono::seconds(20)), 0);
}

// Heavy but healthy traffic: nothing above info.
TEST(DiagnosisIntegration, ACleanNamespaceUnderLoadReportsNothingAboveInfo) {
  REQUIRE_ROOT("network namespaces");
  Netns ns;
  TempDir dir;
  // Four streams pushing as fast as loopback takes them.
  Process server(ns.Exec({"python3", "-c",
                          "import socket,threading\n"
                          "s=socket.socket()\n"
                          "s.bind(('127.0.0.1',5299)); s.listen(16)\n"
                          "def sink(c):\n"
                          "  while c.recv(1<<20): pass\n"
                          "while True:\n"
                          "  c,_=s.accept(); threading.Thread(target=sink,args=(c,)).start()\n"}),
                 dir / "server.log");
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();
  ASSERT_TRUE(Listening(ns, 5299)) << "the sink does not listen";
  Process client(ns.Exec({"python3", "-c",
                          "import socket,threading,time\n"
                          "end=time.time()+5\n"
                          "def push():\n"
                          "  c=socket.create_connection(('127.0.0.1',5299)); b=bytes(1<<20)\n"
                          "  while time.time()<end: c.sendall(b)\n"
                          "t=[threading.Thread(target=push) for _ in range(4)]\n"
                          "[x.start() for x in t]; [x.join() for x in t]\n"}),
                 dir / "client.log");
  ASSERT_TRUE(Eventually([&] {
    return Lines(RunCommand(ns.Exec({"ss", "-Htn", "state", "established", "dport = :5299"})).out)
               .size() == 4;
  })) << "the senders did not connect";
  v1::DiagnoseResponse r = Doctor(agent, {"--window", "3s"});
  for (const auto& f : r.findings()) {
    EXPECT_EQ(f.severity(), v1::SEVERITY_INFO) << f.rule() << ": " << f.summary();
  }
  EXPECT_GT(r.rules_run(), 10u);
  EXPECT_EQ(client.Wait(std::chrono::seconds(20)), 0) << ReadFile(dir / "client.log");
}

// The agent's own evaluation (every second here): a watcher sees the
// overflow open, with its since time, while it lasts.
TEST(DiagnosisIntegration, AWatcherSeesAFindingOpen) {
  REQUIRE_ROOT("network namespaces");
  Netns ns;
  TempDir dir;
  auto listener = SlowListener(ns, dir, 4);
  Agent agent(ns, {"--diagnosis-interval", "1s"});
  ASSERT_TRUE(agent.ok()) << agent.error();
  ASSERT_TRUE(Listening(ns, 8080));
  auto load = Connector(ns, dir, 25);
  // A watch runs until Ctrl-C: this one is ended after 12 s (SIGKILL); what
  // it printed by then counts. The evaluation needs two snapshots a second
  // apart, on a nice-19 thread.
  RunResult watch =
      RunCommand({NetctlPath(), "-t", agent.target(), "-o", "json", "doctor", "--watch", "--rule",
                  "listen-overflow"},
                 std::chrono::seconds(12));
  ASSERT_FALSE(Lines(watch.out).empty()) << watch.err;
  auto e = ResultOf<v1::FindingEvent>(Lines(watch.out).at(0));
  EXPECT_EQ(e.kind(), v1::FindingEvent::KIND_OPENED);
  EXPECT_EQ(e.finding().rule(), "listen-overflow");
  EXPECT_GT(e.finding().since().seconds(), 0);
  EXPECT_GE(e.finding().severity(), v1::SEVERITY_WARNING);
  // While the load goes on, Diagnose says since when it has been open.
  v1::DiagnoseResponse r = Doctor(agent, {"--window", "2s", "--rule", "listen-overflow"});
  const v1::Finding* f = FindingOf(r, "listen-overflow");
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->has_since());
  EXPECT_EQ(load->Wait(std::chrono::seconds(30)), 0);
}

TEST(DiagnosisIntegration, BadRequestsNameTheField) {
  REQUIRE_ROOT("network namespaces");
  Netns ns;
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();
  RunResult r = agent.Netctl({"doctor", "--rule", "no-such-rule", "--window", "1s"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("rules: no rule \"no-such-rule\""));
  r = agent.Netctl({"doctor", "--window", "10m"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("window"));
  r = agent.Netctl({"doctor", "--window", "0s"});
  EXPECT_EQ(r.exit_code, 2);
  r = agent.Netctl({"doctor", "--watch", "--min-severity", "bogus"});
  EXPECT_EQ(r.exit_code, 2);
  RunResult explain = agent.Netctl({"doctor", "--explain", "listen-overflow"});
  EXPECT_EQ(explain.exit_code, 0) << explain.err;
  EXPECT_THAT(explain.out, HasSubstr("overflows_per_second"));
}

}  // namespace
}  // namespace netagent::testing
