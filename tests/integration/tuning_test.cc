// Tuning against the real kernel: a netagentd serves a namespace this test
// creates (with a veth pair for queue masks and channels); values are read
// back with sysctl, cat and ethtool in the same namespace. Only per-namespace
// knobs are changed, so the host is never touched.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>

#include <cstring>
#include <filesystem>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "netagent/v1/host.pb.h"
#include "netagent/v1/tuning.pb.h"
#include "tests/common/test_support.h"
#include "tests/integration/harness.h"
#include "tests/integration/json.h"
#include "tests/unit/fixtures.h"

namespace netagent::testing {
namespace {

namespace v1 = ::netagent::v1;
using ::netagent::testing::Fixture;
using ::testing::HasSubstr;

// The knobs these tests change, read with the reference tools.
const std::vector<std::string> kSysctls = {
    "net.core.somaxconn",          "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_synack_retries",
    "net.ipv4.tcp_rmem",           "net.ipv4.tcp_wmem",        "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.ip_local_port_range"};
const std::vector<std::string> kQueueFiles = {"rx-0/rps_cpus", "rx-0/rps_flow_cnt",
                                              "tx-0/xps_cpus"};

std::string QueueFile(const Netns& ns, const std::string& dev, const std::string& file) {
  RunResult r =
      RunCommand(ns.Exec({"cat", absl::StrCat("/sys/class/net/", dev, "/queues/", file)}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return std::string(absl::StripAsciiWhitespace(r.out));
}

// Everything the tests may change, as the reference tools print it.
std::map<std::string, std::string> Snapshot(const Netns& ns) {
  std::map<std::string, std::string> s;
  for (const auto& n : kSysctls) s[n] = Sysctl(ns, n);
  for (const auto& f : kQueueFiles) s["veth0/" + f] = QueueFile(ns, "veth0", f);
  RunResult l = RunCommand(ns.Exec({"ethtool", "-l", "veth0"}));
  s["ethtool -l"] = l.out;
  return s;
}

void MakeVeth(const Netns& ns) {
  ASSERT_EQ(
      RunCommand(ns.Exec({"ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1"}))
          .exit_code,
      0);
  ASSERT_EQ(RunCommand(ns.Exec({"ip", "link", "set", "veth0", "up"})).exit_code, 0);
  ASSERT_EQ(RunCommand(ns.Exec({"ip", "link", "set", "veth1", "up"})).exit_code, 0);
}

v1::ApplyTuningResponse Apply(const Agent& a, std::vector<std::string> args) {
  std::vector<std::string> argv = {"-o", "json", "tune", "apply"};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult r = a.Netctl(argv);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  if (r.exit_code != 0) return {};
  return ResultOf<v1::ApplyTuningResponse>(Lines(r.out).at(0));
}

std::vector<v1::ChangeRecord> History(const Agent& a) {
  RunResult r = a.Netctl({"-o", "json", "tune", "history"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto resp = ResultOf<v1::ListChangesResponse>(Lines(r.out).at(0));
  return {resp.changes().begin(), resp.changes().end()};
}

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// A directory made read-only for as long as this lives: a read-only bind
// mount in the test's private mount namespace, which the agent (its child)
// shares. Root's writes there fail with EROFS, as on a file system the
// kernel remounted read-only; file modes would not stop root.
class ReadOnlyDir {
 public:
  explicit ReadOnlyDir(const std::string& dir) : dir_(dir) {
    ok_ = ::mount(dir.c_str(), dir.c_str(), nullptr, MS_BIND, nullptr) == 0 &&
          ::mount(nullptr, dir.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) == 0;
  }
  ~ReadOnlyDir() { ::umount2(dir_.c_str(), MNT_DETACH); }
  bool ok() const { return ok_; }

 private:
  std::string dir_;
  bool ok_ = false;
};

// The agent's condition `id` as GetHostInfo reports it (an empty one if absent).
v1::AgentCondition Condition(const Agent& a, const std::string& id) {
  RunResult r = a.Netctl({"-o", "json", "host"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto info = ResultOf<v1::GetHostInfoResponse>(r.out);
  for (const auto& c : info.conditions()) {
    if (c.id() == id) return c;
  }
  return {};
}

std::map<std::string, v1::ChangeRecord> HistoryById(const Agent& a) {
  std::map<std::string, v1::ChangeRecord> out;
  for (const auto& h : History(a)) out[h.id()] = h;
  return out;
}

TEST(TuningIntegration, PlanApplyVerifyRollbackRestoresEveryValueExactly) {
  REQUIRE_ROOT("network namespaces");
  Netns ns;
  MakeVeth(ns);
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();
  const auto before = Snapshot(ns);

  // A plan changes nothing.
  RunResult plan =
      agent.Netctl({"-o", "json", "tune", "plan", "bdp", "--bandwidth", "1gbit", "--rtt", "200ms"});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  auto p = ResultOf<v1::PlanTuningResponse>(Lines(plan.out).at(0)).plan();
  ASSERT_EQ(p.changes_size(), 2);
  EXPECT_EQ(p.changes(0).knob(), "net.ipv4.tcp_rmem");
  EXPECT_EQ(p.changes(0).old_value(), before.at("net.ipv4.tcp_rmem"));
  EXPECT_EQ(Snapshot(ns), before);

  // Four change sets, each verified with the reference tools.
  auto bdp = Apply(
      agent, {"bdp", "--bandwidth", "1gbit", "--rtt", "200ms", "--expect-digest", p.digest()});
  ASSERT_EQ(bdp.change().state(), v1::CHANGE_STATE_CONFIRMED);
  EXPECT_THAT(Sysctl(ns, "net.ipv4.tcp_rmem"), ::testing::EndsWith(" 50000000"));
  EXPECT_THAT(Sysctl(ns, "net.ipv4.tcp_wmem"), ::testing::EndsWith(" 50000000"));
  auto limits = Apply(agent, {"limits", "--set", "somaxconn=8192", "--set", "tcp_fin_timeout=30",
                              "--set", "ip_local_port_range=20000 60999"});
  EXPECT_EQ(Sysctl(ns, "net.core.somaxconn"), "8192");
  EXPECT_EQ(Sysctl(ns, "net.ipv4.tcp_fin_timeout"), "30");
  EXPECT_EQ(Sysctl(ns, "net.ipv4.ip_local_port_range"), "20000 60999");
  auto rps = Apply(agent, {"rps", "--dev", "veth0", "--cpus", "0"});
  EXPECT_EQ(QueueFile(ns, "veth0", "rx-0/rps_cpus"), "1");
  auto rfs = Apply(agent, {"rfs", "--dev", "veth0", "--entries", "4096"});
  EXPECT_EQ(QueueFile(ns, "veth0", "rx-0/rps_flow_cnt"), "4096");
  auto xps = Apply(agent, {"xps", "--dev", "veth0", "--cpus", "0"});
  EXPECT_EQ(QueueFile(ns, "veth0", "tx-0/xps_cpus"), "1");
  EXPECT_NE(Snapshot(ns), before);

  // tune show names the change that set each knob.
  RunResult show = agent.Netctl({"-o", "json", "tune", "show", "--dev", "veth0"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  auto tunables = ResultOf<v1::GetTunablesResponse>(Lines(show.out).at(0));
  std::map<std::string, v1::Tunable> by_knob;
  for (const auto& t : tunables.tunables()) by_knob[t.knob()] = t;
  EXPECT_EQ(by_knob["net.core.somaxconn"].set_by(), limits.change().id());
  EXPECT_EQ(by_knob["net.core.somaxconn"].value(), "8192");
  EXPECT_EQ(by_knob["net.core.somaxconn"].kernel_default(), "4096");
  EXPECT_EQ(by_knob["veth0:rx-0/rps_cpus"].set_by(), rps.change().id());
  EXPECT_EQ(by_knob["net.core.rmem_max"].writable(), false);

  for (const auto* c : {&xps, &rfs, &rps, &limits, &bdp}) {
    RunResult r = agent.Netctl({"tune", "rollback", c->change().id()});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  EXPECT_EQ(Snapshot(ns), before);
  auto history = History(agent);
  ASSERT_EQ(history.size(), 5u);
  for (const auto& h : history) {
    EXPECT_EQ(h.state(), v1::CHANGE_STATE_ROLLED_BACK) << h.id();
    EXPECT_THAT(h.caller(), HasSubstr("uid=0"));
  }
  // Nothing left to roll back.
  RunResult again = agent.Netctl({"tune", "rollback", bdp.change().id()});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("FAILED_PRECONDITION"));
}

TEST(TuningIntegration, ChannelsOnAVethPairAgreeWithEthtool) {
  REQUIRE_ROOT("network namespaces");
  Netns ns;
  MakeVeth(ns);
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();
  const std::string before = RunCommand(ns.Exec({"ethtool", "-l", "veth0"})).out;
  auto ch = Apply(agent, {"channels", "--dev", "veth0", "--rx", "2", "--tx", "2"});
  ASSERT_EQ(ch.change().knobs_size(), 1);  // one CHANNELS_SET
  EXPECT_EQ(ch.change().knobs(0).new_value(), "0 2 2 0");
  const std::string after = RunCommand(ns.Exec({"ethtool", "-l", "veth0"})).out;
  const size_t current = after.find("Current hardware settings:");
  ASSERT_NE(current, std::string::npos) << after;
  EXPECT_THAT(after.substr(current), HasSubstr("RX:\t\t2\nTX:\t\t2\n")) << after;
  // The new queue's files appear, and a queue mask plan covers both.
  RunResult plan =
      agent.Netctl({"-o", "json", "tune", "plan", "rps", "--dev", "veth0", "--cpus", "1"});
  auto p = ResultOf<v1::PlanTuningResponse>(Lines(plan.out).at(0)).plan();
  EXPECT_EQ(p.changes_size(), 2);
  ASSERT_EQ(agent.Netctl({"tune", "rollback", ch.change().id()}).exit_code, 0);
  EXPECT_EQ(RunCommand(ns.Exec({"ethtool", "-l", "veth0"})).out, before);
}

TEST(TuningIntegration, AnUnconfirmedChangeRevertsAtItsDeadlineAConfirmedOneStays) {
  REQUIRE_ROOT("network namespaces");
  Netns ns;
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();
  const std::string somaxconn = Sysctl(ns, "net.core.somaxconn");
  const std::string fin = Sysctl(ns, "net.ipv4.tcp_fin_timeout");
  // The confirmed change's deadline comes first: once the other one has
  // expired, a deadline pass has run after it too.
  auto confirmed =
      Apply(agent, {"limits", "--set", "tcp_fin_timeout=20", "--confirm-within", "2s"});
  auto unconfirmed = Apply(agent, {"limits", "--set", "somaxconn=8192", "--confirm-within", "3s"});
  EXPECT_EQ(unconfirmed.change().state(), v1::CHANGE_STATE_PENDING_CONFIRM);
  EXPECT_EQ(Sysctl(ns, "net.core.somaxconn"), "8192");
  // A knob held by an unconfirmed change cannot be changed again meanwhile.
  RunResult held = agent.Netctl({"tune", "apply", "limits", "--set", "somaxconn=9000"});
  EXPECT_EQ(held.exit_code, 1);
  EXPECT_THAT(held.err, HasSubstr("held by change " + unconfirmed.change().id()));
  ASSERT_EQ(agent.Netctl({"tune", "confirm", confirmed.change().id()}).exit_code, 0);

  EXPECT_TRUE(Eventually(
      [&] {
        return HistoryById(agent)[unconfirmed.change().id()].state() == v1::CHANGE_STATE_EXPIRED;
      },
      std::chrono::seconds(10), std::chrono::milliseconds(100)));
  EXPECT_EQ(Sysctl(ns, "net.core.somaxconn"), somaxconn);
  EXPECT_EQ(Sysctl(ns, "net.ipv4.tcp_fin_timeout"), "20");
  EXPECT_EQ(HistoryById(agent)[confirmed.change().id()].state(), v1::CHANGE_STATE_CONFIRMED);
  // Confirming after the deadline is refused.
  RunResult late = agent.Netctl({"tune", "confirm", unconfirmed.change().id()});
  EXPECT_EQ(late.exit_code, 1);
  EXPECT_THAT(late.err, HasSubstr("expired"));
  ASSERT_EQ(agent.Netctl({"tune", "rollback", confirmed.change().id()}).exit_code, 0);
  EXPECT_EQ(Sysctl(ns, "net.ipv4.tcp_fin_timeout"), fin);
}

TEST(TuningIntegration, KillNineInsideTheWindowThenRestartReverts) {
  REQUIRE_ROOT("network namespaces");
  Netns ns;
  TempDir state;
  const std::string somaxconn = Sysctl(ns, "net.core.somaxconn");
  const std::string backlog = Sysctl(ns, "net.ipv4.tcp_max_syn_backlog");
  std::string overdue, pending;
  absl::Time overdue_at;
  {
    Agent agent(ns, {}, state / "s");
    ASSERT_TRUE(agent.ok()) << agent.error();
    auto first = Apply(agent, {"limits", "--set", "somaxconn=8192", "--confirm-within", "1s"});
    overdue = first.change().id();
    overdue_at = FromProto(first.change().confirm_deadline());
    pending =
        Apply(agent, {"limits", "--set", "tcp_max_syn_backlog=4096", "--confirm-within", "8s"})
            .change()
            .id();
    agent.process().Signal(SIGKILL);
    ASSERT_TRUE(agent.process().Wait(std::chrono::seconds(5)).has_value());
  }
  // The first deadline passes while no agent runs.
  ASSERT_TRUE(Eventually([&] { return absl::Now() > overdue_at; }));
  // Nobody is there to roll back.
  EXPECT_EQ(Sysctl(ns, "net.core.somaxconn"), "8192");
  EXPECT_EQ(Sysctl(ns, "net.ipv4.tcp_max_syn_backlog"), "4096");
  Agent restarted(ns, {}, state / "s");
  ASSERT_TRUE(restarted.ok()) << restarted.error();
  // The overdue change was rolled back at start; the other one still waits.
  EXPECT_EQ(Sysctl(ns, "net.core.somaxconn"), somaxconn);
  EXPECT_EQ(Sysctl(ns, "net.ipv4.tcp_max_syn_backlog"), "4096");
  auto by_id = HistoryById(restarted);
  EXPECT_EQ(by_id[overdue].state(), v1::CHANGE_STATE_EXPIRED);
  EXPECT_THAT(by_id[overdue].events(by_id[overdue].events_size() - 1).what(),
              HasSubstr("while the agent was down"));
  EXPECT_EQ(by_id[pending].state(), v1::CHANGE_STATE_PENDING_CONFIRM);
  EXPECT_TRUE(Eventually([&] { return Sysctl(ns, "net.ipv4.tcp_max_syn_backlog") == backlog; },
                         std::chrono::seconds(15), std::chrono::milliseconds(100)));
}

TEST(TuningIntegration, AWriteFailingHalfWayRestoresTheEarlierWrites) {
  REQUIRE_ROOT("network namespaces");
  Netns ns;
  MakeVeth(ns);
  Agent agent(ns, {"--fault-inject-write", "net.ipv4.tcp_fin_timeout"});
  ASSERT_TRUE(agent.ok()) << agent.error();
  const auto before = Snapshot(ns);
  RunResult r = agent.Netctl({"tune", "apply", "limits", "--set", "somaxconn=8192", "--set",
                              "tcp_synack_retries=3", "--set", "tcp_fin_timeout=30"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("injected fault"));
  EXPECT_THAT(r.err, HasSubstr("nothing changed (2 knobs written before it restored)"));
  EXPECT_EQ(Snapshot(ns), before);
  auto h = History(agent);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].state(), v1::CHANGE_STATE_FAILED);
}

TEST(TuningIntegration, ARollbackWithAReadOnlyJournalSaysTheHostIsRestoredAndTheJournalNot) {
  REQUIRE_ROOT("network namespaces and a read-only bind mount");
  Netns ns;
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();
  const std::string somaxconn = Sysctl(ns, "net.core.somaxconn");
  const std::string id = Apply(agent, {"limits", "--set", "somaxconn=8192"}).change().id();
  ASSERT_EQ(Sysctl(ns, "net.core.somaxconn"), "8192");
  // The journal on disk: the snapshot and the log of what changed since.
  const std::string dir = agent.state_dir() + "/tuning";
  auto on_disk = [&] {
    std::string text = ReadFile(dir + "/journal.yaml");
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      if (e.path().filename().string().rfind("journal.yaml.log.", 0) == 0)
        text += ReadFile(e.path().string());
    }
    return text;
  };
  {
    ReadOnlyDir ro(agent.state_dir() + "/tuning");
    ASSERT_TRUE(ro.ok()) << strerror(errno);
    RunResult r = agent.Netctl({"-o", "json", "tune", "rollback", id});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    auto resp = ResultOf<v1::RollbackChangeResponse>(Lines(r.out).at(0));
    EXPECT_EQ(resp.change().state(), v1::CHANGE_STATE_ROLLED_BACK);
    EXPECT_THAT(resp.journal_error(), HasSubstr("Read-only file system"));
    EXPECT_EQ(Sysctl(ns, "net.core.somaxconn"), somaxconn);
    EXPECT_THAT(on_disk(), HasSubstr("state: confirmed"));  // behind
    EXPECT_THAT(on_disk(), ::testing::Not(HasSubstr("state: rolled_back")));
    v1::AgentCondition c = Condition(agent, "tuning-journal-not-saved");
    EXPECT_EQ(c.severity(), v1::SEVERITY_WARNING);
    EXPECT_THAT(c.summary(), HasSubstr("Read-only file system"));
    // The people's output says the host part first, then the journal's.
    RunResult text = agent.Netctl({"tune", "history", "--limit", "1"});
    EXPECT_THAT(text.out, HasSubstr("rolled_back"));
    // An apply cannot be journaled first, so it changes nothing.
    RunResult refused = agent.Netctl({"tune", "apply", "limits", "--set", "somaxconn=9000"});
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_THAT(refused.err, HasSubstr("FAILED_PRECONDITION: nothing was changed"));
    EXPECT_EQ(Sysctl(ns, "net.core.somaxconn"), somaxconn);
  }
  // Writable again: the next write brings the file up to date.
  Apply(agent, {"limits", "--set", "tcp_fin_timeout=31"});
  EXPECT_THAT(on_disk(), HasSubstr("state: rolled_back"));
}

TEST(TuningIntegration, ACorruptJournalIsSetAsideTheAgentServesAndTuningWaitsForAnAck) {
  REQUIRE_ROOT("network namespaces");
  Netns ns;
  TempDir state;
  const std::string tuning = state / "s/tuning";
  std::filesystem::create_directories(tuning);
  const std::string damaged = Fixture("journal/truncated.yaml");
  WriteFile(tuning + "/journal.yaml", damaged);
  WriteFile(tuning + "/journal.yaml.tmp", "version: 1\ncount: 3\n");  // a write cut short
  const std::string somaxconn = Sysctl(ns, "net.core.somaxconn");
  Agent agent(ns, {}, state / "s");
  ASSERT_TRUE(agent.ok()) << agent.error();

  // It starts and serves everything else.
  EXPECT_EQ(agent.Netctl({"softnet"}).exit_code, 0);
  EXPECT_EQ(agent.Netctl({"counters"}).exit_code, 0);
  // The file is set aside byte for byte; the leftover is gone; the log says so.
  std::string moved;
  for (const auto& e : std::filesystem::directory_iterator(tuning)) {
    if (e.path().filename().string().rfind("journal.yaml.corrupt-", 0) == 0) moved = e.path();
  }
  ASSERT_FALSE(moved.empty());
  EXPECT_EQ(ReadFile(moved), damaged);
  EXPECT_FALSE(std::filesystem::exists(tuning + "/journal.yaml"));
  EXPECT_FALSE(std::filesystem::exists(tuning + "/journal.yaml.tmp"));
  EXPECT_THAT(agent.log(), HasSubstr("could not be read (cut short"));
  EXPECT_THAT(agent.log(), HasSubstr("set aside as " + moved));
  EXPECT_THAT(agent.log(), HasSubstr("removed " + tuning + "/journal.yaml.tmp"));

  // netctl host shows the condition, with the knobs that may be left changed.
  v1::AgentCondition c = Condition(agent, "tuning-journal-quarantined");
  EXPECT_EQ(c.severity(), v1::SEVERITY_CRITICAL);
  EXPECT_THAT(c.summary(), HasSubstr(moved));
  EXPECT_THAT(c.summary(), HasSubstr("values may be left changed"));
  EXPECT_THAT(c.summary(), HasSubstr("net.core.somaxconn \"4096\" -> \"8192\""));
  EXPECT_THAT(c.action(), HasSubstr("netctl tune journal ack"));
  EXPECT_THAT(agent.Netctl({"host"}).out, HasSubstr("critical tuning-journal-quarantined"));
  RunResult journal = agent.Netctl({"tune", "journal"});
  EXPECT_EQ(journal.exit_code, 0) << journal.err;
  EXPECT_THAT(journal.out, HasSubstr("QUARANTINED"));
  EXPECT_THAT(journal.out, HasSubstr("20300102-031000-3c4d"));

  // Planning is harmless; applying is refused, naming why, and changes nothing.
  RunResult plan = agent.Netctl({"tune", "plan", "limits", "--set", "somaxconn=8192"});
  EXPECT_EQ(plan.exit_code, 0) << plan.err;
  EXPECT_THAT(plan.out, HasSubstr("applying is refused"));
  RunResult refused = agent.Netctl({"tune", "apply", "limits", "--set", "somaxconn=8192"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr("FAILED_PRECONDITION: tuning is refused"));
  EXPECT_THAT(refused.err, HasSubstr("cut short"));
  EXPECT_EQ(Sysctl(ns, "net.core.somaxconn"), somaxconn);
  RunResult unknown = agent.Netctl({"tune", "rollback", "20300102-031000-3c4d"});
  EXPECT_THAT(unknown.err, HasSubstr("is unknown to this agent"));

  // The operator acknowledges; a fresh journal says who and which file.
  RunResult ack = agent.Netctl({"-o", "json", "tune", "journal", "ack", "--file",
                                std::filesystem::path(moved).filename().string()});
  ASSERT_EQ(ack.exit_code, 0) << ack.out << ack.err;
  auto acked = ResultOf<v1::AcknowledgeJournalResponse>(Lines(ack.out).at(0));
  EXPECT_EQ(acked.acknowledged().quarantined_path(), moved);
  EXPECT_EQ(acked.acknowledged().possibly_in_effect_size(), 2);
  EXPECT_FALSE(acked.status().has_quarantine());
  ASSERT_EQ(acked.status().events_size(), 1);
  EXPECT_THAT(acked.status().events(0).what(), HasSubstr("uid=0"));
  EXPECT_THAT(acked.status().events(0).what(), HasSubstr(moved));
  EXPECT_EQ(Condition(agent, "tuning-journal-quarantined").id(), "");
  EXPECT_EQ(ReadFile(moved), damaged);  // kept for the post-mortem

  auto applied = Apply(agent, {"limits", "--set", "somaxconn=8192"});
  EXPECT_EQ(applied.change().state(), v1::CHANGE_STATE_CONFIRMED);
  EXPECT_EQ(Sysctl(ns, "net.core.somaxconn"), "8192");
  ASSERT_EQ(agent.Netctl({"tune", "rollback", applied.change().id()}).exit_code, 0);
  EXPECT_EQ(Sysctl(ns, "net.core.somaxconn"), somaxconn);
}

TEST(TuningIntegration, DriftIsReportedNotFought) {
  REQUIRE_ROOT("network namespaces");
  Netns ns;
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();
  const std::string somaxconn = Sysctl(ns, "net.core.somaxconn");
  auto c = Apply(agent, {"limits", "--set", "somaxconn=8192"});
  ASSERT_EQ(RunCommand(ns.Exec({"sysctl", "-qw", "net.core.somaxconn=9000"})).exit_code, 0);
  auto h = History(agent);
  ASSERT_EQ(h.size(), 1u);
  ASSERT_EQ(h[0].drift_size(), 1);
  EXPECT_EQ(h[0].drift(0).knob(), "net.core.somaxconn");
  EXPECT_EQ(h[0].drift(0).observed(), "9000");
  EXPECT_EQ(Sysctl(ns, "net.core.somaxconn"), "9000");  // not fought
  // Rollback refuses to overwrite the other writer, and writes nothing.
  RunResult r = agent.Netctl({"tune", "rollback", c.change().id()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("changed since by someone else"));
  EXPECT_EQ(Sysctl(ns, "net.core.somaxconn"), "9000");
  ASSERT_EQ(agent.Netctl({"tune", "rollback", "--force", c.change().id()}).exit_code, 0);
  EXPECT_EQ(Sysctl(ns, "net.core.somaxconn"), somaxconn);
}

TEST(TuningIntegration, BadInputAndNonOperatorsChangeNothing) {
  REQUIRE_ROOT("network namespaces");
  Netns ns;
  MakeVeth(ns);
  // uid 65534 may connect through the socket's group: a viewer.
  Agent agent(ns, {"--socket-group", "65534"});
  ASSERT_TRUE(agent.ok()) << agent.error();
  const auto before = Snapshot(ns);
  auto as_nobody = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"setpriv",    "--reuid", "65534",
                                     "--regid",    "65534",   "--clear-groups",
                                     NetctlPath(), "-t",      agent.target()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  };
  RunResult viewer = as_nobody({"tune", "apply", "limits", "--set", "somaxconn=8192"});
  EXPECT_EQ(viewer.exit_code, 1);
  EXPECT_THAT(viewer.err, HasSubstr("PERMISSION_DENIED"));
  EXPECT_EQ(as_nobody({"tune", "plan", "limits", "--set", "somaxconn=8192"}).exit_code, 0);
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"tune", "rollback", "x"}, {"tune", "confirm", "x"}}) {
    RunResult r = as_nobody(args);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_THAT(r.err, HasSubstr("PERMISSION_DENIED")) << args[1];
  }

  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  const std::vector<Case> cases = {
      {{"limits", "--set", "somaxconn=70000"},
       "net.core.somaxconn: 70000 is outside the ceiling 65535"},
      {{"limits", "--set", "tcp_syncookies=2"}, "2 is refused"},
      {{"limits", "--set", "somaxconn=8192", "--set", "tcp_max_syn_backlog=99999999"},
       "net.ipv4.tcp_max_syn_backlog"},
      {{"sysctl", "--set", "net.ipv4.ip_forward=1"}, "not a knob the agent manages"},
      {{"limits", "--set", "tcp_rmem=4096 131072 1"}, "not a limit"},
      {{"rps", "--dev", "veth0", "--cpus", "0-4095"}, "rps.cpus: CPU"},
      {{"rps", "--dev", "nosuchdev"}, "NOT_FOUND"},
      {{"rps", "--dev", "bad/name"}, "intent.rps.device"},
      {{"channels", "--dev", "veth0", "--rx", "64"},
       "channels.rx: 64 is above the device's maximum"},
      {{"coalesce", "--dev", "veth0", "--profile", "latency"}, "Operation not supported"},
      {{"cc", "vegas"}, "congestion.algorithm"},
      {{"bdp", "--bandwidth", "1gbit", "--rtt", "20s"}, "intent.bdp.rtt"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> argv = {"tune", "apply"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    RunResult r = agent.Netctl(argv);
    EXPECT_EQ(r.exit_code, 1) << c.args[0] << ": " << r.out;
    EXPECT_THAT(r.err, HasSubstr(c.error)) << c.args[0];
  }
  RunResult stale = agent.Netctl({"tune", "apply", "limits", "--set", "somaxconn=8192",
                                  "--expect-digest", "0000000000000000"});
  EXPECT_THAT(stale.err, HasSubstr("ABORTED"));
  EXPECT_EQ(Snapshot(ns), before);
  EXPECT_TRUE(History(agent).empty());
}

TEST(TuningIntegration, CoalescingAndRssNeedADeviceThatHasThem) {
  REQUIRE_ROOT("network namespaces");
  // veth (the only multi-queue device a test namespace can own here) has
  // neither; the plan says so with the kernel's own reason.
  Netns ns;
  MakeVeth(ns);
  Agent agent(ns);
  ASSERT_TRUE(agent.ok()) << agent.error();
  RunResult co =
      agent.Netctl({"tune", "plan", "coalesce", "--dev", "veth0", "--profile", "latency"});
  EXPECT_THAT(co.err, HasSubstr("FAILED_PRECONDITION"));
  RunResult rss = agent.Netctl({"tune", "plan", "rss", "--dev", "veth0"});
  EXPECT_THAT(rss.err, HasSubstr("FAILED_PRECONDITION"));
  GTEST_SKIP() << "no device in a namespace this test owns supports coalescing or RSS (veth has "
                  "neither; netdevsim is absent); the messages are unit-tested";
}

}  // namespace
}  // namespace netagent::testing

namespace netagent::testing {
namespace {

TEST(TuningIntegration, OneFleetApplyIsOneIdToConfirmAndRollBack) {
  REQUIRE_ROOT("network namespaces");
  Netns a, b;
  Agent agent_a(a), agent_b(b);
  ASSERT_TRUE(agent_a.ok()) << agent_a.error();
  ASSERT_TRUE(agent_b.ok()) << agent_b.error();
  const std::string before_a = Sysctl(a, "net.core.somaxconn");
  const std::string before_b = Sysctl(b, "net.core.somaxconn");
  auto fleet = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {NetctlPath(), "-t", agent_a.target(), "-t", agent_b.target()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  };
  RunResult applied = fleet({"-o", "json", "tune", "apply", "limits", "--set", "somaxconn=8192",
                             "--confirm-within", "60s"});
  ASSERT_EQ(applied.exit_code, 0) << applied.err;
  auto lines = Lines(applied.out);
  ASSERT_EQ(lines.size(), 2u);
  const std::string id = ResultOf<v1::ApplyTuningResponse>(lines[0]).change().id();
  EXPECT_EQ(ResultOf<v1::ApplyTuningResponse>(lines[1]).change().id(), id);
  EXPECT_EQ(Sysctl(a, "net.core.somaxconn"), "8192");
  EXPECT_EQ(Sysctl(b, "net.core.somaxconn"), "8192");
  ASSERT_EQ(fleet({"tune", "confirm", id}).exit_code, 0);
  for (const Agent* ag : {&agent_a, &agent_b}) {
    EXPECT_EQ(History(*ag).at(0).state(), v1::CHANGE_STATE_CONFIRMED);
  }
  // The id is taken on each host now.
  RunResult reused =
      agent_a.Netctl({"tune", "apply", "limits", "--set", "somaxconn=9000", "--id", id});
  EXPECT_THAT(reused.err, HasSubstr("ALREADY_EXISTS"));
  EXPECT_THAT(
      agent_a.Netctl({"tune", "apply", "limits", "--set", "somaxconn=9000", "--id", "a/b"}).err,
      HasSubstr("change_id"));
  ASSERT_EQ(fleet({"tune", "rollback", id}).exit_code, 0);
  EXPECT_EQ(Sysctl(a, "net.core.somaxconn"), before_a);
  EXPECT_EQ(Sysctl(b, "net.core.somaxconn"), before_b);
}

}  // namespace
}  // namespace netagent::testing
