// Playbooks against a simulated fleet: 50 agents, each serving its own
// network namespace, driven by `netctl playbook` as an operator would. The
// reference for every value is sysctl in the namespace; for the changes, the
// agents' own journals (tune history). A run that verifies in every wave is
// confirmed everywhere; a guard that fails on two hosts of wave 2 rolls back
// every host the run changed and never reaches wave 3; a netctl killed
// mid-run leaves hosts that roll back by themselves at the deadline (abort
// afterwards finds nothing to do), or that a resume carries to the end. One
// lab incident (port exhaustion) is fixed by its shipped playbook, measured
// by the connections that fail before and after.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "netagent/v1/playbook.pb.h"
#include "netagent/v1/tuning.pb.h"
#include "tests/common/test_support.h"
#include "tests/integration/harness.h"
#include "tests/integration/json.h"

namespace netagent::testing {
namespace {

namespace v1 = ::netagent::v1;
using ::testing::HasSubstr;
using Kind = v1::PlaybookEvent;

constexpr int kHosts = 50;
constexpr char kPython[] = "/usr/bin/python3";

// A manual playbook: double somaxconn (at least 8192), in waves of 1, 10 %,
// 50 %, 100 %; a host fails when it answers more than 20 UDP datagrams a
// second with port unreachable (what the tests inject).
std::string ManualPlaybook(const std::string& pause = "1s", const std::string& extra_rollout = "") {
  return "apiVersion: netagent/v1\n"
         "kind: Playbook\n"
         "metadata:\n"
         "  name: somaxconn-double\n"
         "match:\n"
         "  window: 1s\n"
         "remediation:\n"
         "  intent:\n"
         "    limits:\n"
         "      settings:\n"
         "        - name: somaxconn\n"
         "          value: \"max(current * 2, 8192)\"\n"
         "  guards: {max_step: 4}\n"
         "rollout:\n"
         "  waves: [1, \"10%\", \"50%\", \"100%\"]\n"
         "  pause: " +
         pause + "\n" + extra_rollout +
         "verify:\n"
         "  window: 1s\n"
         "  success:\n"
         "    - {counter: TcpExtListenOverflows, rate_below: 1}\n"
         "  failure:\n"
         "    - {counter: UdpNoPorts, rate_above: 20}\n";
}

// The last lines of a run's output, for a failure message.
std::string Tail(const std::string& text) {
  const auto lines = Lines(text);
  std::string out;
  for (size_t i = lines.size() > 5 ? lines.size() - 5 : 0; i < lines.size(); ++i)
    out += lines[i].substr(0, 300) + "\n";
  return out;
}

// A line of `file` with both strings.
bool HasLine(const std::string& file, const std::string& a, const std::string& b) {
  for (const auto& line : Lines(ReadFile(file)))
    if (line.find(a) != std::string::npos && line.find(b) != std::string::npos) return true;
  return false;
}

class PlaybookFleet : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!IsRoot()) return;
    fleet_ = new Fleet;
  }
  static void TearDownTestSuite() {
    delete fleet_;
    fleet_ = nullptr;
  }

  void SetUp() override {
    REQUIRE_ROOT("network namespaces");
    ASSERT_NE(fleet_, nullptr);
    ASSERT_TRUE(fleet_->error.empty()) << fleet_->error;
    // Every test starts from the namespaces' default.
    for (int i = 0; i < kHosts; ++i) ASSERT_EQ(Somaxconn(i), "4096") << "host " << i;
    WriteFile(dir_ / "fleet", fleet_->targets);
    WriteFile(dir_ / "pb.yaml", ManualPlaybook());
  }

  struct Fleet {
    std::vector<std::unique_ptr<Netns>> ns;
    std::vector<std::unique_ptr<Agent>> agents;
    std::string targets, error;
    Fleet() {
      for (int i = 0; i < kHosts; ++i) {
        ns.push_back(std::make_unique<Netns>());
        agents.push_back(std::make_unique<Agent>(
            *ns.back(), std::vector<std::string>{"--diagnosis-interval", "0"}));
        if (!agents.back()->ok()) {
          error = agents.back()->error();
          return;
        }
        targets += agents.back()->target() + "\n";
      }
    }
  };

  static std::string Somaxconn(int host) { return Sysctl(*fleet_->ns[host], "net.core.somaxconn"); }

  std::vector<std::string> Netctl(std::vector<std::string> args) const {
    args.insert(args.begin(),
                {NetctlPath(), "--targets-file", dir_ / "fleet", "--timeout", "10s", "-o", "json"});
    return args;
  }
  std::vector<std::string> Playbook(std::vector<std::string> args) const {
    args.insert(args.begin(), {"playbook", "--state-dir", dir_ / "runs"});
    return Netctl(args);
  }

  static std::vector<v1::PlaybookEvent> Events(const std::string& out) {
    std::vector<v1::PlaybookEvent> events;
    for (const auto& line : Lines(out)) events.push_back(MessageOf<v1::PlaybookEvent>(line));
    return events;
  }
  static std::vector<std::string> Targets(const std::vector<v1::PlaybookEvent>& events,
                                          Kind::Kind kind) {
    std::vector<std::string> out;
    for (const auto& e : events)
      if (e.kind() == kind) out.push_back(e.target());
    return out;
  }
  static std::string Host(int i) { return fleet_->agents[i]->target(); }

  // The states the host's journal gives change `id` ("" when it has none).
  static std::string ChangeState(int host, const std::string& id) {
    RunResult r =
        fleet_->agents[host]->Netctl({"-o", "json", "tune", "history", "--limit", "1000"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const auto history = ResultOf<v1::ListChangesResponse>(Lines(r.out).at(0));
    for (const auto& c : history.changes()) {
      if (c.id() == id) return v1::ChangeState_Name(c.state());
    }
    return "";
  }

  // Port-unreachable answers in host `i`'s namespace, ~100/s, until destroyed.
  std::unique_ptr<Process> UdpNoise(int i) {
    return std::make_unique<Process>(
        fleet_->ns[i]->Exec({kPython, "-c",
                             "import socket,time\n"
                             "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                             "while True:\n"
                             "  s.sendto(b'x',('127.0.0.1',9)); time.sleep(0.01)\n"}),
        dir_ / absl::StrCat("noise", i, ".log"));
  }

  static Fleet* fleet_;
  TempDir dir_;
};

PlaybookFleet::Fleet* PlaybookFleet::fleet_ = nullptr;

TEST_F(PlaybookFleet, RollsOutInFourVerifiedWavesAndConfirmsEveryHost) {
  RunResult plan = RunCommand(Playbook({"plan", dir_ / "pb.yaml"}), std::chrono::seconds(60));
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  for (int i = 0; i < kHosts; ++i) ASSERT_EQ(Somaxconn(i), "4096") << "plan changed host " << i;

  RunResult r = RunCommand(Playbook({"run", dir_ / "pb.yaml", "--run-id", "wave-ok"}),
                           std::chrono::seconds(120));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto events = Events(r.out);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().kind(), Kind::KIND_RUN_FINISHED);
  EXPECT_EQ(events.back().state(), v1::PLAYBOOK_RUN_STATE_SUCCEEDED);
  // 1, 10 % (5), 50 % (25), 100 %: 1 + 4 + 20 + 25 hosts.
  std::vector<int> sizes;
  for (const auto& e : events)
    if (e.kind() == Kind::KIND_RUN_PLANNED)
      for (const auto& w : e.waves()) sizes.push_back(w.targets_size());
  EXPECT_EQ(sizes, (std::vector<int>{1, 4, 20, 25}));
  EXPECT_EQ(Targets(events, Kind::KIND_HOST_VERIFIED).size(), size_t{kHosts});
  EXPECT_EQ(Targets(events, Kind::KIND_HOST_CONFIRMED).size(), size_t{kHosts});
  for (int i = 0; i < kHosts; ++i) {
    EXPECT_EQ(Somaxconn(i), "8192") << "host " << i;
  }
  EXPECT_EQ(ChangeState(0, "wave-ok"), "CHANGE_STATE_CONFIRMED");
  EXPECT_EQ(ChangeState(kHosts - 1, "wave-ok"), "CHANGE_STATE_CONFIRMED");

  // Status and history read the run file.
  RunResult status = RunCommand(Playbook({"status", "wave-ok"}));
  ASSERT_EQ(status.exit_code, 0) << status.err;
  const auto summary = MessageOf<v1::PlaybookRunSummary>(Lines(status.out).at(0));
  EXPECT_EQ(summary.confirmed(), uint32_t{kHosts});
  EXPECT_EQ(summary.waves_passed(), 4u);

  // Abort undoes a finished run too: every host back where it was.
  RunResult abort = RunCommand(Playbook({"abort", "wave-ok"}), std::chrono::seconds(60));
  ASSERT_EQ(abort.exit_code, 0) << abort.out << abort.err;
  for (int i = 0; i < kHosts; ++i) EXPECT_EQ(Somaxconn(i), "4096") << "host " << i;
  EXPECT_EQ(ChangeState(7, "wave-ok"), "CHANGE_STATE_ROLLED_BACK");
}

TEST_F(PlaybookFleet, AGuardFailingOnTwoHostsOfWaveTwoRollsBackTheRunAndStopsThere) {
  // Wave 2 is hosts 1-4 (target order); 2 and 3 answer ~100 datagrams/s
  // with port unreachable.
  auto noise2 = UdpNoise(2);
  auto noise3 = UdpNoise(3);
  RunResult r = RunCommand(Playbook({"run", dir_ / "pb.yaml", "--run-id", "wave-bad"}),
                           std::chrono::seconds(120));
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  const auto events = Events(r.out);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().state(), v1::PLAYBOOK_RUN_STATE_FAILED);
  auto failed = Targets(events, Kind::KIND_HOST_FAILED);
  std::sort(failed.begin(), failed.end());
  std::vector<std::string> want = {Host(2), Host(3)};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(failed, want);
  for (const auto& e : events) {
    if (e.kind() == Kind::KIND_WAVE_FAILED) {
      EXPECT_EQ(e.wave(), 2u);
    }
    EXPECT_LE(e.wave(), 2u) << "a later wave was started";
  }
  // Every host is as it was (sysctl), wave 1 and 2 hosts by a rollback,
  // the others untouched (their journals never saw the change).
  for (int i = 0; i < kHosts; ++i) EXPECT_EQ(Somaxconn(i), "4096") << "host " << i;
  for (int i = 0; i <= 4; ++i) {
    EXPECT_EQ(ChangeState(i, "wave-bad"), "CHANGE_STATE_ROLLED_BACK") << "host " << i;
  }
  for (int i : {5, 20, kHosts - 1}) EXPECT_EQ(ChangeState(i, "wave-bad"), "") << "host " << i;
}

// netctl is killed once wave 2 has changed its hosts. Nothing was confirmed:
// at the deadline every host rolls back by itself; abort afterwards finds
// nothing left to undo.
TEST_F(PlaybookFleet, NetctlKilledMidRunLeavesNothingHalfApplied) {
  WriteFile(dir_ / "pb.yaml", ManualPlaybook("3s", "  confirm_within: 40s\n"));
  Process run(Netctl({"playbook", "--state-dir", dir_ / "runs", "run", dir_ / "pb.yaml", "--run-id",
                      "killed"}),
              dir_ / "run.out");
  ASSERT_TRUE(
      Eventually([&] { return HasLine(dir_ / "run.out", "KIND_HOST_CHANGED", "\"wave\":2"); },
                 std::chrono::seconds(60)))
      << Tail(ReadFile(dir_ / "run.out"));
  run.Signal(SIGKILL);
  run.Wait(std::chrono::seconds(5));
  int changed = 0;
  for (int i = 0; i < kHosts; ++i) changed += Somaxconn(i) == "8192";
  EXPECT_GE(changed, 2) << "waves 1 and 2 had changed hosts";
  EXPECT_EQ(ChangeState(1, "killed"), "CHANGE_STATE_PENDING_CONFIRM");

  // The deadline: 40 s after the start.
  ASSERT_TRUE(Eventually(
      [&] {
        for (int i = 0; i < kHosts; ++i)
          if (Somaxconn(i) != "4096") return false;
        return true;
      },
      std::chrono::seconds(60)))
      << "hosts kept the change past the deadline";
  EXPECT_EQ(ChangeState(1, "killed"), "CHANGE_STATE_EXPIRED");

  RunResult abort = RunCommand(Playbook({"abort", "killed"}), std::chrono::seconds(60));
  EXPECT_EQ(abort.exit_code, 0) << abort.out << abort.err;
  EXPECT_EQ(Events(abort.out).back().state(), v1::PLAYBOOK_RUN_STATE_ABORTED);
  for (int i = 0; i < kHosts; ++i) EXPECT_EQ(Somaxconn(i), "4096") << "host " << i;
  EXPECT_EQ(ChangeState(1, "killed"), "CHANGE_STATE_EXPIRED") << "abort found it undone";
}

// Killed in the same place, then resumed before the deadline: the run
// finishes and every host is confirmed.
TEST_F(PlaybookFleet, AKilledRunResumesToTheEnd) {
  WriteFile(dir_ / "pb.yaml", ManualPlaybook("3s", "  confirm_within: 5m\n"));
  Process run(Netctl({"playbook", "--state-dir", dir_ / "runs", "run", dir_ / "pb.yaml", "--run-id",
                      "resumed"}),
              dir_ / "run.out");
  ASSERT_TRUE(Eventually(
      [&] { return ReadFile(dir_ / "run.out").find("KIND_WAVE_PASSED") != std::string::npos; },
      std::chrono::seconds(60)));
  run.Signal(SIGKILL);
  run.Wait(std::chrono::seconds(5));
  RunResult status = RunCommand(Playbook({"status", "resumed"}));
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_EQ(MessageOf<v1::PlaybookRunSummary>(Lines(status.out).at(0)).state(),
            v1::PLAYBOOK_RUN_STATE_RUNNING);

  RunResult resume = RunCommand(Playbook({"resume", "resumed"}), std::chrono::seconds(120));
  ASSERT_EQ(resume.exit_code, 0) << resume.out << resume.err;
  const auto events = Events(resume.out);
  EXPECT_EQ(events.front().kind(), Kind::KIND_RUN_RESUMED);
  EXPECT_EQ(events.back().state(), v1::PLAYBOOK_RUN_STATE_SUCCEEDED);
  for (int i = 0; i < kHosts; ++i) {
    EXPECT_EQ(Somaxconn(i), "8192") << "host " << i;
  }
  EXPECT_EQ(ChangeState(0, "resumed"), "CHANGE_STATE_CONFIRMED");
  // A second netctl on the same run waits for none: it is refused while the
  // first holds it, and a finished run is not resumed.
  RunResult again = RunCommand(Playbook({"resume", "resumed"}));
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("has finished (succeeded)"));

  RunResult abort = RunCommand(Playbook({"abort", "resumed"}), std::chrono::seconds(60));
  ASSERT_EQ(abort.exit_code, 0) << abort.err;
  for (int i = 0; i < kHosts; ++i) EXPECT_EQ(Somaxconn(i), "4096") << "host " << i;
}

TEST_F(PlaybookFleet, BadPlaybooksAndRunsAreRefusedWithoutTouchingAHost) {
  WriteFile(dir_ / "bad.yaml", ManualPlaybook() + "colour: red\n");
  RunResult r = RunCommand(Playbook({"run", dir_ / "bad.yaml"}));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("bad.yaml:23: colour: unknown field"));
  RunResult v = RunCommand(Playbook({"validate", dir_ / "pb.yaml", dir_ / "bad.yaml"}));
  EXPECT_EQ(v.exit_code, 1);
  EXPECT_THAT(v.out, HasSubstr("pb.yaml: ok"));
  RunResult missing = RunCommand(Playbook({"status", "no-such-run"}));
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("no run no-such-run"));
  RunResult traversal = RunCommand(Playbook({"abort", "../../etc/passwd"}));
  EXPECT_EQ(traversal.exit_code, 2);
  EXPECT_THAT(traversal.err, HasSubstr("is not a run id"));
  // A run file cut short in its last line (netctl killed while writing it)
  // still reads; one damaged before that is named.
  std::filesystem::create_directories(dir_ / "runs");
  RunResult ok =
      RunCommand(Playbook({"run", dir_ / "pb.yaml", "--run-id", "cut"}), std::chrono::seconds(120));
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  const std::string file = ReadFile(dir_ / "runs/cut.jsonl");
  WriteFile(dir_ / "runs/cut.jsonl", file + "{\"kind\":\"KIND_HOST_FAI");
  EXPECT_EQ(RunCommand(Playbook({"status", "cut"})).exit_code, 0);
  // Found by review: what a later netctl appended joined the cut line, and
  // the file no longer read. The cut line is dropped when the run is opened.
  ASSERT_EQ(RunCommand(Playbook({"abort", "cut"}), std::chrono::seconds(60)).exit_code, 0);
  RunResult after = RunCommand(Playbook({"status", "cut"}));
  EXPECT_EQ(after.exit_code, 0) << after.err;
  EXPECT_THAT(after.out, HasSubstr("ABORTED"));
  // A line damaged before the end: status and resume name it; abort still
  // works, and with events lost it rolls back every target of the run.
  WriteFile(dir_ / "runs/cut.jsonl",
            file.substr(0, file.find('\n') + 1) + "garbage\n" + file.substr(file.find('\n') + 1));
  RunResult status = RunCommand(Playbook({"status", "cut"}));
  EXPECT_NE(status.exit_code, 0);
  EXPECT_THAT(status.err, HasSubstr("cut.jsonl:2: not an event"));
  RunResult resume = RunCommand(Playbook({"resume", "cut"}));
  EXPECT_NE(resume.exit_code, 0);
  EXPECT_THAT(resume.err, HasSubstr("cut.jsonl:2: not an event"));
  EXPECT_THAT(resume.err, HasSubstr("`netctl playbook abort cut` rolls the run back"));
  RunResult damaged = RunCommand(Playbook({"abort", "cut"}), std::chrono::seconds(60));
  EXPECT_EQ(damaged.exit_code, 0) << damaged.err;
  EXPECT_THAT(damaged.err,
              HasSubstr("1 line is not an event of the run: rolling back every target"));
}

// The lab's port exhaustion (200 ephemeral ports, a client that opens and
// closes connections to one server): the shipped playbook, run as it is,
// finds it, applies the finding's remediation, sees the finding clear and
// confirms. The symptom, measured the same way before and after: connects
// that fail. Abort restores both sysctls.
TEST(PlaybookIncidents, PortExhaustionIsFixedByItsShippedPlaybook) {
  REQUIRE_ROOT("network namespaces");
  Link l;
  TempDir dir;
  ASSERT_EQ(
      RunCommand(l.a.Exec({"sysctl", "-qw", "net.ipv4.ip_local_port_range=40000 40199"})).exit_code,
      0);
  const std::string range = Sysctl(l.a, "net.ipv4.ip_local_port_range");
  const std::string reuse = Sysctl(l.a, "net.ipv4.tcp_tw_reuse");
  Process server(l.b.Exec({kPython, "-c",
                           "import socket\n"
                           "s=socket.socket()\n"
                           "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                           "s.bind(('10.66.0.2',9000)); s.listen(1024)\n"
                           "while True:\n"
                           "  c,_=s.accept(); c.recv(16); c.close()\n"}),
                 dir / "server.log");
  Agent agent(l.a);
  ASSERT_TRUE(agent.ok()) << agent.error();
  ASSERT_TRUE(Listening(l.b, 9000));
  // "ok failed" connects in `seconds` (at most `most` made).
  auto client = [&](int seconds, int most = 1000000) {
    return ConnectLoop(l.a, "10.66.0.2", 9000, seconds, most);
  };
  const auto before = client(3, 1000000);
  EXPECT_GT(before.second, 0) << "the range did not run out";

  // Detection 10 s, settle 5 s, verification 20 s.
  RunResult run =
      RunCommand({NetctlPath(), "-t", agent.target(), "--timeout", "20s", "-o", "json", "playbook",
                  "--state-dir", dir / "runs", "run", "--run-id", "ports",
                  std::string(NETAGENT_SOURCE_DIR) + "/docs/playbooks/port-exhaustion.yaml"},
                 std::chrono::seconds(90));
  ASSERT_EQ(run.exit_code, 0) << Tail(run.out) << run.err;
  std::vector<v1::PlaybookEvent> events;
  for (const auto& line : Lines(run.out)) events.push_back(MessageOf<v1::PlaybookEvent>(line));
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().state(), v1::PLAYBOOK_RUN_STATE_SUCCEEDED) << events.back().detail();
  bool verified = false;
  for (const auto& e : events) verified |= e.kind() == Kind::KIND_HOST_VERIFIED;
  EXPECT_TRUE(verified);
  EXPECT_EQ(Sysctl(l.a, "net.ipv4.tcp_tw_reuse"), "1");

  const auto after = client(2, 2000);
  EXPECT_GT(after.first, 200);
  EXPECT_EQ(after.second, 0) << "connections still fail after the playbook";
  std::cout << "port exhaustion: failed connects " << before.second << " of "
            << before.first + before.second << " before, " << after.second << " of "
            << after.first + after.second << " after\n";

  RunResult abort = agent.Netctl({"playbook", "--state-dir", dir / "runs", "abort", "ports"});
  ASSERT_EQ(abort.exit_code, 0) << abort.err;
  EXPECT_EQ(Sysctl(l.a, "net.ipv4.ip_local_port_range"), range);
  EXPECT_EQ(Sysctl(l.a, "net.ipv4.tcp_tw_reuse"), reuse);
}

// A SYN flood from two networks with cookies on and the fast path attached
// to the listener's device: the finding proposes a fast-path block. The
// shipped cookies playbook leaves the host alone (it takes limits only);
// the shipped block playbook applies the block, sees the finding clear,
// and confirms. Abort lifts the block.
TEST(PlaybookIncidents, ASynFloodFromTwoNetworksIsBlockedByItsShippedPlaybook) {
  REQUIRE_ROOT("network namespaces and XDP");
  if (RunCommand({"sh", "-c", "command -v hping3"}).exit_code != 0) {
    GTEST_SKIP() << "hping3 is not installed (scripts/lib.sh)";
  }
  Link l;
  TempDir dir;
  PinRoot pins(l.a.name());
  ASSERT_EQ(RunCommand(l.a.Exec({"sysctl", "-qw", "net.ipv4.tcp_syncookies=1",
                                 "net.ipv4.tcp_synack_retries=1"}))
                .exit_code,
            0);
  Agent agent(l.a, {"--bpf-pin-root", pins.path()});
  ASSERT_TRUE(agent.ok()) << agent.error();
  RunResult attach = agent.Netctl({"datapath", "attach", "v0"});
  ASSERT_EQ(attach.exit_code, 0) << attach.err;
  SynFlood flood(l, dir.path().string(), {"198.51.100.7", "203.0.113.9"}, 200);
  ASSERT_EQ(flood.error(), "");
  auto run = [&](const std::string& file, const std::string& id) {
    RunResult r = RunCommand({NetctlPath(), "-t", agent.target(), "--timeout", "20s", "-o", "json",
                              "playbook", "--state-dir", dir / "runs", "run", "--run-id", id,
                              std::string(NETAGENT_SOURCE_DIR) + "/docs/playbooks/" + file},
                             std::chrono::seconds(90));
    std::vector<v1::PlaybookEvent> events;
    for (const auto& line : Lines(r.out)) events.push_back(MessageOf<v1::PlaybookEvent>(line));
    return std::make_pair(r, events);
  };
  auto rules = [&] { return agent.Netctl({"-o", "json", "datapath", "rules", "list", "v0"}).out; };

  auto [cookies, cookie_events] = run("syn-flood.yaml", "cookies");
  bool skipped = false;
  for (const auto& e : cookie_events) {
    if (e.kind() != Kind::KIND_HOST_SKIPPED) continue;
    skipped = true;
    EXPECT_THAT(e.detail(), HasSubstr("proposes a datapath_block change here"));
  }
  EXPECT_TRUE(skipped) << Tail(cookies.out) << cookies.err;
  EXPECT_THAT(rules(), ::testing::Not(HasSubstr("198.51.100.0")));

  auto [block, events] = run("syn-flood-block.yaml", "block");
  ASSERT_EQ(block.exit_code, 0) << Tail(block.out) << block.err;
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().state(), v1::PLAYBOOK_RUN_STATE_SUCCEEDED) << events.back().detail();
  bool verified = false;
  for (const auto& e : events) verified |= e.kind() == Kind::KIND_HOST_VERIFIED;
  EXPECT_TRUE(verified);
  EXPECT_THAT(rules(), HasSubstr("198.51.100.0/24"));
  EXPECT_THAT(rules(), HasSubstr("203.0.113.0/24"));
  EXPECT_TRUE(flood.flooding()) << "the flood ended early";

  RunResult abort = agent.Netctl({"playbook", "--state-dir", dir / "runs", "abort", "block"});
  ASSERT_EQ(abort.exit_code, 0) << abort.err;
  EXPECT_THAT(rules(), ::testing::Not(HasSubstr("198.51.100.0")));
  EXPECT_EQ(agent.Netctl({"datapath", "detach", "v0"}).exit_code, 0);
}

// A 20 ms round trip through the user-space delay line and a 64 KiB
// ceiling on the sender's buffers, a transfer going on throughout. The
// shipped buffer-limited playbook doubles the ceilings from what the flow
// delivers; the flow, on a path with room for more, is limited again at
// twice the rate, so the run is verified on the bytes sent, not on the
// finding clearing (it used to roll every such step back): the TCP
// segments sent. Abort restores
// both ceilings.
TEST(PlaybookIncidents, BufferLimitedFlowsAreSpedUpByTheirShippedPlaybook) {
  REQUIRE_ROOT("network namespaces");
  if (RunCommand({"sh", "-c", "command -v iperf3"}).exit_code != 0) {
    GTEST_SKIP() << "iperf3 is not installed (scripts/lib.sh)";
  }
  Netns a, b;
  TempDir dir;
  Process line({DELAYLINE_PATH, "--ns-a", a.name(), "--ns-b", b.name(), "--addr-a", "10.78.0.1",
                "--addr-b", "10.78.0.2", "--delay-ms", "10"},
               dir / "delayline.log");
  ASSERT_TRUE(Eventually([&] {
    return ReadFile(dir / "delayline.log").find("ready") != std::string::npos;
  })) << ReadFile(dir / "delayline.log");
  ASSERT_EQ(RunCommand(a.Exec({"sysctl", "-qw", "net.ipv4.tcp_wmem=4096 16384 65536",
                               "net.ipv4.tcp_rmem=4096 65536 65536"}))
                .exit_code,
            0);
  const std::string wmem = Sysctl(a, "net.ipv4.tcp_wmem");
  const std::string rmem = Sysctl(a, "net.ipv4.tcp_rmem");
  Process server(b.Exec({"iperf3", "-s", "-B", "10.78.0.2"}), dir / "iperf3-server.log");
  Agent agent(a);
  ASSERT_TRUE(agent.ok()) << agent.error();
  ASSERT_TRUE(Listening(b, 5201));
  // Detection 10 s, settle 5 s, verification 20 s: the transfer outlasts them.
  Process transfer(a.Exec({"iperf3", "-c", "10.78.0.2", "-t", "60"}), dir / "iperf3.log");
  ASSERT_TRUE(Eventually([&] {
    return Lines(RunCommand(a.Exec({"ss", "-Htn", "state", "established", "dport = :5201"})).out)
               .size() >= 2;
  }));
  RunResult run =
      RunCommand({NetctlPath(), "-t", agent.target(), "--timeout", "20s", "-o", "json", "playbook",
                  "--state-dir", dir / "runs", "run", "--run-id", "buffers",
                  std::string(NETAGENT_SOURCE_DIR) + "/docs/playbooks/buffer-limited.yaml"},
                 std::chrono::seconds(90));
  ASSERT_EQ(run.exit_code, 0) << Tail(run.out) << run.err;
  std::vector<v1::PlaybookEvent> events;
  for (const auto& line : Lines(run.out)) events.push_back(MessageOf<v1::PlaybookEvent>(line));
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().state(), v1::PLAYBOOK_RUN_STATE_SUCCEEDED) << Tail(run.out);
  const v1::PlaybookEvent* verified = nullptr;
  for (const auto& e : events)
    if (e.kind() == Kind::KIND_HOST_VERIFIED) verified = &e;
  ASSERT_NE(verified, nullptr) << Tail(run.out);
  bool sent = false;
  for (const auto& m : verified->measurements()) {
    if (m.name() != "TcpOutSegs rate") continue;
    sent = true;
    EXPECT_TRUE(m.met());
    EXPECT_GE(m.value(), 1.2 * m.baseline()) << m.DebugString();
    std::cout << "buffer-limited: TCP segments sent " << m.baseline() << "/s before, " << m.value()
              << "/s after\n";
  }
  EXPECT_TRUE(sent) << verified->DebugString();
  EXPECT_NE(Sysctl(a, "net.ipv4.tcp_wmem"), wmem);

  RunResult abort = agent.Netctl({"playbook", "--state-dir", dir / "runs", "abort", "buffers"});
  ASSERT_EQ(abort.exit_code, 0) << abort.err;
  EXPECT_EQ(Sysctl(a, "net.ipv4.tcp_wmem"), wmem);
  EXPECT_EQ(Sysctl(a, "net.ipv4.tcp_rmem"), rmem);
}

// The lab's port exhaustion, for the agent's own playbooks: a namespace
// with 200 ephemeral ports, a server behind a veth, and a client that runs
// them out.
class AutoLab : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_ROOT("network namespaces");
    ASSERT_EQ(RunCommand(l_.a.Exec({"sysctl", "-qw", "net.ipv4.ip_local_port_range=40000 40199"}))
                  .exit_code,
              0);
    range_ = Sysctl(l_.a, "net.ipv4.ip_local_port_range");
    reuse_ = Sysctl(l_.a, "net.ipv4.tcp_tw_reuse");
    server_ = std::make_unique<Process>(
        l_.b.Exec({kPython, "-c",
                   "import socket\n"
                   "s=socket.socket()\n"
                   "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                   "s.bind(('10.66.0.2',9000)); s.listen(1024)\n"
                   "while True:\n"
                   "  c,_=s.accept(); c.recv(16); c.close()\n"}),
        dir_ / "server.log");
    ASSERT_TRUE(Listening(l_.b, 9000));
  }

  // Until `netctl host` shows the playbook's stop condition.
  static bool Stopped(const Agent& agent, std::chrono::seconds within) {
    return Eventually(
        [&] {
          return agent.Netctl({"host"}).out.find("auto-playbook-port-auto-stopped") !=
                 std::string::npos;
        },
        within);
  }

  // Runs the ports out, waits for the playbook's change to reach `state`,
  // and rolls it back as an operator would (netctl tune rollback).
  void RollBackTheChangeOnce(Agent& agent, v1::ChangeState state) {
    EXPECT_GT(FailedConnects(400), 0) << "the range did not run out";
    ASSERT_TRUE(Eventually(
        [&] {
          auto c = AutoChanges(agent);
          return !c.empty() && c.back().state() == state;
        },
        std::chrono::seconds(60)))
        << agent.log();
    RunResult rb = agent.Netctl({"tune", "rollback", AutoChanges(agent).back().id()});
    ASSERT_EQ(rb.exit_code, 0) << rb.err;
  }

  // An auto playbook for port-exhaustion with `extra` YAML.
  std::string Playbook(const std::string& extra) {
    WriteFile(dir_ / "auto.yaml",
              "apiVersion: netagent/v1\n"
              "kind: Playbook\n"
              "metadata: {name: port-auto}\n"
              "mode: auto\n"
              "match: {finding: port-exhaustion, severity: warning, window: 2s}\n"
              "remediation: {from_finding: true}\n" +
                  extra);
    return dir_ / "auto.yaml";
  }

  // Connects for 3 s (at most `most` that succeed): failures. The bound
  // matters: once the agent widens the range, an unbounded client would
  // fill it with TIME_WAIT again and the finding would stay open.
  int FailedConnects(int most) {
    RunResult r = RunCommand(l_.a.Exec({kPython, "-c",
                                        absl::StrCat("import socket,time\n"
                                                     "ok=fail=0; end=time.time()+3\n"
                                                     "while time.time()<end and ok<",
                                                     most,
                                                     ":\n"
                                                     "  c=socket.socket()\n"
                                                     "  try: c.connect(('10.66.0.2',9000)); ok+=1\n"
                                                     "  except OSError: fail+=1; time.sleep(0.01)\n"
                                                     "  c.close()\n"
                                                     "print(fail)\n")}),
                             std::chrono::seconds(25));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return std::atoi(r.out.c_str());
  }

  // The changes the agent made by itself, oldest first.
  static std::vector<v1::ChangeRecord> AutoChanges(const Agent& agent) {
    RunResult r = agent.Netctl({"-o", "json", "tune", "history"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<v1::ChangeRecord> out;
    if (r.exit_code != 0) return out;
    const auto history = ResultOf<v1::ListChangesResponse>(Lines(r.out).at(0));
    for (const auto& c : history.changes())
      if (c.caller() == "auto-playbook:port-auto") out.insert(out.begin(), c);
    return out;
  }

  Link l_;
  TempDir dir_;
  std::string range_, reuse_;
  std::unique_ptr<Process> server_;
};

// The finding opens, the agent applies the finding's own remediation,
// verifies it, keeps it (the failures stop); when someone changes a knob it
// set, it stops the playbook and says so rather than fight.
TEST_F(AutoLab, RemediatesVerifiesKeepsAndStopsOnDrift) {
  const std::string pb = Playbook(
      "verify:\n  settle: 1s\n  window: 3s\n"
      "  failure: [{counter: TcpRetransSegs, worse_than_baseline: 2, rate_above: 10}]\n");
  Agent agent(l_.a, {"--diagnosis-interval", "2s", "--playbook", pb});
  ASSERT_TRUE(agent.ok()) << agent.error();
  EXPECT_GT(FailedConnects(400), 0) << "the range did not run out";
  ASSERT_TRUE(Eventually(
      [&] {
        auto c = AutoChanges(agent);
        return !c.empty() && c.back().state() == v1::CHANGE_STATE_CONFIRMED;
      },
      std::chrono::seconds(60)))
      << agent.log();
  ASSERT_EQ(AutoChanges(agent).size(), 1u);
  EXPECT_EQ(Sysctl(l_.a, "net.ipv4.tcp_tw_reuse"), "1");
  EXPECT_EQ(FailedConnects(2000), 0) << "connections still fail";
  EXPECT_THAT(agent.log(), HasSubstr("verified and confirmed"));

  // Drift: an administrator turns reuse off again. The agent's drift pass
  // (every 30 s) sees it; the playbook stops, and `netctl host` says so.
  ASSERT_EQ(RunCommand(l_.a.Exec({"sysctl", "-qw", "net.ipv4.tcp_tw_reuse=0"})).exit_code, 0);
  ASSERT_TRUE(Stopped(agent, std::chrono::seconds(60)));
  EXPECT_EQ(Sysctl(l_.a, "net.ipv4.tcp_tw_reuse"), "0") << "the agent fought the administrator";
  EXPECT_EQ(AutoChanges(agent).size(), 1u);
}

// A guard fails (port-unreachable answers injected in the namespace): the
// change is rolled back; after the cool-down the still-open finding is tried
// once more, and then the hourly limit holds.
TEST_F(AutoLab, AChangeThatFailsItsGuardIsRolledBackCoolsDownAndIsRateLimited) {
  const std::string pb = Playbook(
      "auto: {max_changes_per_hour: 2, cooldown: 5s}\n"
      "verify:\n  settle: 0s\n  window: 2s\n"
      "  failure: [{counter: UdpNoPorts, rate_above: 20}]\n");
  Process noise(l_.a.Exec({kPython, "-c",
                           "import socket,time\n"
                           "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                           "while True:\n"
                           "  s.sendto(b'x',('127.0.0.1',9)); time.sleep(0.01)\n"}),
                dir_ / "noise.log");
  Agent agent(l_.a, {"--diagnosis-interval", "2s", "--playbook", pb});
  ASSERT_TRUE(agent.ok()) << agent.error();
  EXPECT_GT(FailedConnects(400), 0) << "the range did not run out";
  ASSERT_TRUE(Eventually(
      [&] {
        auto c = AutoChanges(agent);
        return c.size() == 2 && c.back().state() == v1::CHANGE_STATE_ROLLED_BACK;
      },
      std::chrono::seconds(60)))
      << agent.log();
  auto changes = AutoChanges(agent);
  EXPECT_EQ(changes[0].state(), v1::CHANGE_STATE_ROLLED_BACK);
  EXPECT_GE(changes[1].created().seconds() - changes[0].created().seconds(), 5)
      << "tried again within the cool-down";
  EXPECT_EQ(Sysctl(l_.a, "net.ipv4.ip_local_port_range"), range_);
  EXPECT_EQ(Sysctl(l_.a, "net.ipv4.tcp_tw_reuse"), reuse_);
  // Two in the hour: no third, though the finding is still open.
  std::this_thread::sleep_for(std::chrono::seconds(10));
  EXPECT_EQ(AutoChanges(agent).size(), 2u);
  EXPECT_THAT(agent.log(), HasSubstr("changes in the last hour: at most 2"));
}

// Found by review: an operator who rolled back what the playbook kept saw
// the agent apply it again at the next evaluation. Undoing a kept change
// stops the playbook, as drift does.
TEST_F(AutoLab, AnOperatorRollbackStopsThePlaybook) {
  const std::string pb = Playbook("verify:\n  settle: 1s\n  window: 3s\n");
  Agent agent(l_.a, {"--diagnosis-interval", "2s", "--playbook", pb});
  ASSERT_TRUE(agent.ok()) << agent.error();
  RollBackTheChangeOnce(agent, v1::CHANGE_STATE_CONFIRMED);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(Stopped(agent, std::chrono::seconds(20))) << agent.log();
  // The ports run out again and the finding opens again: the agent leaves it.
  EXPECT_GT(FailedConnects(400), 0);
  std::this_thread::sleep_for(std::chrono::seconds(8));
  EXPECT_EQ(AutoChanges(agent).size(), 1u) << agent.log();
  EXPECT_EQ(Sysctl(l_.a, "net.ipv4.tcp_tw_reuse"), reuse_);
  EXPECT_THAT(agent.log(), HasSubstr("was undone (rolled back by"));
}

// Found by review: a rollback while the change was being verified only
// started the cool-down, and the playbook applied the change again an hour
// later. It stops, as for a kept change.
TEST_F(AutoLab, AnOperatorRollbackDuringVerificationStopsThePlaybook) {
  const std::string pb = Playbook("verify:\n  settle: 1s\n  window: 10s\n");
  Agent agent(l_.a, {"--diagnosis-interval", "2s", "--playbook", pb});
  ASSERT_TRUE(agent.ok()) << agent.error();
  RollBackTheChangeOnce(agent, v1::CHANGE_STATE_PENDING_CONFIRM);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(Stopped(agent, std::chrono::seconds(30))) << agent.log();
  EXPECT_THAT(agent.log(), HasSubstr("was undone while it was verified"));
  EXPECT_EQ(AutoChanges(agent).size(), 1u) << agent.log();
  EXPECT_EQ(Sysctl(l_.a, "net.ipv4.tcp_tw_reuse"), reuse_);
}

// Found by review: the cool-down lived in memory, so a restart let a
// playbook that had just failed try again at once. It is read back from the
// journal.
TEST_F(AutoLab, ARestartKeepsTheCooldown) {
  const std::string pb = Playbook(
      "auto: {cooldown: 1h}\n"
      "verify:\n  settle: 0s\n  window: 2s\n"
      "  failure: [{counter: UdpNoPorts, rate_above: 20}]\n");
  Process noise(l_.a.Exec({kPython, "-c",
                           "import socket,time\n"
                           "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                           "while True:\n"
                           "  s.sendto(b'x',('127.0.0.1',9)); time.sleep(0.01)\n"}),
                dir_ / "noise.log");
  const std::string state = dir_ / "agent-state";  // outlives the first agent
  auto agent = std::make_unique<Agent>(
      l_.a, std::vector<std::string>{"--diagnosis-interval", "2s", "--playbook", pb}, state);
  ASSERT_TRUE(agent->ok()) << agent->error();
  EXPECT_GT(FailedConnects(400), 0) << "the range did not run out";
  ASSERT_TRUE(Eventually(
      [&] {
        auto c = AutoChanges(*agent);
        return c.size() == 1 && c.back().state() == v1::CHANGE_STATE_ROLLED_BACK;
      },
      std::chrono::seconds(60)))
      << agent->log();
  agent.reset();
  Agent again(l_.a, {"--diagnosis-interval", "2s", "--playbook", pb}, state);
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_GT(FailedConnects(400), 0);  // the finding is open
  std::this_thread::sleep_for(std::chrono::seconds(8));
  EXPECT_EQ(AutoChanges(again).size(), 1u) << again.log();
  EXPECT_THAT(again.log(), HasSubstr("cooling down after a rollback until"));
}

// netagentd refuses to start with a playbook it cannot run by itself, and
// says which file, line and field.
TEST(PlaybookAgentFlags, BadAutoPlaybooksStopTheStartAndNameTheFile) {
  REQUIRE_ROOT("network namespaces");
  Netns ns;
  TempDir dir;
  const std::string head = "apiVersion: netagent/v1\nkind: Playbook\nmetadata: {name: x}\n";
  struct Case {
    std::string text, want;
    std::vector<std::string> extra;
  } cases[] = {
      {head + "match: {finding: port-exhaustion}\nremediation: {from_finding: true}\n",
       "not mode: auto"},
      {head + "mode: auto\nmatch: {finding: no-such-rule}\nremediation: {from_finding: true}\n",
       "match.finding: no rule no-such-rule"},
      {head + "mode: auto\nmatch: {finding: port-exhaustion}\nremediation: {from_finding: true}\n"
              "rollout: {wavez: [1]}\n",
       "pb.yaml:7: rollout.wavez: unknown field"},
      {head + "mode: auto\nmatch: {finding: port-exhaustion}\nremediation: {from_finding: true}\n",
       "--diagnosis-interval must not be 0",
       {"--diagnosis-interval", "0"}},
  };
  for (const auto& c : cases) {
    WriteFile(dir / "pb.yaml", c.text);
    std::vector<std::string> argv = {NetagentdPath(), "--netns",      ns.name(),
                                     "--socket",      dir / "a.sock", "--state-dir",
                                     dir / "state",   "--playbook",   dir / "pb.yaml"};
    argv.insert(argv.end(), c.extra.begin(), c.extra.end());
    RunResult r = RunCommand(argv, std::chrono::seconds(20));
    EXPECT_NE(r.exit_code, 0) << c.text;
    EXPECT_THAT(r.err + r.out, HasSubstr(c.want)) << c.text;
  }
}

}  // namespace
}  // namespace netagent::testing
